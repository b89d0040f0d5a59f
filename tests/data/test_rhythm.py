"""Rhythm features: RR intervals and ratios computed by hand, at a record's edges, and through records and npz files."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import DS1_RECORDS, K, col

from ecglib.data.beats import Beats, load_npz, save_npz
from ecglib.data.facts import AAMI, CLASSES, RHYTHM_NAMES
from ecglib.data.rhythm import rhythm_features
from ecglib.errors import InputError

# ----------------------------------------------------------------------------------------------- rhythm features
# 13 beats at 250 Hz. RR intervals (s): 2 at both ends, a premature beat (beat 6: pre-RR 0.5) followed by a
# compensatory pause (post-RR 1.5), 1 elsewhere.
RR = [2.0, 1.0, 1.0, 1.0, 1.0, 0.5, 1.5, 1.0, 1.0, 1.0, 1.0, 2.0]


SAMPLES = np.concatenate([[100], 100 + np.cumsum(np.array(RR) * 250)]).astype(np.int64)


def test_rhythm_features_of_a_hand_made_record():
    f = rhythm_features(SAMPLES, 250.0)
    assert f.shape == (13, K) and f.dtype == np.float32
    record = 14.0 / 12
    # The premature beat: its window of 10 intervals (5 before, 5 after) is RR[1:11], mean 1.0.
    expected6 = {"pre_rr": 0.5, "post_rr": 1.5, "local_rr": 1.0, "record_rr": record, "pre_over_local": 0.5,
                 "post_over_local": 1.5, "post_over_pre": 3.0, "pre_over_record": 0.5 / record,
                 "post_over_record": 1.5 / record, "local_over_record": 1.0 / record}
    # The beat after it: pre 1.5, post 1.0, window RR[2:12] = (7 * 1 + 0.5 + 1.5 + 2) / 10 = 1.1.
    expected7 = {"pre_rr": 1.5, "post_rr": 1.0, "local_rr": 1.1, "post_over_pre": 1.0 / 1.5}
    # First beat: no pre-RR, it copies its post-RR (2.0); window RR[0:5] = 6 / 5.
    expected0 = {"pre_rr": 2.0, "post_rr": 2.0, "local_rr": 1.2, "post_over_pre": 1.0, "pre_over_local": 2.0 / 1.2}
    # Last beat: no post-RR, it copies its pre-RR (2.0); window RR[7:12] = 6 / 5.
    expected12 = {"pre_rr": 2.0, "post_rr": 2.0, "local_rr": 1.2, "post_over_pre": 1.0,
                  "post_over_record": 2.0 / record}
    for beat, expected in ((6, expected6), (7, expected7), (0, expected0), (12, expected12)):
        for name, value in expected.items():
            assert f[beat, col(name)] == pytest.approx(value, rel=1e-6), (beat, name)
    assert np.all(f[:, col("record_rr")] == np.float32(record))


def test_local_irregularity_ignores_one_ectopic_beat_and_measures_an_irregular_rhythm():
    f = rhythm_features(SAMPLES, 250.0)[:, col("local_irregularity")]
    # The premature beat's window RR[1:11]: successive differences 0, 0, 0, 0.5, 1, 0.5, 0, 0, 0, median 0.
    assert f[6] == 0 and f[5] == 0 and f[7] == 0
    # Beat 3's window RR[0:8] (clipped at the start): differences 1, 0, 0, 0, 0.5, 1, 0.5, median 0.5; mean 9 / 8.
    assert f[3] == pytest.approx(0.5 / 1.125, rel=1e-6)
    # An irregular rhythm (atrial fibrillation-like): beat 4's window holds all 9 intervals, mean 8 / 9 s;
    # differences 0.4, 0.6, 0.4, 0.2, 0.5, 0.4, 0.4, 0.6, median 0.4.
    rr = [1.0, 0.6, 1.2, 0.8, 1.0, 0.5, 0.9, 1.3, 0.7]
    af = rhythm_features(np.concatenate([[0], np.cumsum(np.array(rr) * 250)]).astype(np.int64), 250.0)
    assert af[4, col("local_irregularity")] == pytest.approx(0.4 / (8.0 / 9), rel=1e-6)
    assert (af[:, col("local_irregularity")] > 0.3).all()
    # Two beats: one interval, no pair of successive ones.
    assert rhythm_features(np.array([0, 100]), 250.0)[:, col("local_irregularity")].tolist() == [0, 0]


def test_rhythm_features_window_and_errors():
    # A window of 2 intervals: the mean of the beat's own pre- and post-RR.
    f = rhythm_features(np.array([0, 360, 720, 936, 1440]), 360.0, local_intervals=2)
    np.testing.assert_allclose(f[:, col("local_rr")], [1.0, 1.0, 0.8, 1.0, 1.4], rtol=1e-6)
    # A window of one interval: the post-RR, and at the last beat (none after it) its pre-RR.
    f = rhythm_features(np.array([0, 360, 720, 936, 1440]), 360.0, local_intervals=1)
    np.testing.assert_allclose(f[:, col("local_rr")], [1.0, 1.0, 0.6, 1.4, 1.4], rtol=1e-6)
    with pytest.raises(ValueError, match="at least two beats"):
        rhythm_features(np.array([5]), 360.0)
    with pytest.raises(ValueError, match="do not increase"):
        rhythm_features(np.array([0, 360, 360, 720]), 360.0)


def test_records_carry_rhythm_from_all_annotations(synthetic_records, synthetic_beats):
    import wfdb

    beats = synthetic_beats
    assert beats.rhythm is not None and beats.rhythm.shape == (len(beats), K)
    assert beats.meta["rhythm_features"]["names"] == list(RHYTHM_NAMES)
    assert beats.meta["rhythm_features"]["units"][:4] == ["s"] * 4
    name = DS1_RECORDS[0]
    ann = wfdb.rdann(str(synthetic_records / name), "atr")
    keep = np.isin(ann.symbol, list(AAMI))
    all_samples = np.asarray(ann.sample)[keep]
    mine = beats.record == name
    expected = rhythm_features(all_samples, ann.fs)[np.searchsorted(all_samples, beats.sample[mine])]
    np.testing.assert_array_equal(beats.rhythm[mine], expected)
    # Beats running past the record's end are dropped, but the last kept beat's post-RR is still its true one.
    last = beats.sample[mine].max()
    after = all_samples[all_samples > last]
    if len(after):
        got = beats.rhythm[mine][beats.sample[mine] == last][0, col("post_rr")]
        assert got == pytest.approx((after[0] - last) / ann.fs, rel=1e-6)


def test_synthetic_rhythm_is_realistic(synthetic_beats):
    """Premature S beats with a shortened RR; V beats premature with a compensatory pause (pre + post ~ 2 RR)."""
    r, y = synthetic_beats.rhythm, synthetic_beats.y
    med = {c: np.median(r[y == CLASSES.index(c)], axis=0) for c in ("N", "S", "V")}
    assert 0.95 < med["N"][col("pre_over_local")] < 1.05
    assert med["S"][col("pre_over_local")] < 0.85
    assert med["V"][col("pre_over_local")] < 0.8 and med["V"][col("post_over_pre")] > 1.5
    v = r[y == CLASSES.index("V")]
    pair = (v[:, col("pre_rr")] + v[:, col("post_rr")]) / v[:, col("local_rr")]
    assert 1.8 < np.median(pair) < 2.2


def test_npz_round_trip_with_rhythm(tmp_path, synthetic_beats):
    path = tmp_path / "beats.npz"
    save_npz(synthetic_beats, path)
    back = load_npz(path)
    np.testing.assert_array_equal(back.rhythm, synthetic_beats.rhythm)
    assert back.meta["rhythm_features"] == synthetic_beats.meta["rhythm_features"]
    sub = back.subset(np.arange(5))
    np.testing.assert_array_equal(sub.rhythm, synthetic_beats.rhythm[:5])
    for bad, match in ((np.full((len(back), K), np.nan, np.float32), "non-finite rhythm"),
                       (np.zeros((len(back), K - 1), np.float32), "rhythm features have shape")):
        broken = Beats(back.x, back.y, back.record, back.sample, back.symbol, back.meta, bad)
        save_npz(broken, tmp_path / "bad.npz")
        with pytest.raises(InputError, match=match):
            load_npz(tmp_path / "bad.npz")
