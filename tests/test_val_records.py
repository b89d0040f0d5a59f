"""Named validation records for the inter split (--val-records): folds of whole DS1 records, the same for every
seed, on which model choices are compared."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DS1_RECORDS, assert_one_line_error, run_args, run_main

from ecglib.data.facts import DS1
from ecglib.data.splits import split_beats, split_records
from ecglib.errors import InputError


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


def test_cli_val_records(tmp_path, capsys, synthetic_records):
    npz = tmp_path / "beats.npz"
    assert run_main(capsys, "prepare", "--source", "mitdb", "--mitdb-dir", synthetic_records, "--no-download",
                    "--out", npz).rc == 0
    common = ("train", "--model", "resnet", "--data", npz, "--split", "inter", "--width", "8", "--blocks", "1",
              "--epochs", "1", "--optimizer", "adam", "--lr", "3e-3", "--quiet")
    fold = f"{DS1_RECORDS[0]},{DS1_RECORDS[1]}"
    result = run_main(capsys, *common, "--val-records", fold, "--out", tmp_path / "run")
    assert result.rc == 0, result.stderr
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["split"]["val_records"] == sorted(fold.split(","))
    assert saved["config"]["data"]["val_records"] == fold.split(",")
    # Resuming with another fold is refused: the validation decides which epoch's weights are kept.
    result = run_main(capsys, *common, "--val-records", DS1_RECORDS[2], "--epochs", "2", "--out", tmp_path / "run")
    assert_one_line_error(result, "other data", "val_records")
    twice, empty = f"{DS1_RECORDS[0]},{DS1_RECORDS[0]}", f"{DS1_RECORDS[0]},,{DS1_RECORDS[1]}"
    for bad in (empty, twice, "232"):  # an empty name, a record twice, a DS2 record
        result = run_args(capsys, *common, "--val-records", bad, "--out", tmp_path / "bad")
        assert_one_line_error(result, "argument --val-records: must be distinct DS1 record names", f"not '{bad}'")
    assert not (tmp_path / "bad").exists()
