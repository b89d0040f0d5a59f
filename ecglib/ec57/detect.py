"""R-peak detectors behind one registry: ``DETECTORS[name](signal (T,), fs) -> R-peak samples`` of one lead.

:func:`detect_r_peaks` runs one by name and returns sorted unique samples moved, by default, to the fiducial point
of MIT-BIH's reference annotations, where training cut its beats (:func:`ecglib.ec57.rpeaks.align_peaks`: the
dominant extremum of the 5-20 Hz band-passed lead within +-60 ms), so that a beat is classified the same whoever
found it. Registered:

- ``ecglib`` (the default): ecglib's own detector (:func:`ecglib.ec57.rpeaks.detect_ecglib`; its design, and why,
  are in that module). On the 48 MIT-BIH records by bxb's rules it has the best +P of all and Se within 0.15
  points of the best, at 360, 250 and 128 Hz, and it holds in noise (docs/detection.md);
- ``adaptive``: its first pass alone (Hamilton & Tompkins' decision rules), for comparison;
- ``xqrs`` and ``gqrs``: wfdb's (XQRS with the O(n) :func:`find_local_peaks` swapped in, identical peaks);
- ``neurokit`` (neurokit2's default method on the raw lead) and ``nk-METHOD`` for neurokit2's published methods,
  each on the lead cleaned by ``nk.ecg_clean`` as neurokit2's ecg_process does (the ``detectors`` extra).

Long recordings are detected in chunks by :func:`ecglib.ec57.annotate.detect_and_find_noise` (and
:func:`ecglib.ec57.annotate.detect_peaks`), which call :func:`detect_with_feature` per chunk: the peaks and, from
ecglib's detector, the QRS feature that the quality check would otherwise compute again.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import InputError
from ..extras import require_extra
from .rpeaks import Detection, align_peaks, detect_adaptive, detect_ecglib, ecglib_detection, prepare


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


def _neurokit():  # noqa: ANN202 - the neurokit2 module
    require_extra("detectors", "the neurokit detectors")
    import neurokit2 as nk

    return nk


def _detect_neurokit(signal: np.ndarray, fs: float) -> np.ndarray:
    """neurokit2's default method on the raw lead."""
    _, info = _neurokit().ecg_peaks(signal, sampling_rate=fs, method="neurokit")
    return np.asarray(info["ECG_R_Peaks"])


# neurokit2's methods with a cleaning step of their own in nk.ecg_clean; the others get its default.
_NK_CLEANING = ("neurokit", "pantompkins1985", "hamilton2002", "elgendi2010", "engzeemod2012")
# The methods registered: neurokit2 0.3's that run without further packages and find beats on MIT-BIH (gamboa2008
# finds twice as many peaks as there are beats, emrich2023 needs ts2vg, promac runs all of them).
NEUROKIT_METHODS: tuple[str, ...] = ("neurokit", "pantompkins1985", "hamilton2002", "elgendi2010", "engzeemod2012",
                                     "christov2004", "kalidas2017", "rodrigues2021", "nabian2018", "zong2003",
                                     "martinez2004", "manikandan2012", "khamis2016")


def neurokit_detector(method: str) -> Callable[[np.ndarray, float], np.ndarray]:
    """A detector running neurokit2's ``method`` on the lead cleaned by nk.ecg_clean (the method's own cleaning
    where neurokit2 has one, else its default), as neurokit2's ecg_process does."""

    def detect(signal: np.ndarray, fs: float) -> np.ndarray:
        nk = _neurokit()
        clean = nk.ecg_clean(signal, sampling_rate=fs, method=method if method in _NK_CLEANING else "neurokit")
        _, info = nk.ecg_peaks(clean, sampling_rate=fs, method=method)
        return np.asarray(info["ECG_R_Peaks"])

    detect.__name__ = f"detect_nk_{method}"
    return detect


# name -> function(signal (T,), fs) -> R-peak samples. "reference" is not here: it reads the record's atr.
DETECTORS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "ecglib": detect_ecglib,
    "adaptive": detect_adaptive,
    "xqrs": _detect_xqrs,
    "gqrs": _detect_gqrs,
    "neurokit": _detect_neurokit,
    **{f"nk-{m}": neurokit_detector(m) for m in NEUROKIT_METHODS},
}


DETECTOR_CHOICES: tuple[str, ...] = (*DETECTORS, "reference")


DEFAULT_DETECTOR = "ecglib"

# Registered detectors that also hand over what they computed on the way (the band-passed lead that alignment
# filters again, the QRS feature that the quality check computes again), by the function registered.
DETECTIONS: dict[Callable[[np.ndarray, float], np.ndarray], Callable[[np.ndarray, float], Detection]] = {
    detect_ecglib: ecglib_detection,
}


def detect_r_peaks(signal: np.ndarray, fs: float, detector: str = DEFAULT_DETECTOR, align: bool = True
                   ) -> np.ndarray:
    """R-peak samples (k,) int64, sorted and unique, of one lead (T,) at ``fs`` Hz found by ``detector`` and, with
    ``align``, moved to the fiducial point training used (:func:`ecglib.ec57.rpeaks.align_peaks`)."""
    return detect_with_feature(signal, fs, detector, align)[0]


def detect_with_feature(signal: np.ndarray, fs: float, detector: str = DEFAULT_DETECTOR, align: bool = True
                        ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`detect_r_peaks`'s peaks and the lead's QRS feature (n,) (:func:`ecglib.ec57.rpeaks.qrs_feature`'s,
    for :func:`ecglib.ec57.quality.assess`) where the detector computed it from these very samples (ecglib's
    detector on a lead without invalid samples), else None."""
    if detector not in DETECTORS:
        raise InputError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTOR_CHOICES)}")
    raw = np.asarray(signal, dtype=np.float64)
    x, fs = prepare(raw, fs)
    detection = DETECTIONS.get(DETECTORS[detector])
    if detection is not None:
        found = detection(x, fs)
        peaks, aligned = found.peaks, found.aligned
        feature = found.feature if x is raw else None  # x is a bridged copy where raw had invalid samples
    else:
        peaks, aligned, feature = np.asarray(DETECTORS[detector](x, fs), dtype=np.int64), None, None
    peaks = np.unique(peaks[(peaks >= 0) & (peaks < len(x))])
    return (align_peaks(x, fs, peaks, filtered=aligned) if align else peaks), feature
