"""Label every beat of a whole WFDB record with a trained model and write a WFDB annotation file.

The path of one record: read one lead (:func:`ecglib.data.read_lead`), find the R peaks (a QRS detector, or the
record's reference beat annotations), turn the peaks into model inputs with :func:`ecglib.data.beats_from_peaks`
(the function training reads beats through, so that beats, and any per-beat feature added there, are made the
same way in training and in use), classify them (:func:`ecglib.train.predict`), and write one beat annotation per
R peak with ``wfdb.wrann``: N -> 'N', S -> 'A', V -> 'V', F -> 'F', Q -> 'Q'. The file is written in a temporary
folder and moved into place, so a reader never sees half of it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .data import CLASSES, beats_from_peaks, read_lead
from .errors import InputError

# AAMI class -> the WFDB beat code written for it (the one bxb maps back to the same class).
CLASS_CODE: dict[str, str] = {"N": "N", "S": "A", "V": "V", "F": "F", "Q": "Q"}
# The code of a detected beat too close to the record's end to cut a whole beat from (extract_beats drops it).
UNCLASSIFIED_CODE = "Q"
DEFAULT_ANNOTATOR = "ecglib"
DEFAULT_LEAD = "MLII"


# ------------------------------------------------------------------------------------------------- detectors
def find_local_peaks(sig: np.ndarray, radius: int) -> np.ndarray:
    """The same peaks as ``wfdb.processing.find_local_peaks`` (wfdb 4.x), in O(n) numpy instead of a Python loop
    that calls max() once per sample (about 5 s of XQRS's time on a 30-minute record at 360 Hz).

    wfdb's rule: scan i from 0; i is a peak when sig[i] equals the maximum of sig[max(0, i - radius):i + radius];
    after a peak the scan jumps to i + radius. Hence: the candidates are the samples equal to their window's
    maximum, and the peaks are picked greedily among them, each at least ``radius`` after the previous one.
    sig: (n,) float; radius: samples (>= 1). Returns (k,) int indices (an empty float array for a flat signal, as
    wfdb returns).
    """
    from scipy.ndimage import maximum_filter1d

    sig = np.asarray(sig)
    if np.min(sig) == np.max(sig):
        return np.empty(0)
    # An even window of 2 * radius at origin 0 covers [i - radius, i + radius - 1]; outside the signal counts as
    # -inf, which reproduces the truncated windows at both ends.
    window_max = maximum_filter1d(sig, size=2 * radius, mode="constant", cval=-np.inf)
    candidates = np.flatnonzero(sig == window_max)
    peaks = []
    next_allowed = 0
    for c in candidates.tolist():
        if c >= next_allowed:
            peaks.append(c)
            next_allowed = c + radius
    return np.array(peaks, dtype=np.int64)


def _detect_xqrs(signal: np.ndarray, fs: float) -> np.ndarray:
    """wfdb's XQRS with its find_local_peaks swapped for the identical, vectorised one above (the swap is undone
    afterwards; tests check that both give the same peaks)."""
    from wfdb.processing import qrs

    original = qrs.find_local_peaks
    qrs.find_local_peaks = find_local_peaks
    try:
        return qrs.xqrs_detect(sig=signal, fs=fs, verbose=False)
    finally:
        qrs.find_local_peaks = original


def _detect_gqrs(signal: np.ndarray, fs: float) -> np.ndarray:
    from wfdb import processing

    return processing.gqrs_detect(sig=signal, fs=fs)


def _detect_neurokit(signal: np.ndarray, fs: float) -> np.ndarray:
    try:
        import neurokit2 as nk
    except ImportError:
        raise InputError("the neurokit detector needs the neurokit2 package: pip install neurokit2") from None
    _, info = nk.ecg_peaks(signal, sampling_rate=fs, method="neurokit")
    return np.asarray(info["ECG_R_Peaks"])


# name -> function(signal (T,), fs) -> R-peak samples. "reference" is not here: it reads the record's atr.
DETECTORS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "xqrs": _detect_xqrs,
    "gqrs": _detect_gqrs,
    "neurokit": _detect_neurokit,
}
DETECTOR_CHOICES: tuple[str, ...] = (*DETECTORS, "reference")
DEFAULT_DETECTOR = "xqrs"


def detect_r_peaks(signal: np.ndarray, fs: float, detector: str = DEFAULT_DETECTOR) -> np.ndarray:
    """R-peak samples (k,) int64, sorted and unique, of one lead (T,) at ``fs`` Hz found by ``detector``."""
    if detector not in DETECTORS:
        raise InputError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTOR_CHOICES)}")
    peaks = np.asarray(DETECTORS[detector](np.asarray(signal, dtype=np.float64), float(fs)), dtype=np.int64)
    peaks = np.unique(peaks[(peaks >= 0) & (peaks < len(signal))])
    return peaks


def reference_r_peaks(base: str | os.PathLike, sig_len: int, annotator: str = "atr") -> np.ndarray:
    """The samples (k,) of the beat annotations (any AAMI beat symbol) of RECORD.ANNOTATOR."""
    from .ec57 import BXB_CLASS
    from .score import read_annotations

    ann = read_annotations(base, annotator, sig_len)
    beats = np.isin(ann.symbol, [s for s, c in BXB_CLASS.items() if c != "O"])
    return np.unique(ann.sample[beats])


# ---------------------------------------------------------------------------------------------------- model
@dataclass
class TrainedModel:
    """A trained classifier loaded from a run folder, and what annotation needs to know about its training."""

    model: Any
    run_dir: Path
    lead: str
    config: dict[str, Any]


def load_run(run_dir: str | os.PathLike, lead: str | None = None) -> TrainedModel:
    """Load RUN_DIR/best.pt (a folder written by ``ecglib train``); InputError when it is no trained model.

    lead: the lead to read from records; None: the one the run's beats came from, which is MLII for the mitdb and
    synthetic sources (records without MLII were a handful of paced ones, read from their first lead).
    """
    from .runs import RunFolder

    run = RunFolder(run_dir)
    if not run.path.exists():
        raise InputError(f"{run.path}: run folder not found")
    if not run.path.is_dir():
        raise InputError(f"{run.path}: not a run folder (give the folder that `ecglib train --out` wrote)")
    if not run.best.exists():
        raise InputError(f"{run.path}: not a trained model (no best.pt; train one with `ecglib train --out {run.path}`)")
    config: dict[str, Any] = run.metrics()["config"] if run.metrics_file.exists() else {}
    model = run.load_model()
    if model.config.get("n_classes", len(CLASSES)) != len(CLASSES):
        raise InputError(f"{run / 'best.pt'}: a model of {model.config.get('n_classes')} classes, not the five "
                         "AAMI classes")
    if (config.get("data") or {}).get("source") == "kaggle" and lead is None:
        # Kaggle's beats are MLII too (Kachuee et al. cut them from MLII), but say so rather than guess silently.
        lead = DEFAULT_LEAD
    model.eval()
    return TrainedModel(model, run.path, lead or DEFAULT_LEAD, config)


# ------------------------------------------------------------------------------------------------- annotate
@dataclass
class AnnotatedRecord:
    """One annotated record: R-peak ``sample`` (k,) int64 at ``fs``, predicted AAMI class index ``label`` (k,)
    (-1 for a beat too close to the end to classify), the WFDB ``symbol`` (k,) written, the record's length in
    seconds, the wall time in seconds (reading, detection, classification and writing), and the file written."""

    record: str
    sample: np.ndarray
    label: np.ndarray
    symbol: np.ndarray
    fs: float
    seconds: float
    elapsed: float
    detector: str
    path: Path | None
    timings: dict[str, float] | None = None  # seconds of each step: read, detect, classify, write
    lead: str = DEFAULT_LEAD

    @property
    def realtime_factor(self) -> float:
        return self.seconds / self.elapsed if self.elapsed > 0 else float("inf")

    def summary_line(self) -> str:
        counts = " ".join(f"{c}:{int(np.sum(self.label == i))}" for i, c in enumerate(CLASSES))
        where = f" -> {self.path}" if self.path is not None else ""
        steps = ", ".join(f"{k} {v:.2f}" for k, v in (self.timings or {}).items())
        return (f"{Path(self.record).name}: {len(self.sample)} beats ({counts}), {self.seconds:.1f} s of ECG in "
                f"{self.elapsed:.2f} s ({self.realtime_factor:.0f}x real time; {steps} s; detector "
                f"{self.detector}){where}")


def record_base(record: str | os.PathLike) -> Path:
    """RECORD as given on the command line -> the record's path without extension: 'dir/100', 'dir/100.hea' and
    'dir/100.dat' all name dir/100."""
    base = Path(record)
    if base.suffix in (".hea", ".dat", ".atr"):
        base = base.with_suffix("")
    return base


def check_record(record: str | os.PathLike, lead: str) -> None:
    """Fail early (InputError) for a record that is missing, has a bad header or truncated signal file, or lacks
    ``lead``: cheap checks that read the header only, so that a list of records stops before the first is written."""
    import wfdb

    from .records import _check_signal_files

    base = record_base(record)
    hea = Path(f"{base}.hea")
    if not hea.exists():
        raise InputError(f"{hea}: record header not found")
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{hea}: unreadable header ({str(exc).strip()[:120] or type(exc).__name__})") from None
    if lead not in (header.sig_name or []):
        raise InputError(f"{hea}: the record has no lead {lead}, the lead the model was trained on "
                         f"(it has {', '.join(header.sig_name or []) or 'no signals'}; --lead chooses another)")
    _check_signal_files(header, base.parent)


def classify_beats(trained: TrainedModel, signal: np.ndarray, fs: float, r_peaks: np.ndarray,
                   record: str = "") -> np.ndarray:
    """AAMI class index (k,) of every R peak (k,) of one lead (T,) at ``fs``; -1 where no whole beat can be cut
    (the last beat when its segment would run past the record's end)."""
    from .data import model_inputs
    from .train import predict

    try:
        beats = beats_from_peaks(signal, fs, r_peaks, record)
    except ValueError as exc:
        raise InputError(f"{record}: {exc}") from None
    labels = np.full(len(r_peaks), -1, dtype=np.int64)
    if len(beats):
        # The inputs training gave this model, computed by the same functions: rhythm features from the R peaks,
        # the neighbouring beats when it takes three channels.
        x, _, rhythm = model_inputs(beats, trained.model.config, record).part(np.arange(len(beats)))
        pred, _ = predict(trained.model, x, rhythm=rhythm)
        labels[np.searchsorted(r_peaks, beats.sample)] = pred
    return labels


def write_annotations(base: str | os.PathLike, annotator: str, sample: np.ndarray, symbol: np.ndarray, fs: float,
                      out_dir: str | os.PathLike) -> Path:
    """Write OUT_DIR/NAME.ANNOTATOR with wfdb.wrann, atomically: written in a temporary folder inside OUT_DIR, then
    moved into place (a reader sees the old file or the whole new one, never a part)."""
    import wfdb

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(base).name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.{annotator}.", dir=out))
    try:
        wfdb.wrann(name, annotator, sample=np.asarray(sample, dtype=np.int64), symbol=list(symbol), fs=fs,
                   write_dir=str(tmp))
        target = out / f"{name}.{annotator}"
        os.replace(tmp / f"{name}.{annotator}", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def annotate_record(trained: TrainedModel, record: str | os.PathLike, detector: str = DEFAULT_DETECTOR,
                    out_dir: str | os.PathLike | None = None, annotator: str = DEFAULT_ANNOTATOR,
                    write: bool = True) -> AnnotatedRecord:
    """Annotate one record (a path without extension, e.g. data/mitdb/100) and, when ``write``, write
    OUT_DIR/NAME.ANNOTATOR (OUT_DIR defaults to the record's folder). detector: one of DETECTOR_CHOICES."""
    if detector not in DETECTOR_CHOICES:
        raise InputError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTOR_CHOICES)}")
    if not annotator.isalnum():
        raise InputError(f"annotator name {annotator!r}: use letters and digits only (it is the file extension)")
    base = record_base(record)
    clock = [time.perf_counter()]
    timings: dict[str, float] = {}

    def lap(step: str) -> None:
        clock.append(time.perf_counter())
        timings[step] = clock[-1] - clock[-2]

    check_record(base, trained.lead)
    signal, fs, _ = read_lead(base, trained.lead)
    lap("read")
    if detector == "reference":
        peaks = reference_r_peaks(base, len(signal))
    else:
        peaks = detect_r_peaks(signal, fs, detector)
    if len(peaks) == 0:
        raise InputError(f"{base}: no beats found by the {detector} detector")
    lap("detect")
    labels = classify_beats(trained, signal, fs, peaks, base.name)
    codes = np.array([CLASS_CODE[c] for c in CLASSES] + [UNCLASSIFIED_CODE])
    symbols = codes[labels]  # label -1 picks the last entry
    lap("classify")
    path = None
    if write:
        path = write_annotations(base, annotator, peaks, symbols, fs, out_dir if out_dir is not None else base.parent)
    lap("write")
    return AnnotatedRecord(str(base), peaks, labels, symbols, fs, len(signal) / fs, clock[-1] - clock[0], detector,
                           path, timings, trained.lead)


def annotate_records(run_dir: str | os.PathLike, records: list[str | os.PathLike], detector: str = DEFAULT_DETECTOR,
                     out_dir: str | os.PathLike | None = None, annotator: str = DEFAULT_ANNOTATOR,
                     lead: str | None = None, on_record: Callable[[AnnotatedRecord], None] | None = None
                     ) -> list[AnnotatedRecord]:
    """Load the run once and annotate each record in turn; every record is checked before the first is written.

    The libraries the detectors use are imported before the first record, so that each record's ``elapsed``
    measures the work on that record (reading, detection, classification, writing) and not one-off imports.
    """
    trained = load_run(run_dir, lead)
    import scipy.ndimage  # noqa: F401
    import scipy.signal  # noqa: F401
    import wfdb.processing  # noqa: F401
    for record in records:
        check_record(record_base(record), trained.lead)
    results = []
    for record in records:
        result = annotate_record(trained, record, detector, out_dir, annotator)
        results.append(result)
        if on_record is not None:
            on_record(result)
    return results


# ------------------------------------------------------------------------------------------------- plotting
CLASS_COLOURS: dict[str, str] = {"N": "tab:green", "S": "tab:blue", "V": "tab:red", "F": "tab:purple",
                                 "Q": "tab:gray", "O": "black"}


def plot_strip(signal: np.ndarray, fs: float, ref_sample: np.ndarray, ref_class: np.ndarray, test_sample: np.ndarray,
               test_class: np.ndarray, start: float = 0.0, seconds: float = 10.0, ax: Any = None,
               title: str | None = None) -> Any:
    """An ECG strip (signal (T,) at fs, from ``start`` for ``seconds``) with the reference labels above the trace
    and the predicted ones below it, each a letter in its class colour; a prediction that disagrees with the
    reference beat within 0.15 s is circled. Classes are AAMI letters (or 'O' for a beat bxb does not count).
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
    ref_sample, test_sample = np.asarray(ref_sample), np.asarray(test_sample)
    for samples, classes, y, va in ((ref_sample, ref_class, top + 0.12 * span, "bottom"),
                                    (test_sample, test_class, bottom - 0.12 * span, "top")):
        for s, c in zip(samples, classes):
            if lo <= s < hi:
                ax.text(s / fs, y, c, color=CLASS_COLOURS.get(str(c), "black"), ha="center", va=va,
                        fontsize=10, fontweight="bold")
    for s, c in zip(test_sample, test_class):
        if not lo <= s < hi:
            continue
        near = np.flatnonzero(np.abs(ref_sample - s) <= window)
        if len(near) == 0 or str(ref_class[near[np.argmin(np.abs(ref_sample[near] - s))]]) != str(c):
            ax.plot(s / fs, bottom - 0.2 * span, "o", mfc="none", mec="red", ms=16)
    ax.set_ylim(bottom - 0.4 * span, top + 0.35 * span)
    ax.set_xlim(lo / fs, hi / fs)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mV")
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
    from .ec57 import BXB_CLASS

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


def plot_annotated_strip(result: AnnotatedRecord, start: float | None = None, seconds: float = 10.0,
                         reference: str = "atr", after: float = 0.0, ax: Any = None) -> Any:
    """:func:`plot_strip` of an annotated record: its lead, the reference annotations (bxb's AAMI classes) above
    and the predictions below. start None: :func:`choose_strip_start` after ``after`` seconds."""
    from .score import read_annotations

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

