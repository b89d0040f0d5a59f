"""Benchmark: a long recording (a 24-hour Holter by default) labelled by `ecglib annotate`: wall time, CPU time and
peak memory, in all and per hour of ECG.

The recording is MIT-BIH's 48 records joined end to end (each record's MLII, or its first lead, then its other
lead; 360 Hz, format 212: 24.07 hours, 109,494 reference beats), written with wfdb.wrsamp, or, without
--mitdb-dir, seeded synthetic records joined likewise. It is labelled by `python -m ecglib annotate` in a process
of its own, so that the figures are the whole command's (imports, reading, detection, classification, writing):
wall and CPU seconds from the clock and getrusage, peak memory from its maximum resident set size.

    python benchmarks/bench_long.py --mitdb-dir DIR [--hours 24] [--model NAME_OR_RUN] [--step-size 1/3]
        [--threads 1] [--repeat 1] [--edf] --out runs/bench-long      (--model: annotate's default, odenet-ds1)

Writes OUT/results.json and OUT/results.md and prints the markdown. The recording is kept in OUT/ and reused.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ecglib.config import DEFAULT_PRETRAINED

ROOT = Path(__file__).resolve().parents[1]


def build_holter(out: Path, hours: float, mitdb_dir: Path | None) -> Path:
    """A WFDB record OUT/holter of about ``hours`` hours, two leads (MLII first), with its reference beats as
    holter.ref (not .atr, so that `annotate` labels it as a Holter without reference and does not score it)."""
    import wfdb

    from ecglib.data.facts import MITDB_RECORDS

    base = out / "holter"
    tag = out / "holter.json"
    wanted = {"hours": hours, "source": str(mitdb_dir) if mitdb_dir else "synthetic"}
    if tag.exists() and json.loads(tag.read_text()) == wanted and Path(f"{base}.hea").exists():
        return base
    out.mkdir(parents=True, exist_ok=True)
    if mitdb_dir is None:  # as many half-hour synthetic records as the hours need
        from ecglib.data.synthetic import write_synthetic_mitdb

        mitdb_dir = out / "synthetic"
        needed = list(MITDB_RECORDS)[:max(1, min(len(MITDB_RECORDS), int(np.ceil(hours * 2))))]
        write_synthetic_mitdb(mitdb_dir, records=needed, seconds=1800, seed=7)
    leads, samples, symbols, offset, fs = [], [], [], 0, None
    names = [n for n in MITDB_RECORDS if Path(f"{mitdb_dir / n}.hea").exists()]
    i = 0
    while offset < hours * 3600 * (fs or 360):
        rec = wfdb.rdrecord(str(mitdb_dir / names[i % len(names)]), physical=False)
        fs = rec.fs
        first = rec.sig_name.index("MLII") if "MLII" in rec.sig_name else 0
        leads.append(rec.d_signal[:, [first, 1 - first]])
        ann = wfdb.rdann(str(mitdb_dir / names[i % len(names)]), "atr")
        samples.append(ann.sample + offset)
        symbols += list(ann.symbol)
        offset += rec.sig_len
        i += 1
    signal = np.concatenate(leads)
    wfdb.wrsamp("holter", fs=fs, units=["mV", "mV"], sig_name=["MLII", "V1"], d_signal=signal.astype(np.int64),
                fmt=["212", "212"], adc_gain=[200.0, 200.0], baseline=[1024, 1024], write_dir=str(out))
    wfdb.wrann("holter", "ref", sample=np.concatenate(samples), symbol=symbols, fs=fs, write_dir=str(out))
    tag.write_text(json.dumps(wanted))
    return base


def write_edf(base: Path) -> Path:
    """The same recording as an EDF+ file (both leads, 16-bit, data records of 1 s; the last partial second
    dropped, as EDF holds whole data records)."""
    import edfio
    import wfdb

    path = base.with_suffix(".edf")
    if path.exists():
        return path
    rec = wfdb.rdrecord(str(base), physical=False)
    n = rec.sig_len // int(rec.fs) * int(rec.fs)
    signals = [edfio.EdfSignal(rec.d_signal[:n, i].astype(np.float64) / 200.0 - 1024 / 200.0, rec.fs, label=name,
                               physical_dimension="mV", physical_range=(-5.12, 5.115), digital_range=(-1024, 1023))
               for i, name in enumerate(rec.sig_name)]
    edfio.Edf(signals).write(path)
    return path


# Runs the command and reports its child's resource usage: a small process of its own, because a child forked from
# this one (which may hold the whole recording after building it) would count this one's memory as its own.
# bench_allocator.py measures with it too.
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - start
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": proc.returncode, "wall_s": wall, "cpu_s": use.ru_utime + use.ru_stime,
                  "peak_rss_mb": use.ru_maxrss / 1024, "faults": use.ru_minflt, "stdout": proc.stdout,
                  "stderr": proc.stderr}))
"""


def label(recording: Path, out: Path, model: str, threads: int, step_size: str | None) -> dict:
    """`python -m ecglib annotate` on ``recording`` in a process of its own: its wall and CPU seconds, peak
    resident memory (getrusage of that process), exit status and summary line."""
    cmd = [sys.executable, "-m", "ecglib", "annotate", str(recording), "--model", model, "--threads", str(threads),
           "--out", str(out / "labels"), "--quiet"]
    if step_size:
        cmd += ["--step-size", step_size]
    proc = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": str(threads)}, check=True)
    use = json.loads(proc.stdout)
    if use["rc"] != 0:
        raise SystemExit(f"annotate failed ({use['rc']}): {use['stderr'].strip()}")
    return {k: use[k] for k in ("wall_s", "cpu_s", "peak_rss_mb")} | {"summary": use["stdout"].strip().splitlines()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mitdb-dir", type=Path, help="MIT-BIH records to join (default: synthetic records)")
    parser.add_argument("--hours", type=float, default=24.0, help="length of the recording (default 24)")
    parser.add_argument("--model", default=DEFAULT_PRETRAINED,
                        help=f"pretrained model or run folder (default: annotate's, {DEFAULT_PRETRAINED})")
    parser.add_argument("--step-size", help="the ODE-Net's deploy step (e.g. 1: one step)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one core)")
    parser.add_argument("--repeat", type=int, default=1, help="runs to take the fastest of (default 1)")
    parser.add_argument("--edf", action="store_true", help="also label the recording written as EDF+")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-long"))
    args = parser.parse_args(argv)

    from ecglib.inference import machine_description

    base = build_holter(args.out, args.hours, args.mitdb_dir)
    recordings = {"WFDB": base} | ({"EDF": write_edf(base)} if args.edf else {})
    rows = []
    for fmt, path in recordings.items():
        runs = [label(path, args.out, args.model, args.threads, args.step_size) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["wall_s"])
        import wfdb

        header = wfdb.rdheader(str(base))
        hours = header.sig_len / header.fs / 3600.0
        rows.append({"format": fmt, "hours": hours, "model": args.model, "step_size": args.step_size,
                     "threads": args.threads, **best, "wall_s_per_hour": best["wall_s"] / hours,
                     "cpu_s_per_hour": best["cpu_s"] / hours, "load_average": os.getloadavg()[0]})
    result = {"machine": machine_description(), "cores": os.cpu_count(), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    loads = ", ".join(f"{r['load_average']:.1f}" for r in rows)
    lines = [f"Machine: {result['machine']}; load average during the runs: {loads} on {os.cpu_count()} cores.", "",
             "| recording | model | wall s | CPU s | peak memory MB | wall s per hour | CPU s per hour |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        model = r["model"] + (f", step {r['step_size']}" if r["step_size"] else "")
        lines.append(f"| {r['hours']:.2f} h {r['format']} | {model} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['wall_s_per_hour']:.2f} | {r['cpu_s_per_hour']:.2f} |")
    lines += ["", *(f"- {r['format']}: {r['summary']}" for r in rows)]
    text = "\n".join(lines)
    (args.out / "results.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
