"""`ecglib train` and `ecglib evaluate`: runs written and evaluated again, every option recorded, bad input refused
in one line."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import (
    DS1_RECORDS,
    SYNTHETIC_ARGS,
    assert_one_line_error,
    bad_npz_files,
    kaggle_rows,
    run_args,
    run_main,
    run_metrics,
    train_then_evaluate,
    write_kaggle,
)

from ecglib.config import TrainConfig
from ecglib.data.beats import load_npz, save_npz
from ecglib.data.facts import CLASSES
from ecglib.data.splits import split_beats
from ecglib.training.run import run_training


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


def test_kaggle_with_rhythm_is_one_clear_error(tmp_path, capsys):
    folder = write_kaggle(tmp_path / "kaggle", kaggle_rows(40, 0), kaggle_rows(15, 1))
    result = run_main(capsys, "train", "--model", "resnet", "--source", "kaggle", "--kaggle-dir", folder,
                      "--features", "beat+rhythm", "--epochs", "1", "--out", tmp_path / "run")
    assert_one_line_error(result, "Kaggle", "rhythm", str(folder))
    assert not (tmp_path / "run").exists()


def test_cli_train_and_evaluate_with_rhythm(tmp_path, capsys, synthetic_records):
    saved, again = train_then_evaluate(capsys, tmp_path, synthetic_records, "--features", "beat+rhythm",
                                       "--class-weight", "balanced")
    npz = tmp_path / "beats.npz"
    assert again["features"] == "beat+rhythm"
    assert again["accuracy"] == pytest.approx(saved["accuracy"])
    # An npz without rhythm features cannot feed a rhythm model.
    plain = load_npz(npz)
    plain.rhythm = None
    save_npz(plain, tmp_path / "plain.npz")
    result = run_main(capsys, "train", "--model", "resnet", "--data", tmp_path / "plain.npz", "--features",
                      "beat+rhythm", "--epochs", "1", "--out", tmp_path / "run2")
    assert_one_line_error(result, "plain.npz", "no rhythm features")


@pytest.mark.parametrize("flag, value, message", [
    ("--morphology-dropout", "0.3", "morphology dropout 0.3 needs the rhythm input"),
    ("--synthetic-s", "0.02", "synthetic S beats (0.02) need the rhythm input")])
def test_cli_rhythm_options_without_the_rhythm_input(flag, value, message, tmp_path, capsys, synthetic_records):
    """Recorded and refused out of range with the other training options (test_template); here: without the
    rhythm input each is one line, and no run folder."""
    result = run_main(capsys, "train", "--model", "resnet", "--source", "mitdb", "--mitdb-dir", synthetic_records,
                      "--no-download", flag, value, "--out", tmp_path / "plain")
    assert_one_line_error(result, message, "--features beat+rhythm")
    assert not (tmp_path / "plain").exists()


def test_s_offset_trains_the_same_weights_and_moves_the_test_decisions(tmp_path, capsys, synthetic_records):
    """The offset changes what the run's model calls S, never what it learns: the same seed gives the same
    weights and training losses, and the offset run's test finds at least as many S beats."""
    runs_ = {}
    for b in ("0", "2"):
        saved, again = train_then_evaluate(capsys, tmp_path / b, synthetic_records, "--features", "beat+rhythm",
                                           "--s-offset", b)
        assert again["accuracy"] == pytest.approx(saved["accuracy"])  # evaluate decides with the saved offset
        runs_[b] = saved
    assert runs_["0"]["config"]["train"]["s_offset"] == 0 and "logit_offsets" not in runs_["0"]["config"]["model"]
    assert runs_["2"]["config"]["model"]["logit_offsets"] == [0.0, 2.0, 0.0, 0.0, 0.0]
    w0, w2 = (torch.load(tmp_path / b / "cli" / "best.pt", weights_only=False)["model"] for b in ("0", "2"))
    assert w0.keys() == w2.keys() and all(torch.equal(w0[k], w2[k]) for k in w0)
    h0, h2 = (np.genfromtxt(tmp_path / b / "cli" / "history.csv", delimiter=",", names=True) for b in ("0", "2"))
    np.testing.assert_array_equal(h0["train_loss"], h2["train_loss"])
    called_s = [np.asarray(runs_[b]["confusion_matrix"])[:, CLASSES.index("S")].sum() for b in ("0", "2")]
    assert called_s[1] > called_s[0]
    # `evaluate --s-offset` decides with another offset: the offset run's weights at 0 are the plain run.
    assert run_main(capsys, "evaluate", tmp_path / "2" / "cli", "--s-offset", "0", "--out", tmp_path / "e.json").rc == 0
    again = json.loads((tmp_path / "e.json").read_text())
    assert again["accuracy"] == pytest.approx(runs_["0"]["accuracy"]) and "logit_offsets" not in again["solver"]


def test_template_run_and_evaluate(tmp_path, capsys, synthetic_records, synthetic_beats):
    split = split_beats(synthetic_beats, "inter", seed=0)
    config = TrainConfig(epochs=1, batch_size=64, optimizer="adam", lr=3e-3)
    m = run_training("resnet", synthetic_beats, split, tmp_path / "run", config, {"width": 8, "blocks": 1},
                           progress=False, features="beat+rhythm", template=True)
    assert m["template"] is True and m["config"]["model"]["in_channels"] == 2
    saved, again = train_then_evaluate(capsys, tmp_path, synthetic_records, "--features", "beat+rhythm",
                                       "--template", "--no-context")
    assert again["template"] is True and again["context"] is False
    assert again["accuracy"] == pytest.approx(saved["accuracy"])


@pytest.mark.parametrize("option, value, bad, interval", [("noise", 0.05, "2", "a number in [0, 1)"),
                                                         ("ema", 0.99, "1", "a number in [0, 1)"),
                                                         ("morphology_dropout", 0.3, "1", "a number in [0, 1)"),
                                                         ("synthetic_s", 0.2, "1", "a number in [0, 1)"),
                                                         ("s_offset", -0.5, "inf", "a finite number")])
def test_training_options_record_their_setting(option, value, bad, interval, tmp_path, capsys, synthetic_records):
    """A run records the option; its evaluation (which drops, averages and perturbs nothing, and decides with the
    run's S offset) gives its accuracy."""
    flag = "--" + option.replace("_", "-")
    saved, again = train_then_evaluate(capsys, tmp_path, synthetic_records, "--features", "beat+rhythm",
                                       flag, str(value))
    assert saved["config"]["train"][option] == value
    assert again["accuracy"] == pytest.approx(saved["accuracy"])
    with pytest.raises(SystemExit) as exc:
        run_main(capsys, "train", "--model", "resnet", "--source", "synthetic", flag, bad, "--out",
                 tmp_path / "bad")
    assert exc.value.code == 2 and capsys.readouterr().err.strip() == (
        f"ecglib: error: train: argument {flag}: must be {interval}, not {bad}")
    assert not (tmp_path / "bad").exists()


def test_the_cli_refuses_a_torchode_solver_it_lacks_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ecglib", "train", "--source", "synthetic", "--model", "odenet",
                           "--backend", "torchode", "--solver", "rk4", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "torchode has no solver 'rk4'" in proc.stderr
    assert not (tmp_path / "run").exists()
    proc = subprocess.run([sys.executable, "-m", "ecglib", "train", "--source", "synthetic", "--model", "odenet",
                           "--kinetic", "-1", "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert proc.returncode == 2 and "--kinetic" in proc.stderr and "Traceback" not in proc.stderr


def test_train_cli_nan_guard(synthetic_cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ECGLIB_CACHE", str(synthetic_cache))
    result = run_main(capsys, "train", "--model", "resnet", *SYNTHETIC_ARGS, "--limit", "200", "--epochs", "1",
                      "--batch-size", "32", "--lr", "1e30", "--quiet", "--out", tmp_path / "huge_lr")
    assert_one_line_error(result, "training loss became nan", "--lr")
    assert not (tmp_path / "huge_lr" / "metrics.json").exists()


@pytest.mark.parametrize("case, needles", [
    ("shape", ["shape.npz", "shape (80, 180)", "expected (n, 187)"]),
    ("nan", ["nan.npz", "non-finite", "beat 11"]),
    ("label7", ["label7.npz", "label 7 ", "0-4"]),
])
def test_train_cli_rejects_bad_npz(cli_runs, case, needles, capsys, tmp_path):
    if f"npz_{case}" in cli_runs:
        result, run = cli_runs[f"npz_{case}"], cli_runs["root"] / f"run_{case}"
    else:
        run = tmp_path / f"run_{case}"
        result = run_main(capsys, "train", "--model", "resnet", "--data", cli_runs["bad"][case], "--epochs", "1",
                          "--quiet", "--out", run)
    line = assert_one_line_error(result, *needles)
    assert str(cli_runs["bad"][case]) in line
    assert not run.exists()


def test_train_rejects_labels_that_do_not_match_the_beats(tmp_path, capsys):
    path = bad_npz_files(tmp_path)["labels_short"]
    line = assert_one_line_error(run_main(capsys, "train", "--model", "odenet", "--data", path, "--out",
                                          tmp_path / "run"), "labels_short.npz", "70 labels for 80 beats")
    assert str(path) in line and not (tmp_path / "run").exists()


def test_evaluate_reproduces_the_run(evaluations, evaluate):
    result = evaluate(evaluations["root"] / "straight", "--out", evaluations["root"] / "resnet_eval.json")
    assert result.rc == 0, result.stderr
    assert "accuracy" in result.stdout and "NFE" in result.stdout
    again = json.loads((evaluations["root"] / "resnet_eval.json").read_text())
    m = run_metrics(evaluations["root"] / "straight")
    assert again["accuracy"] == m["accuracy"]
    assert again["confusion_matrix"] == m["confusion_matrix"]
    assert again["baseline_accuracy"] == m["baseline_accuracy"]


def test_evaluate_odenet_at_looser_tolerance(evaluations, evaluate):
    result = evaluate(evaluations["root"] / "odenet", "--rtol", "1e-2", "--atol", "1e-2", "--out",
                      evaluations["root"] / "odenet_eval.json")
    assert result.rc == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("odenet on intra test") and "accuracy" in line and "NFE" in line
    nfe_printed = float(line.split("NFE ")[1].split("/")[0])
    out = json.loads((evaluations["root"] / "odenet_eval.json").read_text())
    assert out["solver"]["solver"] == "dopri5" and out["solver"]["rtol"] == 0.01 and out["solver"]["atol"] == 0.01
    assert out["test_nfe_forward"] > 0 and nfe_printed == pytest.approx(out["test_nfe_forward"], abs=0.05)
    trained = run_metrics(evaluations["root"] / "odenet")
    assert trained["config"]["model"]["solver"] == "dopri5" and trained["config"]["model"]["rtol"] == 1e-3
    assert trained["nfe_forward"] > 0 and trained["test_nfe_forward"] > 0
    assert out["test_nfe_forward"] <= trained["test_nfe_forward"]  # a looser tolerance takes no more steps
    assert abs(out["accuracy"] - trained["accuracy"]) <= 0.1


@pytest.mark.parametrize("name, needles", [
    ("odenet_ckpt", ["checkpoint of a odenet, not of a resnet"]),
    ("random_file", ["not a readable checkpoint"]),
    ("width_mismatch", ["weights do not fit a resnet"]),
    ("narrow_resnet", ["width 32", "width 64"]),
])
def test_evaluate_rejects_a_foreign_checkpoint(evaluations, evaluate, name, needles):
    path = evaluations["broken"][name]
    line = assert_one_line_error(evaluate(path.parent), *needles)
    assert str(path) in line


def test_evaluate_rejects_unreadable_run_metrics(evaluations, evaluate, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(evaluations["root"] / "straight", run)
    (run / "metrics.json").write_text("{not json")
    line = assert_one_line_error(evaluate(run), "unreadable run metrics")
    assert str(run / "metrics.json") in line


def test_a_split_that_cannot_train_or_test_is_one_line(tmp_path, capsys):
    """Three beats split into one training beat of one class and one test beat: an accuracy against a baseline of 0
    that means nothing. Refused before a run folder is made."""
    result = run_main(capsys, "train", "--model", "resnet", *SYNTHETIC_ARGS, "--limit", "3", "--epochs", "1",
                      "--quiet", "--out", tmp_path / "run")
    assert_one_line_error(result, "3 beat(s) are too few", "two classes to learn")
    assert not (tmp_path / "run").exists()
