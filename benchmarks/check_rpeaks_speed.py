"""Check and time ecglib's R-peak detector (``ecglib.ec57.rpeaks.detect_ecglib``) against a reference revision of
its module: are the peaks identical, and how much CPU time does each take per record?

The reference is ``ecglib/ec57/rpeaks.py`` as committed at --reference (default abe37b1, the last revision before
the band-pass was shared, the shape templates' medians sorted and the second round made to reuse the first's work;
cc8be7d is the last with the array-form ``_select`` and the whole-segment shape correlation), imported under another
name next to the working tree's module. Cases: the 48 MIT-BIH records' lead (ecglib's lead rule: MLII, else the
first) at 360 Hz, the same resampled to 128 Hz (``resample_poly(x, 16, 45)``), and lead 1 of the --second-lead
records at 360 Hz. Each case is detected by both modules in turns (the reference first in even cases, second in odd
ones, so that neither always runs on a warm cache), --repeat times each, timed with ``time.process_time`` (CPU
seconds of the process, all its threads; run with OMP_NUM_THREADS=1 for single-threaded figures). Reading and
resampling are not timed.

    OMP_NUM_THREADS=1 python benchmarks/check_rpeaks_speed.py --mitdb-dir DIR [--reference REV]
        [--records 100,208] [--second-lead 100,203,208,232] [--repeat 1] [--out runs/check-rpeaks]

Prints a markdown table (mean CPU s per record, reference and current, the speed-up, identical cases) and, with
--out, writes OUT/results.json (every case's times and peak counts). Exits with status 1 if any case's peaks differ.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODULE = "ecglib/ec57/rpeaks.py"


def load_reference(rev: str):
    """The detector module as committed at ``rev``, imported as ecglib.ec57._rpeaks_reference (so that its relative
    imports resolve to the working tree's package)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{MODULE}"], check=True, capture_output=True,
                         text=True).stdout
    name = "ecglib.ec57._rpeaks_reference"
    with tempfile.TemporaryDirectory() as folder:  # the source is needed while it is imported only
        path = Path(folder) / "_rpeaks_reference.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod


def cpu(fn, x, fs, repeat: int) -> tuple[float, np.ndarray]:
    """The least CPU seconds of ``repeat`` calls fn(x, fs), and its result."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        peaks = fn(x, fs)
        times.append(time.process_time() - t0)
    return min(times), peaks


def main(argv: list[str] | None = None) -> int:
    from scipy.signal import resample_poly

    from ecglib.data.facts import MITDB_RECORDS
    from ecglib.data.records import read_lead
    from ecglib.ec57 import rpeaks

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mitdb-dir", type=Path, required=True)
    ap.add_argument("--reference", default="abe37b1", help="git revision of the reference module")
    ap.add_argument("--records", default=",".join(MITDB_RECORDS), help="comma-separated (default: all 48)")
    ap.add_argument("--second-lead", default="100,203,208,232", help="records whose lead 1 is checked too")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    ref = load_reference(args.reference)
    cases = []  # (group, record, lead, fs), read lazily
    for name in args.records.split(","):
        cases += [("360 Hz", name, None, 360), ("128 Hz", name, None, 128)]
    cases += [("lead 1, 360 Hz", name, 1, 360) for name in args.second_lead.split(",") if name]

    rows = []
    for k, (group, name, lead, rate) in enumerate(cases):
        x, fs, _ = read_lead(args.mitdb_dir / name, lead)
        if rate != fs:
            x, fs = resample_poly(x, 16, 45), fs * 16 / 45
        order = [("reference", ref.detect_ecglib), ("current", rpeaks.detect_ecglib)]
        result = {}
        for label, fn in order if k % 2 == 0 else order[::-1]:
            result[label] = cpu(fn, x, fs, args.repeat)
        same = bool(np.array_equal(result["reference"][1], result["current"][1]))
        rows.append({"group": group, "record": name, "lead": lead, "fs": fs, "identical": same,
                     "peaks_reference": len(result["reference"][1]), "peaks_current": len(result["current"][1]),
                     "cpu_reference": result["reference"][0], "cpu_current": result["current"][0]})
        print(f"{group:>15} {name}: {rows[-1]['cpu_reference']:.3f} s -> {rows[-1]['cpu_current']:.3f} s"
              f"{'' if same else '  PEAKS DIFFER'}", file=sys.stderr, flush=True)

    lines = ["| case | records | reference CPU s/record | current CPU s/record | speed-up | identical peaks |",
             "|---|---:|---:|---:|---:|---:|"]
    for group in dict.fromkeys(r["group"] for r in rows):
        g = [r for r in rows if r["group"] == group]
        a, b = np.mean([r["cpu_reference"] for r in g]), np.mean([r["cpu_current"] for r in g])
        lines.append(f"| {group} | {len(g)} | {a:.3f} | {b:.3f} | {a / b:.2f}x | "
                     f"{sum(r['identical'] for r in g)}/{len(g)} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"reference": args.reference, "repeat": args.repeat,
                                                           "cases": rows}, indent=1))
        (args.out / "results.md").write_text(text + "\n")
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
