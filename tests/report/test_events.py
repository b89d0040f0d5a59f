"""Rhythm events and the summary's numbers on hand-made beat sequences, with the exact times expected.

Beats are 0.75 s apart unless a test says otherwise (0.75 is exact in binary, so times compare exactly): beat i
is at 0.75 * i seconds.
"""
from __future__ import annotations

import numpy as np
import pytest

from ecglib.report.events import (
    BIGEMINY,
    COUPLET,
    DEFINITIONS,
    EVENT_KINDS,
    PAUSE,
    SVT,
    TRIGEMINY,
    VT,
    Event,
    class_letters,
    ectopy_per_hour,
    find_events,
    format_clock,
    heart_rate,
    merge_intervals,
    summarize_record,
)

RR = 0.75


def beats(pattern: str, rr: float = RR) -> tuple[np.ndarray, np.ndarray]:
    """'NNVVN' -> beat times 0, 0.75, 1.5, ... and their classes."""
    return np.arange(len(pattern)) * rr, np.array(list(pattern))


def at(i: int) -> float:
    return i * RR


# ----------------------------------------------------------------------------------------------- V beats
def test_a_couplet_is_two_consecutive_v_beats():
    assert find_events(*beats("NNNVVNNN")) == [Event(COUPLET, at(3), at(4), 2)]


def test_a_triplet_is_the_shortest_vt_run():
    events = find_events(*beats("NNVVVNN"))
    assert events == [Event(VT, at(2), at(4), 3)]
    assert events[0].describe() == "triplet (VT run of 3 beats)"
    summary = summarize_record(*beats("NNVVVNN"), seconds=6.0)
    assert summary.events[VT] == 1 and summary.triplets == 1 and summary.events[COUPLET] == 0


def test_a_five_beat_v_run_is_one_vt_run_with_its_rate():
    # N at 0.8 s intervals, then five V beats 0.4 s apart (150 bpm), then N again.
    times = np.array([0.0, 0.8, 1.6, 2.0, 2.4, 2.8, 3.2, 4.4, 5.2])
    classes = np.array(list("NNVVVVVNN"))
    assert find_events(times, classes) == [Event(VT, 1.6, 3.2, 5)]
    (run,) = find_events(times, classes)
    assert run.rate == pytest.approx(150.0)
    assert run.duration == pytest.approx(1.6)
    assert run.describe() == "VT run, 5 beats"


def test_isolated_v_beats_and_runs_broken_by_other_classes_are_not_runs():
    assert find_events(*beats("NVNNVNFVNNVN")) == []
    # an unclassified beat ('?', label -1) breaks a run: VV?V is a couplet and an isolated V
    assert find_events(*beats("NVV?VN")) == [Event(COUPLET, at(1), at(2), 2)]
    assert find_events(*beats("NVVFVVN")) == [Event(COUPLET, at(1), at(2), 2), Event(COUPLET, at(4), at(5), 2)]


# ---------------------------------------------------------------------------------------------- patterns
def test_bigeminy_of_four_cycles():
    events = find_events(*beats("NNNVNVNVNVNN"))
    assert events == [Event(BIGEMINY, at(2), at(9), 8)]
    assert events[0].describe() == "bigeminy, 4 cycles"


def test_bigeminy_needs_three_cycles_of_single_v_beats():
    assert find_events(*beats("NNVNVNN")) == []  # two cycles
    # the third cycle's V starts a couplet: two single-V cycles and a couplet, no bigeminy
    assert find_events(*beats("NVNVNVVNN")) == [Event(COUPLET, at(5), at(6), 2)]
    # S beats are not the N of a cycle
    assert find_events(*beats("SVSVSVN")) == []


def test_trigeminy_of_three_cycles_after_a_bigeminy():
    events = find_events(*beats("NVNVNVNNVNNVNNVN"))
    assert events == [Event(BIGEMINY, at(0), at(5), 6), Event(TRIGEMINY, at(6), at(14), 9)]
    assert events[1].describe() == "trigeminy, 3 cycles"
    assert find_events(*beats("NNVNNVNN")) == []  # two cycles


# ------------------------------------------------------------------------------------------------ S beats
def test_svt_runs_are_three_or_more_s_beats():
    events = find_events(*beats("NSSSNNSSSSSNSSN"))
    assert events == [Event(SVT, at(1), at(3), 3), Event(SVT, at(6), at(10), 5)]
    assert [e.describe() for e in events] == ["SVT run, 3 beats", "SVT run, 5 beats"]


# ------------------------------------------------------------------------------------------------- pauses
def test_a_pause_is_an_rr_interval_longer_than_two_seconds():
    times = np.array([0.0, 0.75, 1.5, 4.0, 4.75, 6.75, 7.5])  # RR 2.5 s after 1.5; exactly 2 s after 4.75
    events = find_events(times, np.array(list("NNNNNNN")))
    assert events == [Event(PAUSE, 1.5, 4.0, 2)]
    assert events[0].duration == 2.5 and events[0].describe() == "pause of 2.5 s"


def test_events_come_in_time_order_with_every_kind():
    pattern = "NNVVNN" + "NVNVNV" + "NNSSSN" + "NNVVVVVNN" + "NNVNNVNNVN"
    times, classes = beats(pattern)
    times[-1] += 3.0  # the last RR interval becomes a 3.75 s pause
    events = find_events(times, classes)
    assert [e.kind for e in events] == [COUPLET, BIGEMINY, SVT, VT, TRIGEMINY, PAUSE]
    assert [e.start for e in events] == [at(2), at(6), at(14), at(20), at(27), at(35)]  # a pause: the beat before it
    assert [e.start for e in events] == sorted(e.start for e in events)
    assert set(EVENT_KINDS) == {COUPLET, BIGEMINY, SVT, VT, TRIGEMINY, PAUSE}
    assert set(EVENT_KINDS) <= set(DEFINITIONS)  # every kind is defined in the report's footer


# -------------------------------------------------------------------------------------------------- noise
def test_events_overlapping_noise_are_not_reported():
    times, classes = beats("NNVVNNNNNSSSNN")
    noise = [(at(2) + 0.1, at(3) - 0.1)]  # inside the couplet
    assert find_events(times, classes, noise) == [Event(SVT, at(9), at(11), 3)]
    # a gap under noise is not a pause
    times = np.array([0.0, 0.75, 1.5, 5.0, 5.75])
    assert find_events(times, np.array(list("NNNNN")), [(2.0, 4.0)]) == []
    assert find_events(times, np.array(list("NNNNN")), [(6.0, 7.0)]) == [Event(PAUSE, 1.5, 5.0, 2)]


def test_noise_intervals_merge_and_are_clipped_to_the_record():
    assert merge_intervals([(5, 6), (1, 2), (1.5, 3), (3, 4), (7, 7)]) == [(1.0, 4.0), (5.0, 6.0)]
    times, classes = beats("N" * 20)
    summary = summarize_record(times, classes, seconds=15.0, noise=[(-1.0, 1.0), (14.0, 20.0), (0.5, 2.0)])
    assert summary.noise_seconds == pytest.approx(2.0 + 1.0)


# --------------------------------------------------------------------------------------------- heart rate
def test_heart_rate_over_ten_rr_intervals_with_its_minimum_and_maximum():
    # 30 beats at 0.75 s (80 bpm), then 30 at 0.5 s (120 bpm)
    rr = np.r_[np.full(30, 0.75), np.full(30, 0.5)]
    times = np.r_[0.0, np.cumsum(rr)]
    classes = np.array(["N"] * len(times))
    t, hr = heart_rate(times)
    assert len(t) == len(times) - 10 and t[0] == times[10]
    assert hr[0] == pytest.approx(80.0) and hr[-1] == pytest.approx(120.0)
    s = summarize_record(times, classes, seconds=float(times[-1]) + 0.5)
    assert s.min_hr == (pytest.approx(80.0), times[10])  # the first window of 10 slow intervals
    assert s.max_hr == (pytest.approx(120.0), times[40])  # the first window of 10 fast ones
    assert s.mean_hr == pytest.approx(60.0 * 60 / rr.sum())  # 60 / mean RR
    # RR intervals overlapping noise leave the mean and every window that holds them
    noisy = summarize_record(times, classes, seconds=float(times[-1]) + 0.5, noise=[(times[35], times[36])])
    assert noisy.mean_hr == pytest.approx(60.0 * 59 / (rr.sum() - 0.5))
    t_noisy, _ = heart_rate(times, [(times[35], times[36])])
    assert not np.any((t_noisy > times[35]) & (t_noisy < times[46]))  # windows ending at beats 36..45 hold it
    assert len(t_noisy) == len(t) - 10


def test_too_few_beats_give_no_heart_rate():
    s = summarize_record(*beats("NNN"), seconds=3.0)
    assert s.min_hr is None and s.max_hr is None and s.mean_hr == pytest.approx(80.0)
    s = summarize_record(np.zeros(0), np.zeros(0, dtype=str), seconds=3.0)
    assert s.mean_hr is None and s.beats == 0 and s.s_burden is None


# ------------------------------------------------------------------------------------------ burden, counts
def test_burden_counts_the_classified_beats_only():
    classes = class_letters(np.array([0, 0, 0, 0, 0, 0, 1, 2, 2, 3, -1]))
    assert "".join(classes) == "NNNNNNSVVF?"
    s = summarize_record(np.arange(11) * RR, classes, seconds=9.0)
    assert s.counts == {"N": 6, "S": 1, "V": 2, "F": 1, "Q": 0, "?": 1} and s.beats == 11
    assert s.s_burden == pytest.approx(10.0) and s.v_burden == pytest.approx(20.0)


def test_uncertain_beats_from_probabilities():
    prob = np.array([[0.9, 0.1, 0, 0, 0], [0.45, 0.4, 0.15, 0, 0], [0.2, 0.3, 0.4, 0.1, 0]])
    s = summarize_record(*beats("NNV"), seconds=3.0, prob=prob)
    assert s.uncertain == {"N": 1, "S": 0, "V": 1, "F": 0, "Q": 0}
    with pytest.raises(ValueError, match="probabilities"):
        summarize_record(*beats("NNV"), seconds=3.0, prob=prob[:2])


def test_ectopy_per_hour_in_bins_with_a_partial_last_bin():
    times = np.array([10.0, 20.0, 70.0, 130.0, 140.0, 150.0])
    classes = np.array(list("SVVVVS"))
    starts, rates = ectopy_per_hour(times, classes, seconds=150.5, bin_seconds=60.0)
    assert list(starts) == [0.0, 60.0, 120.0]
    assert rates["S"][:2] == pytest.approx([60.0, 0.0]) and rates["V"][:2] == pytest.approx([60.0, 60.0])
    assert rates["V"][2] == pytest.approx(2 * 3600 / 30.5)  # two V beats in the last 30.5 s
    # a last bin shorter than half a bin joins the one before: 150.5 s in 100-s bins is one of 100 s, one of 50.5
    starts, rates = ectopy_per_hour(times, classes, seconds=150.5, bin_seconds=100.0)
    assert list(starts) == [0.0, 100.0] and rates["V"] == pytest.approx([2 * 36, 2 * 3600 / 50.5])
    starts, rates = ectopy_per_hour(times, classes, seconds=160.0, bin_seconds=150.0)
    assert list(starts) == [0.0] and rates["S"] == pytest.approx([2 * 3600 / 160])


def test_format_clock():
    assert [format_clock(s) for s in (0, 59.99, 61, 3661.9, 86399)] == \
        ["00:00:00", "00:00:59", "00:01:01", "01:01:01", "23:59:59"]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="increasing"):
        find_events(np.array([0.0, 2.0, 1.0]), np.array(list("NNN")))
    with pytest.raises(ValueError, match="classes"):
        find_events(np.array([0.0, 1.0]), np.array(list("NNN")))
