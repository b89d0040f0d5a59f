"""Figures of the study: the data and its rhythm, the training curves, the confusion matrices, the tolerance sweep,
sweep results and the benchmark's memory and deploy-loose figures.

Every helper takes an optional matplotlib ``ax`` (or ``axes``; a new figure otherwise) and returns what it drew
on, so a notebook cell stays one idea long: ``figures.plot_history(histories)``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..config import MODEL_LABELS
from ..data.beats import Beats, require_rhythm
from ..data.facts import CLASS_NAMES, CLASSES, DS1, DS2, RHYTHM_FEATURES, RHYTHM_NAMES
from ..data.tables import record_composition
from ..errors import InputError
from ..experiments.stats import ok_runs, sweep_summary_table
from .anchors import DEFAULT_RATIOS

COLORS = {"resnet": "tab:blue", "odenet": "tab:orange"}
SECONDS_PER_SAMPLE = 1 / 125


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _label(name: str) -> str:
    return MODEL_LABELS.get(name, name)


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


def notebook_style() -> None:
    """Figure and table defaults for the notebooks: crisp inline figures, readable fonts, wide tables."""
    import matplotlib as mpl
    import pandas as pd

    mpl.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 10, "axes.titlesize": 11,
                         "axes.spines.top": False, "axes.spines.right": False})
    pd.set_option("display.width", 140)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.precision", 4)


def plot_sweep_results(results: Any, metric: str = "accuracy", ax: Any = None) -> Any:
    """Mean ``metric`` per configuration with its 95 % confidence interval as error bars, and every seed as a
    dot. ``results``: a sweep's results table (:func:`ecglib.experiments.sweep.load_sweep`)."""
    import matplotlib.pyplot as plt

    table = sweep_summary_table(results, (metric,))
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(table) + 2), 3.5))
    x = np.arange(len(table))
    mean = table[f"{metric}_mean"].to_numpy(float)
    low = table[f"{metric}_ci_low"].to_numpy(float)
    high = table[f"{metric}_ci_high"].to_numpy(float)
    err = np.vstack([np.where(np.isnan(low), 0, mean - low), np.where(np.isnan(high), 0, high - mean)])
    ax.errorbar(x, mean, yerr=err, fmt="o", capsize=5, color="black", label="mean, 95 % CI")
    ok = ok_runs(results)
    for i, c in enumerate(table["configuration"]):
        v = ok[ok["configuration"] == c][metric].astype(float)
        ax.scatter(np.full(len(v), i) + 0.12, v, s=14, alpha=0.6, color="tab:blue",
                   label="one seed" if i == 0 else None)
    ax.set_xticks(x, [f"{c}\n(n={n})" for c, n in zip(table["configuration"], table["n"])], rotation=0,
                  fontsize=8)
    ax.set_ylabel(metric.replace("_", "-"))
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return ax




def plot_memory_depth(rows: Sequence[Mapping[str, Any]], ax: Any = None) -> Any:
    """Activation memory of one training step against depth (the benchmark's memory_depth rows): a ResNet's grows
    with its blocks, a directly backpropagated ODE-Net's with its solver steps, the adjoint ODE-Net's stays flat."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    series = (("resnet", "direct", "ResNet (blocks)", COLORS["resnet"], "-o"),
              ("odenet", "direct", "ODE-Net, direct backprop (RK4 steps)", COLORS["odenet"], "-s"),
              ("odenet", "adjoint", "ODE-Net, adjoint (RK4 steps)", COLORS["odenet"], "--^"))
    for model, backprop, label, color, style in series:
        pts = sorted((r["depth"], r["activation_bytes"] / 2**20) for r in rows
                     if r["model"] == model and r["backprop"] == backprop)
        if pts:
            ax.plot(*zip(*pts), style, color=color, label=label, ms=5)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    depths = sorted({r["depth"] for r in rows})
    ax.set_xticks(depths, [str(d) for d in depths])
    mb = [r["activation_bytes"] / 2**20 for r in rows]
    ax.set_yticks([t for t in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if min(mb) / 2 <= t <= max(mb) * 2])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("depth: residual blocks, or RK4 steps from t = 0 to 1")
    ax.set_ylabel("activation memory per step (MB)")
    ax.set_title("memory against depth (measured)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def plot_deploy_loose(rows: Any, ax: Any = None) -> Any:
    """Train once, deploy loose: test accuracy against evaluations of the dynamics per beat, for trained ODE-Nets
    solved at other settings. ``rows``: the benchmark's deploy_loose rows (config, solver, nfe_per_beat, accuracy,
    trained) or a :func:`ecglib.compare.tolerance_sweep` table (one model). A line per model and solver family
    (fixed-grid steps, adaptive tolerances); the setting each model was trained with is ringed."""
    import pandas as pd

    plt = _plt()
    table = pd.DataFrame(rows)
    if "NFE/batch" in table.columns:  # a tolerance sweep of one model
        table = table.rename(columns={"NFE/batch": "nfe_per_beat"}).assign(config="ODE-Net")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4))
    styles = {"rk4": "-o", "midpoint": "-.^", "dopri5": ":s"}
    for i, (config, part) in enumerate(table.groupby("config", sort=False)):
        color = f"C{i}"
        for solver, family in part.groupby("solver", sort=False):
            family = family.sort_values("nfe_per_beat")
            ax.plot(family["nfe_per_beat"], 100 * family["accuracy"], styles.get(solver, "--D"),
                    color=color, ms=4, lw=1, label=f"{config}: {solver}")
        mine = part[part["trained"]]
        ax.scatter(mine["nfe_per_beat"], 100 * mine["accuracy"], s=110, facecolors="none", edgecolors=color,
                   linewidths=1.5, zorder=4)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("evaluations of the dynamics per beat (NFE per forward pass)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("deploy loose: trained ODE-Nets at other solver settings (ringed: as trained)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax


def plot_rr_ratios(beats: Beats, features: Sequence[str] = DEFAULT_RATIOS, axes: Any = None,
                   limits: tuple[float, float] = (0.2, 3.0), bins: int = 70) -> Any:
    """Distribution of rhythm ratios per AAMI class, one panel per feature (density histograms, each class
    normalised to its own area, so that the rare classes are as visible as N). A premature S or V beat has
    pre/local well below 1; a V beat's compensatory pause puts its post/pre near 2."""
    plt = _plt()
    rhythm = require_rhythm(beats, str(beats.meta.get("source", "beats")))
    if axes is None:
        _, axes = plt.subplots(1, len(features), figsize=(5 * len(features), 3.4), squeeze=False)
        axes = axes[0]
    edges = np.linspace(*limits, bins + 1)
    units = dict(RHYTHM_FEATURES)
    for ax, name in zip(axes, features):
        if name not in RHYTHM_NAMES:
            raise InputError(f"unknown rhythm feature {name!r}; choose one of {', '.join(RHYTHM_NAMES)}")
        values = np.clip(rhythm[:, RHYTHM_NAMES.index(name)], *limits)
        for i, c in enumerate(CLASSES):
            mine = values[beats.y == i]
            if len(mine) >= 5:
                ax.hist(mine, bins=edges, density=True, histtype="step", lw=1.5, color=f"C{i}",
                        label=f"{c} ({len(mine):,})")
        ax.axvline(1.0, color="0.5", lw=0.8, ls=":")
        unit = units[name]
        ax.set_xlabel(name.replace("_", " ") + ("" if unit == "1" else f" ({unit})"))
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    return axes
