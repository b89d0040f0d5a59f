"""EC57 on DS2 with the R peaks of a detector against the reference R peaks: at 360 Hz, resampled, and on the
second lead.

A beat should get the same class whoever found it. For each pretrained model (trained on DS1, never shown DS2) and
each setting (360 Hz MLII; DS2 resampled to 128 Hz through ``wfdb.wrsamp`` by
:func:`ecglib.data.noise.stress_record`; the second lead, mostly V1, at 360 Hz) this labels the 22 DS2 records with
``ecglib annotate``'s code path (:func:`ecglib.ec57.annotate.annotate_records`: the detector, the alignment, the
signal-quality check) and with the reference R peaks, and scores both with bxb's rules
(:func:`ecglib.ec57.score.score_records`: 5-minute learning period, 150-ms window, paced records left out).

    python benchmarks/ec57_ds2.py --mitdb-dir DIR [--models resnet-ds1,odenet-ds1] [--detectors ecglib,xqrs]
        [--settings 360,128,lead2] [--out runs/ec57-ds2]

Writes OUT/results.json (gross and average statistics per model, setting and detector) and OUT/ec57-ds2.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from ecglib.data.facts import DS2
from ecglib.data.noise import stress_record
from ecglib.ec57.annotate import annotate_records
from ecglib.ec57.score import score_records
from ecglib.ec57.trained import load_model
from ecglib.errors import EcgError, first_line

KEYS = ("Q Se", "Q +P", "V Se", "V +P", "S Se", "S +P")
SETTINGS = {"360": "MLII at 360 Hz", "128": "MLII resampled to 128 Hz", "lead2": "the second lead at 360 Hz"}


def records_for(setting: str, mitdb: Path, out: Path) -> tuple[Path, str | int | None]:
    """The folder of DS2's records for a setting and the lead to read."""
    if setting == "360":
        return mitdb, None
    if setting == "lead2":
        return mitdb, 1
    folder = out / f"records-{setting}"
    for name in DS2:
        if not (folder / f"{name}.atr").exists():
            stress_record(mitdb / name, folder, fs=float(setting))
    return folder, None


def run(mitdb: Path, out: Path, models: list[str], detectors: list[str], settings: list[str]) -> dict:
    results: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                     "rows": []}
    trained_models = {name: load_model(name) for name in models}
    for setting in settings:
        folder, lead = records_for(setting, mitdb, out)
        for name, trained in trained_models.items():
            for detector in [*detectors, "reference"]:
                labels = out / "labels" / setting / name / detector
                labels.mkdir(parents=True, exist_ok=True)
                start = time.perf_counter()
                done = annotate_records(trained, [folder / r for r in DS2], detector=detector, out_dir=labels,
                                        lead=lead)
                _, summary = score_records(folder, "atr", "ecglib", list(DS2), test_dir=labels)
                row = {"setting": setting, "model": name, "detector": detector,
                       "seconds": round(time.perf_counter() - start, 1),
                       "noise_seconds": round(sum((e - a) / r.fs for r in done for a, e in r.noise), 1),
                       "gross": {k: summary.gross[k] for k in KEYS},
                       "average": {k: summary.average[k] for k in KEYS}}
                results["rows"].append(row)
                print(f"{setting} {name} {detector}: " + ", ".join(f"{k} {row['gross'][k]:.2f}" for k in KEYS),
                      file=sys.stderr, flush=True)
                (out / "results.json").write_text(json.dumps(results, indent=1))
    return results


def table(results: dict) -> str:
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [f"Machine: {results['machine']}.", "",
             "| setting | model | R peaks | QRS Se | QRS +P | VEB Se | VEB +P | SVEB Se | SVEB +P | noise s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        g = r["gross"]
        lines.append(f"| {SETTINGS[r['setting']]} | {r['model']} | {r['detector']} | "
                     + " | ".join(fmt(g[k]) for k in KEYS) + f" | {r['noise_seconds']:g} |")
    lines += ["", "Gross statistics over the 22 DS2 records by bxb's rules (5-minute learning period, 0.15-s window); "
              "noise s: the time the signal-quality check marked unreadable (EC57's shutdown)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mitdb-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("runs/ec57-ds2"))
    p.add_argument("--models", default="resnet-ds1,odenet-ds1")
    p.add_argument("--detectors", default="ecglib")
    p.add_argument("--settings", default="360,128,lead2")
    args = p.parse_args(argv)
    try:
        settings = args.settings.split(",")
        unknown = [s for s in settings if s not in SETTINGS]
        if unknown:
            raise EcgError(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
        args.out.mkdir(parents=True, exist_ok=True)
        results = run(args.mitdb_dir, args.out, args.models.split(","), args.detectors.split(","), settings)
    except EcgError as exc:
        print(f"ec57_ds2: {first_line(exc)}", file=sys.stderr)
        return 2
    (args.out / "ec57-ds2.md").write_text(table(results))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
