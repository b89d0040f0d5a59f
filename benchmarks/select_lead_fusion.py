"""Should `annotate` read the recording's other lead already where the lead read is noisy but still readable? A
question for the backup lead (``ecglib.ec57.annotate.backup_beats``), which today steps in only where the quality
check finds the lead unreadable.

The rule tried: in every one-second block whose noise ratio on the lead read (``quality.assess``: background over
QRS level) is above R and above the other lead's, take the other lead's R peaks (aligned on the lead read, as every
detector's are) instead of its own. On the twelve noise records of ``benchmarks/bench_detectors.py``, stressed on
both leads as ``benchmarks/backup_lead.py`` stresses them, the default model, detector and quality check label each
record once (the backup lead on); the rule is then applied to its peaks for each R and the result scored by bxb's
rules (gross QRS Se and +P, and records 118 and 119). Adopted only if it raises the gross QRS Se and +P together.

    python benchmarks/select_lead_fusion.py --mitdb-dir DIR [--ratios 0.2,0.3,0.4] [--noises em] [--snrs 6,12]

Prints one line per noise and SNR.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from backup_lead import stressed_records
from bench_detectors import NOISE_RECORDS

from ecglib.data.recordings import read_recording
from ecglib.ec57.annotate import annotate_recording, backup_lead, compare_with_reference
from ecglib.ec57.bxb import summarize
from ecglib.ec57.detect import detect_r_peaks
from ecglib.ec57.quality import assess, merge_with_beats, outside_noise
from ecglib.ec57.rpeaks import align_peaks
from ecglib.ec57.trained import load_model


def fused(result, ratio_read: np.ndarray, ratio_other: np.ndarray, other_peaks: np.ndarray, signal: np.ndarray,
          fs: float, threshold: float) -> tuple[np.ndarray, int]:
    """The labelled record's R peaks with those of the blocks the rule gives to the other lead replaced by the
    other lead's, aligned on the lead read; and how many blocks it gave."""
    b = int(round(fs))
    use = (ratio_read > threshold) & (ratio_other < ratio_read)
    block = lambda s: np.minimum(s // b, len(use) - 1)  # noqa: E731
    backup = result.backup if result.backup is not None else np.zeros(len(result.sample), dtype=bool)
    keep = result.sample[~use[block(result.sample)] | backup]
    add = other_peaks[use[block(other_peaks)]]
    add = align_peaks(signal, fs, add) if len(add) else add
    peaks = np.union1d(keep, add[outside_noise(add, result.noise)])
    if len(peaks) > 1:  # one beat found on both sides of a block's edge is one beat
        peaks = peaks[np.concatenate([[True], np.diff(peaks) > int(0.1 * fs)])]
    return peaks, int(use.sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mitdb-dir", type=Path, required=True)
    parser.add_argument("--ratios", default="0.2,0.3,0.4")
    parser.add_argument("--noises", default="em")
    parser.add_argument("--snrs", default="6,12")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    model = load_model()
    ratios = [float(r) for r in args.ratios.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.noises.split(","):
            for snr in (float(s) for s in args.snrs.split(",")):
                comps: dict[float | None, list] = {r: [] for r in [None, *ratios]}
                blocks = dict.fromkeys(ratios, 0)
                for path in stressed_records(args.mitdb_dir, Path(tmp), kind, snr):
                    rec = read_recording(path)
                    result = annotate_recording(model, rec, write=False)
                    comps[None].append(result.comparison)
                    other = read_recording(path, lead=backup_lead(rec)).signal
                    other_peaks = detect_r_peaks(other, rec.fs)
                    ratio_read = assess(rec.signal, rec.fs, detect_r_peaks(rec.signal, rec.fs)).ratio
                    ratio_other = assess(other, rec.fs, other_peaks).ratio
                    for r in ratios:
                        peaks, n = fused(result, ratio_read, ratio_other, other_peaks, rec.signal, rec.fs, r)
                        blocks[r] += n
                        marked = merge_with_beats(peaks, np.array(["N"] * len(peaks)), result.noise, len(rec.signal))
                        comps[r].append(compare_with_reference(rec, *marked))
                cells = []
                for r, c in comps.items():
                    g = summarize(c).gross
                    each = {NOISE_RECORDS[j]: x.stats() for j, x in enumerate(c)}
                    a, b = each["118"], each["119"]
                    cells.append(f"{'as today' if r is None else f'R {r:g} ({blocks[r]} blocks)'}: gross "
                                 f"{g['Q Se']:.2f} / {g['Q +P']:.2f}, 118 {a['Q Se']:.1f} / {a['Q +P']:.1f}, "
                                 f"119 {b['Q Se']:.1f} / {b['Q +P']:.1f}")
                print(f"{kind} {snr:g} dB: " + "; ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
