"""Intervals over the test set of runs trained once: the cluster bootstrap of accuracy and of paired differences."""
from __future__ import annotations

import numpy as np
import pytest

from ecglib.experiments.stats import bootstrap_accuracy


def test_point_estimates_are_the_accuracies_and_their_intervals_hold_them():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 1000)
    a = np.where(rng.random(1000) < 0.9, y, (y + 1) % 5)
    b = np.where(rng.random(1000) < 0.8, y, (y + 2) % 5)
    t = bootstrap_accuracy(y, {"A": a, "B": b}, n_boot=500)
    assert list(t.index) == ["A", "B", "B - A"] and list(t["kind"]) == ["accuracy", "accuracy", "difference"]
    assert t.loc["A", "estimate"] == pytest.approx(np.mean(a == y))
    assert t.loc["B - A", "estimate"] == pytest.approx(np.mean(b == y) - np.mean(a == y))
    assert (t["ci_low"] <= t["estimate"]).all() and (t["estimate"] <= t["ci_high"]).all()
    assert (t["beats"] == 1000).all() and (t["groups"] == 1000).all()  # no records: beats are the units
    # the binomial standard error of 0.9 on 1,000 beats is about 0.0095: a 95 % interval about 3.7 points wide
    assert t.loc["A", "ci_high"] - t.loc["A", "ci_low"] == pytest.approx(0.037, abs=0.008)


def test_resampling_whole_records_widens_the_interval_when_errors_cluster_in_records():
    # 20 records of 100 beats; all errors sit in 4 records: the records, not the beats, are the independent units
    y = np.zeros(2000, dtype=int)
    records = np.repeat(np.arange(20), 100)
    pred = np.where(np.isin(records, [0, 1, 2, 3]), 1, 0)
    by_beat = bootstrap_accuracy(y, {"A": pred}, n_boot=1000)
    by_record = bootstrap_accuracy(y, {"A": pred}, groups=records, n_boot=1000)
    assert by_beat.loc["A", "estimate"] == by_record.loc["A", "estimate"] == pytest.approx(0.8)
    assert by_record.loc["A", "groups"] == 20
    width = lambda t: t.loc["A", "ci_high"] - t.loc["A", "ci_low"]  # noqa: E731
    assert width(by_record) > 3 * width(by_beat)


def test_differences_are_paired_on_the_same_resamples():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 5, 500)
    a = np.where(rng.random(500) < 0.7, y, (y + 1) % 5)
    same = bootstrap_accuracy(y, {"A": a, "A again": a.copy()}, n_boot=300)
    assert tuple(same.loc["A again - A", ["estimate", "ci_low", "ci_high"]]) == (0.0, 0.0, 0.0)
    # B right wherever A is, and on a few more beats: every resample sees B ahead
    b = np.where(rng.random(500) < 0.3, y, a)
    ahead = bootstrap_accuracy(y, {"A": a, "B": b}, n_boot=300)
    assert ahead.loc["B - A", "ci_low"] > 0


def test_same_seed_same_interval_and_bad_input_is_refused():
    y = np.array([0, 1, 1, 0, 2, 2, 0, 1])
    p = np.array([0, 1, 0, 0, 2, 1, 0, 1])
    assert bootstrap_accuracy(y, {"A": p}, seed=3).equals(bootstrap_accuracy(y, {"A": p}, seed=3))
    with pytest.raises(ValueError, match="same, non-zero number"):
        bootstrap_accuracy(y, {"A": p[:-1]})
    with pytest.raises(ValueError, match="groups"):
        bootstrap_accuracy(y, {"A": p}, groups=np.zeros(3))
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_accuracy(y, {})
