"""Benchmark: whole ecglib commands with glibc's allocator as it comes and as ecglib.allocator sets it (freed memory
kept for the next batch): wall seconds, page faults and peak memory, in turns.

Each run is a process of its own; the two settings alternate (off, on, off, on, ...) so that a busy neighbour on a
shared machine weighs on both alike. ``ECGLIB_KEEP_FREED_MEMORY=0`` is glibc's own behaviour.

    python benchmarks/bench_allocator.py --task annotate [--mitdb-dir DIR] [--repeat 3] --out runs/bench-allocator
    python benchmarks/bench_allocator.py --task train --model odenet [--mitdb-dir DIR] [--repeat 3]

annotate: `ecglib annotate` on DS2's 22 records (11 hours of ECG), or on six synthetic half-hour records without
--mitdb-dir. train: one epoch of `ecglib train` (the rhythm recipe, DS1 -> DS2 on MIT-BIH, or the synthetic
source), one torch thread. Writes OUT/results.json and OUT/results.md and prints the markdown.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench_long import MEASURE  # the child's wall time and resource usage

ROOT = Path(__file__).resolve().parents[1]


def command(task: str, model: str, mitdb_dir: Path | None, out: Path) -> list[str]:
    """The ecglib command line the task runs (python -m ecglib ...)."""
    ecglib = [sys.executable, "-m", "ecglib"]
    if task == "annotate":
        if mitdb_dir is None:
            from ecglib.data.synthetic import write_synthetic_mitdb

            mitdb_dir = out / "synthetic"
            if not (mitdb_dir / "100.hea").exists():
                write_synthetic_mitdb(mitdb_dir, records=["100", "101", "103", "105", "106", "108"], seconds=1800,
                                      seed=7)
            records = sorted(p.stem for p in mitdb_dir.glob("*.hea"))
        else:
            from ecglib.data.facts import DS2

            records = list(DS2)
        return [*ecglib, "annotate", *(str(mitdb_dir / r) for r in records), "--model", model, "--threads", "1",
                "--quiet", "--out", str(out / "labels")]
    source = ["--source", "mitdb", "--mitdb-dir", str(mitdb_dir)] if mitdb_dir else ["--source", "synthetic"]
    return [*ecglib, "train", "--model", model, *source, "--split", "inter", "--features", "beat+rhythm",
            "--epochs", "1", "--threads", "1", "--quiet", "--fresh", "--out", str(out / "run")]


def run_once(cmd: list[str], keep: bool) -> dict:
    """One process of ``cmd``, with the allocator set (keep) or as glibc has it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ECGLIB_KEEP_FREED_MEMORY": "1" if keep else "0"}
    proc = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, cwd=ROOT, env=env,
                          check=True)
    use = json.loads(proc.stdout)
    if use["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd[2:4])} failed ({use['rc']}): {use['stderr'].strip()[-300:]}")
    return {k: use[k] for k in ("wall_s", "faults", "peak_rss_mb")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("annotate", "train"), default="annotate")
    parser.add_argument("--model", help="annotate: a pretrained model or run folder (default: annotate's); "
                                        "train: resnet or odenet (default odenet)")
    parser.add_argument("--mitdb-dir", type=Path, help="MIT-BIH (default: synthetic records)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each setting, in turns (default 3)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-allocator"))
    args = parser.parse_args(argv)

    from ecglib.config import DEFAULT_PRETRAINED
    from ecglib.inference import machine_description

    model = args.model or (DEFAULT_PRETRAINED if args.task == "annotate" else "odenet")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    mitdb_dir = args.mitdb_dir.resolve() if args.mitdb_dir else None
    cmd = command(args.task, model, mitdb_dir, out)
    runs: dict[str, list[dict]] = {"glibc": [], "kept": []}
    for _ in range(max(1, args.repeat)):
        for name, keep in (("glibc", False), ("kept", True)):
            runs[name].append(run_once(cmd, keep))
    rows = []
    for name, done in runs.items():
        walls = [r["wall_s"] for r in done]
        rows.append({"allocator": name, "runs": len(done), "wall_s_median": statistics.median(walls),
                     "wall_s_min": min(walls), "faults_median": statistics.median(r["faults"] for r in done),
                     "peak_rss_mb_max": max(r["peak_rss_mb"] for r in done), "walls": walls})
    load = os.getloadavg()[0]
    what = (f"`ecglib annotate` on {'DS2' if mitdb_dir else 'six synthetic records'} with {model}"
            if args.task == "annotate" else
            f"one epoch of `ecglib train --model {model}` ({'MIT-BIH' if mitdb_dir else 'synthetic'}, rhythm recipe)")
    lines = [f"{what}, one torch thread; {machine_description()}; load average {load:.1f} at the end.", "",
             "| allocator | runs | wall s (median) | wall s (min) | page faults (median) | peak memory MB |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['allocator']} | {r['runs']} | {r['wall_s_median']:.2f} | {r['wall_s_min']:.2f} | "
              f"{r['faults_median']:,.0f} | {r['peak_rss_mb_max']:.0f} |" for r in rows]
    text = "\n".join(lines) + "\n"
    (out / "results.json").write_text(json.dumps({"command": cmd, "rows": rows}, indent=2))
    (out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
