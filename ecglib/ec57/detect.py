"""R-peak detectors behind one registry: name -> function(signal (T,), fs) -> R-peak samples."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import InputError
from ..extras import require_extra


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
    require_extra("detectors", "the neurokit detector")
    import neurokit2 as nk

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
