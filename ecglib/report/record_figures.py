"""The figures of the record report (:mod:`ecglib.report.record`): heart rate over the recording, S and V beats
per hour, the RR tachogram and the Poincaré plot, each drawn from beat times and classes on a matplotlib Axes.

They stay readable and fast on a 24-hour recording (100,000 beats): past DENSE_POINTS beats the heart rate is
drawn per minute (mean and range) and the Poincaré plot becomes a 2-D histogram. The ECG strips are
:func:`ecglib.report.strips.plot_strip`'s.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.facts import CLASS_NAMES, CLASSES
from .events import ectopy_per_hour, format_clock, heart_rate, merge_intervals, valid_rr

DENSE_POINTS = 20_000  # above this many beats, plots summarise (per-minute heart rate, Poincaré histogram)
DPI = 80
# The strips' colours (ecglib.report.strips.CLASS_COLOURS), repeated here so that this module stays low in the
# package's layers (strips reads records); a test holds them equal.
COLOURS: dict[str, str] = {"N": "tab:green", "S": "tab:blue", "V": "tab:red", "F": "tab:purple", "Q": "tab:gray"}
BIN_NAMES = {3600.0: "1-hour", 300.0: "5-minute", 60.0: "1-minute"}
CLOCK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 43200)  # s
HR_GAP = 3.0  # s: the heart-rate line breaks where consecutive rates are further apart (noise, a pause)


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure without pyplot: no global state and nothing to close, safe in a long labelling run."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def png_data_uri(fig: Any) -> str:
    """The figure as a PNG data URI, for an <img> that needs no file beside the page."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def clock_axis(ax: Any, lo: float, hi: float, label: bool = True, step: float | None = None) -> None:
    """The x axis from ``lo`` to ``hi`` seconds labelled hh:mm:ss from the record's start (ticks every ``step``
    seconds, or about eight nice ones)."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    if step is None:  # clock-friendly steps (10 min, 1 h, 3 h...), not decimal ones (05:33:20)
        step = next((s for s in CLOCK_STEPS if s >= (hi - lo) / 8), CLOCK_STEPS[-1])
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_clock(x) if x >= 0 else ""))
    ax.set_xlim(lo, max(hi, lo + 1.0))
    if label:
        ax.set_xlabel("time from the record's start (hh:mm:ss)")


def _shade_noise(ax: Any, noise: Sequence[tuple[float, float]]) -> None:
    for i, (a, b) in enumerate(merge_intervals(noise)):
        ax.axvspan(a, b, color="0.85", lw=0, label="noise" if i == 0 else None)


def plot_heart_rate(ax: Any, times: np.ndarray, seconds: float, noise: Sequence[tuple[float, float]] = ()) -> Any:
    """The heart rate over the recording (events.heart_rate, 10 RR intervals at every beat); per minute (mean line,
    min-max band) past DENSE_POINTS beats. Noise is shaded; the line breaks across it."""
    t, hr = heart_rate(times, noise)
    _shade_noise(ax, noise)
    if len(t) > DENSE_POINTS:
        minute = (t // 60).astype(int)
        n = int(minute.max()) + 1
        count = np.bincount(minute, minlength=n)
        mean = np.bincount(minute, hr, minlength=n) / np.maximum(count, 1)
        lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
        np.minimum.at(lo, minute, hr)
        np.maximum.at(hi, minute, hr)
        empty = count == 0
        mean[empty] = lo[empty] = hi[empty] = np.nan  # a minute without a rate breaks the line
        mids = np.arange(n) * 60.0 + 30.0
        ax.fill_between(mids, lo, hi, color="tab:red", alpha=0.25, lw=0, label="range in the minute")
        ax.plot(mids, mean, color="tab:red", lw=1, label="mean of the minute")
        ax.legend(loc="upper right", fontsize=8, frameon=False)
    elif len(t):
        breaks = np.flatnonzero(np.diff(t) > HR_GAP) + 1
        ax.plot(np.insert(t, breaks, np.nan), np.insert(hr, breaks, np.nan), color="tab:red", lw=0.9)
    else:
        ax.text(0.5, 0.5, "too few beats for a heart rate", transform=ax.transAxes, ha="center", va="center")
    ax.set_ylabel("heart rate (bpm)")
    clock_axis(ax, 0.0, seconds)
    return ax


def plot_ectopy(ax: Any, times: np.ndarray, classes: np.ndarray, seconds: float) -> Any:
    """S and V beats per hour: hourly bins for records of 4 hours or more, 5-minute bins for records of 20
    minutes or more, 1-minute bins below (always as rates per hour)."""
    width = 3600.0 if seconds >= 4 * 3600 else 300.0 if seconds >= 1200 else 60.0
    starts, rates = ectopy_per_hour(times, classes, seconds, width)
    widths = np.diff(np.append(starts, max(seconds, starts[-1] + 1e-9)))
    for k, c in enumerate(("S", "V")):
        ax.bar(starts + widths * (0.1 + 0.4 * k), rates[c], width=0.4 * widths, align="edge", color=COLOURS[c],
               label=f"{c} ({CLASS_NAMES[c]})")
    ax.set_ylabel("beats per hour")
    ax.set_title(f"in {BIN_NAMES[width]} bins", fontsize=9, loc="right")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, fontsize=8, frameon=False)
    clock_axis(ax, 0.0, seconds)
    return ax


def plot_rr(axes: Sequence[Any], times: np.ndarray, classes: np.ndarray, seconds: float,
            noise: Sequence[tuple[float, float]] = ()) -> Sequence[Any]:
    """The RR tachogram (each interval at the time of the beat that ends it, coloured by that beat's class) and
    the Poincaré plot (each interval against the next, coloured by the beat between them; a 2-D histogram past
    DENSE_POINTS beats). Intervals that overlap noise are left out."""
    tach, poinc = axes
    times, classes = np.asarray(times, dtype=float), np.asarray(classes).astype(str)
    rr, ok = valid_rr(times, noise)
    end_class = classes[1:]
    big = len(rr) > DENSE_POINTS
    for c in CLASSES:
        sel = ok & (end_class == c)
        if sel.any():
            tach.scatter(times[1:][sel], rr[sel], s=1.5 if big else 6, color=COLOURS[c], lw=0,
                         alpha=0.5 if big else 0.8, label=c, rasterized=True)
    tach.set_ylabel("RR interval (s)")
    if ok.any():
        tach.legend(loc="upper right", fontsize=8, frameon=False, markerscale=3 if big else 1.5, ncol=len(CLASSES))
    clock_axis(tach, 0.0, seconds)
    pair = ok[:-1] & ok[1:]
    x, y = rr[:-1][pair], rr[1:][pair]
    top = float(np.quantile(np.concatenate([x, y]), 0.999)) * 1.1 if len(x) else 2.0
    if big:
        from matplotlib.colors import LogNorm

        poinc.hist2d(x, y, bins=120, range=[[0, top], [0, top]], norm=LogNorm(), cmap="viridis")
    else:
        mid = end_class[:-1][pair]  # the beat that ends the first interval and starts the second
        for c in CLASSES:
            sel = mid == c
            if sel.any():
                poinc.scatter(x[sel], y[sel], s=8, color=COLOURS[c], alpha=0.6, lw=0)
    poinc.plot([0, top], [0, top], color="0.6", lw=0.7, ls="--")
    poinc.set_xlim(0, top)
    poinc.set_ylim(0, top)
    poinc.set_aspect("equal")
    poinc.set_xlabel("RR$_n$ (s)")
    poinc.set_ylabel("RR$_{n+1}$ (s)")
    return axes


def densest_start(tc: np.ndarray, seconds: float, length: float) -> float:
    """The start of a ``length``-second strip showing the most of the times ``tc`` (the first such window), one
    second before the first of them, kept inside the record of ``seconds``."""
    tc = np.asarray(tc, dtype=float)
    counts = np.searchsorted(tc, tc + length - 2.0, side="right") - np.arange(len(tc))
    start = float(tc[int(np.argmax(counts))]) - 1.0
    return min(max(start, 0.0), max(seconds - length, 0.0))
