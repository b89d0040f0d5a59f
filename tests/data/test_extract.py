"""Beats cut a block of windows at a time are the beats cut in one piece, at any sampling rate."""
from __future__ import annotations

import numpy as np
import pytest
import wfdb
from scipy.signal import resample_poly

from ecglib.data.extract import extract_beats, resampled_span
from ecglib.data.records import read_lead


@pytest.mark.parametrize("fs", [360, 250, 128, 125, 500])
def test_blocks_give_the_beats_of_one_piece(fs, synthetic_records):
    signal, native, _ = read_lead(synthetic_records / "208")
    peaks = wfdb.rdann(str(synthetic_records / "208"), "atr").sample
    if fs != native:
        g = np.gcd(int(native), fs)
        signal = resample_poly(signal, fs // g, int(native) // g)
        peaks = np.unique(np.round(peaks * fs / native).astype(np.int64))
        peaks = peaks[peaks < len(signal)]
    whole, kept = extract_beats(signal, fs, peaks, block_windows=10**6)
    assert len(kept) > 20
    for block in (1, 2):
        x, k = extract_beats(signal, fs, peaks, block_windows=block)
        np.testing.assert_array_equal(k, kept)
        np.testing.assert_array_equal(x, whole)


def test_a_span_of_the_resampled_lead_is_that_of_the_whole_lead():
    rng = np.random.default_rng(0)
    x = rng.normal(size=360 * 95).cumsum()
    whole = resample_poly(x, 25, 72)
    for start in (0, 1250, 5000, 10000):
        np.testing.assert_array_equal(resampled_span(x, 360.0, start, start + 2000), whole[start:start + 2000])


def test_peaks_out_of_time_order_are_refused():
    with pytest.raises(ValueError, match="out of time order"):
        extract_beats(np.zeros(3600), 360.0, np.array([1000, 500]))
