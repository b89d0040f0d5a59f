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

# Beats are cut a block of 10-second windows at a time (an hour: about 5,000 beats): the resampled lead, the
# indices and the float64 values of one block at a time, so that a 24-hour recording's extraction stays within tens
# of MB beyond its beats. The blocks give the very beats of one block over the whole lead (tests check it).
BLOCK_WINDOWS = 360


def resampling(fs: float) -> tuple[int, int]:
    """(up, down) of the polyphase resampling from ``fs`` (rounded to whole Hz) to TARGET_FS; (1, 1) for none."""
    if fs == TARGET_FS:
        return 1, 1
    frac = np.gcd(int(round(fs)), TARGET_FS)
    return TARGET_FS // frac, int(round(fs)) // frac


def resampled_span(signal: np.ndarray, fs: float, start: int, stop: int) -> np.ndarray:
    """Samples ``start:stop`` of the lead resampled to TARGET_FS, computed from the part of the lead they depend
    on: equal, bit for bit, to ``resample_poly(signal, up, down)[start:stop]`` when ``start`` is a multiple of one
    10-second window (1250 samples). The input is cut one window beyond each end, so that the filter (about 10
    taps of the slower rate either side) sees the same samples, aligned to the same phase, as over the whole lead."""
    from scipy.signal import resample_poly

    up, down = resampling(fs)
    if up == down == 1:
        return signal[start:stop]
    margin = int(WINDOW_SECONDS * round(fs))  # one window of input: a whole number of `down`s
    first = start * down // up  # exact: start is a whole number of windows
    lo = max(0, first - margin)
    hi = min(len(signal), -(-stop * down // up) + margin)
    part = resample_poly(signal[lo:hi], up, down)
    offset = lo * up // down
    return part[start - offset:stop - offset]


def extract_beats(signal: np.ndarray, fs: float, r_peaks: np.ndarray,
                  block_windows: int | None = None, polarity: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cut beats from one lead after Kachuee et al. (2018).

    signal: (T,) float, any unit, sampled at ``fs`` Hz. r_peaks: (k,) R-peak samples at ``fs``, sorted.
    block_windows: 10-second windows cut at a time (None: BLOCK_WINDOWS; any number gives the same beats).
    polarity: -1 cuts the beats of the lead turned over (-signal), bit for bit, without a copy of the lead.
    Returns x (m, 187) float32 in [0, 1] at 125 Hz and the indices (m,) into ``r_peaks`` of the beats kept
    (a beat is dropped when its 1.2 RR segment would run past the end of the record).
    """
    up, down = resampling(fs)
    ratio = TARGET_FS / fs
    peaks = np.round(np.asarray(r_peaks) * ratio).astype(np.int64)
    n = len(signal) * up // down + bool(len(signal) * up % down)  # resample_poly's output length
    win = int(WINDOW_SECONDS * TARGET_FS)
    n_win = int(np.ceil(n / win))

    if len(peaks) > 1 and np.any(np.diff(peaks) < 0):
        raise ValueError("R peaks out of time order")
    window_of = np.minimum(peaks // win, n_win - 1)
    record_rr = np.median(np.diff(peaks)) if len(peaks) > 1 else TARGET_FS
    period = np.full(n_win, record_rr, dtype=np.float64)
    # Peaks are sorted, so each window's peaks are one run: its median RR from the diffs inside the run.
    windows, first, count = np.unique(window_of, return_index=True, return_counts=True)
    for w, a, c in zip(windows.tolist(), first.tolist(), count.tolist()):
        if c > 1:
            period[w] = np.median(np.diff(peaks[a:a + c]))
    length = np.minimum(np.round(BEAT_PERIODS * period[window_of]).astype(np.int64), BEAT_LENGTH)

    kept = np.flatnonzero((peaks >= 0) & (peaks + length <= n))
    x = np.empty((len(kept), BEAT_LENGTH), dtype=np.float32)
    offsets = np.arange(BEAT_LENGTH)
    step = max(1, min(n_win, int(BLOCK_WINDOWS if block_windows is None else block_windows)))
    bounds = np.searchsorted(window_of[kept], np.arange(0, n_win + step, step))
    for b, w0 in enumerate(range(0, n_win, step)):
        rows = np.arange(bounds[b], bounds[b + 1])
        w1 = min(n_win, w0 + step)
        # The block's samples and the tails of its last beats, which reach at most one beat into the next block.
        g0, g1 = w0 * win, min(n, w1 * win + BEAT_LENGTH)
        seg = resampled_span(signal, fs, g0, g1)
        if polarity < 0:  # resampling is linear and IEEE negation exact: the same as resampling -signal
            seg = -seg
        body = np.full((w1 - w0) * win, np.nan)
        inside = min((w1 - w0) * win, n - g0)
        body[:inside] = seg[:inside]
        body = body.reshape(w1 - w0, win)
        lo, hi = np.nanmin(body, axis=1), np.nanmax(body, axis=1)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        if not len(rows):
            continue
        p = peaks[kept[rows]]
        idx = np.minimum(p[:, None] + offsets, n - 1) - g0
        w = window_of[kept[rows], None] - w0
        beats = (seg[idx] - lo[w]) / span[w]
        # Each beat is scaled with the window that holds its R peak; a tail reaching into the next window may
        # leave [0, 1] slightly, so clip it back.
        beats = np.clip(beats, 0.0, 1.0)
        beats[offsets[None, :] >= length[kept[rows], None]] = 0.0
        x[rows] = beats
    return x, kept


def beats_from_peaks(signal: np.ndarray, fs: float, r_peaks: np.ndarray, record: str = "",
                     symbols: np.ndarray | None = None, polarity: int = 1) -> Beats:
    """The model inputs of one record's beats given its R peaks: the one function that both training
    (:func:`load_mitdb`) and annotation (:mod:`ecglib.annotate`) call, so that per-beat features added later (for
    instance rhythm features from the R peaks) reach both alike.

    signal: (T,) one lead at ``fs`` Hz; r_peaks: (k,) R-peak samples at ``fs``, in time order, every beat of the
    record; symbols: (k,) their MIT symbols, all in AAMI (None for detected beats: y is then -1 and symbol "").
    polarity: -1 for the lead turned over (:func:`extract_beats`).
    Returns the Beats kept by :func:`extract_beats` (a beat whose segment runs past the record's end is dropped;
    ``sample`` tells which), with their rhythm features (:func:`rhythm_features`, from every R peak). Raises
    ValueError for R peaks that give no RR interval or do not increase; the caller names the file.
    """
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    x, kept = extract_beats(signal, fs, r_peaks, polarity=polarity)
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
