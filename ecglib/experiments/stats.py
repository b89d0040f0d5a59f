"""Statistics over seeds: mean, standard deviation and a 95 % t confidence interval per configuration, and paired
differences between configurations over the seeds both finished (a sweep's results table in, tables and
Markdown out).
"""
from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# ------------------------------------------------------------------------------------------------ sweep results
SUMMARY_METRICS = (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("S_se", "S Se"), ("V_se", "V Se"))


def confidence_interval(values: Sequence[float]) -> tuple[float, float, float, float]:
    """mean, sample sd, and the 95 % t confidence interval of the mean (nan when n < 2)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def ok_runs(results: Any) -> Any:
    """The rows of a results table whose run finished (status ok): the only ones statistics count."""
    return results[results["status"] == "ok"]


def sweep_summary_table(results: Any, metrics: Sequence[str] = ("accuracy", "macro_f1")) -> Any:
    """Per configuration (every setting but the seed): n and, for each metric, mean, sd and the 95 % t CI over
    seeds. ``results``: :func:`load_sweep`'s table (only runs with status ok count)."""
    import pandas as pd

    ok = ok_runs(results)
    rows = []
    for configuration in dict.fromkeys(results["configuration"]):  # spec order
        part = ok[ok["configuration"] == configuration]
        row: dict[str, Any] = {"configuration": configuration, "n": len(part)}
        for m in metrics:
            mean, sd, low, high = confidence_interval(part[m].astype(float).tolist())
            row.update({f"{m}_mean": mean, f"{m}_sd": sd, f"{m}_ci_low": low, f"{m}_ci_high": high})
        if len(part):
            row["params"] = int(part["params"].iloc[0])
            row["seconds_per_epoch"] = float(part["seconds_per_epoch"].astype(float).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def paired_differences(results: Any, metric: str = "accuracy") -> Any:
    """Differences A - B of ``metric`` between configurations that differ in one sweep dimension (a named
    configuration or one axis), paired over the seeds both finished: n, mean, sd, 95 % t CI."""
    import pandas as pd

    ok = ok_runs(results)
    configs = list(dict.fromkeys(results["configuration"]))
    points = {c: json.loads(results[results["configuration"] == c]["sweep_point"].iloc[0]) for c in configs}
    rows = []
    for a, b in itertools.combinations(configs, 2):
        pa, pb = points[a], points[b]
        if sum(pa.get(k) != pb.get(k) for k in set(pa) | set(pb)) != 1:
            continue
        va = ok[ok["configuration"] == a].set_index("seed")[metric].astype(float)
        vb = ok[ok["configuration"] == b].set_index("seed")[metric].astype(float)
        seeds = sorted(set(va.index) & set(vb.index))
        diff = [va[s] - vb[s] for s in seeds]
        mean, sd, low, high = confidence_interval(diff)
        rows.append({"a": a, "b": b, "metric": metric, "n": len(seeds), "mean": mean, "sd": sd, "ci_low": low,
                     "ci_high": high})
    return pd.DataFrame(rows, columns=["a", "b", "metric", "n", "mean", "sd", "ci_low", "ci_high"])


def _percent(v: float, pct: bool = True) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{100 * v:.2f}" if pct else f"{v:.3g}"


def ci_cells(row: Any, metrics: Sequence[str]) -> list[str]:
    """Markdown cells "mean ± sd [low, high]" (percent) of one :func:`sweep_summary_table` row, one per metric."""
    return [f"{_percent(row[f'{m}_mean'])} ± {_percent(row[f'{m}_sd'])} [{_percent(row[f'{m}_ci_low'])}, "
            f"{_percent(row[f'{m}_ci_high'])}]" for m in metrics]


def paired_markdown(diffs: Any) -> list[str]:
    """:func:`paired_differences` as markdown table lines (points); [] when no two configurations share a seed."""
    diffs = diffs[diffs["n"] > 0]  # configurations with no common finished seed have nothing to compare
    return [] if diffs.empty else ["| A | B | n | mean | sd | 95 % CI |", "|---|---|---:|---:|---:|---|"] + [
        f"| {d['a']} | {d['b']} | {d['n']} | {_percent(d['mean'])} | {_percent(d['sd'])} | [{_percent(d['ci_low'])}, "
        f"{_percent(d['ci_high'])}] |" for _, d in diffs.iterrows()]


def summary_markdown(results: Any, spec: Any = None) -> str:
    """The text of a sweep's summary.md (``spec``: its :class:`ecglib.spec.SweepSpec`, for the heading): the
    per-configuration table and the paired differences (percentage points)."""
    lines = ["# Sweep summary", ""]
    if spec is not None:
        lines += [f"Spec: `{spec.path.name}`" + (f" ({spec.description})" if spec.description else "") + ".", ""]
    counts = results["status"].value_counts().to_dict()
    lines += [f"Runs: {len(results)} ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}). Metrics in "
              "percent of the test beats; mean ± sd over seeds and the 95 % confidence interval of the mean "
              "(t distribution, n - 1 degrees of freedom; n/a for a single seed).", ""]
    names = [m for m, _ in SUMMARY_METRICS]
    table = sweep_summary_table(results, names)
    head = "| configuration | n | " + " | ".join(f"{label} mean ± sd [95 % CI]" for _, label in SUMMARY_METRICS)
    lines += [head + " | majority baseline | parameters | s / epoch |",
              "|---|---:|" + "---|" * len(names) + "---:|---:|---:|"]
    for _, r in table.iterrows():
        cells = ci_cells(r, names)
        params = f"{int(r['params']):,}" if "params" in r and not _isnan(r.get("params")) else ""
        sec = f"{r['seconds_per_epoch']:.1f}" if "seconds_per_epoch" in r and not _isnan(
            r.get("seconds_per_epoch")) else ""
        ok = ok_runs(results)
        base = ok[ok["configuration"] == r["configuration"]]["baseline_accuracy"].astype(float)
        lines.append(f"| {r['configuration']} | {r['n']} | " + " | ".join(cells)
                     + f" | {_percent(base.mean()) if len(base) else ''} | {params} | {sec} |")
    for metric, label in SUMMARY_METRICS[:2]:
        pairs = paired_markdown(paired_differences(results, metric))
        if pairs:
            lines += ["", f"## Paired differences of {label} (A - B, points, same seeds)", ""] + pairs
    failed = results[results["status"] == "failed"]
    if len(failed):
        lines += ["", "## Failed runs", ""] + [f"- {r['id']}: {r['error']}" for _, r in failed.iterrows()]
    return "\n".join(lines) + "\n"


def _isnan(v: Any) -> bool:
    try:
        return v is None or math.isnan(float(v))
    except (TypeError, ValueError):
        return True
