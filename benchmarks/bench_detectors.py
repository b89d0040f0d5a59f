"""Benchmark: R-peak detectors on MIT-BIH, resampled, and noise-stressed, scored as bxb scores them.

For each detector of ecglib.ec57.detect.DETECTORS (those asked for; neurokit2's skipped when it is missing):

- clean: all 48 MIT-BIH records (the lead ecglib classifies: MLII, else the first) at 360 Hz and resampled to 250
  and 128 Hz (scipy's resample_poly, reference annotations moved to round(sample * rate / 360), as
  ``ecglib.data.noise.stress_record`` writes them), scored with ``ecglib.ec57.bxb.compare`` (bxb's rules: 300-s learning
  period, 150-ms match window, the record's length): gross QRS Se and +P over the 48 records and over the 44
  that EC57 aggregates (paced 102, 104, 107, 217 left out), the worst records, seconds per record (detection
  only, the lead already in memory, one warm-up call), and the offsets detected minus reference (samples, matched
  beats) before and after ``ecglib.ec57.rpeaks.align_peaks``; the peaks scored are the aligned ones, what
  ``detect_r_peaks`` returns;
- noise: the noise records (default: 118 and 119, nst's classic pair, and 100, 103, 105, 106, 203, 208, 210, 213,
  219, 228: clean, noisy, ventricular and fusion-rich records) at ``--noise-rate`` Hz with each noise of
  ``ecglib.noise`` (bw, ma, em; seed = the record's number) added to the lead at each SNR as nst adds it (its SNR
  definition, noise on 5:00-7:00, 9:00-11:00, ...); gross QRS Se and +P over those records; for the ecglib
  detector also with ``ecglib.quality``'s unreadable stretches written as shutdown (``~`` 0x30 ... ``~`` 0) and
  the seconds of shutdown;
- quality: the seconds that ``ecglib.quality`` marks unreadable on each clean record, and on the noise records
  (noise on / off);
- the second lead: the ecglib detector on each record's other lead at 360 Hz.

    python benchmarks/bench_detectors.py --mitdb-dir DIR [--out runs/bench-detectors] [--detectors ...]
        [--rates 360,250,128] [--noise-records ...] [--snrs 24,18,12,6,0] [--noise-rate 360] [--quick]

Writes OUT/results.json (every record's numbers) and OUT/results.md (the tables), and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ecglib.data import noise
from ecglib.data.facts import MITDB_RECORDS
from ecglib.ec57 import bxb as ec57
from ecglib.ec57 import detect, quality, rpeaks
from ecglib.errors import EcgError, first_line

DEFAULT_DETECTORS = (
    "ecglib",
    "adaptive",
    "xqrs",
    "gqrs",
    "neurokit",
    "nk-neurokit",
    "nk-pantompkins1985",
    "nk-hamilton2002",
    "nk-elgendi2010",
    "nk-kalidas2017",
    "nk-rodrigues2021",
    "nk-martinez2004",
    "nk-manikandan2012",
    "nk-nabian2018",
)
NOISE_RECORDS = ("118", "119", "100", "103", "105", "106", "203", "208", "210", "213", "219", "228")
QUICK_RECORDS = ("100", "105", "118", "119", "203", "208")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def read_record(folder: Path, name: str) -> dict:
    """The classified lead (MLII, else the first), the other lead, the rate and the reference annotations."""
    import wfdb

    from ecglib.data.records import read_lead

    base = folder / name
    sig, fs, lead = read_lead(base)
    header = wfdb.rdheader(str(base))
    other = next(s for s in header.sig_name if s != lead)
    sig2, _, _ = read_lead(base, other)
    ann = wfdb.rdann(str(base), "atr")
    return {
        "sig": sig,
        "sig2": sig2,
        "fs": fs,
        "lead": lead,
        "lead2": other,
        "sample": np.asarray(ann.sample),
        "symbol": np.asarray(ann.symbol),
        "subtype": np.asarray(ann.subtype),
    }


def at_rate(rec: dict, rate: float, key: str = "sig") -> tuple[np.ndarray, np.ndarray]:
    sig = noise.resample_signal(rec[key], rec["fs"], rate)
    return sig, noise.resample_samples(rec["sample"], rec["fs"], rate, len(sig))


def offsets(peaks: np.ndarray, ref: np.ndarray, fs: float) -> np.ndarray:
    """Nearest detected peak minus each reference beat (samples), for the beats with a peak within 150 ms."""
    if len(peaks) == 0:
        return np.empty(0, dtype=np.int64)
    j = np.clip(np.searchsorted(peaks, ref), 1, max(1, len(peaks) - 1))
    a, b = peaks[np.maximum(j - 1, 0)], peaks[np.minimum(j, len(peaks) - 1)]
    near = np.where(np.abs(a - ref) <= np.abs(b - ref), a, b)
    d = near - ref
    return d[np.abs(d) <= ec57.wfdb_time(ec57.DEFAULT_MATCH_WINDOW, fs)]


def offset_stats(d: np.ndarray) -> dict:
    if len(d) == 0:
        return {}
    return {
        "median": float(np.median(d)),
        "mean_abs": float(np.mean(np.abs(d))),
        "p5": float(np.percentile(d, 5)),
        "p25": float(np.percentile(d, 25)),
        "p75": float(np.percentile(d, 75)),
        "p95": float(np.percentile(d, 95)),
        "within_1": float(np.mean(np.abs(d) <= 1) * 100),
        "n": int(len(d)),
    }


def run_detector(name: str, sig: np.ndarray, fs: float) -> tuple[np.ndarray, float, str | None]:
    """Raw peaks (the registry's, sorted unique, inside the lead), seconds, and an error line if it failed."""
    t0 = time.perf_counter()
    try:
        peaks = np.asarray(detect.DETECTORS[name](sig, fs), dtype=np.int64)
        error = None
    except Exception as exc:  # noqa: BLE001 - a third-party detector failing on a noisy lead is a result too
        peaks, error = np.empty(0, dtype=np.int64), f"{type(exc).__name__}: {first_line(exc)}"
    seconds = time.perf_counter() - t0
    peaks = np.unique(peaks[(peaks >= 0) & (peaks < len(sig))])
    return peaks, seconds, error


def score(
    name: str, peaks: np.ndarray, fs: float, ref: np.ndarray, rec: dict, n: int, intervals: list | None = None
) -> ec57.Comparison:
    if intervals:
        s, c, t = quality.merge_with_beats(peaks, ["N"] * len(peaks), intervals, sig_len=n)
    else:
        s, c, t = peaks, ["N"] * len(peaks), None
    return ec57.compare(
        ref, rec["symbol"], s, c, fs, sig_len=n, ref_subtypes=rec["subtype"], test_subtypes=t, record=name
    )


def summary(comps: list[ec57.Comparison]) -> dict:
    s48 = ec57.summarize(comps, exclude=())
    s44 = ec57.summarize(comps)
    worst = sorted(comps, key=lambda c: min(c.stats()["Q Se"] or 0.0, c.stats()["Q +P"] or 0.0))[:3]
    # +P is undefined (None) for a record without a single detection
    return {
        "se48": s48.gross["Q Se"],
        "pp48": s48.gross["Q +P"],
        "se44": s44.gross["Q Se"],
        "pp44": s44.gross["Q +P"],
        "worst": [
            {
                "record": c.record,
                "se": c.stats()["Q Se"],
                "pp": c.stats()["Q +P"],
                "fn": c.tallies()["QFN"],
                "fp": c.tallies()["QFP"],
            }
            for c in worst
        ],
        "beats": s48.total_qrs,
    }


def _worst(w: list[dict]) -> str:
    return ", ".join(f"{x['record']} {fmt(x['se'], 1)}/{fmt(x['pp'], 1)}" for x in w)


def bench_clean(records: dict, names: list[str], rates: list[float], log) -> dict:
    out: dict = {}
    for name in names:
        for rate in rates:
            comps, times, raw_off, al_off, rows, errors = [], [], [], [], [], []
            for r, rec in records.items():
                sig, ref = at_rate(rec, rate)
                if not comps and not times:
                    run_detector(name, sig[: int(60 * rate)], rate)  # warm-up: imports, first calls
                peaks, secs, error = run_detector(name, sig, rate)
                aligned = rpeaks.align_peaks(sig, rate, peaks)
                c = score(r, aligned, rate, ref, rec, len(sig))
                comps.append(c)
                times.append(secs)
                raw_off.append(offsets(peaks, ref, rate))
                al_off.append(offsets(aligned, ref, rate))
                st = c.stats()
                rows.append(
                    {
                        "record": r,
                        "se": st["Q Se"],
                        "pp": st["Q +P"],
                        "fn": c.tallies()["QFN"],
                        "fp": c.tallies()["QFP"],
                        "seconds": secs,
                        "error": error,
                    }
                )
                if error:
                    errors.append(f"{r}: {error}")
            res = summary(comps)
            res.update(
                {
                    "seconds_mean": float(np.mean(times)),
                    "seconds_max": float(np.max(times)),
                    "offset_raw": offset_stats(np.concatenate(raw_off)),
                    "offset_aligned": offset_stats(np.concatenate(al_off)),
                    "records": rows,
                    "errors": errors,
                }
            )
            out[f"{name}@{rate:g}"] = res
            log(
                f"clean {name} @ {rate:g} Hz: Se {fmt(res['se48'])} +P {fmt(res['pp48'])} (no paced: "
                f"{fmt(res['se44'])} / {fmt(res['pp44'])}), {res['seconds_mean']:.2f} s/record, worst "
                f"{_worst(res['worst'])}" + (f", {len(errors)} failed" if errors else "")
            )
    return out


def bench_noise(records: dict, names: list[str], kinds: list[str], snrs: list[float], rate: float, log) -> dict:
    out: dict = {}
    noisy_leads: dict = {}
    for r in records:
        sig, ref = at_rate(records[r], rate)
        noisy_leads[r] = (sig, ref)
    for kind in kinds:
        zs = {r: noise.make_noise(kind, len(noisy_leads[r][0]), rate, seed=int(r)) for r in records}
        for snr in snrs:
            stressed = {}
            for r, rec in records.items():
                sig, ref = noisy_leads[r]
                y, _ = noise.add_noise(sig, zs[r], rate, snr, ref, rec["symbol"])
                stressed[r] = (y, ref)
            for name in names + (["ecglib+quality"] if "ecglib" in names else []):
                comps, rows, shutdown = [], [], 0
                for r, rec in records.items():
                    y, ref = stressed[r]
                    intervals = None
                    if name == "ecglib+quality":
                        peaks = detect.detect_r_peaks(y, rate)
                        intervals = quality.noise_intervals(y, rate, peaks)
                    else:
                        peaks, _, _ = run_detector(name, y, rate)
                        peaks = rpeaks.align_peaks(y, rate, peaks)
                    c = score(r, peaks, rate, ref, rec, len(y), intervals)
                    comps.append(c)
                    shutdown += c.shutdown_seconds
                    st = c.stats()
                    rows.append({"record": r, "se": st["Q Se"], "pp": st["Q +P"], "shutdown_s": c.shutdown_seconds})
                res = summary(comps)
                res.update({"records": rows, "shutdown_s": shutdown})
                out[f"{name}|{kind}|{snr:g}"] = res
                log(
                    f"noise {kind} {snr:g} dB {name}: Se {fmt(res['se48'])} +P {fmt(res['pp48'])}"
                    + (f", shutdown {shutdown} s" if name == "ecglib+quality" else "")
                    + f", worst {_worst(res['worst'])}"
                )
    return out


def bench_quality(records: dict, noise_records: dict, kinds: list[str], snrs: list[float], rate: float, log) -> dict:
    out: dict = {"clean": {}, "noise": {}}
    for r, rec in records.items():
        rep = quality.assess(rec["sig"], rec["fs"])
        out["clean"][r] = rep.seconds
    marked = {r: s for r, s in out["clean"].items() if s > 0}
    log(f"quality, clean records: {sum(out['clean'].values()):.0f} s marked in all ({marked or 'none'})")
    for kind in kinds:
        for snr in snrs:
            on_s, off_s, noisy_total = 0.0, 0.0, 0.0
            for r, rec in noise_records.items():
                sig, ref = at_rate(rec, rate)
                z = noise.make_noise(kind, len(sig), rate, seed=int(r))
                y, _ = noise.add_noise(sig, z, rate, snr, ref, rec["symbol"])
                on = np.zeros(len(y), dtype=bool)
                for a, b in noise.nst_intervals(len(y), rate):
                    on[a:b] = True
                noisy_total += on.sum() / rate
                for a, b in quality.noise_intervals(y, rate):
                    on_s += on[a:b].sum() / rate
                    off_s += (~on[a:b]).sum() / rate
            out["noise"][f"{kind}|{snr:g}"] = {
                "marked_noise_on_s": on_s,
                "marked_noise_off_s": off_s,
                "noise_on_s": noisy_total,
            }
            log(
                f"quality {kind} {snr:g} dB: {on_s:.0f} of {noisy_total:.0f} s with noise marked, {off_s:.0f} s "
                "without noise marked"
            )
    return out


def bench_second_lead(records: dict, log) -> dict:
    comps = []
    for r, rec in records.items():
        sig2, ref = at_rate(rec, rec["fs"], "sig2")
        peaks = detect.detect_r_peaks(sig2, rec["fs"])
        comps.append(score(r, peaks, rec["fs"], ref, rec, len(sig2)))
    res = summary(comps)
    log(f"second lead, ecglib @ 360 Hz: Se {fmt(res['se48'])} +P {fmt(res['pp48'])}, worst {_worst(res['worst'])}")
    return res


def fmt(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown(results: dict) -> str:
    lines = [
        f"Detectors on {results['n_records']} MIT-BIH records, bxb's rules (300-s learning period, 150-ms window); "
        f"load average {results['load']:.1f} at the start; {results['runtime_s'] / 60:.1f} min in all.",
        "",
        f"### Clean records, gross QRS Se / +P ({results['n_records']} records; without the paced ones "
        "102, 104, 107, 217 as EC57 aggregates)",
        "",
        "| detector | rate | Se (all) | +P (all) | Se (no paced) | +P (no paced) | s/record (mean, max) "
        "| worst records (Se/+P) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results["clean"].items():
        name, rate = key.split("@")
        lines.append(
            f"| {name} | {rate} | {fmt(r['se48'])} | {fmt(r['pp48'])} | {fmt(r['se44'])} | {fmt(r['pp44'])} | "
            f"{r['seconds_mean']:.2f}, {r['seconds_max']:.2f} | {_worst(r['worst'])} |"
        )
    failures = [f"{key}: {e}" for key, r in results["clean"].items() for e in r["errors"]]
    if failures:
        lines += ["", "Detector failures (the record scored with no beats): " + "; ".join(failures)]
    lines += [
        "",
        "### Fiducial offsets, detected minus reference (samples at the rate; matched beats): before -> after "
        "alignment",
        "",
        "| detector | rate | median | mean abs | 25-75 % | 5-95 % | within +-1 sample |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in results["clean"].items():
        name, rate = key.split("@")
        a, b = r["offset_raw"], r["offset_aligned"]
        if a and b:
            lines.append(
                f"| {name} | {rate} | {a['median']:+.0f} -> {b['median']:+.0f} | {a['mean_abs']:.2f} -> "
                f"{b['mean_abs']:.2f} | {a['p25']:+.0f}..{a['p75']:+.0f} -> {b['p25']:+.0f}..{b['p75']:+.0f} | "
                f"{a['p5']:+.0f}..{a['p95']:+.0f} -> {b['p5']:+.0f}..{b['p95']:+.0f} | "
                f"{a['within_1']:.1f} % -> {b['within_1']:.1f} % |"
            )
    if results.get("noise"):
        kinds = sorted({k.split("|")[1] for k in results["noise"]})
        snrs = sorted({float(k.split("|")[2]) for k in results["noise"]}, reverse=True)
        names = list(dict.fromkeys(k.split("|")[0] for k in results["noise"]))
        lines += [
            "",
            f"### Noise-stressed records ({', '.join(results['noise_records'])} at {results['noise_rate']:g} Hz; "
            "nst's SNR and protocol), gross QRS Se / +P",
            "",
            "| detector | " + " | ".join(f"{k} {s:g} dB" for k in kinds for s in snrs) + " |",
            "|---|" + "---|" * (len(kinds) * len(snrs)),
        ]
        for name in names:
            cells = []
            for k in kinds:
                for s in snrs:
                    r = results["noise"].get(f"{name}|{k}|{s:g}")
                    cells.append(
                        "-"
                        if r is None
                        else f"{fmt(r['se48'])} / {fmt(r['pp48'])}"
                        + (f" ({r['shutdown_s']} s)" if name == "ecglib+quality" else "")
                    )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "ecglib+quality: the ecglib detector with ecglib.quality's unreadable stretches as bxb shutdown "
            "(seconds of shutdown in brackets; a beat missed in shutdown still counts against Se).",
        ]
        if "ecglib" in names:
            lines += ["", "Worst noise records of the ecglib detector:", ""]
        for k in kinds:
            for s in snrs:
                r = results["noise"].get(f"ecglib|{k}|{s:g}")
                if r:
                    lines.append(f"- {k} {s:g} dB: {_worst(r['worst'])}")
    if results.get("quality"):
        q = results["quality"]
        marked = {r: round(s) for r, s in q["clean"].items() if s > 0}
        lines += [
            "",
            "### Quality check (ecglib.quality)",
            "",
            f"Clean records: {sum(q['clean'].values()):.0f} s marked unreadable over the {len(q['clean'])} records "
            f"({marked or 'none on any record'}).",
            "",
            "| noise | SNR | marked where noise is on | marked where it is off |",
            "|---|---|---|---|",
        ]
        for key, v in q["noise"].items():
            k, s = key.split("|")
            lines.append(
                f"| {k} | {s} dB | {v['marked_noise_on_s']:.0f} of {v['noise_on_s']:.0f} s | "
                f"{v['marked_noise_off_s']:.0f} s |"
            )
    if results.get("second_lead"):
        r = results["second_lead"]
        lines += [
            "",
            f"Second lead (V1, V2, V4 or V5; 102 and 104: V2), ecglib at 360 Hz: gross Se {fmt(r['se48'])} / "
            f"+P {fmt(r['pp48'])} ({results['n_records']} records), worst {_worst(r['worst'])}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mitdb-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("runs/bench-detectors"))
    p.add_argument("--detectors", default=",".join(DEFAULT_DETECTORS))
    p.add_argument("--records", default="all", help="all (the 48) or comma-separated names")
    p.add_argument("--rates", default="360,250,128")
    p.add_argument("--noise-records", default=",".join(NOISE_RECORDS))
    p.add_argument("--noise-kinds", default=",".join(noise.NOISE_KINDS))
    p.add_argument("--snrs", default="24,18,12,6,0")
    p.add_argument("--noise-rate", type=float, default=360.0)
    p.add_argument("--noise-detectors", default=None, help="detectors for the noise tables (default: --detectors)")
    p.add_argument("--no-quality", action="store_true")
    p.add_argument("--quick", action="store_true", help=f"records {','.join(QUICK_RECORDS)}, rates 360,128, SNRs 12,6")
    args = p.parse_args(argv)
    try:
        started = time.perf_counter()
        names = [d for d in args.detectors.split(",") if d]
        unknown = [d for d in names if d not in detect.DETECTORS]
        if unknown:
            raise EcgError(f"unknown detector(s) {', '.join(unknown)}; choose from {', '.join(detect.DETECTORS)}")
        if not _importable("neurokit2"):
            skipped = [d for d in names if d == "neurokit" or d.startswith("nk-")]
            names = [d for d in names if d not in skipped]
            if skipped:
                print(f"neurokit2 is not installed: {', '.join(skipped)} skipped", file=sys.stderr)
        record_names = list(MITDB_RECORDS) if args.records == "all" else args.records.split(",")
        rates = [float(x) for x in args.rates.split(",")]
        snrs = [float(x) for x in args.snrs.split(",")]
        noise_names = [r for r in args.noise_records.split(",") if r]
        if args.quick:
            record_names, rates, snrs = list(QUICK_RECORDS), [360.0, 128.0], [12.0, 6.0]
            noise_names = [r for r in noise_names if r in QUICK_RECORDS]
        noise_detectors = names if args.noise_detectors is None else [d for d in args.noise_detectors.split(",") if d]
        args.out.mkdir(parents=True, exist_ok=True)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        records = {r: read_record(args.mitdb_dir, r) for r in sorted(set(record_names) | set(noise_names))}
        clean_records = {r: records[r] for r in record_names}
        noise_records = {r: records[r] for r in noise_names}

        def log(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

        results: dict = {
            "n_records": len(clean_records),
            "load": load,
            "rates": rates,
            "detectors": names,
            "noise_records": noise_names,
            "noise_rate": args.noise_rate,
            "snrs": snrs,
        }

        def save() -> None:  # after every stage, so that a long run that fails keeps what it measured
            (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))

        results["clean"] = bench_clean(clean_records, names, rates, log)
        save()
        if noise_records and noise_detectors:
            results["noise"] = bench_noise(
                noise_records, noise_detectors, args.noise_kinds.split(","), snrs, args.noise_rate, log
            )
            save()
        if not args.no_quality:
            results["quality"] = bench_quality(
                clean_records, noise_records, args.noise_kinds.split(","), snrs, args.noise_rate, log
            )
            save()
        if "ecglib" in names:
            results["second_lead"] = bench_second_lead(clean_records, log)
        results["runtime_s"] = time.perf_counter() - started
        save()
        text = markdown(results)
        (args.out / "results.md").write_text(text)
        print(text)
    except EcgError as exc:
        print(f"bench_detectors: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
