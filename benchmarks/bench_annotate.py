"""Benchmark: QRS detectors for `ecglib annotate` (speed and EC57 QRS Se/+P), and the time to annotate one record.

For each detector it reads the MLII lead of every record once, times the detection alone, and scores the R peaks
against the reference beats with ecglib.ec57 (bxb's rules: 0.15 s window, 5-minute learning period, gross and
average statistics over the records). With --run it then times `annotate_record` on one record (reading,
detection, beat cutting, classification, writing), a few times, with the torch threads given.

    python benchmarks/bench_annotate.py --mitdb-dir DIR [--detectors xqrs,gqrs,neurokit] [--records DS2]
        [--run RUN_DIR --record 100 --repeat 3 --threads 1] --out runs/bench-annotate

Writes OUT/detectors.csv (one row per detector and record), OUT/results.md (the tables) and prints the markdown.
Detectors: those of ecglib.DETECTORS, plus "sleepecg" when that package is installed (measured only).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from ecglib.data.facts import DS2
from ecglib.data.records import read_lead
from ecglib.ec57.annotate import annotate_record, load_trained
from ecglib.ec57.bxb import compare, summarize
from ecglib.ec57.detect import DETECTORS
from ecglib.errors import EcgError


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _detectors(names: list[str]) -> dict:
    found = {}
    for name in names:
        if name == "sleepecg":
            try:
                import sleepecg
            except ImportError:
                print("sleepecg is not installed: skipped", file=sys.stderr)
                continue
            found[name] = lambda sig, fs: sleepecg.detect_heartbeats(sig, fs)
        elif name == "neurokit" and not _importable("neurokit2"):
            print("neurokit2 is not installed: skipped", file=sys.stderr)
        elif name in DETECTORS:
            found[name] = DETECTORS[name]
        else:
            raise EcgError(f"unknown detector {name!r}; choose from {', '.join([*DETECTORS, 'sleepecg'])}")
    return found


def bench_detectors(folder: Path, records: list[str], names: list[str]) -> tuple[list[dict], str]:
    import wfdb

    signals = {}
    for r in records:
        signal, fs, _ = read_lead(folder / r, "MLII")
        signals[r] = (signal, fs)
    rows = []
    lines = ["| detector | gross QRS Se | gross QRS +P | average Se | average +P | detection time, all records "
             "| per 30-min record (mean, max) | worst record (Se / +P) |", "|---|---|---|---|---|---|---|---|"]
    for name, detect in _detectors(names).items():
        detect(*signals[records[0]])  # warm-up: imports and first-call costs are not the record's
        comps, times = [], []
        for r in records:
            signal, fs = signals[r]
            t0 = time.perf_counter()
            peaks = np.unique(np.asarray(detect(signal, fs), dtype=np.int64))
            times.append(time.perf_counter() - t0)
            ref = wfdb.rdann(str(folder / r), "atr")
            comp = compare(ref.sample, ref.symbol, peaks, ["N"] * len(peaks), fs, sig_len=len(signal),
                                ref_subtypes=ref.subtype, record=r)
            comps.append(comp)
            s = comp.stats()
            rows.append({"detector": name, "record": r, "seconds": times[-1], "q_se": s["Q Se"], "q_pp": s["Q +P"],
                         "record_seconds": len(signal) / fs})
        summary = summarize(comps)
        worst = min(comps, key=lambda c: min(c.stats()["Q Se"] or 0.0, c.stats()["Q +P"] or 0.0))
        ws = worst.stats()
        lines.append(f"| {name} | {summary.gross['Q Se']:.2f} | {summary.gross['Q +P']:.2f} | "
                     f"{summary.average['Q Se']:.2f} | {summary.average['Q +P']:.2f} | {sum(times):.1f} s | "
                     f"{np.mean(times):.2f} s, {np.max(times):.2f} s | {worst.record} ({ws['Q Se']:.1f} / "
                     f"{ws['Q +P']:.1f}) |")
        print(lines[-1], flush=True)
    return rows, "\n".join(lines)


def bench_annotate(run: Path, record: Path, repeat: int, out: Path) -> str:
    trained = load_trained(run)
    annotate_record(trained, record, out_dir=out)  # warm-up: imports, first torch call
    lines = ["| try | record | beats | total | read | detect | classify | write | real time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i in range(repeat):
        res = annotate_record(trained, record, out_dir=out)
        t = res.timings or {}
        lines.append(f"| {i + 1} | {record.name} ({res.seconds / 60:.0f} min) | {len(res.sample)} | "
                     f"{res.elapsed:.2f} s | {t.get('read', 0):.2f} | {t.get('detect', 0):.2f} | "
                     f"{t.get('classify', 0):.2f} | {t.get('write', 0):.2f} | {res.realtime_factor:.0f}x |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mitdb-dir", type=Path, required=True)
    p.add_argument("--records", default="DS2", help="DS2 (default) or comma-separated record names")
    p.add_argument("--detectors", default="xqrs,gqrs,neurokit,sleepecg")
    p.add_argument("--run", type=Path, help="a run folder: also time annotate_record on --record")
    p.add_argument("--record", default="100")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads for the annotate timing (default 1)")
    p.add_argument("--out", type=Path, default=Path("runs/bench-annotate"))
    args = p.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(args.threads)
        records = list(DS2) if args.records == "DS2" else args.records.split(",")
        args.out.mkdir(parents=True, exist_ok=True)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        rows, table = bench_detectors(args.mitdb_dir, records, [d for d in args.detectors.split(",") if d])
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.out / "detectors.csv", index=False)
        md = [f"Detectors on {len(records)} records (load average {load:.1f} at the start):", "", table]
        if args.run is not None:
            md += ["", f"annotate_record with {args.run} ({args.threads} torch thread(s)):", "",
                   bench_annotate(args.run, args.mitdb_dir / args.record, args.repeat, args.out / "annotations")]
        text = "\n".join(md) + "\n"
        (args.out / "results.md").write_text(text)
        print(text)
    except EcgError as exc:
        print(f"bench_annotate: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
