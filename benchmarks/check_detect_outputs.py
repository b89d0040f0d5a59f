"""Check that detection and the signal-quality check give the same outputs as at a reference revision, and time
both: the whole path `ecglib annotate` takes before classifying (``ecglib.ec57.detect``, ``rpeaks``, ``quality``
and ``annotate``'s chunked detection and quality check), where ``benchmarks/check_rpeaks_speed.py`` checks the
detector module alone.

The reference is the ``ecglib`` package as committed at --reference (default abe37b1, before detection and the
quality check were made faster), exported to a temporary folder and run in a process of its own; the working tree
runs in another. Each dumps, per case: ``detect_r_peaks`` (the default detector, aligned), ``detect_ecglib`` and
``detect_adaptive`` (not aligned again), the QRS feature (its SHA-256), ``quality.assess`` given those peaks
(per-block ratio, flat, clipped and unreadable flags, the intervals) and with beats=None, annotate's path
(``annotate.detect_and_find_noise`` where the package has it, else ``detect_peaks`` then ``find_noise``), and a
hash of the input, so that both processes are known to have read the same samples. Cases: the 48 MIT-BIH records'
lead (ecglib's lead rule) at 360 Hz and resampled to 128 Hz (``resample_poly(x, 16, 45)``), lead 1 of four
records, noise-stressed records (``ecglib.data.noise``, nst's protocol and SNR), one with a flat and a saturated
stretch, and a two-hour recording of stressed records joined end to end, run in annotate's chunks
(``detect_peaks``, ``find_noise`` and annotate's path); with --holter, a long record (its lead by the lead rule) in
those chunks too. Outputs must be equal bit for bit (array_equal, same dtype). CPU seconds (``time.process_time``)
of detection, of the quality check and of annotate's path (both) are reported for both sides, from separate runs
one after the other (on a shared machine, time with ``check_rpeaks_speed.py`` or ``bench_long.py`` in turns).

    OMP_NUM_THREADS=1 python benchmarks/check_detect_outputs.py --mitdb-dir DIR [--reference REV]
        [--records 100,208] [--holter /tmp/bench-long/holter] [--keep DIR (reused for the reference)]

Exits with status 1 if any output differs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SECOND_LEAD = ("100", "203", "208", "232")
STRESSED = (("118", "em", 6.0), ("119", "em", 0.0), ("118", "ma", 6.0), ("203", "ma", 0.0), ("105", "bw", 0.0))
JOINED = ("118", "119", "105", "203")  # the two-hour case, each stressed with electrode motion at 0 dB


def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(a.dtype.str.encode() + a.tobytes()).hexdigest()


def _stressed(mitdb: Path, name: str, kind: str, snr: float, rate: float) -> tuple[np.ndarray, float]:
    import wfdb

    from ecglib.data.noise import add_noise, make_noise, resample_samples, resample_signal
    from ecglib.data.records import read_lead

    x, fs, _ = read_lead(mitdb / name)
    ann = wfdb.rdann(str(mitdb / name), "atr")
    samples = ann.sample
    if rate != fs:
        x, samples, fs = resample_signal(x, fs, rate), resample_samples(ann.sample, fs, rate), rate
        samples = np.clip(samples, 0, len(x) - 1)
    noisy, _ = add_noise(x, make_noise(kind, len(x), fs, seed=7), fs, snr, samples, list(ann.symbol))
    return noisy, fs


def _cases(mitdb: Path, records: list[str], holter: Path | None):
    """(name, signal, fs, chunked) lazily: the signal is built when the case is run."""
    from scipy.signal import resample_poly

    from ecglib.data.records import read_lead

    for name in records:
        x, fs, _ = read_lead(mitdb / name)
        yield f"{name}/360", x, fs, False
        yield f"{name}/128", resample_poly(x, 16, 45), fs * 16 / 45, False
    for name in SECOND_LEAD:
        if name in records:
            x, fs, _ = read_lead(mitdb / name, 1)
            yield f"{name}/lead1", x, fs, False
    for name, kind, snr in STRESSED:
        for rate in (360.0, 128.0):
            x, fs = _stressed(mitdb, name, kind, snr, rate)
            yield f"{name}/{kind}{snr:g}/{rate:g}", x, fs, False
    # lead off (flat) for 20 s from 5:00; saturated from 10:00 for 20 s (moved up by the distance from the median
    # to the maximum, clipped at the lead's own extremes)
    x, fs, _ = read_lead(mitdb / "100")
    x = x.copy()
    x[int(300 * fs):int(320 * fs)] = x[int(300 * fs)]
    sat = slice(int(600 * fs), int(620 * fs))
    x[sat] = np.clip(x[sat] + x.max() - np.median(x), x.min(), x.max())
    yield "100/flat-clipped", x, fs, False
    yield "joined/em0", np.concatenate([_stressed(mitdb, r, "em", 0.0, 360.0)[0] for r in JOINED]), 360.0, True
    if holter is not None:
        x, fs, _ = read_lead(holter)
        yield "holter", x, fs, True


def dump(args: argparse.Namespace) -> int:
    """The outputs of the package on sys.path (this process) for every case, to --dump."""
    import ecglib
    from ecglib.ec57 import annotate, quality, rpeaks
    from ecglib.ec57.detect import detect_r_peaks

    print(f"package: {Path(ecglib.__file__).parent}", file=sys.stderr, flush=True)

    arrays: dict[str, np.ndarray] = {}
    times: dict[str, list[float]] = {}
    records = args.records.split(",")
    for name, x, fs, chunked in _cases(args.mitdb_dir, records, args.holter):
        arrays[f"{name}|input"] = np.array(_digest(x))
        t0 = time.process_time()
        peaks = annotate.detect_peaks(x, fs) if chunked else detect_r_peaks(x, fs)
        t1 = time.process_time()
        if chunked:
            noise = annotate.find_noise(x, fs, peaks)
        else:
            report = quality.assess(x, fs, peaks)
            noise = report.intervals
        t2 = time.process_time()
        # annotate's path: detection and the quality check in one pass where the package has it
        if hasattr(annotate, "detect_and_find_noise"):
            together, together_noise = annotate.detect_and_find_noise(x, fs)
        else:
            together = annotate.detect_peaks(x, fs)
            together_noise = annotate.find_noise(x, fs, together) if len(together) else []
        t3 = time.process_time()
        times[name] = [t1 - t0, t2 - t1, t3 - t2]
        arrays[f"{name}|peaks"] = peaks
        arrays[f"{name}|intervals"] = np.asarray(noise, dtype=np.int64).reshape(-1, 2)
        arrays[f"{name}|annotate_peaks"] = together
        arrays[f"{name}|annotate_intervals"] = np.asarray(together_noise, dtype=np.int64).reshape(-1, 2)
        if not chunked:
            for field in ("block_start", "ratio", "flat", "clipped", "unreadable"):
                arrays[f"{name}|{field}"] = getattr(report, field)
            arrays[f"{name}|auto_intervals"] = np.asarray(quality.assess(x, fs).intervals,
                                                          dtype=np.int64).reshape(-1, 2)
            arrays[f"{name}|ecglib"] = rpeaks.detect_ecglib(x, fs)
            arrays[f"{name}|adaptive"] = rpeaks.detect_adaptive(x, fs)
            arrays[f"{name}|feature"] = np.array(_digest(rpeaks.qrs_feature(x, fs)))
        print(f"{name}: detect {t1 - t0:.3f} s, quality {t2 - t1:.3f} s, annotate's path {t3 - t2:.3f} s",
              file=sys.stderr, flush=True)
    np.savez(args.dump, **arrays)
    args.dump.with_suffix(".json").write_text(json.dumps(times))
    return 0


def run_side(package_root: Path, out: Path, args: argparse.Namespace) -> None:
    cmd = [sys.executable, __file__, "--mitdb-dir", str(args.mitdb_dir), "--records", args.records,
           "--dump", str(out)] + (["--holter", str(args.holter)] if args.holter else [])
    env = dict(os.environ, PYTHONPATH=str(package_root))
    subprocess.run(cmd, check=True, env=env, cwd=str(package_root))


def main(argv: list[str] | None = None) -> int:
    from ecglib.data.facts import MITDB_RECORDS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mitdb-dir", type=Path, required=True)
    ap.add_argument("--reference", default="abe37b1", help="git revision of the reference package")
    ap.add_argument("--records", default=",".join(MITDB_RECORDS), help="comma-separated (default: all 48)")
    ap.add_argument("--holter", type=Path, help="a long WFDB record (no extension) run in annotate's chunks too")
    ap.add_argument("--keep", type=Path, help="keep the dumps here (reference.npz, current.npz and their .json); a "
                    "reference dump kept there for the same revision, records and --holter is reused")
    ap.add_argument("--dump", type=Path, help=argparse.SUPPRESS)  # internal: one side's outputs
    args = ap.parse_args(argv)
    if args.dump:
        return dump(args)

    with tempfile.TemporaryDirectory(prefix="check-detect-") as work:
        return compare(args, Path(work))


def compare(args: argparse.Namespace, work: Path) -> int:
    """Both sides' dumps (the reference's exported to ``work``), compared and their times summed up."""
    out = args.keep or work
    out.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"reference": args.reference, "records": args.records, "holter": str(args.holter)})
    if args.keep and (out / "reference.meta").exists() and (out / "reference.meta").read_text() == meta:
        print(f"reference {args.reference}: reusing {out / 'reference.npz'}", file=sys.stderr, flush=True)
    else:
        print(f"reference {args.reference}", file=sys.stderr, flush=True)
        ref_root = work / "reference"
        ref_root.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.reference, "ecglib"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(ref_root)], input=archive, check=True)
        run_side(ref_root, out / "reference.npz", args)
        (out / "reference.meta").write_text(meta)
    print("current", file=sys.stderr, flush=True)
    run_side(ROOT, out / "current.npz", args)

    ref, cur = np.load(out / "reference.npz"), np.load(out / "current.npz")
    t_ref = json.loads((out / "reference.json").read_text())
    t_cur = json.loads((out / "current.json").read_text())
    differ = sorted(k for k in set(ref.files) | set(cur.files)
                    if k not in ref.files or k not in cur.files or ref[k].dtype != cur[k].dtype
                    or not np.array_equal(ref[k], cur[k]))
    for key in differ:
        print(f"DIFFERS: {key}")
    cases = list(t_ref)
    print(f"{len(cases)} cases, {len(ref.files)} outputs compared, {len(differ)} differ")
    single = [c for c in cases if c not in ("holter", "joined/em0")]
    for label, group in (("records and stressed (per case)", single), ("joined/em0", ["joined/em0"]),
                         ("holter", ["holter"])):
        group = [c for c in group if c in t_ref]
        if not group:
            continue
        r = np.mean([t_ref[c] for c in group], axis=0)
        c = np.mean([t_cur[c] for c in group], axis=0)
        print(f"{label}: detect {r[0]:.3f} -> {c[0]:.3f} CPU s, quality {r[1]:.3f} -> {c[1]:.3f} CPU s, "
              f"annotate's path (both) {r[2]:.3f} -> {c[2]:.3f} CPU s")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
