"""The comparison of trained runs: tables, the tolerance sweep, and conclusions computed from the numbers.

Inputs are run folders' metrics (``metrics.json``, read by :func:`load_run`) and trained models; outputs are
pandas tables and sentences, never written in advance. Figures of these live in :mod:`ecglib.plots`.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from .config import ODEConfig
from .data import CLASS_NAMES, CLASSES
from .errors import EcgError, InputError

ORIGINAL_STUDY: dict[str, Any] = {
    "resnet": {"accuracy": 0.974, "params": 182_853},
    "odenet": {"accuracy": 0.976, "params": 59_333},
    "odenet_slowdown_per_epoch": (6, 9),
}
DEFAULT_SWEEP: list[dict[str, Any]] = [
    {"solver": "dopri5", "rtol": 1e-1, "atol": 1e-1},
    {"solver": "dopri5", "rtol": 1e-2, "atol": 1e-2},
    {"solver": "dopri5", "rtol": 1e-3, "atol": 1e-3},
    {"solver": "dopri5", "rtol": 1e-4, "atol": 1e-4},
    {"solver": "rk4", "step_size": 1.0},
    {"solver": "rk4", "step_size": 0.5},
    {"solver": "rk4", "step_size": 1 / 3},
    {"solver": "rk4", "step_size": 0.25},
    {"solver": "midpoint", "step_size": 1.0},
    {"solver": "midpoint", "step_size": 0.5},
    {"solver": "midpoint", "step_size": 1 / 3},
    {"solver": "midpoint", "step_size": 1 / 6},
]


def load_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The metrics of a finished run folder (what :func:`ecglib.train.run_training` wrote)."""
    from .runs import RunFolder

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


def format_table(table: Any, transpose: bool = True) -> Any:
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


def _setting_label(config: ODEConfig) -> str:
    """'rk4 3 steps' or 'dopri5 tol 0.001': the solver part of a setting, for tables."""
    if config.fixed_grid:
        return f"{config.solver} {config.steps} step{'s' if config.steps != 1 else ''}"
    if config.rtol == config.atol:
        return f"{config.solver} tol {config.rtol:g}"
    return f"{config.solver} rtol {config.rtol:g} atol {config.atol:g}"


def tolerance_sweep(model: Any, x: Any, y: Any, settings: Sequence[Mapping[str, Any]] | None = None,
                    batch_size: int = 512, throughput_beats: int = 1024, rhythm: Any = None,
                    skip_failed: bool = False) -> Any:
    """Accuracy, NFE per batch and inference beats/s of a trained ODE-Net at other solver settings.

    model: an ODE-Net Classifier (e.g. from :func:`ecglib.runs.load_checkpoint`); x (n, 1, 187), y (n,) the
    test beats; rhythm (n, k) their rhythm features for a model with a rhythm input. settings: dicts of :class:`ODEConfig` keys (default :data:`DEFAULT_SWEEP`), each applied to the
    trained setting. The first row is the setting the model was trained with ("trained"; a listed setting equal
    to it is not repeated); the model is restored to it afterwards. Beats/s: :func:`ecglib.metrics.beats_per_second` on up to
    ``throughput_beats`` beats, or the rate of the accuracy pass over all test beats if that was faster (other
    processes can only slow a timing down, so the faster of two is the better estimate). ``skip_failed``: a listed
    setting whose solve fails (an adaptive solver that the trained dynamics make too stiff for its step limit) is
    left out instead of stopping the sweep.
    """
    import pandas as pd

    from .metrics import beats_per_second
    from .train import predict_nfe

    if getattr(model, "ode", None) is None:
        raise InputError("the tolerance sweep needs an ODE-Net; this model has no ODE block")
    trained = model.ode.config
    saved_config = dict(model.config)
    y = np.asarray(y)
    rows, seen = [], set()
    try:
        for i, setting in enumerate([{}, *(settings if settings is not None else DEFAULT_SWEEP)]):
            model.ode.config = ODEConfig.from_dict(dict(setting), base=trained)
            current = model.ode.config
            label = _setting_label(current)
            if label in seen:
                continue
            seen.add(label)
            started = time.perf_counter()
            try:
                pred, _, nfe = predict_nfe(model, x, batch_size=batch_size, rhythm=rhythm)
            except (EcgError, AssertionError, RuntimeError):
                if skip_failed and i > 0:
                    continue
                raise
            elapsed = time.perf_counter() - started
            speed = max(len(x) / elapsed if elapsed > 0 else 0.0,
                        beats_per_second(model, x, batch_size=batch_size, max_beats=throughput_beats,
                                         rhythm=rhythm))
            rows.append({"setting": label + (" (trained)" if i == 0 else ""),
                         "solver": current.solver,
                         "rtol": None if current.fixed_grid else current.rtol,
                         "step size": current.step_size,
                         "accuracy": float(np.mean(pred == y)) if len(y) else float("nan"),
                         "NFE/batch": nfe,
                         "beats/s": speed,
                         "trained": i == 0})
    finally:
        model.ode.config = trained
        model.config.clear()
        model.config.update(saved_config)
    table = pd.DataFrame(rows)
    table["Δ accuracy (points)"] = 100 * (table["accuracy"] - table["accuracy"].iloc[0])
    return table


def _ratio(a: float, b: float) -> str:
    if not (b and math.isfinite(a) and math.isfinite(b)):
        return "n/a"
    r = a / b
    return f"{r:.1f}x" if r >= 1.95 or r < 0.95 else f"{r:.2f}x"


def _pts(v: float) -> str:
    return f"{100 * v:.1f} point{'s' if abs(round(100 * v, 1)) != 1 else ''}"


def conclusions(table: Any, sweep: Any = None, tolerance: float = 0.001) -> list[str]:
    """Sentences computed from a :func:`comparison_table` (a ResNet row and an ODE-Net row, told apart by the
    ``model`` column) and optionally a :func:`tolerance_sweep`. ``tolerance`` (0.001 = 0.1 point) is how close
    to the trained accuracy a cheaper solver setting must stay, and below which two accuracies count as equal."""
    out: list[str] = []
    kinds = dict(zip(table["model"], table.index))
    if "resnet" not in kinds or "odenet" not in kinds:
        rows = ", ".join(f"{i}: accuracy {r['accuracy']:.4f}" for i, r in table.iterrows())
        return [f"The table holds {rows}; conclusions compare a ResNet with an ODE-Net."]
    res, ode = table.loc[kinds["resnet"]], table.loc[kinds["odenet"]]
    rn, on = kinds["resnet"], kinds["odenet"]

    # accuracy
    diff = ode["accuracy"] - res["accuracy"]
    if abs(diff) < tolerance:
        out.append(f"Accuracy: the {on} ({ode['accuracy']:.2%}) and the {rn} ({res['accuracy']:.2%}) are level "
                   f"(difference {100 * diff:+.2f} points, under {100 * tolerance:.1f}).")
    else:
        better, worse = (on, rn) if diff > 0 else (rn, on)
        hi, lo = max(ode["accuracy"], res["accuracy"]), min(ode["accuracy"], res["accuracy"])
        out.append(f"Accuracy: the {better} is more accurate than the {worse}, {hi:.2%} against {lo:.2%} "
                   f"({_pts(abs(diff))}) on {int(ode['test beats']):,} test beats.")
    # baseline
    base = float(res["baseline"])
    parts = []
    if max(res["accuracy"], ode["accuracy"]) - base < tolerance:
        out.append(f"Majority baseline {base:.2%}: neither model beats it ({100 * (res['accuracy'] - base):+.2f} and "
                   f"{100 * (ode['accuracy'] - base):+.2f} points): both still answer (almost) always the majority "
                   f"class after {int(ode['epochs'] or 0)} epoch(s), so their accuracies say nothing about the "
                   "architectures yet; train longer (more epochs or more beats).")
    for name, row in () if out[-1].startswith("Majority") else ((rn, res), (on, ode)):
        gain = row["accuracy"] - base
        if gain < tolerance:
            parts.append(f"the {name} does not beat it ({100 * gain:+.2f} points: it is no better than always "
                         f"answering the majority class)")
        else:
            # share of the errors the baseline makes that the model avoids
            removed = gain / (1 - base) if base < 1 else float("nan")
            parts.append(f"the {name} beats it by {_pts(gain)} (removing {removed:.0%} of the baseline's errors)")
    if parts:
        out.append(f"Majority baseline {base:.2%}: " + "; ".join(parts) + ".")
    # per class
    f1d = ode["macro-F1"] - res["macro-F1"]
    sv = ", ".join(f"{c} {res[f'recall {c}']:.2f} vs {ode[f'recall {c}']:.2f}" for c in ("S", "V"))
    out.append(f"Per class: macro-F1 {res['macro-F1']:.3f} ({rn}) vs {ode['macro-F1']:.3f} ({on}), "
               f"{'higher for the ' + (on if f1d > 0 else rn) if abs(f1d) >= tolerance else 'level'}; "
               f"recall ({rn} vs {on}) {sv}.")
    never = [c for c in CLASSES if res[f"recall {c}"] == 0 and ode[f"recall {c}"] == 0]
    if never:
        out.append(f"Never recognised by either model: {', '.join(never)} "
                   f"({'; '.join(CLASS_NAMES[c] for c in never)}).")
    else:
        weakest = min(CLASSES, key=lambda c: res[f"recall {c}"] + ode[f"recall {c}"])
        out.append(f"The hardest class for both is {weakest} ({CLASS_NAMES[weakest]}): recall "
                   f"{res[f'recall {weakest}']:.2f} ({rn}) and {ode[f'recall {weakest}']:.2f} ({on}).")
    # costs
    out.append(f"Parameters: the {rn} has {_ratio(res['params'], ode['params'])} the parameters of the {on} "
               f"({int(res['params']):,} vs {int(ode['params']):,}).")
    t_ratio = ode["s/epoch"] / res["s/epoch"] if res["s/epoch"] else float("nan")
    lo, hi = ORIGINAL_STUDY["odenet_slowdown_per_epoch"]
    out.append(f"Training time: the {on} takes {_ratio(ode['s/epoch'], res['s/epoch'])} the {rn}'s time per epoch "
               f"({ode['s/epoch']:.1f} s vs {res['s/epoch']:.1f} s) at {ode['NFE fwd/batch']:.0f} forward and "
               f"{ode['NFE bwd/batch']:.0f} backward evaluations per batch"
               + (f"; the original study measured {lo}-{hi}x with dopri5 and the adjoint."
                  if math.isfinite(t_ratio) else "."))
    out.append(f"Activation memory of one training step: {ode['activation MB/step']:.1f} MB ({on}) vs "
               f"{res['activation MB/step']:.1f} MB ({rn}), a ratio of {_ratio(ode['activation MB/step'], res['activation MB/step'])}"
               + (" (the adjoint keeps it flat in the number of solver steps)." if ode["NFE bwd/batch"] > 0 else
                  " (without the adjoint it grows with the solver steps)."))
    out.append(f"Inference: {ode['inference beats/s']:,.0f} beats/s ({on}) vs {res['inference beats/s']:,.0f} beats/s ({rn}), the "
               f"{on} runs at {_ratio(ode['inference beats/s'], res['inference beats/s'])} the {rn}'s speed.")
    if sweep is not None and len(sweep) and ode["accuracy"] - base < tolerance:
        out.append(f"Tolerance sweep: the {on} answers the majority class whatever the solver, so the sweep shows "
                   "only costs: " + ", ".join(f"{name.replace(' (trained)', '')}: {nfe:.0f}"
                                            for name, nfe in zip(sweep["setting"], sweep["NFE/batch"]))
                   + " NFE per batch.")
    elif sweep is not None and len(sweep):
        ref = sweep[sweep["trained"]].iloc[0] if sweep["trained"].any() else sweep.iloc[0]
        ok = sweep[sweep["accuracy"] >= ref["accuracy"] - tolerance - 1e-12]
        best = ok.sort_values(["NFE/batch", "beats/s"], ascending=[True, False]).iloc[0]
        if best["setting"] == ref["setting"] or best["NFE/batch"] >= ref["NFE/batch"]:
            out.append(f"Tolerance sweep: no setting cheaper than the trained one "
                       f"({ref['setting'].replace(' (trained)', '')}, "
                       f"{ref['NFE/batch']:.0f} NFE/batch) stays within {100 * tolerance:.1f} point of its accuracy "
                       f"{ref['accuracy']:.2%}.")
        else:
            out.append(f"Tolerance sweep (train precise, deploy loose): {best['setting']} needs "
                       f"{best['NFE/batch']:.0f} NFE/batch instead of {ref['NFE/batch']:.0f} "
                       f"({_ratio(ref['NFE/batch'], best['NFE/batch'])} fewer evaluations, {best['beats/s']:,.0f} vs "
                       f"{ref['beats/s']:,.0f} beats/s) at {best['accuracy']:.2%} accuracy, within "
                       f"{100 * tolerance:.1f} point of the trained setting's {ref['accuracy']:.2%}.")
        worst = sweep.loc[sweep["accuracy"].idxmin()]
        if ref["accuracy"] - worst["accuracy"] >= tolerance:
            out.append(f"Largest loss in the sweep: {worst['setting']} ({worst['NFE/batch']:.0f} NFE/batch) drops accuracy "
                       f"to {worst['accuracy']:.2%} ({100 * (worst['accuracy'] - ref['accuracy']):+.1f} points).")
    orig = ORIGINAL_STUDY
    gap = 100 * (orig["odenet"]["accuracy"] - orig["resnet"]["accuracy"])
    out.append(f"For reference, the original study: ResNet {orig['resnet']['accuracy']:.1%}, ODE-Net "
               f"{orig['odenet']['accuracy']:.1%} ({gap:+.1f} points), {orig['resnet']['params']:,} vs "
               f"{orig['odenet']['params']:,} parameters; ours: {100 * diff:+.2f} points"
               f" after {int(ode['epochs'] or 0)} epoch(s) on {int(ode['test beats']):,} test beats.")
    return out


def show_conclusions(lines: Sequence[str]) -> Any:
    """The conclusions as a Markdown bullet list for display in a notebook."""
    from IPython.display import Markdown

    return Markdown("\n".join(f"- {line}" for line in lines))


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
    from .files import atomic_write_text

    out = Path(out_dir)
    atomic_write_text(out / "comparison.csv", table.to_csv(index_label="run"))
    if sweep is not None:
        atomic_write_text(out / "tolerance_sweep.csv", sweep.to_csv(index=False))
    if lines is not None:
        atomic_write_text(out / "conclusions.txt", "".join(f"- {line}\n" for line in lines))


# ------------------------------------------------------------------------------------------------ sweep results
SUMMARY_METRICS = (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("S_se", "S Se"), ("V_se", "V Se"))


def _ci(values: Sequence[float]) -> tuple[float, float, float, float]:
    """mean, sample sd, and the 95 % t confidence interval of the mean (nan when n < 2)."""
    import numpy as np
    from scipy import stats

    v = np.asarray(values, dtype=float)
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def _ok(results: Any) -> Any:
    return results[results["status"] == "ok"]


def sweep_summary_table(results: Any, metrics: Sequence[str] = ("accuracy", "macro_f1")) -> Any:
    """Per configuration (every setting but the seed): n and, for each metric, mean, sd and the 95 % t CI over
    seeds. ``results``: :func:`load_sweep`'s table (only runs with status ok count)."""
    import pandas as pd

    ok = _ok(results)
    rows = []
    for configuration in dict.fromkeys(results["configuration"]):  # spec order
        part = ok[ok["configuration"] == configuration]
        row: dict[str, Any] = {"configuration": configuration, "n": len(part)}
        for m in metrics:
            mean, sd, low, high = _ci(part[m].astype(float).tolist())
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

    ok = _ok(results)
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
        mean, sd, low, high = _ci(diff)
        rows.append({"a": a, "b": b, "metric": metric, "n": len(seeds), "mean": mean, "sd": sd, "ci_low": low,
                     "ci_high": high})
    return pd.DataFrame(rows, columns=["a", "b", "metric", "n", "mean", "sd", "ci_low", "ci_high"])


def _fmt(v: float, pct: bool = True) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{100 * v:.2f}" if pct else f"{v:.3g}"


def ci_cells(row: Any, metrics: Sequence[str]) -> list[str]:
    """Markdown cells "mean ± sd [low, high]" (percent) of one :func:`sweep_summary_table` row, one per metric."""
    return [f"{_fmt(row[f'{m}_mean'])} ± {_fmt(row[f'{m}_sd'])} [{_fmt(row[f'{m}_ci_low'])}, "
            f"{_fmt(row[f'{m}_ci_high'])}]" for m in metrics]


def paired_markdown(diffs: Any) -> list[str]:
    """:func:`paired_differences` as markdown table lines (points); [] when no two configurations share a seed."""
    diffs = diffs[diffs["n"] > 0]  # configurations with no common finished seed have nothing to compare
    return [] if diffs.empty else ["| A | B | n | mean | sd | 95 % CI |", "|---|---|---:|---:|---:|---|"] + [
        f"| {d['a']} | {d['b']} | {d['n']} | {_fmt(d['mean'])} | {_fmt(d['sd'])} | [{_fmt(d['ci_low'])}, "
        f"{_fmt(d['ci_high'])}] |" for _, d in diffs.iterrows()]


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
        ok = _ok(results)
        base = ok[ok["configuration"] == r["configuration"]]["baseline_accuracy"].astype(float)
        lines.append(f"| {r['configuration']} | {r['n']} | " + " | ".join(cells)
                     + f" | {_fmt(base.mean()) if len(base) else ''} | {params} | {sec} |")
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


