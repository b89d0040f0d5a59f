"""Label every beat of a whole WFDB record with a trained model and write a WFDB annotation file.

The path of one record: read one lead (:func:`ecglib.data.records.read_lead`), find the R peaks (a QRS detector,
:mod:`ecglib.ec57.detect`, or the record's reference beat annotations), turn the peaks into model inputs with
:func:`ecglib.data.extract.beats_from_peaks` (the function training reads beats through, so that beats, and any
per-beat feature added there, are made the same way in training and in use), classify them
(:func:`ecglib.inference.predict`), and write one beat annotation per R peak: N -> 'N', S -> 'A', V -> 'V',
F -> 'F', Q -> 'Q' (:func:`ecglib.ec57.annotations.write_annotations`, atomically).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoints import load_run_model
from ..data.checks import check_signal_files
from ..data.extract import beats_from_peaks
from ..data.facts import CLASSES
from ..data.inputs import model_inputs
from ..data.records import read_lead
from ..errors import InputError
from ..inference import predict
from ..runs import RunFolder
from .annotations import read_annotations, write_annotations
from .bxb import BXB_CLASS
from .detect import DEFAULT_DETECTOR, DETECTOR_CHOICES, detect_r_peaks

# AAMI class -> the WFDB beat code written for it (the one bxb maps back to the same class).
CLASS_CODE: dict[str, str] = {"N": "N", "S": "A", "V": "V", "F": "F", "Q": "Q"}
# The code of a detected beat too close to the record's end to cut a whole beat from (extract_beats drops it).
UNCLASSIFIED_CODE = "Q"
DEFAULT_ANNOTATOR = "ecglib"
DEFAULT_LEAD = "MLII"


def reference_r_peaks(base: str | os.PathLike, sig_len: int, annotator: str = "atr") -> np.ndarray:
    """The samples (k,) of the beat annotations (any AAMI beat symbol) of RECORD.ANNOTATOR."""
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


def load_trained(run_dir: str | os.PathLike, lead: str | None = None) -> TrainedModel:
    """Load RUN_DIR/best.pt (a folder written by ``ecglib train``); InputError when it is no trained model.

    lead: the lead to read from records; None: the one the run's beats came from, which is MLII for the mitdb and
    synthetic sources (records without MLII were a handful of paced ones, read from their first lead).
    """
    run = RunFolder(run_dir)
    if not run.path.exists():
        raise InputError(f"{run.path}: run folder not found")
    if not run.path.is_dir():
        raise InputError(f"{run.path}: not a run folder (give the folder that `ecglib train --out` wrote)")
    if not run.best.exists():
        raise InputError(f"{run.path}: not a trained model (no best.pt; train one with "
                         f"`ecglib train --out {run.path}`)")
    config: dict[str, Any] = run.metrics()["config"] if run.metrics_file.exists() else {}
    model = load_run_model(run.path)
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
    check_signal_files(header, base.parent)


def classify_beats(trained: TrainedModel, signal: np.ndarray, fs: float, r_peaks: np.ndarray,
                   record: str = "") -> np.ndarray:
    """AAMI class index (k,) of every R peak (k,) of one lead (T,) at ``fs``; -1 where no whole beat can be cut
    (the last beat when its segment would run past the record's end)."""
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
    trained = load_trained(run_dir, lead)
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
