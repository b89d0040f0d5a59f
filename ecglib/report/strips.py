"""ECG strips with their beat labels: the reference classes above the trace, the predicted ones below, and the
disagreements circled (what 04_annotate and the record report show)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..data.facts import CLASSES
from ..data.records import read_lead
from ..ec57.annotations import read_annotations
from ..ec57.bxb import BXB_CLASS


class LabelledRecord(Protocol):
    """What a strip needs of an annotated record (ecglib.ec57.annotate.AnnotatedRecord has it). A protocol rather
    than an import of ec57.annotate: it keeps this module, and the record report that ``ecglib annotate`` calls,
    below the annotation layer, so that the command line stays within the package's ten import layers."""

    record: str
    lead: str
    detector: str
    sample: np.ndarray
    label: np.ndarray


# ------------------------------------------------------------------------------------------------- plotting
CLASS_COLOURS: dict[str, str] = {"N": "tab:green", "S": "tab:blue", "V": "tab:red", "F": "tab:purple",
                                 "Q": "tab:gray", "O": "black"}


def plot_strip(signal: np.ndarray, fs: float, ref_sample: np.ndarray | None, ref_class: np.ndarray | None,
               test_sample: np.ndarray, test_class: np.ndarray, start: float = 0.0, seconds: float = 10.0,
               ax: Any = None, title: str | None = None) -> Any:
    """An ECG strip (signal (T,) at fs, from ``start`` for ``seconds``) with the reference labels above the trace
    and the predicted ones below it, each a letter in its class colour; a prediction that disagrees with the
    reference beat within 0.15 s is circled. Classes are AAMI letters (or 'O' for a beat bxb does not count).
    ref_sample and ref_class None: a record without reference annotations (predicted labels only, nothing circled).
    Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(14, 3.2))
    lo, hi = int(start * fs), min(len(signal), int((start + seconds) * fs))
    t = np.arange(lo, hi) / fs
    seg = signal[lo:hi]
    ax.plot(t, seg, color="0.25", lw=0.8)
    top, bottom = float(np.max(seg)), float(np.min(seg))
    span = max(top - bottom, 1e-6)
    window = int(0.15 * fs + 0.5)
    has_reference = ref_sample is not None and ref_class is not None
    ref_sample = np.asarray(ref_sample if has_reference else [], dtype=np.int64)
    ref_class = np.asarray(ref_class if has_reference else [], dtype=str)
    test_sample = np.asarray(test_sample)
    for samples, classes, y, va in ((ref_sample, ref_class, top + 0.12 * span, "bottom"),
                                    (test_sample, test_class, bottom - 0.12 * span, "top")):
        for s, c in zip(samples, classes):
            if lo <= s < hi:
                ax.text(s / fs, y, c, color=CLASS_COLOURS.get(str(c), "black"), ha="center", va=va,
                        fontsize=10, fontweight="bold")
    for s, c in zip(test_sample, test_class):
        if not has_reference or not lo <= s < hi:
            continue
        near = np.flatnonzero(np.abs(ref_sample - s) <= window)
        if len(near) == 0 or str(ref_class[near[np.argmin(np.abs(ref_sample[near] - s))]]) != str(c):
            ax.plot(s / fs, bottom - 0.2 * span, "o", mfc="none", mec="red", ms=16)
    ax.set_ylim(bottom - 0.4 * span, top + 0.35 * span)
    ax.set_xlim(lo / fs, hi / fs)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mV")
    if has_reference:
        ax.text(0.005, 0.98, "reference", transform=ax.transAxes, va="top", fontsize=8, color="0.3")
    ax.text(0.005, 0.02, "predicted", transform=ax.transAxes, va="bottom", fontsize=8, color="0.3")
    handles = [plt.Line2D([], [], color=col, marker="s", ls="", label=c) for c, col in CLASS_COLOURS.items()
               if c != "O"]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    return ax


def aami_classes(symbols: np.ndarray) -> np.ndarray:
    """MIT symbols -> AAMI letters as bxb maps them (non-beats -> '')."""
    return np.array([BXB_CLASS.get(str(s), "") for s in symbols])


def choose_strip_start(ref_sample: np.ndarray, ref_class: np.ndarray, test_sample: np.ndarray,
                       test_class: np.ndarray, fs: float, seconds: float = 10.0, after: float = 0.0) -> float:
    """A start time (s) for a strip of ``seconds`` after ``after`` s: the window holding the most reference beats
    that are not N or whose prediction disagrees (so a reader sees the interesting beats), else ``after``."""
    ref_sample, test_sample = np.asarray(ref_sample), np.asarray(test_sample)
    ref_class, test_class = np.asarray(ref_class), np.asarray(test_class)
    window = int(0.15 * fs + 0.5)
    interesting = []
    for s, c in zip(ref_sample, ref_class):
        if s < after * fs or c == "":
            continue
        near = np.flatnonzero(np.abs(test_sample - s) <= window)
        predicted = test_class[near[0]] if len(near) else "O"
        if c != "N" or predicted != c:
            interesting.append(s / fs)
    if not interesting:
        return float(after)
    times = np.asarray(interesting)
    counts = [np.sum((times >= t - 1.0) & (times < t - 1.0 + seconds)) for t in times]
    return float(max(after, times[int(np.argmax(counts))] - 1.0))


def plot_annotated_strip(result: LabelledRecord, start: float | None = None, seconds: float = 10.0,
                         reference: str = "atr", after: float = 0.0, ax: Any = None) -> Any:
    """:func:`plot_strip` of an annotated record: its lead, the reference annotations (bxb's AAMI classes) above
    and the predictions below. start None: :func:`choose_strip_start` after ``after`` seconds."""
    base = Path(result.record)
    signal, fs, lead = read_lead(base, result.lead)
    ref = read_annotations(base, reference, len(signal))
    ref_class = aami_classes(ref.symbol)
    is_beat = ref_class != ""
    test_class = np.array([CLASSES[i] if i >= 0 else "Q" for i in result.label])
    if start is None:
        start = choose_strip_start(ref.sample[is_beat], ref_class[is_beat], result.sample, test_class, fs, seconds,
                                   after)
    return plot_strip(signal, fs, ref.sample[is_beat], ref_class[is_beat], result.sample, test_class, start,
                      seconds, ax=ax, title=f"record {base.name}, lead {lead}: reference ({reference}, above) and "
                                            f"predicted ({result.detector} R peaks, below); red circles: disagree")
