"""The signal-quality check's threshold, chosen on MIT-BIH records stressed with noise (docs/detection.md).

The check (:mod:`ecglib.ec57.quality`) marks a block unreadable when its background reaches ``noise_ratio`` of the
QRS level. A marked stretch is EC57's shutdown: no beat is labelled there (no noise labelled V), but its reference
beats count as missed. This measures, on the twelve noise records of ``bench_detectors.py`` with electrode-motion
and muscle noise at 12, 6 and 0 dB (nst's SNR and protocol, seeded noise), gross QRS Se / +P and the shutdown time
for each threshold and without the check, with the default detector's peaks.

    python benchmarks/select_quality.py --mitdb-dir DIR [--ratios 0.35,0.5,0.5:0.35] [--out runs/select-quality.md]

A ratio R is ``noise_ratio`` = ``extend_ratio`` = R (no hysteresis); R:E is ``noise_ratio`` R, ``extend_ratio`` E.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_detectors as bench  # noqa: E402 - the benchmark's records, scoring and summary

from ecglib.data import noise  # noqa: E402
from ecglib.ec57 import detect, quality  # noqa: E402
from ecglib.ec57.quality import QualityParams  # noqa: E402


def params(ratio: str) -> QualityParams:
    """QualityParams of "R" (noise and extend ratio R) or "R:E"."""
    r, _, e = ratio.partition(":")
    return QualityParams(noise_ratio=float(r), extend_ratio=float(e or r))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mitdb-dir", type=Path, required=True)
    p.add_argument("--ratios", default="0.35,0.5,0.5:0.35")
    p.add_argument("--snrs", default="12,6,0")
    p.add_argument("--out", type=Path, default=Path("runs/select-quality.md"))
    args = p.parse_args(argv)
    records = {r: bench.read_record(args.mitdb_dir, r) for r in bench.NOISE_RECORDS}
    rate = 360.0
    ratios: list[str | None] = [*args.ratios.split(","), None]
    lines = ["| noise | SNR | " + " | ".join(f"ratio {k}" if k else "no check" for k in ratios) + " |",
             "|---|---|" + "---|" * len(ratios)]
    for kind in ("em", "ma"):
        zs = {r: noise.make_noise(kind, len(records[r]["sig"]), rate, seed=int(r)) for r in records}
        for snr in (float(s) for s in args.snrs.split(",")):
            comps: dict = {k: [] for k in ratios}
            for r, rec in records.items():
                sig, ref = bench.at_rate(rec, rate)
                y, _ = noise.add_noise(sig, zs[r], rate, snr, ref, rec["symbol"])
                peaks = detect.detect_r_peaks(y, rate)
                for k in ratios:
                    found = None if k is None else quality.noise_intervals(y, rate, peaks, params(k))
                    comps[k].append(bench.score(r, peaks, rate, ref, rec, len(y), found))
            cells = []
            for k in ratios:
                s = bench.summary(comps[k])
                cells.append(f"{s['se48']:.2f} / {s['pp48']:.2f} ({sum(c.shutdown_seconds for c in comps[k])} s)")
            lines.append(f"| {kind} | {snr:g} dB | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
