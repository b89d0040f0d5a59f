"""The rhythm of every beat: its RR intervals and their ratios to the local and the record's average rhythm, computed
from the R peaks of all the record's beats (:data:`ecglib.data.facts.RHYTHM_FEATURES` names the columns).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .facts import LOCAL_RR_INTERVALS, RHYTHM_FEATURES, RHYTHM_NAMES


def rhythm_features(r_samples: np.ndarray, fs: float, local_intervals: int = LOCAL_RR_INTERVALS) -> np.ndarray:
    """Rhythm features of every beat of one record, from all its beat annotations.

    r_samples: (k,) strictly increasing R-peak samples of ALL the record's beats (at its own rate), in time order;
      pass every beat, before beats are dropped at the record's end, so that the RR intervals are the true ones.
    fs: the record's sampling rate (Hz). local_intervals: how many RR intervals the local average spans, centred on
      the beat (half before its R peak, its pre-RR included, half after, its post-RR included; fewer at the ends).
    Returns (k, len(RHYTHM_FEATURES)) float32, columns as RHYTHM_FEATURES: pre-RR, post-RR, local and record average
    RR in seconds, then the ratios pre/local, post/local, post/pre, pre/record, post/record, local/record, then
    the local irregularity: the median of |RR[j + 1] - RR[j]| over the pairs of successive intervals both in the
    beat's local window, over the local mean RR (0 where the window holds a single interval).

    The first beat has no pre-RR and the last no post-RR: each copies its one RR interval (the first beat's pre-RR
    is its post-RR, the last beat's post-RR its pre-RR), so their post/pre ratio is 1. A premature beat has
    pre/local well below 1; a ventricular one with its compensatory pause also has post/pre well above 1.
    Raises ValueError for fewer than two beats, a non-positive rate or positions that do not strictly increase.
    """
    t = np.asarray(r_samples, dtype=np.float64)
    if t.ndim != 1 or len(t) < 2:
        raise ValueError(f"rhythm features need at least two beats, got {t.size}")
    if not (np.isfinite(fs) and fs > 0) or local_intervals < 1:
        raise ValueError(f"rhythm features need a positive rate and window, got fs {fs}, window {local_intervals}")
    if not np.isfinite(t).all():
        raise ValueError("non-finite beat position")
    rr = np.diff(t) / fs
    if (rr <= 0).any():
        i = int(np.flatnonzero(rr <= 0)[0])
        raise ValueError(f"beat positions do not increase (beat {i + 1} at sample {t[i + 1]:g} after {t[i]:g})")
    k = len(t)
    pre = np.concatenate([rr[:1], rr])
    post = np.concatenate([rr, rr[-1:]])
    # Interval j runs from beat j to beat j + 1; beat i's window holds intervals i - half .. i + half - 1
    # (its pre-RR is interval i - 1, its post-RR interval i), clipped to the record.
    half_before = local_intervals // 2
    half_after = local_intervals - half_before
    i = np.arange(k)
    lo = np.maximum(i - half_before, 0)
    hi = np.minimum(i + half_after, k - 1)
    lo = np.minimum(lo, hi - 1)  # a window of one interval ahead has none left at the last beat: take its pre-RR
    csum = np.concatenate([[0.0], np.cumsum(rr)])
    local = (csum[hi] - csum[lo]) / (hi - lo)
    record = np.full(k, (t[-1] - t[0]) / fs / (k - 1))
    # Successive differences d[j] = |RR[j + 1] - RR[j]|; beat i's pairs are d[lo .. hi - 2], a fixed-width window
    # once d is padded with NaN (half_before on the left, half_after on the right), so one nanmedian does all beats.
    irregular = np.zeros(k)
    if local_intervals >= 2 and k >= 3:
        d = np.concatenate([np.full(half_before, np.nan), np.abs(np.diff(rr)), np.full(half_after, np.nan)])
        windows = np.lib.stride_tricks.sliding_window_view(d, local_intervals - 1)[:k]
        has = ~np.isnan(windows).all(axis=1)
        irregular[has] = np.nanmedian(windows[has], axis=1) / local[has]
    out = np.stack([pre, post, local, record, pre / local, post / local, post / pre, pre / record, post / record,
                    local / record, irregular], axis=1)
    return out.astype(np.float32)


def rhythm_meta() -> dict[str, Any]:
    """Names, units and the local window of the rhythm features, as stored in Beats.meta["rhythm_features"]."""
    return {"names": list(RHYTHM_NAMES), "units": [unit for _, unit in RHYTHM_FEATURES],
            "local_rr_intervals": LOCAL_RR_INTERVALS,
            "edges": "first beat: pre-RR = its post-RR; last beat: post-RR = its pre-RR"}
