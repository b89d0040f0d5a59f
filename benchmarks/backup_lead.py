"""The backup lead in noise: `annotate` with and without the beats of a recording's other ECG lead where the quality
check finds the lead read unreadable (``ecglib.ec57.annotate.backup_beats``).

The twelve noise records of ``benchmarks/bench_detectors.py`` (NOISE_RECORDS) are stressed as nst stresses them
(``ecglib.data.noise.stress_record``: noise on both leads, two minutes on and two off from minute 5, each lead at
the SNR, seed = the record's position in the list) with electrode-motion and muscle noise at 12, 6 and 0 dB, then
labelled by the default pretrained model and detector with the quality check, once with the backup lead and once
without, and scored by bxb's rules (5-minute learning period). Gross statistics over the twelve records.

    python benchmarks/backup_lead.py --mitdb-dir DIR [--snrs 12,6,0] [--noises em,ma] [--out runs/backup-lead]

Prints a markdown table and writes OUT/backup-lead.md.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench_detectors import NOISE_RECORDS

from ecglib.data.noise import stress_record
from ecglib.data.recordings import read_recording
from ecglib.ec57.annotate import annotate_recording
from ecglib.ec57.bxb import summarize
from ecglib.ec57.trained import load_model
from ecglib.files import atomic_write_text


def stressed_records(mitdb_dir: Path, folder: Path, kind: str, snr: float) -> list[Path]:
    """The twelve noise records stressed with ``kind`` noise at ``snr`` dB into ``folder``, as nst stresses them
    (seed: the record's position in NOISE_RECORDS)."""
    return [stress_record(mitdb_dir / r, folder, name=f"{r}_{kind}{snr:g}", noise=kind, snr=snr, seed=i)
            for i, r in enumerate(NOISE_RECORDS)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mitdb-dir", type=Path, required=True)
    parser.add_argument("--snrs", default="12,6,0")
    parser.add_argument("--noises", default="em,ma")
    parser.add_argument("--out", type=Path, default=Path("runs/backup-lead"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    model = load_model()
    lines = ["| noise | SNR | backup lead | QRS Se / +P | VEB Se / +P | shutdown s | beats from the backup lead |",
             "|---|---:|---|---|---|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.noises.split(","):
            for snr in (float(s) for s in args.snrs.split(",")):
                stressed = stressed_records(args.mitdb_dir, Path(tmp), kind, snr)
                for backup in (False, True):
                    results = [annotate_recording(model, read_recording(p), write=False, backup=backup)
                               for p in stressed]
                    g = summarize(r.comparison for r in results).gross
                    shutdown = sum(r.comparison.shutdown_seconds for r in results)
                    rescued = sum(int(r.backup.sum()) for r in results if r.backup is not None)
                    lines.append(f"| {kind} | {snr:g} dB | {'yes' if backup else 'no'} | {g['Q Se']:.2f} / "
                                 f"{g['Q +P']:.2f} | {g['V Se']:.2f} / {g['V +P']:.2f} | {shutdown:,.0f} | "
                                 f"{rescued:,} |")
                    print(lines[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "backup-lead.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
