"""Label every beat of a whole recording with a trained model: a WFDB annotation file, a CSV of the beats, and the
comparison with the recording's reference annotations when it has them.

The path of one recording: read one lead by the lead rule (:func:`ecglib.data.recordings.read_recording`: WFDB,
EDF, CSV or npy), find the R peaks (a QRS detector of :mod:`ecglib.ec57.detect`, or the reference beat
annotations) and the stretches too noisy to read (:mod:`ecglib.ec57.quality`; where the recording's other ECG lead
is readable, its beats, as Q: :func:`backup_beats`), cut the beats with :func:`ecglib.data.extract.beats_from_peaks`
(the function training reads beats through, so that beats and their rhythm features are made the same way in
training and in use), classify them (:func:`ecglib.inference.predict`) a part at a time
(:class:`ecglib.data.inputs.RecordInputs`), and write one beat annotation per R peak: N -> 'N', S -> 'A',
V -> 'V', F -> 'F', Q -> 'Q' (atomically, as every output).

Long recordings stay within bounded memory: the lead is read in spans, detected in overlapping half-hour chunks
(each checked for noise once the next is detected, with the QRS feature its detection computed: one chunk's held),
cut a block of windows at a time and classified :data:`CLASSIFY_BEATS` beats at a time; the beats are the same as
in one piece (tests check it).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoints import load_run_model
from ..config import setting_default
from ..data.extract import beats_from_peaks
from ..data.facts import CLASSES
from ..data.inputs import RecordInputs
from ..data.leads import is_lead_ii, may_be_ecg
from ..data.recordings import Recording, read_recording
from ..errors import EcgError, InputError
from ..files import atomic_write_text
from ..inference import predict
from ..models import Classifier
from ..runs import RunFolder
from .annotations import Annotations, read_annotations, write_annotations
from .bxb import BXB_CLASS, DEFAULT_LEARNING_PERIOD, Comparison, compare
from .detect import DEFAULT_DETECTOR, DETECTOR_CHOICES, detect_with_feature
from .quality import merge_with_beats, noise_intervals, outside_noise
from .rpeaks import align_peaks, lead_polarity, nearest_distance

# AAMI class -> the WFDB beat code written for it (the one bxb maps back to the same class).
CLASS_CODE: dict[str, str] = {"N": "N", "S": "A", "V": "V", "F": "F", "Q": "Q"}
# The code of a detected beat too close to the record's end to cut a whole beat from (extract_beats drops it).
UNCLASSIFIED_CODE = "Q"
DEFAULT_ANNOTATOR: str = setting_default("annotator")
# The lead every source ecglib trains on gives its beats from (MIT-BIH, the synthetic records, Kaggle's CSVs).
DEFAULT_LEAD = "MLII"
# Beats whose inputs are built and classified at a time: 8,192 beats of four channels are 25 MB.
CLASSIFY_BEATS = 8192
# Leads longer than DETECT_SECONDS + the detector's overlap are detected in chunks of DETECT_SECONDS, each given
# that many seconds of its neighbours on either side and keeping the peaks of its own part: XQRS over a whole
# 24-hour lead at 360 Hz took the process to 1.8 GB. XQRS adapts its thresholds from the signal before a beat, so
# a chunk needs a run-up: on the 24-hour recording of benchmarks/bench_long.py, 30 s of overlap lost 34 of 109,171
# beats found in one piece, 60 s 14, 120 s none (DETECT_OVERLAP, for every detector but ecglib's own). ecglib's
# detector looks at most one 30-s template block around a beat, and on that recording 30, 60 and 120 s give the
# very same peaks and noise stretches; OWN_DETECT_OVERLAP keeps twice that block, and spares the 24 hours 0.5 to
# 1 s of detection. A MIT-BIH record is one chunk.
DETECT_SECONDS = 1800.0
DETECT_OVERLAP = 120.0
OWN_DETECT_OVERLAP = 60.0
OWN_DETECTORS = ("ecglib", "adaptive")  # ecglib's detector and its first pass alone
# Seconds of the backup lead (:func:`backup_beats`) detected on either side of a stretch the lead read is unreadable
# in: the detector's thresholds and templates are learnt from the signal around a beat.
BACKUP_CONTEXT = 30.0
# Beats the lead read missed, taken from the other ECG lead (:func:`missed_beats`): only where the other lead finds
# more than COMPLETE_MORE times as many beats over the recording, and each at least COMPLETE_SPLIT of the other
# lead's median RR interval from the lead read's beats (benchmarks/select_gap_fill.py, "switch").
COMPLETE_MORE = 1.02
COMPLETE_SPLIT = 0.4


# ---------------------------------------------------------------------------------------------------- model
@dataclass
class TrainedModel:
    """A trained classifier and where it came from: ``name`` (a pretrained model's name, or the run folder as given),
    ``run_dir`` (None for a pretrained model), the lead its beats came from, the run's config (metrics.json) and a
    pretrained model's card."""

    model: Classifier
    run_dir: Path | None
    lead: str
    config: dict[str, Any]
    name: str = ""
    card: dict[str, Any] = field(default_factory=dict)


def load_trained(run_dir: str | os.PathLike, lead: str | None = None) -> TrainedModel:
    """Load RUN_DIR/best.pt (a folder written by ``ecglib train``); InputError when it is no trained model.
    lead: the lead the run's beats came from, when not MLII (the lead of every source ecglib trains on)."""
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
    model.eval()
    return TrainedModel(model, run.path, lead or DEFAULT_LEAD, config, name=str(run_dir))


# ------------------------------------------------------------------------------------------------- results
@dataclass
class AnnotatedRecord:
    """One labelled recording. ``record``: its path (a WFDB record: without extension), ``name`` its name;
    ``sample`` (k,) int64 R peaks at ``fs``; ``label`` (k,) predicted AAMI class index (-1 for a beat too close to
    the end to classify); ``symbol`` (k,) the WFDB codes written; ``prob`` (k, 5) float32 the model's class
    probabilities (softmax of its decision logits; NaN rows for unclassified beats); the lead read and why; the
    recording's length and the wall time (s); the files written (annotation file ``path``, beats ``csv``); the bxb
    ``comparison`` with the reference annotations when the recording has them; ``noise`` (start, end) sample
    intervals (end exclusive) the signal-quality check (:mod:`ecglib.ec57.quality`) marked unreadable: no beat is
    labelled there, and the annotation file marks them as EC57's shutdown."""

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
    prob: np.ndarray | None = None
    name: str = ""
    format: str = "WFDB"
    lead_reason: str = ""
    model: str = ""
    model_lead: str = DEFAULT_LEAD
    csv: Path | None = None
    comparison: Comparison | None = None
    noise: list[tuple[int, int]] = field(default_factory=list)
    backup: np.ndarray | None = None  # (k,) bool: beats found on the backup lead, where the lead read is unreadable
    backup_lead: str = ""
    inverted: bool = False  # the lead's QRS complexes point down: its beats were classified turned over
    completed: int = 0  # beats the lead read missed, found on completed_lead (classified from the lead read)
    completed_lead: str = ""

    @property
    def rescued(self) -> int:
        """How many beats came from the backup lead (where the lead read is unreadable)."""
        return int(self.backup.sum()) if self.backup is not None else 0

    @property
    def realtime_factor(self) -> float:
        return self.seconds / self.elapsed if self.elapsed > 0 else float("inf")

    def summary_line(self) -> str:
        counts = " ".join(f"{c}:{int(np.sum(self.label == i))}" for i, c in enumerate(CLASSES))
        unclassified = int(np.sum(self.label < 0))
        if unclassified:  # written as Q in the annotation file, with no class in the beats CSV
            counts += f"; {unclassified} too close to the end to classify, written as {UNCLASSIFIED_CODE}"
        where = f" -> {self.path}" if self.path is not None else ""
        steps = ", ".join(f"{k} {v:.2f}" for k, v in (self.timings or {}).items())
        lead = f"lead {self.lead} ({self.lead_reason or 'as asked'}"
        if self.lead.replace(" ", "").upper() != self.model_lead.replace(" ", "").upper():
            lead += f"; the model learnt from {self.model_lead}"
        if self.inverted:
            lead += "; read turned over: its QRS complexes point down"
        scored = ""
        rescued = self.rescued
        if rescued:
            scored += (f"; {rescued} found on {self.backup_lead} where {self.lead} is unreadable, written as "
                       f"{CLASS_CODE['Q']}")
        if self.completed:
            scored += f"; {self.completed} missed on {self.lead}, found on {self.completed_lead}"
        if self.noise:
            marked = sum(e - a for a, e in self.noise) / self.fs
            scored += f"; {marked:.0f} s in {len(self.noise)} stretch{'es' if len(self.noise) > 1 else ''} marked noise"
        if self.comparison is not None:
            s = self.comparison.stats()
            fmt = lambda v: "-" if v is None else f"{v:.1f}"
            scored += (f"; vs reference: QRS Se/+P {fmt(s['Q Se'])}/{fmt(s['Q +P'])}, VEB {fmt(s['V Se'])}/"
                      f"{fmt(s['V +P'])}, SVEB {fmt(s['S Se'])}/{fmt(s['S +P'])}")
        return (f"{self.name or Path(self.record).name}: {len(self.sample)} beats ({counts}), {lead}), "
                f"{self.seconds:.1f} s of ECG in {self.elapsed:.2f} s ({self.realtime_factor:.0f}x real time; "
                f"{steps} s; detector {self.detector}{'; model ' + self.model if self.model else ''}{scored})"
                f"{where}")


def reference_r_peaks(base: str | os.PathLike, sig_len: int, annotator: str = "atr") -> np.ndarray:
    """The samples (k,) of the beat annotations (any AAMI beat symbol) of RECORD.ANNOTATOR."""
    ann = read_annotations(base, annotator, sig_len)
    beats = np.isin(ann.symbol, [s for s, c in BXB_CLASS.items() if c != "O"])
    return np.unique(ann.sample[beats])


def _reference_parts(recording: Recording) -> tuple[Path, str]:
    ref = recording.reference
    assert ref is not None
    return ref.with_suffix(""), ref.suffix[1:]


# --------------------------------------------------------------------------------------------------- steps
def detect_overlap(detector: str = DEFAULT_DETECTOR) -> float:
    """Seconds of run-up a chunk of a long lead gets on either side: OWN_DETECT_OVERLAP for ecglib's detectors,
    DETECT_OVERLAP for the others."""
    return OWN_DETECT_OVERLAP if detector in OWN_DETECTORS else DETECT_OVERLAP


def detection_chunks(n: int, fs: float, detector: str = DEFAULT_DETECTOR) -> list[tuple[int, int, int, int]]:
    """The chunks a lead of ``n`` samples is detected in by ``detector``: (start, end) the part each keeps, (a, b)
    the samples it reads, :func:`detect_overlap` seconds of run-up on either side; one chunk when the lead is no
    longer than DETECT_SECONDS and that run-up."""
    size, overlap = int(DETECT_SECONDS * fs), int(detect_overlap(detector) * fs)
    if n <= size + overlap:
        return [(0, n, 0, n)]
    return [(start, min(n, start + size), max(0, start - overlap), min(n, start + size + overlap))
            for start in range(0, n, size)]


def detect_chunks(n: int, fs: float, detector: str = DEFAULT_DETECTOR) -> int:
    """How many chunks :func:`detect_peaks` detects a lead of ``n`` samples in."""
    return len(detection_chunks(n, fs, detector))


def detect_peaks(signal: np.ndarray, fs: float, detector: str = DEFAULT_DETECTOR,
                 step: Callable[[], None] | None = None) -> np.ndarray:
    """R peaks (k,) of one lead by ``detector`` (:func:`ecglib.ec57.detect.detect_r_peaks`), in overlapping chunks
    (:func:`detection_chunks`) when the lead is long; ``step`` is called after each chunk."""
    return detect_and_find_noise(signal, fs, detector, quality=False, step=step)[0]


def find_noise(signal: np.ndarray, fs: float, peaks: np.ndarray, detector: str = DEFAULT_DETECTOR
               ) -> list[tuple[int, int]]:
    """The unreadable stretches [(start, end)] samples, end exclusive, of one lead by
    :func:`ecglib.ec57.quality.noise_intervals` given its R peaks, in detection's chunks (memory stays bounded);
    stretches that meet at a chunk boundary are joined. ``detector``: the one that found ``peaks`` (its chunks)."""
    chunks = detection_chunks(len(signal), fs, detector)
    found: list[tuple[int, int]] = []
    for chunk in chunks:
        _add_noise(found, signal, fs, peaks, chunk, len(chunks), None)
    return found


def detect_and_find_noise(signal: np.ndarray, fs: float, detector: str = DEFAULT_DETECTOR, quality: bool = True,
                          step: Callable[[], None] | None = None) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """:func:`detect_peaks`'s R peaks and, with ``quality``, :func:`find_noise`'s unreadable stretches given them
    (none where no peak was found), in one pass over the chunks: a chunk's quality check runs once the next chunk
    is detected (the peaks near its end are that chunk's) and takes the QRS feature its own detection computed
    (:func:`ecglib.ec57.detect.detect_with_feature`), filtering that is most of the check's time; one chunk's
    feature is held at a time. ``step`` is called after each chunk's detection."""
    chunks = detection_chunks(len(signal), fs, detector)
    parts: list[np.ndarray] = []
    noise: list[tuple[int, int]] = []
    held: tuple[tuple[int, int, int, int], np.ndarray | None] | None = None  # the last chunk and its feature
    for chunk in chunks:
        start, end, a, b = chunk
        peaks, feature = detect_with_feature(signal[a:b], fs, detector)
        peaks += a
        # Neighbouring chunks share twice the run-up around their boundary; each keeps the peaks on its side of it,
        # where its detector had the run-up's seconds of signal before and after.
        parts.append(peaks[(peaks >= start) & (peaks < end)])
        if step is not None:
            step()
        if quality and held is not None:
            _add_noise(noise, signal, fs, _join(parts, len(chunks), fs), held[0], len(chunks), held[1])
        held = (chunk, feature)
    peaks = _join(parts, len(chunks), fs)
    if not quality or len(peaks) == 0 or held is None:
        return peaks, []
    _add_noise(noise, signal, fs, peaks, held[0], len(chunks), held[1])
    return peaks, noise


def _join(parts: list[np.ndarray], chunks: int, fs: float) -> np.ndarray:
    """The peaks of the chunks detected so far (of ``chunks`` in all), each chunk's ``parts`` kept."""
    if chunks == 1:
        return parts[0]
    peaks = np.concatenate(parts)
    # One beat found by both chunks on either side of their boundary, a few samples apart, is one beat: two R peaks
    # 0.1 s apart would be a heart rate of 600 per minute.
    keep = np.concatenate(([True], np.diff(peaks) > int(0.1 * fs))) if len(peaks) else np.zeros(0, bool)
    return peaks[keep]


def _add_noise(found: list[tuple[int, int]], signal: np.ndarray, fs: float, peaks: np.ndarray,
               chunk: tuple[int, int, int, int], chunks: int, feature: np.ndarray | None) -> None:
    """Append to ``found`` the unreadable stretches of one chunk (start, end, a, b) of ``chunks`` given the lead's
    peaks, clipped to the part it keeps and joined to the last one where they meet."""
    start, end, a, b = chunk
    if chunks == 1:
        found.extend(noise_intervals(signal, fs, peaks, feature=feature))
        return
    inside = peaks[(peaks >= a) & (peaks < b)] - a
    for lo, hi in noise_intervals(signal[a:b], fs, inside, feature=feature):
        lo, hi = max(lo + a, start), min(hi + a, end)
        if hi > lo:
            _join_interval(found, lo, hi)


def _join_interval(found: list[tuple[int, int]], lo: int, hi: int) -> None:
    """Append (lo, hi) to the time-ordered stretches ``found``, or extend the last one when they meet."""
    if found and lo <= found[-1][1]:
        found[-1] = (found[-1][0], max(hi, found[-1][1]))
    else:
        found.append((lo, hi))


def backup_lead(recording: Recording) -> int | None:
    """The position of the recording's backup lead: the first signal other than the lead read that may be an ECG
    lead (:func:`ecglib.data.leads.may_be_ecg`), None when it has no other."""
    read = recording.leads.index(recording.lead) if recording.lead in recording.leads else -1
    for i, name in enumerate(recording.leads):
        if i != read and may_be_ecg(name):
            return i
    return None


def backup_beats(recording: Recording, noise: list[tuple[int, int]], detector: str = DEFAULT_DETECTOR
                 ) -> tuple[np.ndarray, list[tuple[int, int]], str]:
    """Beats of the recording's backup lead (:func:`backup_lead`) inside the stretches ``noise`` that the quality
    check found unreadable on the lead read: noise on a recording's leads seldom covers them all alike (electrode
    motion moves one electrode, a muscle lies under one). Each stretch is detected and checked on the backup lead
    with BACKUP_CONTEXT seconds on either side; its beats there that lie outside the backup lead's own noise are
    kept. Returns those R peaks (k,) int64, the stretches unreadable on both leads (what is left of ``noise``), and
    the backup lead's name ("" and ``noise`` unchanged when there is no backup lead, it cannot be read, or it is
    not at the read lead's rate and length)."""
    none = np.zeros(0, dtype=np.int64)
    other = read_backup_lead(recording) if noise else None
    if other is None:
        return none, noise, ""
    fs, n = recording.fs, len(recording.signal)
    pad = int(round(BACKUP_CONTEXT * fs))
    windows: list[tuple[int, int]] = []
    for lo, hi in noise:
        _join_interval(windows, max(0, lo - pad), min(n, hi + pad))
    found: list[np.ndarray] = []
    unreadable: list[tuple[int, int]] = []
    for a, b in windows:
        peaks, other_noise = detect_and_find_noise(other.signal[a:b], fs, detector)
        peaks = peaks[outside_noise(peaks, other_noise)] + a
        other_noise = [(lo + a, hi + a) for lo, hi in other_noise]
        for lo, hi in noise:
            if a <= lo < b:
                found.append(peaks[(peaks >= lo) & (peaks <= hi)])
                unreadable += [(max(lo, x), min(hi, y)) for x, y in other_noise if max(lo, x) < min(hi, y)]
    peaks = np.unique(np.concatenate(found)) if found else none
    return peaks, unreadable, other.lead


def read_backup_lead(recording: Recording) -> Recording | None:
    """The recording's backup lead (:func:`backup_lead`) read, None when it has none, it cannot be read (e.g. no
    valid sample) or it is not at the read lead's rate and length (an EDF signal of its own rate: its samples are
    not the read lead's)."""
    position = backup_lead(recording)
    if position is None:
        return None
    fs = recording.fs
    try:
        other = read_recording(recording.path, lead=position, fs=fs if recording.format in ("CSV", "npy") else None)
    except InputError:
        return None
    if len(other.signal) != len(recording.signal) or abs(other.fs - fs) > 1e-9 * fs:
        return None
    return other


def missed_beats(read: np.ndarray, other: np.ndarray, fs: float) -> np.ndarray:
    """The R peaks of another lead, ``other`` (sorted), that the lead read's sorted ``read`` lacks: none unless the
    other lead has more than COMPLETE_MORE times as many; else each of its beats at least COMPLETE_SPLIT of its
    median RR interval (and more than the bxb match window, 0.15 s) from every beat of the lead read. A lead that
    finds 2 % more beats than another over a whole recording sees beats the other misses: on MIT-BIH's 48 records
    at 360 Hz, with the lead read's noise left out, MLII finds them for the second lead on 101, 108, 200 and 208
    (the last two with tiny or low beats on V1: 1,135 and 638 beats), and the second lead never for MLII."""
    if len(read) < 2 or len(other) <= COMPLETE_MORE * len(read):
        return other[:0]
    rr = float(np.median(np.diff(other)))
    distance = nearest_distance(read, other)
    return other[(distance > int(0.15 * fs)) & (distance >= COMPLETE_SPLIT * rr)]


def completing_beats(recording: Recording, peaks: np.ndarray, noise: list[tuple[int, int]],
                     detector: str = DEFAULT_DETECTOR) -> tuple[np.ndarray, str]:
    """Beats the lead read missed (:func:`missed_beats`) found on the recording's other ECG lead
    (:func:`backup_lead`), outside the lead read's noise and aligned on it (they are classified from the lead read
    like every beat), and that lead's name. Only when the lead read is not lead II: ecglib's detector was built
    and measured on lead II, where the rule adds no beat on the 46 MIT-BIH records with MLII at 360 or 128 Hz,
    and it costs a second detection over the whole recording. None and "" when the recording has no other lead it
    can read."""
    none = np.zeros(0, dtype=np.int64)
    other = None if is_lead_ii(recording.lead) or len(peaks) < 2 else read_backup_lead(recording)
    if other is None:
        return none, ""
    found, other_noise = detect_and_find_noise(other.signal, recording.fs, detector)
    missed = missed_beats(peaks, found[outside_noise(found, other_noise)], recording.fs)
    missed = missed[outside_noise(missed, noise)]
    if len(missed) == 0:
        return none, other.lead
    aligned = align_peaks(recording.signal, recording.fs, missed)
    # Alignment moves a beat by at most ALIGN_RADIUS, far less than its distance to the lead read's beats.
    return aligned[nearest_distance(peaks, aligned) > int(0.15 * recording.fs)], other.lead


def classify_beats(trained: TrainedModel, signal: np.ndarray, fs: float, r_peaks: np.ndarray, record: str = "",
                   step: Callable[[], None] | None = None, polarity: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """AAMI class index (k,) of every R peak (k,) of one lead (T,) at ``fs``, -1 where no whole beat can be cut
    (the last beat when its segment would run past the record's end), and the class probabilities (k, 5) float32
    (NaN rows there). Classified CLASSIFY_BEATS at a time; ``step`` is called after each part. polarity: -1
    classifies the beats of the lead turned over."""
    import torch

    try:
        beats = beats_from_peaks(signal, fs, r_peaks, record, polarity=polarity)
        inputs = RecordInputs(beats, trained.model.config, record)
    except ValueError as exc:
        raise InputError(f"{record}: {exc}") from None
    labels = np.full(len(r_peaks), -1, dtype=np.int64)
    prob = np.full((len(r_peaks), len(CLASSES)), np.nan, dtype=np.float32)
    rows = np.searchsorted(r_peaks, beats.sample)
    for a in range(0, len(beats), CLASSIFY_BEATS):
        part = np.arange(a, min(len(beats), a + CLASSIFY_BEATS))
        # The inputs training gave this model, computed by the same functions: rhythm features from all the R
        # peaks, the neighbouring beats and the record's template when it takes them.
        x, _, rhythm = inputs.part(part)
        pred, logits = predict(trained.model, x, batch_size=256, rhythm=rhythm)
        labels[rows[part]] = pred
        prob[rows[part]] = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        if step is not None:
            step()
    return labels, prob


def classify_chunks(k: int) -> int:
    return max(1, -(-k // CLASSIFY_BEATS))


def reference_annotations(recording: Recording) -> Annotations:
    """The recording's reference annotations (``NAME.EXT`` beside it), read and checked against its signal."""
    base, ext = _reference_parts(recording)
    return read_annotations(base, ext, len(recording.signal), fs=recording.fs)


def compare_with_reference(recording: Recording, sample: np.ndarray, symbol: np.ndarray,
                           subtype: np.ndarray | None = None) -> Comparison:
    """bxb's comparison of the labels (with their ``~`` shutdown marks and ``subtype``s, as written) with the
    recording's reference annotations (its 5-minute learning period when the recording is longer than that, else
    none)."""
    n = len(recording.signal)
    ref = reference_annotations(recording)
    period = DEFAULT_LEARNING_PERIOD if recording.seconds > DEFAULT_LEARNING_PERIOD else 0.0
    return compare(ref.sample, ref.symbol, sample, symbol, recording.fs, learning_period=period, sig_len=n,
                   ref_subtypes=ref.subtype, test_subtypes=subtype, record=recording.name)


def _decimals(values: np.ndarray) -> list[str]:
    """Each value with four decimals, NaN as an empty field."""
    return ["" if v != v else f"{v:.4f}" for v in np.asarray(values, dtype=np.float64).tolist()]


def write_beats_csv(result: AnnotatedRecord, path: str | os.PathLike) -> Path:
    """The beats as CSV (atomically): time_s, sample, class (AAMI letter; empty for a beat too close to the end to
    classify), rr_before_s and rr_after_s (to the neighbouring R peaks; empty at the ends), probability (the
    model's probability of the class given). Seconds and probabilities with four decimals."""
    k = len(result.sample)
    rr = np.diff(result.sample) / result.fs
    nan = np.array([np.nan])
    classes = np.array([*CLASSES, ""])[result.label]  # label -1 picks ""
    chosen = (result.prob[np.arange(k), np.maximum(result.label, 0)] if result.prob is not None
              else np.full(k, np.nan))
    chosen = np.where(result.label >= 0, chosen, np.nan)
    # Formatted column by column in Python rather than by a DataFrame: the same text in a third of the time, which
    # counts on a 24-hour recording's 100,000 beats.
    rows = zip(_decimals(result.sample / result.fs), map(str, result.sample.tolist()), classes.tolist(),
               _decimals(np.concatenate([nan, rr])), _decimals(np.concatenate([rr, nan])), _decimals(chosen))
    text = "time_s,sample,class,rr_before_s,rr_after_s,probability\n" + "".join(f"{','.join(r)}\n" for r in rows)
    atomic_write_text(path, text)
    return Path(path)


# ------------------------------------------------------------------------------------------------ annotate
def annotate_recording(trained: TrainedModel, recording: Recording, detector: str = DEFAULT_DETECTOR,
                       out_dir: str | os.PathLike | None = None, annotator: str = DEFAULT_ANNOTATOR,
                       write: bool = True, progress: bool = False, read_seconds: float = 0.0,
                       quality: bool = True, backup: bool = True, complete: bool = True) -> AnnotatedRecord:
    """Label one recording (read by :func:`ecglib.data.recordings.read_recording`) and, when ``write``, write
    OUT_DIR/NAME.ANNOTATOR and OUT_DIR/NAME.ANNOTATOR.csv (OUT_DIR defaults to the recording's folder); compare
    with its reference annotations when it has them. quality: mark the stretches the signal-quality check finds
    unreadable as noise (detections there are not labelled; not with the reference detector, whose beats are the
    truth). backup: where the quality check finds the lead unreadable, take the beats of the recording's other ECG
    lead (:func:`backup_beats`). complete: where the lead read is not lead II, add the beats it missed that the
    other ECG lead finds (:func:`completing_beats`). progress: a bar on stderr. read_seconds: the time its reading
    took, for the summary."""
    if detector not in DETECTOR_CHOICES:
        raise InputError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTOR_CHOICES)}")
    if not annotator.isalnum():
        raise InputError(f"annotator name {annotator!r}: use letters and digits only (it is the file extension)")
    from tqdm.auto import tqdm

    clock = [time.perf_counter()]
    timings: dict[str, float] = {"read": read_seconds}

    def lap(step: str) -> None:
        clock.append(time.perf_counter())
        timings[step] = clock[-1] - clock[-2]

    signal, fs, name = recording.signal, recording.fs, recording.name
    # Detection's chunks, then classification's parts: their number known once the beats are, guessed at 90 per
    # minute until then (so that the bar does not reach 100 % after detection).
    detecting = detect_chunks(len(signal), fs, detector)
    bar = tqdm(total=detecting + classify_chunks(int(1.5 * recording.seconds)), desc=name, disable=not progress,
               leave=False, dynamic_ncols=True, bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
    try:
        rescued, backup_name = np.zeros(0, dtype=np.int64), ""
        missed, complete_name = np.zeros(0, dtype=np.int64), ""
        if detector == "reference":
            if recording.reference is None:
                raise InputError(f"{recording.path}: --detector reference takes the reference annotations, and "
                                 "there are none beside it (NAME.atr, or --reference EXT)")
            base, extension = _reference_parts(recording)
            peaks, noise = reference_r_peaks(base, len(signal), extension), []
            bar.update()
        else:
            peaks, noise = detect_and_find_noise(signal, fs, detector, quality, step=bar.update)
            peaks = peaks[outside_noise(peaks, noise)]
            if backup:
                rescued, noise, backup_name = backup_beats(recording, noise, detector)
            if len(rescued) and len(peaks):
                # One beat seen on both leads at a stretch's edge is one beat: two R peaks 0.1 s apart would be a
                # heart rate of 600 per minute.
                rescued = rescued[nearest_distance(peaks, rescued) > int(0.1 * fs)]
            peaks = np.union1d(peaks, rescued)
            if complete:
                missed, complete_name = completing_beats(recording, peaks, noise, detector)
                peaks = np.union1d(peaks, missed)
        if len(peaks) == 0:
            raise InputError(f"{recording.path}: no beats found by the {detector} detector"
                             + (" outside the stretches marked noise" if noise else ""))
        # The models learnt from lead II, whose QRS complexes point up; a lead whose complexes point down (V1 in
        # most people, a lead with its electrodes swapped) is read turned over, as the DS1 folds chose
        # (docs/rhythm-recipe.md, "The polarity rule").
        polarity = lead_polarity(signal, fs, peaks)
        lap("detect")
        bar.total = detecting + classify_chunks(len(peaks))
        bar.refresh()
        labels, prob = classify_beats(trained, signal, fs, peaks, name, step=bar.update, polarity=polarity)
        # The lead the model reads is unreadable at the backup lead's beats: they are beats, of no class (Q).
        backup = np.isin(peaks, rescued) if len(rescued) else None
        if backup is not None:
            labels[backup] = CLASSES.index("Q")
            prob[backup] = np.nan
    finally:
        bar.close()
    codes = np.array([CLASS_CODE[c] for c in CLASSES] + [UNCLASSIFIED_CODE])
    symbols = codes[labels]  # label -1 picks the last entry
    lap("classify")
    # What is written and scored: the beats with a '~' shutdown mark opening each noise stretch and one closing it.
    marked = merge_with_beats(peaks, symbols, noise, len(signal))
    comparison = compare_with_reference(recording, *marked) if recording.reference is not None else None
    result = AnnotatedRecord(str(recording.path), peaks, labels, symbols, fs, recording.seconds, 0.0, detector, None,
                             timings, recording.lead, prob, name, recording.format, recording.lead_reason,
                             trained.name, trained.lead, comparison=comparison, noise=noise, backup=backup,
                             backup_lead=backup_name, inverted=polarity < 0, completed=len(missed),
                             completed_lead=complete_name)
    if write:
        folder = Path(out_dir) if out_dir is not None else recording.path.parent
        result.path = write_annotations(name, annotator, *marked[:2], fs, folder, subtype=marked[2])
        result.csv = write_beats_csv(result, folder / f"{name}.{annotator}.csv")
    lap("write")
    result.elapsed = sum(timings.values())
    return result


def annotate_record(trained: TrainedModel, record: str | os.PathLike, detector: str = DEFAULT_DETECTOR,
                    out_dir: str | os.PathLike | None = None, annotator: str = DEFAULT_ANNOTATOR,
                    write: bool = True, lead: str | int | None = None, fs: float | None = None,
                    reference: str | None = None, progress: bool = False, quality: bool = True) -> AnnotatedRecord:
    """Read and label one recording (a WFDB record path without extension, an EDF, CSV or npy file): the lead by
    the lead rule unless ``lead`` names one, ``fs`` for CSV and npy files, the reference annotations NAME.atr (or
    NAME.REFERENCE) beside it; see :func:`annotate_recording`."""
    start = time.perf_counter()
    recording = read_recording(record, lead=lead, fs=fs, reference=reference)
    return annotate_recording(trained, recording, detector, out_dir, annotator, write, progress,
                              read_seconds=time.perf_counter() - start, quality=quality)


def annotate_records(trained: TrainedModel | str | os.PathLike, records: list[str | os.PathLike],
                     detector: str = DEFAULT_DETECTOR, out_dir: str | os.PathLike | None = None,
                     annotator: str = DEFAULT_ANNOTATOR, lead: str | int | None = None, fs: float | None = None,
                     reference: str | None = None,
                     on_record: Callable[[AnnotatedRecord, Recording], None] | None = None,
                     on_error: Callable[[str, EcgError], None] | None = None,
                     progress: bool = False, quality: bool = True) -> list[AnnotatedRecord]:
    """Label each recording in turn with one model (a TrainedModel, or a run folder). A recording that cannot be
    labelled (an InputError: unreadable, no ECG lead, no beats, an output that cannot be written) is passed to
    ``on_error`` with its error and the next one goes on; without ``on_error`` the error is raised. What was
    written for the recordings before stays. ``on_record`` gets each result with its recording (the lead's signal,
    for a report) as soon as it is written."""
    if not isinstance(trained, TrainedModel):
        trained = load_trained(trained, lead=None)
    if detector not in DETECTOR_CHOICES:
        raise InputError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTOR_CHOICES)}")
    if not annotator.isalnum():
        raise InputError(f"annotator name {annotator!r}: use letters and digits only (it is the file extension)")
    # The libraries the detectors use are imported before the first record, so that each record's ``elapsed``
    # measures the work on that record and not one-off imports.
    import scipy.ndimage  # noqa: F401
    import scipy.signal  # noqa: F401
    import wfdb.processing  # noqa: F401

    results = []
    for record in records:
        try:
            start = time.perf_counter()
            recording = read_recording(record, lead=lead, fs=fs, reference=reference)
            result = annotate_recording(trained, recording, detector, out_dir, annotator, progress=progress,
                                        read_seconds=time.perf_counter() - start, quality=quality)
        except InputError as exc:
            if on_error is None:
                raise
            on_error(str(record), exc)
            continue
        results.append(result)
        if on_record is not None:
            on_record(result, recording)
    return results
