"""The command line under stress: bad input, damaged files, interruptions, full disks, locks and resumes, each
answered in one line with nothing half-written."""
from __future__ import annotations

import json
import math
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, assert_one_line_error, copy_records, run_args, run_cli, run_main

import ecglib.data.sources
import ecglib.training.run
from ecglib.checkpoints import save_checkpoint
from ecglib.cli import main
from ecglib.data.beats import load_npz, save_npz
from ecglib.data.sources import load_beats, synthetic_folder
from ecglib.errors import InputError, TrainingError
from ecglib.files import TMP_PREFIX
from ecglib.inference import predict
from ecglib.models import build_model
from ecglib.runs import RunFolder

# A model of width 8 with one block trains an epoch of the conftest's few hundred beats in well under a second.
TINY = ["--width", "8", "--blocks", "1", "--epochs", "1", "--batch-size", "32", "--threads", "1", "--quiet"]


def leftovers(*folders: Path) -> list[Path]:
    """Temporary files, temporary folders and locks under ``folders`` (what a clean failure never leaves)."""
    found = []
    for folder in folders:
        if folder.is_dir():
            found += [p for p in folder.rglob("*") if p.name.startswith(TMP_PREFIX) or p.name.endswith(".tmp")
                      or p.name == ".lock"]
    return found


@pytest.fixture(scope="module")
def beats_npz(synthetic_beats, tmp_path_factory) -> Path:
    """The conftest's synthetic beats as an npz (what `ecglib prepare` writes)."""
    path = tmp_path_factory.mktemp("npz") / "beats.npz"
    save_npz(synthetic_beats, path)
    return path


def train_args(npz: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", "resnet", "--data", str(npz), *TINY, *extra, "--out", str(out)]


@pytest.fixture(scope="module")
def finished_run(beats_npz, tmp_path_factory) -> Path:
    """A finished tiny ResNet run folder; tests copy it before they damage it."""
    import contextlib
    import io


    run = tmp_path_factory.mktemp("runs") / "finished"
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(train_args(beats_npz, run))
    assert rc == 0, err.getvalue()
    return run


def copy_run(run: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(run, dst)
    return dst


# ------------------------------------------------------------------------------------------------- data files
def _edit_header(folder: Path, record: str, line: int, field: int, value: str) -> None:
    hea = folder / f"{record}.hea"
    lines = hea.read_text().splitlines()
    tokens = lines[line].split()
    tokens[field] = value
    lines[line] = " ".join(tokens)
    hea.write_text("\n".join(lines) + "\n")


def _append_past_end(folder: Path, record: str, n: int) -> None:
    """Rewrite RECORD.atr with ``n`` more beats after the signal's end than it holds inside."""
    import wfdb

    ann = wfdb.rdann(str(folder / record), "atr")
    sig_len = wfdb.rdheader(str(folder / record)).sig_len
    extra = sig_len + np.arange(n) * 10
    wfdb.wrann(record, "atr", sample=np.concatenate([ann.sample, extra]),
               symbol=list(ann.symbol) + ["N"] * n, write_dir=str(folder))


DATA_FILE_CASES = {
    # header values that wfdb parses but that are no ECG: (record, file suffix, edit, needles)
    "fs_zero": ("100", ".hea", lambda d: _edit_header(d, "100", 0, 2, "0"), ["sampling frequency", "out of range"]),
    "fs_negative": ("100", ".hea", lambda d: _edit_header(d, "100", 0, 2, "-360"), ["sampling frequency '-360'"]),
    "fs_nan": ("100", ".hea", lambda d: _edit_header(d, "100", 0, 2, "nan"), ["sampling frequency 'nan'"]),
    "fs_absurd": ("100", ".hea", lambda d: _edit_header(d, "100", 0, 2, "1e9"), ["sampling frequency '1e9'"]),
    "fs_huge": ("100", ".hea", lambda d: _edit_header(d, "100", 0, 2, "500000"),
                ["sampling frequency", "out of range"]),
    "gain_text": ("213", ".hea", lambda d: _edit_header(d, "213", 1, 2, "abc"), ["ADC gain 'abc'"]),
    "gain_nan": ("213", ".hea", lambda d: _edit_header(d, "213", 1, 2, "nan"), ["ADC gain 'nan'"]),
    "annotations_of_a_longer_record": ("232", ".atr", lambda d: _append_past_end(d, "232", 5000),
                                       ["232.atr", "at or past the signal", "another record"]),
    "records_not_utf8": (None, "RECORDS", lambda d: (d / "RECORDS").write_bytes(b"100\n\xff\xfe213\n"),
                         ["RECORDS", "not UTF-8"]),
    "records_bad_name": (None, "RECORDS", lambda d: (d / "RECORDS").write_text("100\n../../etc/passwd\n"),
                         ["RECORDS", "not a WFDB record name"]),
    "text_as_atr": ("232", ".atr", lambda d: (d / "232.atr").write_text("N 100\nV 200\nN 300\n" * 30),
                    ["232.atr", "not a WFDB annotation file"]),
}


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _npz_cases(folder: Path, beats) -> dict[str, tuple[Path, list[str]]]:
    x, y = beats.x[:60], beats.y[:60]
    n = len(y)
    return {
        "single_beat": (_npz(folder / "single.npz", x=x[:1], y=y[:1]), ["too few to split"]),
        "two_beats": (_npz(folder / "two.npz", x=x[:2], y=y[:2]), ["too few to split"]),
        "string_labels": (_npz(folder / "strlabels.npz", x=x, y=np.array(["N"] * n)), ["labels y", "type"]),
        "string_beats": (_npz(folder / "strbeats.npz", x=x.astype(str), y=y), ["beats x", "type"]),
        "labels_2d": (_npz(folder / "labels2d.npz", x=x, y=y[:, None]), ["labels y have shape"]),
        "record_length": (_npz(folder / "record.npz", x=x, y=y, record=np.array(["100"] * (n - 3))),
                          ["'record'", f"({n},)"]),
        "sample_length": (_npz(folder / "sample.npz", x=x, y=y, sample=np.arange(n + 1)), ["'sample'"]),
        "sample_float": (_npz(folder / "samplef.npz", x=x, y=y, sample=np.arange(n) + 0.5), ["'sample'", "type"]),
        "symbol_length": (_npz(folder / "symbol.npz", x=x, y=y, symbol=np.array(["N"] * 5)), ["'symbol'"]),
        "meta_list": (_npz(folder / "meta.npz", x=x, y=y, meta=np.array("[1, 2]")), ["'meta'"]),
        "beyond_float32": (_npz(folder / "huge.npz", x=x.astype(np.float64) * 1e300, y=y), ["beyond float32"]),
        "object_array": (folder / "pickle.npz", ["not a readable .npz"]),
    }


@pytest.fixture(scope="module")
def bad_npz(synthetic_beats, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-npz")
    cases = _npz_cases(folder, synthetic_beats)
    np.savez(folder / "pickle.npz", x=np.array([object()] * 3, dtype=object), y=np.zeros(3))
    return cases


# -------------------------------------------------------------------------------------------------- arguments
TRAIN_SYNTH = ["train", "--model", "odenet", "--source", "synthetic", "--quiet"]


ARGUMENT_CASES = [
    (["prepare", "--synthetic-seconds", "0"], "--synthetic-seconds"),
    (["prepare", "--synthetic-seconds", "-5"], "--synthetic-seconds"),
    (["prepare", "--synthetic-seconds", "nan"], "--synthetic-seconds"),
    (["prepare", "--synthetic-seconds", "1e9"], "--synthetic-seconds"),
    ([*TRAIN_SYNTH, "--device", "quantum"], "--device"),
    ([*TRAIN_SYNTH, "--device", "cuda:x"], "--device"),
    ([*TRAIN_SYNTH, "--limit", "-1"], "--limit"),
    ([*TRAIN_SYNTH, "--seed", "-1"], "--seed"),
    ([*TRAIN_SYNTH, "--threads", "0"], "--threads"),
    ([*TRAIN_SYNTH, "--threads", "100000"], "--threads"),
    ([*TRAIN_SYNTH, "--momentum", "1.5"], "--momentum"),
    ([*TRAIN_SYNTH, "--lr", "0"], "--lr"),
    ([*TRAIN_SYNTH, "--lr", "nan"], "--lr"),
    ([*TRAIN_SYNTH, "--weight-decay", "-1"], "--weight-decay"),
    ([*TRAIN_SYNTH, "--width", "0"], "--width"),
    ([*TRAIN_SYNTH, "--width", "100000"], "--width"),
    ([*TRAIN_SYNTH, "--blocks", "5000"], "--blocks"),
    ([*TRAIN_SYNTH, "--batch-size", "0"], "--batch-size"),
    ([*TRAIN_SYNTH, "--solver", "bogus"], "--solver"),
    ([*TRAIN_SYNTH, "--step-size", "0"], "--step-size"),
    ([*TRAIN_SYNTH, "--val-fraction", "-0.1"], "--val-fraction"),
    ([*TRAIN_SYNTH, "--rtol", "-1"], "--rtol"),
    (["evaluate", "RUN", "--rtol", "-1e-3"], "--rtol"),
    (["evaluate", "RUN", "--atol", "0"], "--atol"),
    (["evaluate", "RUN", "--atol", "inf"], "--atol"),
    (["evaluate", "RUN", "--solver", "bogus"], "--solver"),
    (["evaluate", "RUN", "--limit", "-3"], "--limit"),
    (["evaluate", "RUN", "--batch-size", "0"], "--batch-size"),
    (["evaluate", "RUN", "--seed", "-2"], "--seed"),
    (["study", "--limit", "-1"], "--limit"),
    (["study", "--epochs", "0"], "--epochs"),
    (["study", "--profile", "huge"], "--profile"),
]


# ----------------------------------------------------------------------------------- checkpoints and run folders
def _damage_checkpoint(path: Path, change) -> None:
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


CHECKPOINT_CASES = {
    "no_train_config": (lambda s: s.pop("train_config"), ["train_config missing"]),
    "train_config_list": (lambda s: s.update(train_config=[1, 2]), ["train_config is a list"]),
    "no_history": (lambda s: s.pop("history"), ["history"]),
    "history_int": (lambda s: s.update(history=7), ["history"]),
    "history_rows": (lambda s: s.update(history=["epoch 1"]), ["history"]),
    "history_row_short": (lambda s: s.update(history=[{"epoch": 1}]), ["history"]),
    "optimizer_groups": (lambda s: s["optimizer"]["param_groups"][0].update(lr="fast"), ["optimizer state"]),
    "scheduler_text": (lambda s: s["scheduler"].update(last_epoch="x"), ["scheduler state"]),
    "no_epoch": (lambda s: s.pop("epoch"), ["epoch None"]),
    "epoch_text": (lambda s: s.update(epoch="one"), ["epoch 'one'"]),
    "epoch_negative": (lambda s: s.update(epoch=-3), ["epoch -3"]),
    "no_optimizer": (lambda s: s.pop("optimizer"), ["optimizer missing"]),
    "optimizer_list": (lambda s: s.update(optimizer=[0.1]), ["optimizer is a list"]),
    "best_accuracy_text": (lambda s: s.update(best_val_accuracy="high"), ["best_val_accuracy"]),
    "model_config_text": (lambda s: s.update(model_config="resnet"), ["damaged ecglib checkpoint"]),
}


EVALUATE_CASES = {
    "empty_best": (lambda r: (r / "best.pt").write_bytes(b""), "best.pt", ["empty checkpoint"]),
    "nan_weights": (lambda r: _damage_checkpoint(
        r / "best.pt", lambda s: s["model"][next(iter(s["model"]))].fill_(math.nan)), "best.pt", ["not finite"]),
    "absurd_width": (lambda r: _damage_checkpoint(
        r / "best.pt", lambda s: s["model_config"].update(width=10**7)), "best.pt", ["unusable model", "width"]),
    "absurd_blocks": (lambda r: _damage_checkpoint(
        r / "best.pt", lambda s: s["model_config"].update(blocks=10**6)), "best.pt", ["unusable model", "blocks"]),
    "absurd_classes": (lambda r: _damage_checkpoint(
        r / "best.pt", lambda s: s["model_config"].update(n_classes=10**8)), "best.pt", ["unusable model"]),
    "width_text": (lambda r: _damage_checkpoint(
        r / "best.pt", lambda s: s["model_config"].update(width="wide")), "best.pt", ["unusable model"]),
    "metrics_list": (lambda r: (r / "metrics.json").write_text("[1, 2]"), "metrics.json", ["unreadable run metrics"]),
    "metrics_accuracy_text": (lambda r: _edit_metrics(r, lambda m: m.update(accuracy="0.9")), "metrics.json",
                              ["unreadable run metrics"]),
    "metrics_limit_text": (lambda r: _edit_metrics(r, lambda m: m["config"]["data"].update(limit="many")),
                           "metrics.json", ["config.data.limit"]),
    "metrics_split": (lambda r: _edit_metrics(r, lambda m: m["config"].update(split="diagonal")), "metrics.json",
                      ["config.split"]),
    "metrics_seed": (lambda r: _edit_metrics(r, lambda m: m["config"]["train"].update(seed=-4)), "metrics.json",
                     ["config.train", "seed"]),
    "metrics_confusion": (lambda r: _edit_metrics(r, lambda m: m.update(confusion_matrix=[[1, 2], [3, 4]])),
                          "metrics.json", ["confusion_matrix"]),
    "metrics_val_fraction": (lambda r: _edit_metrics(r, lambda m: m["config"]["data"].update(val_fraction=2)),
                             "metrics.json", ["val_fraction"]),
}


def _edit_metrics(run: Path, change) -> None:
    m = json.loads((run / "metrics.json").read_text())
    change(m)
    (run / "metrics.json").write_text(json.dumps(m))


# ------------------------------------------------------------------------------------------------ interruptions
def _popen(args, prelude: str | None = None, **kwargs) -> subprocess.Popen:
    argv = [str(a) for a in args]
    if prelude is None:
        cmd = [sys.executable, "-m", "ecglib", *argv]
    else:
        cmd = [sys.executable, "-c", prelude + "\nimport runpy, sys\nsys.argv = ['ecglib'] + sys.argv[1:]\n"
               "runpy.run_module('ecglib', run_name='__main__', alter_sys=True)\n", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **kwargs.pop("env", {})}
    # Ctrl-C as on a terminal: a suite started in the background (nohup, &) passes SIGINT on as ignored, and Python
    # then installs no KeyboardInterrupt handler.
    return subprocess.Popen(cmd, **{"cwd": REPO, "env": env, "text": True, "stdout": subprocess.PIPE,
                                    "stderr": subprocess.PIPE,
                                    "preexec_fn": lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs})


# A checkpoint write that stops half-way with a kill -9 (the epoch's checkpoint.pt; best.pt goes through).
KILL_IN_WRITE = """
import os, signal, ecglib.training.loop as t
from ecglib.files import atomic_path
_save = t.save_checkpoint
def _save_and_die(state, path):
    if state.get("epoch") == {epoch} and "optimizer" in state:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            fh.write(b"PK half a checkpoint")
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    return _save(state, path)
t.save_checkpoint = _save_and_die
"""


# ----------------------------------------------------------------------------------------------------- disk full
@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs, where the machine lets this user mount one (root, with the capability); else skip."""
    mount = tmp_path / "small"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a small tmpfs here ({exc})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


# ---------------------------------------------------------------------------------------------------- concurrency
HOLD_LOCK = """
import sys, time
from ecglib.runs import RunFolder
with RunFolder(sys.argv[1]).lock():
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("case", sorted(DATA_FILE_CASES))
def test_prepare_refuses_a_damaged_record(case, synthetic_records, tmp_path, capsys):
    record, suffix, edit, needles = DATA_FILE_CASES[case]
    folder = copy_records(synthetic_records, tmp_path / "mitdb")
    edit(folder)
    out = tmp_path / "out" / "beats.npz"
    result = run_main(capsys, "prepare", "--source", "mitdb", "--mitdb-dir", folder, "--no-download",
                      "--out", out)
    bad = folder / (f"{record}{suffix}" if record else suffix)
    line = assert_one_line_error(result, str(bad), *needles)
    assert line.startswith(f"ecglib: error: {bad}: ")
    assert not out.exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("case", ["single_beat", "two_beats", "string_labels", "string_beats", "labels_2d",
                                  "record_length", "sample_length", "sample_float", "symbol_length", "meta_list",
                                  "beyond_float32", "object_array"])
def test_train_refuses_a_bad_npz(case, bad_npz, tmp_path, capsys):
    path, needles = bad_npz[case]
    run = tmp_path / "run"
    result = run_main(capsys, *train_args(path, run))
    line = assert_one_line_error(result, *needles)
    assert line.startswith(f"ecglib: error: {path}: ")
    assert not run.exists()


@pytest.mark.parametrize("argv, option", ARGUMENT_CASES, ids=[" ".join(a[0][-2:]) for a in ARGUMENT_CASES])
def test_an_argument_out_of_range_is_one_line(argv, option, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_args(capsys, *argv, *(["--out", "out"] if argv[0] in ("train", "prepare") else []))
    assert_one_line_error(result, f"argument {option}")
    assert not list(tmp_path.iterdir()), "an argument error created files"


@pytest.mark.parametrize("argv, needles", [
    ([*TRAIN_SYNTH, "--step-size", "1e-6"], ["argument --step-size", "in [1/1000, 1]", "not 1e-06"]),
    ([*TRAIN_SYNTH, "--solver", "dopri5", "--step-size", "0.5"], ["adaptive solver dopri5", "not a step size"]),
    ([*TRAIN_SYNTH, "--seminorm"], ["seminorm", "adjoint"]),
    (["train", "--model", "resnet", "--source", "synthetic", "--width", "1024", "--blocks", "100"],
     ["--width 1024 --blocks 100", "parameters, more than"]),
])
def test_solver_settings_are_refused_before_any_work(argv, needles, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(run_args(capsys, *argv, "--out", "run"), *needles)
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_an_absent_device_is_refused_before_the_data_is_read(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ecglib.data.sources, "load_beats",
                        lambda *a, **k: pytest.fail("data read for an absent device"))
    line = assert_one_line_error(run_main(capsys, *TRAIN_SYNTH, "--device", "cuda", "--out", "run"),
                                 "--device cuda", "no CUDA device")
    assert "--device cpu" in line and not list(tmp_path.iterdir())


def test_usage_errors_are_one_line_in_a_process_of_their_own(tmp_path):
    result = run_cli("train", "--model", "resnet", "--source", "synthetic", "--width", "-3", "--out", tmp_path / "r")
    assert_one_line_error(result, "argument --width")
    assert not (tmp_path / "r").exists()


def test_a_long_legal_output_name_works(finished_run, beats_npz, tmp_path, capsys):
    # 255 bytes is the longest name most file systems allow; the temporary name must not push it over
    out = tmp_path / ("e" * 250 + ".json")
    result = run_main(capsys, "evaluate", finished_run, "--out", out)
    assert result.rc == 0, result.stderr
    assert json.loads(out.read_text())["model"] == "resnet"
    npz = tmp_path / ("b" * 251 + ".npz")
    save_npz(load_npz(beats_npz), npz)
    assert len(load_npz(npz)) == len(load_npz(beats_npz)) and not leftovers(tmp_path)


def test_an_output_name_too_long_names_the_users_path(finished_run, tmp_path, capsys):
    out = tmp_path / ("c" * 300 + ".json")
    line = assert_one_line_error(run_main(capsys, "evaluate", finished_run, "--out", out), str(out))
    assert TMP_PREFIX not in line and not leftovers(tmp_path)


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_resume_refuses_a_damaged_checkpoint(case, finished_run, beats_npz, tmp_path, capsys):
    change, needles = CHECKPOINT_CASES[case]
    run = copy_run(finished_run, tmp_path / "run")
    _damage_checkpoint(run / "checkpoint.pt", change)
    (run / "metrics.json").unlink()
    result = run_main(capsys, *train_args(beats_npz, run))
    line = assert_one_line_error(result, str(run / "checkpoint.pt"), *needles)
    assert "--fresh" in line or "damaged ecglib checkpoint" in line
    assert not (run / "metrics.json").exists() and not leftovers(run)


@pytest.mark.parametrize("case", sorted(EVALUATE_CASES))
def test_evaluate_refuses_a_damaged_run(case, finished_run, tmp_path, capsys):
    damage, name, needles = EVALUATE_CASES[case]
    run = copy_run(finished_run, tmp_path / "run")
    damage(run)
    out = tmp_path / "eval.json"
    line = assert_one_line_error(run_main(capsys, "evaluate", run, "--out", out), *needles)
    assert line.startswith(f"ecglib: error: {run / name}: ")
    assert not out.exists() and not leftovers(tmp_path)


def test_evaluate_reproduces_the_finished_run(finished_run, tmp_path, capsys):
    # the control: the undamaged copy evaluates
    run = copy_run(finished_run, tmp_path / "run")
    result = run_main(capsys, "evaluate", run, "--out", tmp_path / "eval.json")
    assert result.rc == 0, result.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["accuracy"] == \
        json.loads((run / "metrics.json").read_text())["accuracy"]


@pytest.mark.parametrize("change, needles", [
    (["--limit", "150"], ["limit none (now 150)"]),
    (["--val-fraction", "0.2"], ["val_fraction 0.1 (now 0.2)"]),
    (["--width", "12"], ["width 8 (now 12)"]),
    (["--optimizer", "adam"], ["optimizer sgd (now adam)"]),
    (["--seed", "5"], ["seed 0 (now 5)"]),
    (["--data", "OTHER"], ["data"]),
])
def test_resume_refuses_other_data_split_model_or_recipe(change, needles, finished_run, beats_npz, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    args = train_args(beats_npz, run)
    if change[0] == "--data":  # the same beats under another name, then other beats under the same name
        other = tmp_path / "other.npz"
        full = load_npz(beats_npz)
        save_npz(full.subset(np.arange(len(full) - 40)), other)
        args[args.index("--data") + 1] = str(other)
    else:
        args[-2:-2] = change
    line = assert_one_line_error(run_main(capsys, *args), str(run / "checkpoint.pt"), *needles)
    assert "--fresh" in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before, "a refused resume changed the run folder"


def test_resume_refuses_changed_beats_under_the_same_name(beats_npz, tmp_path, capsys):
    npz = tmp_path / "beats.npz"
    full = load_npz(beats_npz)
    save_npz(full, npz)
    run = tmp_path / "run"
    assert run_main(capsys, *train_args(npz, run)).rc == 0
    save_npz(full.subset(np.arange(10, len(full))), npz)  # other beats, same file name
    assert_one_line_error(run_main(capsys, *train_args(npz, run, "--epochs", "2")), str(run / "checkpoint.pt"),
                          "the beats' content", "--fresh")


def test_fresh_starts_over_where_resume_is_refused(finished_run, beats_npz, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    args = train_args(beats_npz, run, "--limit", "150")
    assert run_main(capsys, *args).rc == 2
    result = run_main(capsys, *args, "--fresh")
    assert result.rc == 0, result.stderr
    m = json.loads((run / "metrics.json").read_text())
    assert m["config"]["data"]["limit"] == 150 and sum(m["split_sizes"].values()) == 150
    assert not leftovers(run)


def test_a_failed_run_leaves_no_folder_and_no_result(beats_npz, tmp_path, capsys):
    run = tmp_path / "new-run"
    line = assert_one_line_error(run_main(capsys, *train_args(beats_npz, run, "--lr", "1e30")), "training loss")
    assert "nan" in line and not run.exists()


def test_a_failed_resumed_run_leaves_no_old_metrics(finished_run, beats_npz, tmp_path, capsys, monkeypatch):

    run = copy_run(finished_run, tmp_path / "run")

    def diverge(*args, **kwargs):
        raise TrainingError("the training loss became nan at epoch 2, batch 1")

    monkeypatch.setattr(ecglib.training.run, "fit", diverge)
    assert_one_line_error(run_main(capsys, *train_args(beats_npz, run, "--epochs", "2")), "loss became nan")
    assert not (run / "metrics.json").exists(), "the last run's metrics outlived a failed continuation"
    assert (run / "checkpoint.pt").exists() and not leftovers(run)


# ------------------------------------------------------------------------------------------------------ cache
def test_a_corrupt_cache_entry_is_rebuilt_with_one_line(synthetic_records, tmp_path, cache_dir, capsys):
    folder = copy_records(synthetic_records, tmp_path / "rec")
    first = load_beats("mitdb", mitdb_dir=folder, download=False)
    entry = next((cache_dir / "beats").glob("mitdb-*.npz"))
    raw = bytearray(entry.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    entry.write_bytes(bytes(raw))
    capsys.readouterr()
    again = load_beats("mitdb", mitdb_dir=folder, download=False)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and str(entry) in err[0] and "rebuilding" in err[0], err
    np.testing.assert_array_equal(again.x, first.x)
    capsys.readouterr()
    load_beats("mitdb", mitdb_dir=folder, download=False)
    assert capsys.readouterr().err == ""  # rebuilt once, then served quietly


def test_temporaries_of_a_killed_writer_are_cleared_from_the_cache(synthetic_records, tmp_path, cache_dir):
    folder = copy_records(synthetic_records, tmp_path / "rec")
    load_beats("mitdb", mitdb_dir=folder, download=False)
    beats_dir = cache_dir / "beats"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = beats_dir / f"{TMP_PREFIX}{int(dead.stdout)}-0badcafe"
    stale.write_bytes(b"half an npz")
    load_beats("mitdb", mitdb_dir=folder, download=False)  # served from the cache, and the stale file goes
    assert not stale.exists() and not leftovers(cache_dir)


def test_a_hand_edited_cache_entry_is_not_used(synthetic_records, tmp_path, cache_dir, capsys):
    folder = copy_records(synthetic_records, tmp_path / "rec")
    first = load_beats("mitdb", mitdb_dir=folder, download=False)
    entry = next((cache_dir / "beats").glob("mitdb-*.npz"))
    # a valid npz with other beats in place of the entry: readable, but not what was written
    forged = first.subset(np.arange(5))
    np.savez(entry, x=forged.x, y=forged.y)
    again = load_beats("mitdb", mitdb_dir=folder, download=False)
    assert len(again) == len(first)
    assert "does not match its checksum" in capsys.readouterr().err


def test_a_damaged_synthetic_cache_folder_is_rebuilt(tmp_path, capsys):
    cache = tmp_path / "cache"
    first = load_beats("synthetic", synthetic_seconds=10, cache_dir=cache, cache=False)
    folder = synthetic_folder(seconds=10, cache_dir=cache)
    dat = folder / "100.dat"
    raw = bytearray(dat.read_bytes())
    raw[100:200] = bytes(100)
    dat.write_bytes(bytes(raw))
    capsys.readouterr()
    again = load_beats("synthetic", synthetic_seconds=10, cache_dir=cache, cache=False)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "100.dat does not match its checksum" in err[0], err
    np.testing.assert_array_equal(again.x, first.x)
    assert not leftovers(cache)


def test_kill_during_a_checkpoint_write_then_resume(beats_npz, tmp_path):
    run = tmp_path / "run"
    args = train_args(beats_npz, run, "--epochs", "2")
    killed = _popen(args, prelude=KILL_IN_WRITE.format(epoch=2))
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert [p.name for p in run.iterdir() if p.name.startswith(TMP_PREFIX)], "the kill left no temporary"
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1  # the old one, whole
    resumed = run_cli(*args)
    assert resumed.rc == 0, resumed.stderr
    assert resumed.stderr == ""
    assert json.loads((run / "metrics.json").read_text())["best_epoch"] in (1, 2)
    assert not leftovers(run), leftovers(run)


def test_ctrl_c_during_training_is_one_line(beats_npz, tmp_path):
    run = tmp_path / "run"
    # stop in the middle of the first epoch, wherever the process is
    prelude = ("import os, signal, ecglib.training.run as t\n_fit = t.fit\n"
               "def fit(*a, **k):\n    k['on_step'] = lambda row: os.kill(os.getpid(), signal.SIGINT)\n"
               "    return _fit(*a, **k)\nt.fit = fit\n")
    proc = _popen(train_args(beats_npz, run, "--epochs", "3"), prelude=prelude)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert err.splitlines() == ["ecglib: interrupted"]
    assert not run.exists(), "an interrupted first epoch left a run folder"


@pytest.mark.parametrize("module", ["ecglib.cli", "torch", "wfdb"])
def test_ctrl_c_while_modules_import_is_one_line(module, synthetic_records, beats_npz, tmp_path):
    # Ctrl-C arriving while `module` is being imported, wherever that import happens
    prelude = (f"import sys\nclass _Stop:\n    def find_spec(self, name, path=None, target=None):\n"
               f"        if name == {module!r}:\n            raise KeyboardInterrupt\n        return None\n"
               f"sys.meta_path.insert(0, _Stop())\n")
    if module == "torch":
        out = tmp_path / "run"
        args = train_args(beats_npz, out)
    else:
        out = tmp_path / "b.npz"
        args = ["prepare", "--source", "mitdb", "--mitdb-dir", synthetic_records, "--no-download", "--out", out]
    proc = _popen(args, prelude=prelude, env={"ECGLIB_CACHE": str(tmp_path / "cache")})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.splitlines() == ["ecglib: interrupted"]
    assert not out.exists() and not leftovers(tmp_path)


def test_sigint_at_start_up_is_one_line(tmp_path):
    proc = _popen(["prepare", "--source", "synthetic", "--synthetic-seconds", "10", "--out", tmp_path / "b.npz"],
                  env={"ECGLIB_CACHE": str(tmp_path / "cache")})
    time.sleep(0.8)  # the interpreter is up and ecglib is importing or reading its data
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the command finished before the signal arrived")
    assert proc.returncode == 130, err
    assert err.splitlines() == ["ecglib: interrupted"]
    assert not (tmp_path / "b.npz").exists() and not leftovers(tmp_path)


def test_warnings_of_numerical_libraries_stay_out_of_the_error(tmp_path):
    prelude = ("import warnings, numpy as np, ecglib.data.beats as d\n_load = d.load_npz\n"
               "def noisy(path):\n    np.float64(1.0) / np.float64(0.0)\n    np.log(np.zeros(2))\n"
               "    warnings.warn('torch says hello', UserWarning)\n    return _load(path)\nd.load_npz = noisy\n")
    missing = tmp_path / "missing.npz"
    proc = _popen(["train", "--model", "resnet", "--data", missing, "--quiet", "--out", tmp_path / "r"],
                  prelude=prelude)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.splitlines() == [f"ecglib: error: {missing}: file not found"]


def test_an_error_after_a_progress_bar_starts_its_own_line(beats_npz, tmp_path):
    # stderr on a terminal, where the bars are drawn; the loss turns NaN in the middle of the first epoch
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal 120 columns wide
    proc = _popen(["train", "--model", "resnet", "--data", beats_npz, "--width", "8", "--blocks", "1",
                   "--epochs", "1", "--batch-size", "16", "--threads", "1", "--lr", "1e30", "--out", tmp_path / "r"],
                  stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 2, text
    assert "epoch 1/1" in text, "no progress bar was drawn"
    assert re.search(r"(^|\n)ecglib: error: the training loss became nan", text), repr(text[-400:])
    assert not (tmp_path / "r").exists()


def test_a_full_disk_while_beats_are_written(small_disk, synthetic_beats):

    big = synthetic_beats.subset(np.tile(np.arange(len(synthetic_beats)), 8))  # about 1.5 MB uncompressed
    out = small_disk / "beats.npz"
    with pytest.raises(InputError) as info:
        save_npz(big, out, compressed=False)
    assert str(info.value) == f"{out}: cannot write (no space left on the device)"
    assert not list(small_disk.iterdir())


def test_a_full_disk_while_prepare_writes(small_disk, synthetic_records, capsys):
    filler = small_disk / "filler"
    with open(filler, "wb") as fh:  # leave the disk 8 KiB, less than the beats need
        try:
            fh.write(bytes(512 * 1024 - 8 * 1024))
        except OSError:
            pass
    out = small_disk / "beats.npz"
    result = run_main(capsys, "prepare", "--source", "mitdb", "--mitdb-dir", synthetic_records, "--no-download",
                      "--out", out)
    line = assert_one_line_error(result, str(out), "no space left on the device")
    assert TMP_PREFIX not in line
    assert [p.name for p in small_disk.iterdir()] == ["filler"]


def test_a_full_disk_while_a_checkpoint_is_saved(small_disk, beats_npz, capsys):
    run = small_disk / "run"
    # width 64: a checkpoint of about 1.5 MB, three times the disk
    args = ["train", "--model", "resnet", "--data", beats_npz, "--epochs", "1", "--batch-size", "64", "--threads",
            "1", "--quiet", "--out", run]
    line = assert_one_line_error(run_main(capsys, *args), "no space left on the device")
    assert re.match(rf"ecglib: error: {re.escape(str(run))}/(best|checkpoint)\.pt: cannot write", line), line
    assert not run.exists() and not list(small_disk.iterdir())


def test_a_second_training_into_a_locked_folder_is_refused(beats_npz, tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], cwd=REPO, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        line = assert_one_line_error(run_main(capsys, *train_args(beats_npz, run)), str(run),
                                     f"pid {holder.pid}", "another training")
        assert "--out" in line
        assert sorted(p.name for p in run.iterdir()) == [".lock"], "the refused run wrote into the folder"
    finally:
        holder.kill()
        holder.wait()
    # the lock goes with its holder, even one killed with SIGKILL
    result = run_main(capsys, *train_args(beats_npz, run))
    assert result.rc == 0, result.stderr
    assert not leftovers(run)


def test_two_trainings_started_together_into_one_folder(beats_npz, tmp_path):
    run, go = tmp_path / "run", tmp_path / "go"
    # the first holds the folder until the test says go: its first optimizer step waits for the file
    wait = (f"import os, time, ecglib.training.run as t\n_fit = t.fit\n"
            f"def wait(row):\n    while not os.path.exists({str(go)!r}):\n        time.sleep(0.05)\n"
            f"def fit(*a, **k):\n    k['on_step'] = wait\n    return _fit(*a, **k)\nt.fit = fit\n")
    first = _popen(train_args(beats_npz, run, "--epochs", "2"), prelude=wait)
    try:
        deadline = time.monotonic() + 120
        while not (run / ".lock").exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        second = run_cli(*train_args(beats_npz, run))
    finally:
        go.touch()
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert_one_line_error(second, str(run), f"pid {first.pid}")
    m = json.loads((run / "metrics.json").read_text())
    assert m["config"]["train"]["epochs"] == 2 and len(m["history"]) == 2
    assert not leftovers(run)


# ------------------------------------------------------------------------------------------------------ progress
def test_a_long_evaluation_shows_progress_only_when_asked(capsys):

    model = build_model("resnet", width=8, blocks=1)
    x = torch.rand(40, 1, 187)
    capsys.readouterr()
    quiet, _ = predict(model, x, batch_size=8)
    assert capsys.readouterr().err == ""
    shown, _ = predict(model, x, batch_size=8, progress=True)
    err = capsys.readouterr().err
    assert "evaluating" in err and "/40" in err  # a bar of the 40 beats, cleared when done
    np.testing.assert_array_equal(quiet, shown)


def test_a_full_disk_while_the_synthetic_records_are_written(small_disk, tmp_path):
    cache = small_disk / "cache"
    out = tmp_path / "beats.npz"
    result = run_cli("prepare", "--source", "synthetic", "--synthetic-seconds", "20", "--out", out,
                     env={"ECGLIB_CACHE": str(cache)})
    line = assert_one_line_error(result, str(cache / "synthetic-mitdb-s0-20s"), "no space left on the device")
    assert TMP_PREFIX not in line and not out.exists()
    assert not leftovers(small_disk) and not (cache / "synthetic-mitdb-s0-20s").exists()


def test_clearing_a_folder_in_use_is_refused(tmp_path):

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], cwd=REPO, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        (run / "best.pt").write_bytes(b"theirs")
        with pytest.raises(InputError, match=f"pid {holder.pid}"):
            RunFolder(run).clear()  # what the training notebook does with fresh = True
        assert (run / "best.pt").read_bytes() == b"theirs"
    finally:
        holder.kill()
        holder.wait()
    RunFolder(run).clear()
    assert not (run / "best.pt").exists()


def test_resume_without_the_best_weights_is_refused(finished_run, beats_npz, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "best.pt").unlink()
    assert_one_line_error(run_main(capsys, *train_args(beats_npz, run, "--epochs", "2")), str(run / "best.pt"),
                          "not found")


def test_a_record_listed_twice_is_refused(synthetic_records, tmp_path, capsys):
    folder = copy_records(synthetic_records, tmp_path / "mitdb")
    (folder / "RECORDS").write_text("100\n213\n100\n")
    assert_one_line_error(run_main(capsys, "prepare", "--source", "mitdb", "--mitdb-dir", folder, "--no-download",
                                   "--out", tmp_path / "b.npz"), str(folder / "RECORDS"), "record 100 is listed twice")


@pytest.mark.parametrize("case, needles", [
    ("no_epoch", ["damaged checkpoint (epoch None)"]),
    ("other_model", ["weights of another model"]),
])
def test_resume_refuses_a_best_checkpoint_that_is_not_the_runs(case, needles, finished_run, beats_npz, tmp_path,
                                                              capsys):

    run = copy_run(finished_run, tmp_path / "run")
    if case == "no_epoch":
        _damage_checkpoint(run / "best.pt", lambda s: s.pop("epoch"))
    else:  # the weights of a wider ResNet in place of the run's best: testing them would report another model
        wide = build_model("resnet", width=16, blocks=1)
        save_checkpoint({"model_config": wide.config, "model": wide.state_dict(), "epoch": 1}, run / "best.pt")
    line = assert_one_line_error(run_main(capsys, *train_args(beats_npz, run)), str(run / "best.pt"), *needles)
    assert "--fresh" in line


def test_a_reader_that_goes_away_is_no_error(synthetic_records, tmp_path):
    # `ecglib prepare ... | head -1`: the pipe closes before the class table is printed
    out = tmp_path / "b.npz"
    proc = _popen(["prepare", "--source", "mitdb", "--mitdb-dir", synthetic_records, "--no-download", "--out", out],
                  env={"ECGLIB_CACHE": str(tmp_path / "cache")})
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 0 and err == ""
    assert len(load_npz(out)) > 0
