"""Should ecglib's R peaks on the lead read be completed with the other lead's, where the lead read seems to have
missed beats? MIT-BIH's second lead (V1, V2, V4 or V5), read as a lead the models never saw, loses 2.6 points of
QRS Se to its tiny or low beats (records 200 and 208); MLII, the lead read on every MIT-BIH record, must not lose.

Each of the 48 records is detected on both leads (`annotate`'s detection and quality check, 360 Hz). Rules, applied
to the peaks of the lead read with those of the other lead:

- ``gaps``: in every interval of the lead read longer than G times the median of its 9 neighbouring intervals,
  the other lead's beats at least max(0.3 s, 0.3 interval) from both ends (aligned on the lead read);
- ``switch``: where the other lead finds more than 2 % more beats over the record, each of its beats with no beat
  of the lead read within 0.15 s and at least 0.4 of its median interval from the lead read's neighbours
  (``ecglib.ec57.annotate.missed_beats``; `annotate` applies it where the lead read is not lead II).

Scored by bxb's rules (gross QRS Se and +P, paced records left out). A rule is adopted only if the second lead's
Se and +P rise and MLII's Se and +P do not fall.

    python benchmarks/select_gap_fill.py --mitdb-dir DIR [--gap 1.4] [--fs 128]

--fs: the records resampled first (ecglib.data.noise.stress_record, through wfdb.wrsamp).

Prints one line per rule and lead read.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def gaps(read: np.ndarray, other: np.ndarray, fs: float, factor: float) -> np.ndarray:
    """The other lead's beats inside the lead read's long intervals (the ``gaps`` rule)."""
    from scipy.ndimage import median_filter

    if len(read) < 4:
        return other[:0]
    rr = np.diff(read).astype(np.float64)
    local = median_filter(rr, size=9, mode="nearest")
    found = []
    for g in np.flatnonzero(rr > factor * local):
        margin = max(int(0.3 * fs), int(0.3 * local[g]))
        found.append(other[(other > read[g] + margin) & (other < read[g + 1] - margin)])
    return np.concatenate(found) if found else other[:0]


def switch(read: np.ndarray, other: np.ndarray, fs: float) -> np.ndarray:
    """The other lead's beats the lead read lacks, on a record where the other lead finds 2 % more (``switch``:
    ecglib.ec57.annotate.missed_beats, the rule `annotate` took)."""
    from ecglib.ec57.annotate import missed_beats

    return missed_beats(read, other, fs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mitdb-dir", type=Path, required=True)
    parser.add_argument("--gap", type=float, default=1.4, help="G of the gaps rule (default 1.4)")
    parser.add_argument("--fs", type=float, help="resample the records to this rate first (default: 360 Hz)")
    args = parser.parse_args(argv)

    import wfdb

    from ecglib.data.facts import MITDB_RECORDS
    from ecglib.data.noise import stress_record
    from ecglib.ec57.annotate import detect_and_find_noise
    from ecglib.ec57.bxb import compare, summarize
    from ecglib.ec57.quality import merge_with_beats, outside_noise
    from ecglib.ec57.rpeaks import align_peaks

    records = [r for r in MITDB_RECORDS if (args.mitdb_dir / f"{r}.hea").exists()]
    scored: dict[tuple[str, str], list] = {}
    changed: dict[str, list[str]] = {}
    scratch = tempfile.TemporaryDirectory()
    for record in records:
        base = str(args.mitdb_dir / record)
        if args.fs:
            base = str(stress_record(base, scratch.name, fs=args.fs))
        rec, ann = wfdb.rdrecord(base), wfdb.rdann(base, "atr")
        fs, n = float(rec.fs), rec.sig_len
        mlii = rec.sig_name.index("MLII") if "MLII" in rec.sig_name else 0
        detected = []
        for lead in range(2):
            peaks, noise = detect_and_find_noise(rec.p_signal[:, lead], fs)
            detected.append((peaks[outside_noise(peaks, noise)], noise))
        for name, lead in (("second lead", 1 - mlii), ("MLII", mlii)):
            (read, noise), (other, _) = detected[lead], detected[1 - lead]
            for rule in ("none", "gaps", "switch"):
                add = other[:0] if rule == "none" else (gaps(read, other, fs, args.gap) if rule == "gaps"
                                                        else switch(read, other, fs))
                add = add[outside_noise(add, noise)] if len(add) else add
                if rule == "switch" and len(add):
                    changed.setdefault(name, []).append(f"{record} (+{len(add)})")
                peaks = np.union1d(read, align_peaks(rec.p_signal[:, lead], fs, add)) if len(add) else read
                sample, symbol, subtype = merge_with_beats(peaks, np.full(len(peaks), "N"), noise, n)
                scored.setdefault((name, rule), []).append(
                    compare(ann.sample, ann.symbol, sample, symbol, fs, sig_len=n, ref_subtypes=ann.subtype,
                            test_subtypes=subtype, record=record))
        print(record, end=" ", flush=True, file=sys.stderr)
    print(file=sys.stderr)
    for (name, rule), comparisons in scored.items():
        gross = summarize(comparisons).gross
        print(f"{name:12s} {rule:7s} QRS Se {gross['Q Se']:.2f} +P {gross['Q +P']:.2f}")
    for name, records_changed in changed.items():
        print(f"switch adds beats where the lead read is {name}: {', '.join(records_changed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
