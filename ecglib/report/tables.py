"""The comparison of trained runs as tables: one run's summary line and per-class scores, the runs side by side,
what they were trained on, and the files the comparison leaves (inputs: run folders' ``metrics.json``).
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ODEConfig
from ..data.facts import CLASSES
from ..files import atomic_write_text
from ..runs import RunFolder


def read_metrics(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The metrics of a finished run folder (what :func:`ecglib.train.run_training` wrote)."""

    return RunFolder(run_dir).metrics()


def summary_line(m: Mapping[str, Any]) -> str:
    """One line that says how a run did: accuracy against the baseline, macro-F1, recall per class, size, time."""
    recall = " ".join(f"{c}:{v['recall']:.3f}" for c, v in m["per_class"].items())
    epoch_s = m["seconds_per_epoch"]
    return (f"{m['model']}: test accuracy {m['accuracy']:.4f} (majority baseline {m['baseline_accuracy']:.4f}), "
            f"macro-F1 {m['macro_f1']:.4f}, recall {recall}, {m['params']:,} parameters, "
            f"{sum(epoch_s) / max(1, len(epoch_s)):.1f} s/epoch")


def per_class_table(metrics: Mapping[str, Any]) -> Any:
    """Precision, recall (AAMI sensitivity), F1 and support of each class of one run's test set."""
    import pandas as pd

    frame = pd.DataFrame(metrics["per_class"]).T.reindex(list(CLASSES))
    frame["support"] = frame["support"].astype(int)
    frame.index.name = "class"
    return frame.round(4)


def _mean(values: Any) -> float:
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    return float(np.mean(values)) if values else float("nan")


def comparison_table(runs: Mapping[str, Mapping[str, Any]]) -> Any:
    """One row per run (keyed as given, e.g. {"ResNet": metrics, "ODE-Net": metrics}) with the study's numbers:
    accuracy, macro-F1, per-class recall, majority baseline, parameters, seconds per epoch, NFE forward and
    backward per training batch, activation memory of one training step (MB) and inference beats per second."""
    import pandas as pd

    rows = {}
    for name, m in runs.items():
        row: dict[str, Any] = {"model": m.get("model", name), "accuracy": m["accuracy"], "macro-F1": m["macro_f1"]}
        for c in CLASSES:
            row[f"recall {c}"] = m["per_class"][c]["recall"]
        row.update({
            "baseline": m["baseline_accuracy"],
            "params": int(m["params"]),
            "s/epoch": _mean(m["seconds_per_epoch"]),
            "NFE fwd/batch": float(m.get("nfe_forward", 0.0)),
            "NFE bwd/batch": float(m.get("nfe_backward", 0.0)),
            "activation MB/step": m["activation_bytes"] / 2**20,
            "inference beats/s": float(m["beats_per_second"]),
            "epochs": len(m.get("history", [])) or None,
            "test beats": int(m.get("n_test", 0)),
        })
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


_FORMATS = {"accuracy": "{:.4f}", "macro-F1": "{:.4f}", "baseline": "{:.4f}", "params": "{:,.0f}",
            "s/epoch": "{:.1f}", "NFE fwd/batch": "{:.1f}", "NFE bwd/batch": "{:.1f}", "activation MB/step": "{:.1f}",
            "inference beats/s": "{:,.0f}", "epochs": "{:.0f}", "test beats": "{:,.0f}",
            **{f"recall {c}": "{:.3f}" for c in CLASSES}}


def format_comparison(table: Any, transpose: bool = True) -> Any:
    """The comparison table as strings for reading: one column per run, numbers rounded per quantity."""
    shown = table.drop(columns=[c for c in ("model",) if c in table.columns])
    out = shown.copy().astype(object)
    for col in shown.columns:
        fmt = _FORMATS.get(col, "{}")
        out[col] = [("-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v))
                    for v in shown[col]]
    return out.T if transpose else out


def _ode_config(settings: Mapping[str, Any]) -> ODEConfig:
    keys = {f.name for f in fields(ODEConfig)}
    return ODEConfig(**{k: settings[k] for k in keys if k in settings})


def same_data(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two runs were tested on the same beats (same data, split and seed)."""
    ca, cb = a.get("config", {}), b.get("config", {})
    return (ca.get("data") == cb.get("data") and ca.get("split") == cb.get("split")
            and ca.get("train", {}).get("seed") == cb.get("train", {}).get("seed"))


def format_sweep(sweep: Any) -> Any:
    """A tolerance sweep as strings for reading, one row per solver setting."""
    shown = sweep.set_index("setting")[["accuracy", "Δ accuracy (points)", "NFE/batch", "beats/s"]].copy()
    out = shown.astype(object)
    out["accuracy"] = [f"{v:.4f}" for v in shown["accuracy"]]
    out["Δ accuracy (points)"] = [f"{v:+.2f}" for v in shown["Δ accuracy (points)"]]
    out["NFE/batch"] = [f"{v:.1f}" for v in shown["NFE/batch"]]
    out["beats/s"] = [f"{v:,.0f}" for v in shown["beats/s"]]
    out.index.name = None
    return out


def describe_runs(runs: Mapping[str, Mapping[str, Any]], profile: str | None = None) -> str:
    """Markdown stating what the runs were trained and tested on: data, split sizes, recipe, solver, machine.
    Warns when the runs were not tested on the same beats."""
    first = next(iter(runs.values()))
    config = first.get("config", {})
    d, t = config.get("data", {}), config.get("train", {})
    source = d.get("source", d.get("data", "?"))
    sizes = first.get("split_sizes", {})
    limit = d.get("limit")
    lines = []
    what = {"synthetic": "synthetic MIT-BIH-like records (seeded, offline): a rehearsal, not MIT-BIH numbers",
            "mitdb": "the MIT-BIH Arrhythmia Database", "kaggle": "the Kaggle MIT-BIH CSVs"}.get(source, source)
    total = sum(sizes.values())
    lines.append(f"- **Data**: {what}; {f'all {total:,}' if not limit else f'a stratified subset of {limit:,}'}"
                 f" beats, **{config.get('split', '?')}**-patient split: {sizes.get('train', 0):,} train / "
                 f"{sizes.get('val', 0):,} validation / {sizes.get('test', 0):,} test beats.")
    lines.append(f"- **Training** (both models): {len(first.get('history', []))} epoch(s), {t.get('optimizer', '?')} "
                 f"lr {t.get('lr', '?')}, batch {t.get('batch_size', '?')}, {t.get('schedule', '?')} schedule, "
                 f"seed {t.get('seed', '?')}; best epoch on validation tested.")
    for name, m in runs.items():
        mc = m.get("config", {}).get("model", {})
        if m.get("model") == "odenet":
            lines.append(f"- **{name} solver**: {_ode_config(mc).label()}.")
        elif m.get("model") == "resnet":
            lines.append(f"- **{name}**: {mc.get('blocks', 6)} residual blocks of width {mc.get('width', 64)}.")
    lines.append(f"- **Machine**: {first.get('machine', '?')} ({first.get('device', '?')})"
                 + (f"; study profile **{profile}**." if profile else "."))
    names = list(runs)
    for other in names[1:]:
        if not same_data(runs[names[0]], runs[other]):
            lines.append(f"- **Warning**: {names[0]} and {other} were not trained and tested on the same data, "
                         "split or seed; their numbers are not directly comparable.")
    return "\n".join(lines)


def save_comparison(out_dir: str | os.PathLike, table: Any, sweep: Any = None,
                    lines: Sequence[str] | None = None) -> None:
    """Write comparison.csv, tolerance_sweep.csv and conclusions.txt to ``out_dir``."""

    out = Path(out_dir)
    atomic_write_text(out / "comparison.csv", table.to_csv(index_label="run"))
    if sweep is not None:
        atomic_write_text(out / "tolerance_sweep.csv", sweep.to_csv(index=False))
    if lines is not None:
        atomic_write_text(out / "conclusions.txt", "".join(f"- {line}\n" for line in lines))
