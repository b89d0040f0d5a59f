"""Beats cut from a lead at its R peaks, after Kachuee, Fazeli & Sarrafzadeh (2018), "ECG Heartbeat Classification:
A Deep Transferable Representation", the preparation behind the Kaggle "ECG Heartbeat Categorization" CSVs:
resample to 125 Hz, scale each 10-second window to [0, 1], cut each beat from its R peak for 1.2 times the
window's median RR interval, and zero-pad to 187 samples.

:func:`beats_from_peaks` is the one place beats are cut, for training (:func:`ecglib.data.records.load_mitdb`) and
for labelling records (:mod:`ecglib.ec57.annotate`) alike, with their rhythm features.
"""
from __future__ import annotations

import numpy as np

from .beats import Beats
from .facts import AAMI, BEAT_LENGTH, BEAT_PERIODS, RHYTHM_FEATURES, TARGET_FS, WINDOW_SECONDS
from .rhythm import rhythm_features, rhythm_meta


def extract_beats(signal: np.ndarray, fs: float, r_peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut beats from one lead after Kachuee et al. (2018).

    signal: (T,) float, any unit, sampled at ``fs`` Hz. r_peaks: (k,) R-peak samples at ``fs``.
    Returns x (m, 187) float32 in [0, 1] at 125 Hz and the indices (m,) into ``r_peaks`` of the beats kept
    (a beat is dropped when its 1.2 RR segment would run past the end of the record).
    """
    from scipy.signal import resample_poly

    ratio = TARGET_FS / fs
    frac = np.gcd(int(round(fs)), TARGET_FS)
    sig = resample_poly(signal, TARGET_FS // frac, int(round(fs)) // frac) if fs != TARGET_FS else signal
    peaks = np.round(np.asarray(r_peaks) * ratio).astype(np.int64)
    n = len(sig)
    win = int(WINDOW_SECONDS * TARGET_FS)
    n_win = int(np.ceil(n / win))
    padded = np.concatenate([sig, np.full(n_win * win - n, np.nan)]).reshape(n_win, win)
    lo, hi = np.nanmin(padded, axis=1), np.nanmax(padded, axis=1)
    span = np.where(hi - lo > 0, hi - lo, 1.0)

    window_of = np.minimum(peaks // win, n_win - 1)
    record_rr = np.median(np.diff(peaks)) if len(peaks) > 1 else TARGET_FS
    period = np.full(n_win, record_rr, dtype=np.float64)
    for w in np.unique(window_of):
        in_w = peaks[window_of == w]
        if len(in_w) > 1:
            period[w] = np.median(np.diff(in_w))
    length = np.minimum(np.round(BEAT_PERIODS * period[window_of]).astype(np.int64), BEAT_LENGTH)

    kept = np.flatnonzero((peaks >= 0) & (peaks + length <= n))
    offsets = np.arange(BEAT_LENGTH)
    idx = np.minimum(peaks[kept, None] + offsets, n - 1)
    w = window_of[kept, None]
    beats = (sig[idx] - lo[w]) / span[w]
    # Each beat is scaled with the window that holds its R peak; a tail reaching into the next window may leave
    # [0, 1] slightly, so clip it back.
    beats = np.clip(beats, 0.0, 1.0)
    beats[offsets[None, :] >= length[kept, None]] = 0.0
    return beats.astype(np.float32), kept


def beats_from_peaks(signal: np.ndarray, fs: float, r_peaks: np.ndarray, record: str = "",
                     symbols: np.ndarray | None = None) -> Beats:
    """The model inputs of one record's beats given its R peaks: the one function that both training
    (:func:`load_mitdb`) and annotation (:mod:`ecglib.annotate`) call, so that per-beat features added later (for
    instance rhythm features from the R peaks) reach both alike.

    signal: (T,) one lead at ``fs`` Hz; r_peaks: (k,) R-peak samples at ``fs``, in time order, every beat of the
    record; symbols: (k,) their MIT symbols, all in AAMI (None for detected beats: y is then -1 and symbol "").
    Returns the Beats kept by :func:`extract_beats` (a beat whose segment runs past the record's end is dropped;
    ``sample`` tells which), with their rhythm features (:func:`rhythm_features`, from every R peak). Raises
    ValueError for R peaks that give no RR interval or do not increase; the caller names the file.
    """
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    x, kept = extract_beats(signal, fs, r_peaks)
    # From every R peak, before extract_beats dropped the beats that run past the record's end.
    if len(r_peaks) >= 2:
        rhythm = rhythm_features(r_peaks, fs)[kept]
    elif len(kept):
        raise ValueError("a single beat, so no RR interval for the rhythm features")
    else:
        rhythm = np.zeros((0, len(RHYTHM_FEATURES)), dtype=np.float32)
    if symbols is None:
        y, sym = np.full(len(kept), -1, dtype=np.int64), np.full(len(kept), "")
    else:
        sym = np.asarray(symbols)[kept]
        y = np.array([AAMI[s] for s in sym], dtype=np.int64)
    return Beats(x, y, np.full(len(kept), record), r_peaks[kept], sym.astype(str),
                 {"rhythm_features": rhythm_meta()}, rhythm)
