"""Helpers for the notebooks, and the papermill study that runs them and writes ``report.html``.

The notebooks in ``notebooks/`` tell the story; the plots, tables and computations they need live here so that
each notebook cell stays one idea long and no code is copied between cells or notebooks:

* data: :func:`load_split` (the one way notebooks load beats and split them), :func:`class_table`,
  :func:`record_composition`, :func:`split_table` and their plots;
* training: :func:`plot_history`, :func:`plot_nfe`, :func:`plot_confusion`, :func:`per_class_table`;
* comparison: :func:`comparison_table`, :func:`tolerance_sweep`, :func:`conclusions` (sentences computed from the
  numbers, never written in advance);
* the study: :data:`PROFILES` and :func:`run_study` (``ecglib study``).

Every plotting helper takes an optional matplotlib ``ax`` (or returns a new figure) and returns what it drew on.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from .data import CLASS_NAMES, CLASSES, DS1, DS2, MITDB_RECORDS, Beats, Split
from .errors import EcgError, InputError

# The numbers of the study being reproduced (MIT-BIH, intra-patient split, dopri5 with the adjoint, 5 epochs).
ORIGINAL_STUDY: dict[str, Any] = {
    "resnet": {"accuracy": 0.974, "params": 182_853},
    "odenet": {"accuracy": 0.976, "params": 59_333},
    "odenet_slowdown_per_epoch": (6, 9),
}
LABELS = {"resnet": "ResNet", "odenet": "ODE-Net"}
COLORS = {"resnet": "tab:blue", "odenet": "tab:orange"}
SECONDS_PER_SAMPLE = 1 / 125

# "train precise, deploy loose": solver settings at which a trained ODE-Net is evaluated again.
DEFAULT_SWEEP: list[dict[str, Any]] = [
    {"solver": "dopri5", "rtol": 1e-1, "atol": 1e-1},
    {"solver": "dopri5", "rtol": 1e-2, "atol": 1e-2},
    {"solver": "dopri5", "rtol": 1e-3, "atol": 1e-3},
    {"solver": "dopri5", "rtol": 1e-4, "atol": 1e-4},
    {"solver": "rk4", "step_size": 1.0},
    {"solver": "rk4", "step_size": 0.5},
    {"solver": "rk4", "step_size": 1 / 3},
    {"solver": "rk4", "step_size": 0.25},
]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _label(name: str) -> str:
    return LABELS.get(name, name)


# ======================================================================================================== data
def load_split(source: str = "synthetic", mitdb_dir: str | os.PathLike | None = None,
               kaggle_dir: str | os.PathLike | None = None, split: str = "intra", limit: int | None = None,
               seed: int = 0, val_fraction: float = 0.1, synthetic_seconds: float = 60.0,
               download: bool = True, progress: bool = False) -> tuple[Beats, Split]:
    """Beats of ``source`` (a stratified subset of ``limit`` beats when given; 0 or None: all) and their split.

    The same call in the training notebook and the comparison notebook yields the same test beats, because the
    subset and the split depend on (source, limit, split, seed, val_fraction) alone.
    """
    from .data import limit_beats, load_beats, split_beats

    beats = load_beats(source, mitdb_dir=mitdb_dir, kaggle_dir=kaggle_dir, synthetic_seconds=synthetic_seconds,
                       seed=0, download=download, progress=progress)
    beats = limit_beats(beats, limit or None, seed=seed)
    return beats, split_beats(beats, split, val_fraction=val_fraction, seed=seed)


def data_config(source: str, mitdb_dir: str | os.PathLike | None = None, kaggle_dir: str | os.PathLike | None = None,
                split: str = "intra", limit: int | None = None, val_fraction: float = 0.1,
                synthetic_seconds: float = 60.0) -> dict[str, Any]:
    """What a run folder records about its data (``metrics.json`` ``config.data``), folders made absolute so the
    comparison notebook finds them from wherever it runs. Same keys as ``ecglib train`` writes."""
    def absolute(p: str | os.PathLike | None) -> str | None:
        return str(Path(p).expanduser().resolve()) if p else None

    return {"source": source, "mitdb_dir": absolute(mitdb_dir), "kaggle_dir": absolute(kaggle_dir),
            "synthetic_seconds": synthetic_seconds, "limit": limit or None, "split": split,
            "val_fraction": val_fraction}


def class_table(beats: Beats) -> Any:
    """One row per AAMI class: its description, beat count and share of all beats."""
    import pandas as pd

    counts = beats.class_counts()
    total = max(1, len(beats))
    return pd.DataFrame({"class": [CLASS_NAMES[c] for c in CLASSES],
                         "beats": [counts[c] for c in CLASSES],
                         "share (%)": [round(100 * counts[c] / total, 2) for c in CLASSES]},
                        index=pd.Index(list(CLASSES), name="AAMI"))


def majority_class(beats: Beats) -> tuple[str, float]:
    """The most frequent class and the accuracy of always predicting it (the majority baseline)."""
    counts = np.bincount(beats.y, minlength=len(CLASSES))
    top = int(counts.argmax())
    return CLASSES[top], float(counts[top] / max(1, counts.sum()))


def plot_class_distribution(beats: Beats, ax: Any = None, log: bool = True) -> Any:
    """Bar chart of beats per class (log scale by default: the rare classes are invisible otherwise)."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    counts = beats.class_counts()
    values = [counts[c] for c in CLASSES]
    bars = ax.bar(CLASSES, values, color=[f"C{i}" for i in range(len(CLASSES))])
    total = max(1, sum(values))
    for bar, v in zip(bars, values):
        ax.annotate(f"{v:,}\n{100 * v / total:.1f}%", (bar.get_x() + bar.get_width() / 2, max(v, 1)),
                    ha="center", va="bottom", fontsize=8)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(top=max(values) * 8)
    ax.set_xlabel("AAMI class")
    ax.set_ylabel("beats" + (" (log scale)" if log else ""))
    ax.set_title(f"{len(beats):,} beats ({beats.meta.get('source', '?')})")
    return ax


def _time_axis(n: int = 187) -> np.ndarray:
    return np.arange(n) * SECONDS_PER_SAMPLE


def plot_class_examples(beats: Beats, per_class: int = 4, seed: int = 0, axes: Any = None) -> Any:
    """A few random beats of each class, one panel per class (time in seconds from the R peak)."""
    plt = _plt()
    if axes is None:
        _, axes = plt.subplots(1, len(CLASSES), figsize=(15, 2.8), sharey=True)
    rng = np.random.default_rng(seed)
    t = _time_axis(beats.x.shape[1])
    for i, (c, ax) in enumerate(zip(CLASSES, np.ravel(axes))):
        idx = np.flatnonzero(beats.y == i)
        if len(idx) == 0:
            ax.text(0.5, 0.5, "no beats", ha="center", va="center", transform=ax.transAxes)
        for j in rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []:
            ax.plot(t, beats.x[j], lw=1, alpha=0.8)
        ax.set_title(f"{c}: {CLASS_NAMES[c]}", fontsize=9)
        ax.set_xlabel("s after R peak")
    np.ravel(axes)[0].set_ylabel("amplitude (scaled 0-1)")
    return axes


def plot_class_means(beats: Beats, axes: Any = None) -> Any:
    """Per-class mean waveform with a band of plus/minus one standard deviation."""
    plt = _plt()
    if axes is None:
        _, axes = plt.subplots(1, len(CLASSES), figsize=(15, 2.8), sharey=True)
    t = _time_axis(beats.x.shape[1])
    for i, (c, ax) in enumerate(zip(CLASSES, np.ravel(axes))):
        xs = beats.x[beats.y == i]
        if len(xs) == 0:
            ax.text(0.5, 0.5, "no beats", ha="center", va="center", transform=ax.transAxes)
        else:
            mean, std = xs.mean(0), xs.std(0)
            ax.fill_between(t, mean - std, mean + std, color=f"C{i}", alpha=0.25, lw=0)
            ax.plot(t, mean, color=f"C{i}", lw=1.5)
        ax.set_title(f"{c} (n={len(xs):,})", fontsize=9)
        ax.set_xlabel("s after R peak")
    np.ravel(axes)[0].set_ylabel("mean ± std")
    return axes


def record_composition(beats: Beats) -> Any:
    """Beats per record (rows) and class (columns), with a total column; records in MIT-BIH order."""
    import pandas as pd

    frame = beats.to_frame()
    table = pd.crosstab(frame["record"], frame["cls"]).reindex(columns=list(CLASSES), fill_value=0)
    order = [r for r in MITDB_RECORDS if r in table.index] + sorted(r for r in table.index if r not in MITDB_RECORDS)
    table = table.loc[order]
    table.columns = pd.Index(list(CLASSES), name="class")
    table["total"] = table.sum(axis=1)
    return table


def plot_record_composition(beats: Beats, ax: Any = None, share: bool = True) -> Any:
    """Stacked bar per record: its class mix (shares when ``share``, else counts). DS1/DS2 records are marked
    when the records carry MIT-BIH names."""
    plt = _plt()
    table = record_composition(beats)
    data = table[list(CLASSES)]
    if share:
        data = data.div(data.sum(axis=1).where(lambda s: s > 0, 1), axis=0) * 100
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(table) + 2), 3.6))
    bottom = np.zeros(len(data))
    pos = np.arange(len(data))
    for i, c in enumerate(CLASSES):
        ax.bar(pos, data[c].to_numpy(), bottom=bottom, color=f"C{i}", label=c, width=0.8)
        bottom += data[c].to_numpy()
    names = list(table.index)
    tags = ["¹" if r in DS1 else "²" if r in DS2 else "" for r in names]
    ax.set_xticks(pos, [f"{r}{t}" for r, t in zip(names, tags)], rotation=90, fontsize=7)
    ax.set_xlim(-0.6, len(pos) - 0.4)
    ax.set_ylabel("share of the record's beats (%)" if share else "beats")
    ax.legend(ncol=len(CLASSES), fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False)
    if any(tags):
        ax.set_xlabel("record  (¹ DS1 = inter-patient train, ² DS2 = inter-patient test, unmarked: paced)")
    else:
        ax.set_xlabel("record")
    return ax


def has_record_names(beats: Beats) -> bool:
    """True when the beats carry MIT-BIH record names, so the inter-patient split is possible."""
    return beats.meta.get("source") != "kaggle" and bool(np.isin(beats.record, DS1).any()
                                                         and np.isin(beats.record, DS2).any())


def split_table(beats: Beats, seed: int = 0, val_fraction: float = 0.1,
                protocols: Sequence[str] | None = None) -> Any:
    """Beats per class in train/validation/test of each protocol (inter only with MIT-BIH record names)."""
    import pandas as pd

    from .data import split_beats

    if protocols is None:
        protocols = ("intra", "inter") if has_record_names(beats) else ("intra",)
    rows = []
    for protocol in protocols:
        split = split_beats(beats, protocol, val_fraction=val_fraction, seed=seed)
        for part in ("train", "val", "test"):
            idx = getattr(split, part)
            counts = np.bincount(beats.y[idx], minlength=len(CLASSES))
            rows.append({"protocol": protocol, "part": part, **dict(zip(CLASSES, counts.tolist())),
                         "beats": len(idx), "records": len(np.unique(beats.record[idx]))})
    return pd.DataFrame(rows).set_index(["protocol", "part"])


# ==================================================================================================== training
def load_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The metrics.json of a run folder (what :func:`ecglib.train.run_training` wrote)."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise InputError(f"{path}: not found; train the model first (notebook 02_train or `ecglib train`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def per_class_table(metrics: Mapping[str, Any]) -> Any:
    """Precision, recall (AAMI sensitivity), F1 and support of each class of one run's test set."""
    import pandas as pd

    frame = pd.DataFrame(metrics["per_class"]).T.reindex(list(CLASSES))
    frame["support"] = frame["support"].astype(int)
    frame.index.name = "class"
    return frame.round(4)


def _history_frame(history: Sequence[Mapping[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(list(history))


def _epoch_axis(ax: Any, histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    last = max((len(h) for h in histories.values()), default=1) or 1
    step = max(1, math.ceil(last / 10))
    ax.set_xticks(range(1, last + 1, step))
    ax.set_xlim(0.7, last + 0.3)
    ax.set_xlabel("epoch")


def plot_history(histories: Mapping[str, Sequence[Mapping[str, Any]]], axes: Any = None,
                 baseline: float | None = None) -> Any:
    """Loss and accuracy per epoch of several runs overlaid: train solid, validation dashed.

    histories: {run name ("resnet", "odenet" or any label): the run's history rows (metrics.json "history" or
    the list :func:`ecglib.train.fit` returns)}. baseline: the majority-class accuracy, drawn for reference.
    """
    plt = _plt()
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    ax_loss, ax_acc = np.ravel(axes)[:2]
    for k, (name, history) in enumerate(histories.items()):
        h = _history_frame(history)
        if h.empty:
            continue
        color = COLORS.get(name, f"C{k}")
        for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            ax.plot(h["epoch"], h[f"train_{key}"], "-o", color=color, ms=4, label=f"{_label(name)} train")
            ax.plot(h["epoch"], h[f"val_{key}"], "--s", color=color, ms=4, mfc="white",
                    label=f"{_label(name)} validation")
    if baseline is not None:
        ax_acc.axhline(baseline, color="grey", lw=1, ls=":", label=f"majority baseline {baseline:.3f}")
    ax_loss.set_title("cross-entropy loss")
    ax_acc.set_title("accuracy")
    for ax in (ax_loss, ax_acc):
        _epoch_axis(ax, histories)
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    return axes


def plot_nfe(histories: Mapping[str, Sequence[Mapping[str, Any]]], ax: Any = None, resnet_blocks: int = 6) -> Any:
    """Evaluations of the ODE dynamics per training batch and epoch: forward (solid) and backward (dashed),
    and per validation batch (dotted). A ResNet's six residual blocks are drawn as the reference line: it
    evaluates each of its six blocks once per forward pass."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    drew, top = False, float(resnet_blocks)
    for k, (name, history) in enumerate(histories.items()):
        h = _history_frame(history)
        if h.empty or not (h["nfe_forward"] > 0).any():
            continue
        color = COLORS.get(name, f"C{k}")
        ax.plot(h["epoch"], h["nfe_forward"], "-o", color=color, ms=4, label=f"{_label(name)} forward (train)")
        if (h["nfe_backward"] > 0).any():
            ax.plot(h["epoch"], h["nfe_backward"], "--s", color=color, ms=4, label=f"{_label(name)} backward (adjoint)")
        ax.plot(h["epoch"], h["val_nfe"], ":^", color=color, ms=6, mfc="none",
                label=f"{_label(name)} forward (validation)")
        top = max(top, float(h[["nfe_forward", "nfe_backward", "val_nfe"]].to_numpy().max()))
        drew = True
    if any(name == "resnet" for name in histories) or not drew:
        ax.axhline(resnet_blocks, color=COLORS["resnet"], lw=1, ls="-.",
                   label=f"ResNet: {resnet_blocks} blocks = {resnet_blocks} Euler steps")
    _epoch_axis(ax, histories)
    ax.set_ylabel("NFE per batch")
    ax.set_ylim(0, top * 1.5)
    ax.set_title("function evaluations (NFE)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_confusion(cm: Any, ax: Any = None, normalize: bool = False, title: str | None = None) -> Any:
    """Seaborn heatmap of a (5, 5) confusion matrix: rows = true class, columns = predicted, class names on
    both axes. ``normalize`` divides each row by its total (so the diagonal is each class's recall)."""
    import seaborn as sns

    plt = _plt()
    cm = np.asarray(cm, dtype=float)
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.6))
    sns.heatmap(cm, annot=True, fmt=".2f" if normalize else ".0f", cmap="Blues", cbar=False, square=True,
                vmin=0, vmax=1 if normalize else None, xticklabels=list(CLASSES), yticklabels=list(CLASSES),
                ax=ax, annot_kws={"fontsize": 9}, linewidths=0.5, linecolor="white")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.tick_params(axis="y", rotation=0)
    if title is not None:
        ax.set_title(title)
    return ax


def plot_confusions(runs: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    """The runs' confusion matrices side by side (keyed by display name, values metrics dicts): one figure of
    counts, one row-normalized. Returns the two figures."""
    plt = _plt()
    figures = []
    for normalize in (False, True):
        fig, axes = plt.subplots(1, len(runs), figsize=(4.6 * len(runs), 4.0), squeeze=False)
        for (name, m), ax in zip(runs.items(), axes[0]):
            plot_confusion(m["confusion_matrix"], ax=ax, normalize=normalize,
                           title=f"{name}: accuracy {m['accuracy']:.4f}")
        fig.suptitle("share of each true class (diagonal: recall)" if normalize else "beats (counts)", fontsize=11)
        fig.tight_layout()
        figures.append(fig)
    return figures


# ================================================================================================== comparison
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


def _steps(step_size: float) -> str:
    """'3 steps' for a step of 1/3 (a whole number of steps on [0, 1]), else 'step 0.3'."""
    n = round(1 / step_size)
    return f"{n} step{'s' if n > 1 else ''}" if abs(1 / step_size - n) < 1e-6 else f"step {step_size:g}"


def _setting_label(s: Mapping[str, Any]) -> str:
    solver = s.get("solver", "?")
    if s.get("step_size") is not None and solver not in ("dopri5", "dopri8", "bosh3", "fehlberg2",
                                                         "adaptive_heun", "tsit5"):
        return f"{solver} {_steps(s['step_size'])}"
    tol = s.get("rtol")
    atol = s.get("atol")
    return f"{solver} tol {tol:g}" if tol == atol or atol is None else f"{solver} rtol {tol:g} atol {atol:g}"


def tolerance_sweep(model: Any, x: Any, y: Any, settings: Sequence[Mapping[str, Any]] | None = None,
                    batch_size: int = 512, throughput_beats: int = 1024) -> Any:
    """Accuracy, NFE per batch and inference beats/s of a trained ODE-Net at other solver settings.

    model: an ODE-Net Classifier (e.g. from :func:`ecglib.train.load_checkpoint`); x (n, 1, 187), y (n,) the
    test beats. settings: dicts for :meth:`Classifier.set_solver` (default :data:`DEFAULT_SWEEP`). The first row
    is the setting the model was trained with ("trained"; a listed setting equal to it is not repeated); the
    model is restored to it afterwards. A setting leaves the others as they were: give each its full set (solver
    with rtol/atol, or with step_size). Beats/s: :func:`ecglib.metrics.beats_per_second` on up to
    ``throughput_beats`` beats, or the rate of the accuracy pass over all test beats if that was faster (other
    processes can only slow a timing down, so the faster of two is the better estimate).
    """
    import pandas as pd

    from .metrics import beats_per_second
    from .train import predict

    if getattr(model, "ode", None) is None:
        raise InputError("the tolerance sweep needs an ODE-Net; this model has no ODE block")
    keys = ("solver", "rtol", "atol", "step_size")
    trained = {k: getattr(model.ode, k) for k in keys}
    saved_config = dict(model.config)
    y = np.asarray(y)
    rows, seen = [], set()
    try:
        for i, setting in enumerate([trained, *(settings if settings is not None else DEFAULT_SWEEP)]):
            model.set_solver(**{k: v for k, v in setting.items() if k in (*keys, "adjoint", "seminorm")})
            current = {k: getattr(model.ode, k) for k in keys}
            label = _setting_label(current)
            if label in seen:
                continue
            seen.add(label)
            model.reset_nfe()
            started = time.perf_counter()
            pred, _ = predict(model, x, batch_size=batch_size)
            elapsed = time.perf_counter() - started
            nfe = model.nfe()[0] / max(1, math.ceil(len(x) / batch_size))
            speed = max(len(x) / elapsed if elapsed > 0 else 0.0,
                        beats_per_second(model, x, batch_size=batch_size, max_beats=throughput_beats))
            rows.append({"setting": label + (" (trained)" if i == 0 else ""),
                         "solver": current["solver"],
                         "rtol": current["rtol"] if current["solver"] not in _fixed() else None,
                         "step size": current["step_size"] if current["solver"] in _fixed() else None,
                         "accuracy": float(np.mean(pred == y)) if len(y) else float("nan"),
                         "NFE/batch": nfe,
                         "beats/s": speed,
                         "trained": i == 0})
    finally:
        for key, value in trained.items():  # set_solver skips None values; a step_size of None must come back
            setattr(model.ode, key, value)
        model.config.clear()
        model.config.update(saved_config)
    table = pd.DataFrame(rows)
    table["Δ accuracy (points)"] = 100 * (table["accuracy"] - table["accuracy"].iloc[0])
    return table


def _fixed() -> tuple[str, ...]:
    from .models import FIXED_GRID_SOLVERS

    return FIXED_GRID_SOLVERS


def plot_sweep(sweep: Any, axes: Any = None) -> Any:
    """A tolerance sweep in three aligned panels, one row per solver setting (the trained one in bold): test
    accuracy, NFE per test batch and inference beats per second."""
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    n = len(sweep)
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 0.42 * n + 1.4), sharey=True)
    ax_acc, ax_nfe, ax_speed = np.ravel(axes)[:3]
    pos = np.arange(n)[::-1]
    colors = [f"C{list(dict.fromkeys(sweep['solver'])).index(s)}" for s in sweep["solver"]]
    acc = 100 * sweep["accuracy"].to_numpy()
    ref = 100 * float(sweep.loc[sweep["trained"], "accuracy"].iloc[0]) if sweep["trained"].any() else acc[0]
    ax_acc.axvline(ref, color="k", lw=1, ls=":")
    ax_acc.scatter(acc, pos, c=colors, s=40, zorder=3)
    for p, a in zip(pos, acc):
        ax_acc.annotate(f"{a:.2f}", (a, p), textcoords="offset points", xytext=(6, -3), fontsize=8)
    lo, hi = acc.min(), acc.max()
    pad = max(0.5, (hi - lo) * 0.25)
    ax_acc.set_xlim(lo - pad, hi + 2.5 * pad)
    ax_acc.set_xlabel("test accuracy (%)")
    ax_acc.xaxis.set_major_locator(MaxNLocator(4))
    for ax, key, label, fmt in ((ax_nfe, "NFE/batch", "NFE per test batch", "{:.0f}"),
                                (ax_speed, "beats/s", "inference beats per second", "{:,.0f}")):
        values = sweep[key].to_numpy(dtype=float)
        ax.barh(pos, values, color=colors, alpha=0.8)
        for p, v in zip(pos, values):
            ax.annotate(fmt.format(v), (v, p), textcoords="offset points", xytext=(3, -3), fontsize=8)
        ax.set_xlim(0, values.max() * 1.2 if len(values) and values.max() > 0 else 1)
        ax.set_xlabel(label)
    ax_acc.set_yticks(pos, list(sweep["setting"]))
    for tick, trained in zip(ax_acc.get_yticklabels(), sweep["trained"]):
        if trained:
            tick.set_fontweight("bold")
    for ax in (ax_acc, ax_nfe, ax_speed):
        ax.grid(axis="x", alpha=0.3)
    ax_nfe.set_title("one trained ODE-Net, evaluated at other solver settings")
    return axes


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


def rebuild_test_set(metrics: Mapping[str, Any], download: bool = False) -> tuple[Any, Any, Beats, Split]:
    """Rebuild a run's test set from its metrics.json: (x (n, 1, 187), y (n,), beats, split)."""
    from .data import to_tensors

    config = metrics.get("config", {})
    d = config.get("data", {})
    if "data" in d:
        from .data import load_npz, split_beats

        beats = load_npz(d["data"])
        seed = config.get("train", {}).get("seed", 0)
        split = split_beats(beats, config.get("split", "intra"), val_fraction=d.get("val_fraction", 0.1), seed=seed)
    else:
        beats, split = load_split(d.get("source", "synthetic"), d.get("mitdb_dir"), d.get("kaggle_dir"),
                                  config.get("split", d.get("split", "intra")), d.get("limit"),
                                  seed=config.get("train", {}).get("seed", 0),
                                  val_fraction=d.get("val_fraction", 0.1),
                                  synthetic_seconds=d.get("synthetic_seconds", 60.0), download=download)
    x, y = to_tensors(beats, split.test)
    return x, y, beats, split


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


def _ode_description(model_config: Mapping[str, Any]) -> str:
    solver = model_config.get("solver", "?")
    if solver in _fixed():
        how = f"{solver}, {_steps(model_config['step_size'])}"
    else:
        how = f"{solver}, rtol {model_config.get('rtol'):g}, atol {model_config.get('atol'):g}"
    grad = "adjoint" + (" with seminorm" if model_config.get("seminorm") else "") if model_config.get("adjoint") \
        else "direct backpropagation"
    return f"{how}, {grad}"


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
            lines.append(f"- **{name} solver**: {_ode_description(mc)}.")
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
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "comparison.csv", index_label="run")
    if sweep is not None:
        sweep.to_csv(out / "tolerance_sweep.csv", index=False)
    if lines is not None:
        (out / "conclusions.txt").write_text("".join(f"- {line}\n" for line in lines))


def notebook_style() -> None:
    """Figure and table defaults for the notebooks: crisp inline figures, readable fonts, wide tables."""
    import matplotlib as mpl
    import pandas as pd

    mpl.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 10, "axes.titlesize": 11,
                         "axes.spines.top": False, "axes.spines.right": False})
    pd.set_option("display.width", 140)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.precision", 4)


# ======================================================================================================== study
def _recipe() -> dict[str, Any]:
    from .cli import DEFAULT_ODE
    from .train import TrainConfig

    defaults = {f.name: f.default for f in fields(TrainConfig)}
    train = {k: defaults[k] for k in ("batch_size", "optimizer", "lr", "schedule", "seed")}
    return {**train, "solver": DEFAULT_ODE["solver"], "step_size": DEFAULT_ODE["step_size"],
            "adjoint": DEFAULT_ODE["adjoint"], "rtol": 1e-3, "atol": 1e-3}


# full: the original protocol (all beats, 5 epochs) with the project's default recipe (TrainConfig's defaults:
# SGD 0.1, momentum 0.9, batch 128, warm-up + cosine) and ODE settings (cli.DEFAULT_ODE).
# quick: a laptop CPU in minutes. A few thousand beats give SGD at batch 128 only tens of steps, and the models
# still predict every beat as N after them; Adam at batch 32 learns in that budget, so quick trades the recipe
# for it (both models alike). "epochs" and "limit" are per data source (limit None: all beats).
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"epochs": {"synthetic": 8, "mitdb": 3, "kaggle": 3},
              "limit": {"synthetic": None, "mitdb": 20_000, "kaggle": 20_000}, "split": "intra",
              **_recipe(), "optimizer": "adam", "lr": 3e-3, "batch_size": 32},
    "full": {"epochs": {"synthetic": 5, "mitdb": 5, "kaggle": 5},
             "limit": {"synthetic": None, "mitdb": None, "kaggle": None}, "split": "intra", **_recipe()},
}

NOTEBOOKS = ("01_explore.ipynb", "02_train.ipynb", "03_compare.ipynb")


def notebooks_dir() -> Path:
    """The folder of the study's notebooks (the source checkout's ``notebooks/``)."""
    folder = Path(__file__).resolve().parent.parent / "notebooks"
    if not all((folder / n).exists() for n in NOTEBOOKS):
        raise InputError(f"{folder}: the study notebooks ({', '.join(NOTEBOOKS)}) are not there; "
                         "run the study from a source checkout of ecglib")
    return folder


def _cell_summary(nb_path: Path, cell_index: int) -> str:
    """'cell 7 (`first line of its source`)' for a cell of an executed notebook."""
    try:
        import nbformat

        nb = nbformat.read(nb_path, as_version=4)
        source = nb.cells[cell_index].source.strip().splitlines()
        first = next((line for line in source if line.strip() and not line.lstrip().startswith("#")),
                     source[0] if source else "")
        return f"cell {cell_index} (`{first.strip()[:70]}`)"
    except Exception:  # noqa: BLE001 - the message is still useful without the source line
        return f"cell {cell_index}"


def execute_notebook(notebook: str | os.PathLike, output: str | os.PathLike, parameters: Mapping[str, Any],
                     cwd: str | os.PathLike | None = None, progress: bool = True, kernel_name: str = "python3",
                     timeout: int | None = None) -> Path:
    """Run one notebook with papermill, writing the executed copy to ``output``.

    A failing cell raises EcgError naming the notebook, the cell and the error; the partly executed notebook is
    kept at ``output`` (papermill writes it there, with the failing cell marked).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    notebook, output = Path(notebook), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(str(notebook), str(output), parameters=dict(parameters), kernel_name=kernel_name,
                            progress_bar=progress, cwd=str(cwd) if cwd is not None else None,
                            execution_timeout=timeout,
                            # the kernel's own start-up warnings are noise in a study's terminal
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except PapermillExecutionError as exc:
        where = _cell_summary(output, exc.cell_index)
        evalue = (exc.evalue or "").strip().splitlines()
        name = notebook.name if notebook.name == output.name else f"{notebook.name} (as {output.name})"
        raise EcgError(f"notebook {name} failed at {where}: {exc.ename}: {evalue[0] if evalue else ''} "
                       f"- the partly executed notebook is kept in {output}") from None
    except EcgError:
        raise
    except Exception as exc:  # noqa: BLE001 - kernel start failures, missing kernels, unreadable notebooks
        text = str(exc).strip().splitlines()
        raise EcgError(f"notebook {notebook.name} could not run: {type(exc).__name__}: "
                       f"{text[0][:160] if text else ''}") from None
    return output


def export_html(notebook: str | os.PathLike, html: str | os.PathLike, exclude_input: bool = True) -> Path:
    """Write an executed notebook as a standalone HTML report (figures embedded; code cells hidden by default)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    # papermill's bookkeeping cells (its error banner stays: a reader must see a failure) are no story
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])
                and "parameters" not in c.get("metadata", {}).get("tags", [])]
    exporter = HTMLExporter(exclude_input=exclude_input, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": Path(notebook).stem}})
    html = Path(html)
    html.write_text(body, encoding="utf-8")
    return html


def _check_inputs(data: str, mitdb_dir: Any, kaggle_dir: Any, download: bool) -> None:
    from .data import KAGGLE_FILES, SOURCES, ensure_mitdb

    if data not in SOURCES:
        raise InputError(f"unknown data source {data!r}; choose one of {', '.join(SOURCES)}")
    if data == "mitdb":
        if mitdb_dir is None:
            raise InputError("the mitdb study needs a folder: --mitdb-dir DIR")
        ensure_mitdb(mitdb_dir, download=download)
    elif data == "kaggle":
        if kaggle_dir is None:
            raise InputError("the kaggle study needs a folder: --kaggle-dir DIR")
        for name in KAGGLE_FILES:
            if not (Path(kaggle_dir) / name).is_file():
                raise InputError(f"{Path(kaggle_dir) / name}: file not found (the Kaggle 'ECG Heartbeat "
                                 "Categorization' CSVs go in --kaggle-dir)")


def study_threads() -> int | None:
    """Torch threads for the study's kernels: None (torch's choice, all cores) on an idle machine, else the cores
    left free by the current load, at least 1. On a busy machine, more threads than free cores make every
    operation wait for its slowest, descheduled thread: one thread can then train several times faster."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None
    free = int(cores - load + 0.5)
    return None if free >= cores else max(1, free)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_study(profile: str = "quick", data: str = "synthetic", mitdb_dir: str | os.PathLike | None = None,
              kaggle_dir: str | os.PathLike | None = None, out: str | os.PathLike = "runs/study",
              epochs: int | None = None, limit: int | None = None, download: bool = True, progress: bool = True,
              train_overrides: Mapping[str, Any] | None = None, kernel_name: str = "python3",
              threads: int | None | str = "auto") -> int:
    """Run the study: 01_explore, 02_train for the ResNet and the ODE-Net, 03_compare, then ``out/report.html``.

    profile: a key of :data:`PROFILES`. epochs / limit override the profile's (limit 0: all beats).
    threads: torch threads of the training and comparison kernels; "auto": :func:`study_threads` (all cores
    on an idle machine, fewer on a busy one), None: torch's choice.
    train_overrides: further parameters for both 02_train runs (e.g. batch_size). The executed notebooks and
    the run folders land in ``out`` (01_explore.ipynb, 02_train_resnet.ipynb, 02_train_odenet.ipynb,
    03_compare.ipynb, resnet/, odenet/, report.html). Returns 0; failures raise EcgError with one line.
    """
    if profile not in PROFILES:
        raise InputError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    _check_inputs(data, mitdb_dir, kaggle_dir, download)
    folder = notebooks_dir()
    spec = dict(PROFILES[profile])
    n_epochs = int(epochs if epochs is not None else spec["epochs"][data])
    n_limit = spec["limit"].get(data) if limit is None else (limit or None)
    if n_epochs < 1:
        raise InputError("--epochs must be at least 1")
    if threads == "auto":
        threads = study_threads()
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("report.html", "comparison.csv", "tolerance_sweep.csv", "conclusions.txt"):
        (out / stale).unlink(missing_ok=True)  # a failed rerun must not leave the last study's report behind
    common = {"source": data, "mitdb_dir": str(Path(mitdb_dir).resolve()) if mitdb_dir else None,
              "kaggle_dir": str(Path(kaggle_dir).resolve()) if kaggle_dir else None,
              "limit": n_limit, "seed": spec["seed"]}
    train = {**common, "split": spec["split"], "epochs": n_epochs,
             **{k: spec[k] for k in ("batch_size", "optimizer", "lr", "schedule", "solver", "step_size", "rtol",
                                     "atol", "adjoint")},
             "download": download, "threads": threads, **dict(train_overrides or {})}
    steps = [
        ("01_explore.ipynb", "01_explore.ipynb", {**common, "download": download}),
        ("02_train.ipynb", "02_train_resnet.ipynb", {**train, "model": "resnet", "run_dir": str(out / "resnet")}),
        ("02_train.ipynb", "02_train_odenet.ipynb", {**train, "model": "odenet", "run_dir": str(out / "odenet")}),
        ("03_compare.ipynb", "03_compare.ipynb", {"resnet_dir": str(out / "resnet"), "odenet_dir": str(out / "odenet"),
                                                  "out_dir": str(out), "profile": profile, "download": download,
                                                  "threads": threads}),
    ]
    what = f"{data}, {'all' if n_limit is None else f'{n_limit:,}'} beats, {n_epochs} epoch(s)"
    _say(f"ecglib study ({profile}: {what}, {threads or 'all'} torch thread(s)) -> {out}")
    started = time.perf_counter()
    for i, (source_nb, target, params) in enumerate(steps, 1):
        t0 = time.perf_counter()
        _say(f"[{i}/{len(steps)}] {target} ...")
        # Fresh runs: a study folder is rerun from scratch, never resumed with other settings.
        run_dir = params.get("run_dir")
        if run_dir:
            for name in ("checkpoint.pt", "best.pt", "history.csv", "metrics.json"):
                (Path(run_dir) / name).unlink(missing_ok=True)
        execute_notebook(folder / source_nb, out / target, params, cwd=out, progress=progress,
                         kernel_name=kernel_name)
        _say(f"[{i}/{len(steps)}] {target} done in {_duration(time.perf_counter() - t0)}")
    html = export_html(out / "03_compare.ipynb", out / "report.html")
    _say(f"study done in {_duration(time.perf_counter() - started)}; report: {html}")

    import pandas as pd

    runs = {_label(m): load_run(out / m) for m in ("resnet", "odenet")}
    table = comparison_table(runs)
    with pd.option_context("display.width", 120, "display.max_columns", None):
        print(format_table(table).to_string())
    sweep_path = out / "tolerance_sweep.csv"
    sweep = pd.read_csv(sweep_path) if sweep_path.exists() else None
    print()
    for line in conclusions(table, sweep):
        print(f"- {line}")
    print(f"\nreport: {html}")
    return 0


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"
