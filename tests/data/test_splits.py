"""Intra- and inter-patient splits, patient-wise validation and fixed validation records."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    DS1_RECORDS,
    DS2_RECORDS,
    PACED,
)

from ecglib.data.beats import Beats
from ecglib.data.facts import (
    BEAT_LENGTH,
    CLASSES,
    DS1,
    DS2,
    PACED_RECORDS,
)
from ecglib.data.splits import limit_beats, split_beats, split_records
from ecglib.errors import InputError


# --------------------------------------------------------------------------------------------------------- splits
def _toy_beats(counts: dict[int, int], records: np.ndarray | None = None) -> Beats:
    y = np.concatenate([np.full(n, c) for c, n in counts.items()]).astype(np.int64)
    n = len(y)
    rng = np.random.default_rng(0)
    y = y[rng.permutation(n)]
    record = records if records is not None else np.full(n, "toy")
    return Beats(rng.random((n, BEAT_LENGTH)).astype(np.float32), y, record.astype(str), np.arange(n),
                 np.asarray(CLASSES)[y], {"source": "toy"})


def _records_beats(spec: dict[str, dict[int, int]]) -> Beats:
    y = np.concatenate([np.full(n, c) for counts in spec.values() for c, n in counts.items()]).astype(np.int64)
    rec = np.concatenate([np.full(sum(counts.values()), r) for r, counts in spec.items()])
    n = len(y)
    return Beats(np.zeros((n, BEAT_LENGTH), np.float32), y, rec.astype(str), np.arange(n),
                      np.asarray(CLASSES)[y], {"source": "toy"})


def test_intra_split_is_stratified_80_20_with_val_from_train():
    counts = {0: 700, 1: 100, 2: 100, 3: 50, 4: 50}
    beats = _toy_beats(counts)
    split = split_beats(beats, "intra", test_fraction=0.2, val_fraction=0.1, seed=0)
    assert split.protocol == "intra"
    assert split.sizes() == {"train": 720, "val": 80, "test": 200}
    parts = [set(split.train), set(split.val), set(split.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == set(range(len(beats)))
    # stratified: each class keeps its share in test, in val and in train
    for c, n in counts.items():
        assert (beats.y[split.test] == c).sum() == n // 5
        assert (beats.y[split.val] == c).sum() == n * 4 // 5 // 10
    # deterministic for a seed, different for another
    again = split_beats(beats, "intra", seed=0)
    np.testing.assert_array_equal(again.test, split.test)
    assert not np.array_equal(split_beats(beats, "intra", seed=1).test, split.test)
    # no validation part when asked for none
    assert len(split_beats(beats, "intra", val_fraction=0.0).val) == 0


def test_intra_split_on_records(synthetic_beats):
    split = split_beats(synthetic_beats, "intra")
    n = len(synthetic_beats)
    assert len(set(split.train) | set(split.val) | set(split.test)) == n
    assert len(split.train) + len(split.val) + len(split.test) == n
    assert abs(len(split.test) - 0.2 * n) <= 1


def test_inter_split_follows_de_chazal(synthetic_beats):
    split = split_beats(synthetic_beats, "inter")
    rec = synthetic_beats.record
    train_records = set(rec[split.train]) | set(rec[split.val])
    assert train_records <= set(DS1) and train_records == set(DS1_RECORDS)
    assert set(rec[split.test]) <= set(DS2) and set(rec[split.test]) == set(DS2_RECORDS)
    used = np.concatenate([split.train, split.val, split.test])
    assert not np.isin(rec[used], PACED).any()
    assert len(used) == len(set(used.tolist())) == int(np.isin(rec, DS1 + DS2).sum())
    # validation comes from DS1 beats only
    assert set(rec[split.val]) <= set(DS1)


def test_split_errors(synthetic_beats):
    with pytest.raises(InputError, match="unknown split"):
        split_beats(synthetic_beats, "kfold")
    toy = _toy_beats({0: 30, 1: 30})
    with pytest.raises(InputError, match="DS1"):
        split_beats(toy, "inter")


def test_limit_beats_is_stratified(synthetic_beats):
    small = limit_beats(synthetic_beats, 100, seed=0)
    assert len(small) == 100
    assert limit_beats(synthetic_beats, None) is synthetic_beats
    assert limit_beats(synthetic_beats, 10**6) is synthetic_beats
    full = synthetic_beats.class_counts()
    for c, n in small.class_counts().items():
        assert abs(n - 100 * full[c] / len(synthetic_beats)) <= 1.5


@pytest.mark.realdata
def test_real_mitdb_splits(real_beats):
    intra = split_beats(real_beats, "intra")
    assert abs(len(intra.train) + len(intra.val) - 87_554) <= 0.01 * 87_554
    assert abs(len(intra.test) - 21_892) <= 0.01 * 21_892
    inter = split_beats(real_beats, "inter")
    rec = real_beats.record
    assert set(rec[inter.train]) | set(rec[inter.val]) == set(DS1)
    assert set(rec[inter.test]) == set(DS2)
    used = np.concatenate([inter.train, inter.val, inter.test])
    assert not np.isin(rec[used], PACED_RECORDS).any()
    assert len(used) + int(np.isin(rec, PACED_RECORDS).sum()) == len(real_beats)


def test_val_records_are_the_validation(synthetic_beats):
    fold = list(DS1_RECORDS[:2])
    for seed in (0, 1):
        split = split_beats(synthetic_beats, "inter", seed=seed, val_records=fold)
        parts = split_records(synthetic_beats, split)
        assert parts["val_records"] == sorted(fold)
        assert set(parts["train_records"]) == set(DS1_RECORDS) - set(fold)
        assert not set(parts["test_records"]) & set(DS1_RECORDS)
        assert len(split.train) + len(split.val) == np.isin(synthetic_beats.record, DS1).sum()
    # The test beats do not depend on the validation.
    np.testing.assert_array_equal(split.test, split_beats(synthetic_beats, "inter").test)


def test_val_records_errors(synthetic_beats):
    with pytest.raises(InputError, match="--val-records: 100 is not among the training records"):
        split_beats(synthetic_beats, "inter", val_records=["100"])  # a DS2 record
    with pytest.raises(InputError, match="intra split draws random beats"):
        split_beats(synthetic_beats, "intra", val_records=[DS1_RECORDS[0]])
    with pytest.raises(InputError, match="every training record is held out"):
        split_beats(synthetic_beats, "inter", val_records=list(DS1_RECORDS))


# ------------------------------------------------------------------------------------------------------- splits
def test_inter_validation_is_patient_wise(synthetic_beats):
    for seed in (0, 1):
        split = split_beats(synthetic_beats, "inter", seed=seed)
        parts = split_records(synthetic_beats, split)
        train_r, val_r, test_r = (set(parts[f"{p}_records"]) for p in ("train", "val", "test"))
        assert val_r and train_r and test_r
        assert not (train_r & val_r) and not (train_r & test_r) and not (val_r & test_r)
        assert train_r | val_r == set(DS1_RECORDS)


def test_inter_validation_holds_s_and_v_without_starving_training():
    # Ten DS1 records of 100 beats: S beats only in 101 and 106, V only in 108 and 109; 208 holds all F beats.
    ds1 = DS1[:10]
    spec = {r: {0: 100} for r in ds1}
    spec["101"], spec["106"] = {0: 80, 1: 20}, {0: 70, 1: 30}
    spec["108"], spec["109"] = {0: 60, 2: 40}, {0: 50, 2: 50}
    spec["208"] = {0: 40, 3: 60}
    spec["100"] = {0: 100}  # DS2
    beats = _records_beats(spec)
    for seed in range(3):
        split = split_beats(beats, "inter", val_fraction=0.2, seed=seed)
        val_records = set(beats.record[split.val])
        assert val_records & {"101", "106"} and val_records & {"108", "109"}, val_records
        assert "208" not in val_records
        for c in (1, 2):  # each of S and V also stays in training
            assert (beats.y[split.train] == c).any()
        assert set(beats.record[split.test]) == {"100"}
