"""Benchmark and picture of the record report (ecglib.report.record).

Times ``write_record_report`` on a 24-hour-sized labelled record (about 100,000 beats, S and V beats and V runs,
a spike train for its signal; no model needed), and, with --mitdb-dir, writes the report of a real MIT-BIH record
labelled from its own reference annotations (what a perfect model would write), with its EC57 section; with
--screenshot, headless Chromium photographs that page and the top of it (summary and first figures) is saved as
a PNG small enough for the README (docs/figures/record-report.png).

    python benchmarks/bench_report.py [--hours 24] [--repeat 3] [--mitdb-dir DIR --record 213]
        [--screenshot docs/figures/record-report.png] --out runs/bench-report
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ecglib.data.facts import AAMI, CLASSES
from ecglib.data.records import read_lead
from ecglib.ec57.annotate import AnnotatedRecord
from ecglib.ec57.annotations import read_annotations
from ecglib.ec57.bxb import compare
from ecglib.report.record import write_record_report, write_report_index

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def day_record(hours: float, fs: float = 360.0, seed: int = 0) -> tuple[AnnotatedRecord, np.ndarray]:
    """A labelled record of ``hours``: RR 0.86 s +- 0.05, 3 % S (premature), 3 % V, 0.5 % F, a V run of 2 to 5
    beats every 300 beats; its signal a spike at every beat (float32: 124 MB for 24 hours at 360 Hz)."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / 0.86)
    rr = 0.86 + 0.05 * rng.standard_normal(n)
    label = np.zeros(n, dtype=np.int64)
    u = rng.random(n)
    label[u < 0.03] = 1
    label[u > 0.97] = 2
    label[u > 0.995] = 3
    for k, i in enumerate(range(150, n - 10, 300)):
        label[i:i + 2 + k % 4] = 2
    rr[label == 1] *= 0.7
    rr[label == 2] *= 0.6
    times = np.cumsum(rr)
    seconds = float(times[-1] + 1.0)
    sample = (times * fs).astype(np.int64)
    signal = np.zeros(int(seconds * fs), dtype=np.float32)
    signal[sample] = 1.0
    return AnnotatedRecord(f"day{hours:g}h", sample, label, np.array(CLASSES)[label], fs, seconds, 0.0, "xqrs",
                           None), signal


def labelled_from_reference(base: Path, learning_period: float = 300.0):
    """(AnnotatedRecord, signal, reference annotations, comparison) of a record labelled from its atr beats."""
    signal, fs, lead = read_lead(base, "MLII")
    ref = read_annotations(base, "atr", len(signal))
    beat = np.isin(ref.symbol, list(AAMI))
    label = np.array([AAMI[s] for s in ref.symbol[beat]], dtype=np.int64)
    result = AnnotatedRecord(str(base), ref.sample[beat], label, np.array(CLASSES)[label], fs, len(signal) / fs,
                             0.0, "reference", None, lead=lead)
    comparison = compare(ref.sample, ref.symbol, result.sample, result.symbol, fs, learning_period=learning_period,
                         sig_len=len(signal), record=str(base))
    return result, signal, ref, comparison


def screenshot(page: Path, png: Path, height: int, width: int = 1200, scale: float = 0.75) -> None:
    """The top ``height`` pixels of PAGE at ``width`` (headless Chromium), scaled and reduced to 256 colours."""
    from PIL import Image

    exe = next((p for p in map(shutil.which, BROWSERS) if p), None)
    if exe is None:
        sys.exit(f"no headless browser found (looked for {', '.join(BROWSERS)})")
    raw = png.with_name(f".{png.stem}-full.png")
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                    f"--window-size={width},{height}", f"--screenshot={raw.resolve()}", page.resolve().as_uri()],
                   check=True, capture_output=True, timeout=180)
    image = Image.open(raw).convert("RGB")
    raw.unlink()
    image = image.resize((int(image.width * scale), int(image.height * scale)), Image.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mitdb-dir", type=Path)
    parser.add_argument("--record", default="213")
    parser.add_argument("--screenshot", type=Path, help="PNG of the top of the real record's report")
    parser.add_argument("--shot-height", type=int, default=1900)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-report"))
    args = parser.parse_args(argv)

    write_record_report(*day_record(0.1), args.out)  # imports and matplotlib's font cache, not counted
    result, signal = day_record(args.hours)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        path = write_record_report(result, signal, args.out, noise=[(3600.0, 3700.0)])
        times.append(time.perf_counter() - start)
    load = os.getloadavg()[0]
    print(f"{len(result.sample):,} beats ({result.seconds / 3600:.1f} h): report in {min(times):.2f} s (best of "
          f"{args.repeat}; median {float(np.median(times)):.2f} s), {path.stat().st_size / 1e6:.2f} MB; "
          f"load average {load:.1f} on {os.cpu_count()} CPUs")
    if args.mitdb_dir is not None:
        result, signal, ref, comparison = labelled_from_reference(args.mitdb_dir / args.record)
        start = time.perf_counter()
        page = write_record_report(result, signal, args.out, comparison, reference=ref)
        print(f"record {args.record}: {len(result.sample):,} beats, report in {time.perf_counter() - start:.2f} s "
              f"-> {page}")
        write_report_index([(result, page)], args.out)
        if args.screenshot is not None:
            screenshot(page, args.screenshot, args.shot_height)
            print(f"{args.screenshot}: {args.screenshot.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
