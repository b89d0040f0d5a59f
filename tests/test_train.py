"""The training loop, run folders, resume after SIGKILL, checkpoints, the NaN and ODE-underflow guards and the
train/evaluate commands."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, assert_one_line_error, run_cli, run_cli_many, run_main

import ecglib.training.loop
from ecglib.checkpoints import CHECKPOINT_FORMAT, load_checkpoint
from ecglib.config import ODEConfig, TrainConfig
from ecglib.data.facts import CLASSES
from ecglib.data.inputs import to_tensors
from ecglib.data.sources import load_beats
from ecglib.data.splits import split_beats
from ecglib.errors import InputError, TrainingError
from ecglib.inference import evaluate as evaluate_model
from ecglib.inference import predict, solver_advice
from ecglib.metrics import count_parameters
from ecglib.models import ODEFunc, build_model
from ecglib.runs import HISTORY_FIELDS
from ecglib.training.batches import WeightAverage
from ecglib.training.loop import fit

# Two rk4 steps, direct backprop (the default has three): cheap enough for loops on a busy CPU.
FAST_ODE = {"ode": ODEConfig(solver="rk4", step_size=0.5, adjoint=False)}


@pytest.fixture(scope="module")
def tensors(synthetic_beats):
    split = split_beats(synthetic_beats, "intra", seed=0)
    return {part: to_tensors(synthetic_beats, getattr(split, part)) for part in ("train", "val", "test")}


def full_loss(model, x, y) -> float:
    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


# ---------------------------------------------------------------------------------------------------- learning
@pytest.mark.parametrize("name, kwargs", [("resnet", {}), ("odenet", FAST_ODE)])
def test_a_few_adam_steps_lower_the_loss(synthetic_beats, name, kwargs):
    torch.manual_seed(0)
    x, y = to_tensors(synthetic_beats)
    model = build_model(name, **kwargs)
    before = full_loss(model, x, y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(30):
        idx = torch.randint(0, len(x), (32,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = full_loss(model, x, y)
    assert after < 0.75 * before, (before, after)


def test_fit_writes_the_run_folder(tensors, tmp_path):
    torch.manual_seed(0)
    model = build_model("odenet", **FAST_ODE)
    config = TrainConfig(epochs=2, batch_size=64, optimizer="adam", lr=1e-3)
    rows, weights = [], {}

    def on_epoch(row):
        rows.append(row)
        weights[row["epoch"]] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    history = fit(model, *tensors["train"], *tensors["val"], config, run_dir=tmp_path / "run",
                        progress=False, on_epoch=on_epoch)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "checkpoint.pt", "history.csv"]
    assert rows == history and [h["epoch"] for h in history] == [1, 2]
    with open(run / "history.csv") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == HISTORY_FIELDS
        table = list(reader)
    assert len(table) == 2
    for row, h in zip(table, history):
        assert int(row["epoch"]) == h["epoch"]
        assert float(row["train_loss"]) == pytest.approx(h["train_loss"])
        assert float(row["val_accuracy"]) == pytest.approx(h["val_accuracy"])
        assert float(row["seconds"]) > 0
    # two rk4 steps a batch, nothing re-evaluated backwards, the validation solve the same
    assert all(h["nfe_forward"] == 8 and h["nfe_backward"] == 0 and h["val_nfe"] == 8 for h in history)
    assert history[1]["lr"] < history[0]["lr"] and history[1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine to 0
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["format"] == CHECKPOINT_FORMAT and state["epoch"] == 2 and len(state["history"]) == 2
    best, best_state = load_checkpoint(run, expect_model="odenet")
    assert best_state["epoch"] in (1, 2)
    assert best_state["val_accuracy"] == max(h["val_accuracy"] for h in history[: best_state["epoch"]])
    assert best.config == model.config
    for k, v in weights[best_state["epoch"]].items():  # best.pt holds the weights of the best epoch
        assert torch.equal(best.state_dict()[k], v.cpu()), k


def test_weight_average_follows_its_formula():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    model.register_buffer("scale", torch.ones(2))
    average = WeightAverage(model, 0.3)
    expected = {k: v.detach().clone() for k, v in model.named_parameters()}
    for t in range(1, 5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.scale.fill_(t)
        live = {k: v.detach().clone() for k, v in model.named_parameters()}
        average.update(model)
        d = min(0.3, (1 + t) / (10 + t))  # 0.18, 0.25, then the decay itself
        expected = {k: d * expected[k] + (1 - d) * live[k] for k in expected}
        for k, v in average.model.named_parameters():
            torch.testing.assert_close(v, expected[k])
            assert torch.equal(dict(model.named_parameters())[k], live[k])  # the live weights are not touched
        assert torch.equal(average.model.scale, model.scale)  # buffers are copied, not averaged
    assert average.updates == 4 and not any(p.requires_grad for p in average.model.parameters())
    for bad in (0.0, 1.0):
        with pytest.raises(InputError, match="decay"):
            WeightAverage(model, bad)
    with pytest.raises(InputError, match=r"ema: must be a number in \[0, 1\), not 1.0"):
        TrainConfig(ema=1.0)


def test_fit_validates_keeps_and_resumes_the_weight_average(tensors, tmp_path):
    config = TrainConfig(epochs=2, batch_size=64, lr=0.05, ema=0.9)

    class Stop(Exception):
        pass

    def run(folder, on_epoch=None):
        torch.manual_seed(0)
        model = build_model("resnet", blocks=2, width=16)
        return model, fit(model, *tensors["train"], *tensors["val"], config, run_dir=folder, progress=False,
                                on_epoch=on_epoch)

    model, history = run(tmp_path / "a")
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    steps = 2 * -(-len(tensors["train"][0]) // 64)
    assert state["average"]["updates"] == steps
    for k, v in state["average"]["model"].items():  # the model ends holding the average, not its last step
        assert torch.equal(model.state_dict()[k], v), k
    assert any(not torch.equal(state["model"][k], v) for k, v in state["average"]["model"].items())
    best, best_state = load_checkpoint(tmp_path / "a", expect_model="resnet")
    # what was validated is what best.pt keeps: the average of that epoch
    again = evaluate_model(best, *tensors["val"])
    assert again["accuracy"] == pytest.approx(history[best_state["epoch"] - 1]["val_accuracy"])
    # interrupted after epoch 1 and resumed: the same average as a run straight through
    with pytest.raises(Stop):
        run(tmp_path / "b", on_epoch=lambda row: (_ for _ in ()).throw(Stop()))
    resumed, _ = run(tmp_path / "b")
    for k, v in model.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k


@pytest.mark.parametrize("keep, kept", [("best", 1), ("last", 3)])
def test_fit_keeps_the_best_or_the_last_epoch(keep, kept, tensors, tmp_path, monkeypatch):
    real = ecglib.training.loop.evaluate

    def worse_each_epoch(*args, **kwargs):  # validation accuracy 1/2, 1/3, 1/4: the first epoch is the best
        calls.append(1)
        return {**real(*args, **kwargs), "accuracy": 1 / (1 + len(calls))}

    calls = []
    monkeypatch.setattr(ecglib.training.loop, "evaluate", worse_each_epoch)
    torch.manual_seed(0)
    model = build_model("resnet", blocks=2, width=16)
    history = fit(model, *tensors["train"], *tensors["val"], TrainConfig(epochs=3, batch_size=64, keep=keep),
                        run_dir=tmp_path / "run", progress=False)
    best, state = load_checkpoint(tmp_path / "run")
    assert state["epoch"] == kept and state["val_accuracy"] == history[kept - 1]["val_accuracy"]
    assert all(torch.equal(best.state_dict()[k], v) for k, v in model.state_dict().items()) is (keep == "last")
    with pytest.raises(InputError, match="keep: must be one of best, last, not 'first'"):
        TrainConfig(keep="first")


def test_fit_resumes_where_it_stopped(tensors, tmp_path):
    config = TrainConfig(epochs=3, batch_size=64, lr=0.05)

    class Stop(Exception):
        pass

    def stop_after_first(row):
        if row["epoch"] == 1:
            raise Stop

    def run(folder, model_kwargs=None, cfg=config, on_epoch=None):
        torch.manual_seed(0)
        model = build_model("resnet", **(model_kwargs or {"blocks": 2, "width": 16}))
        return model, fit(model, *tensors["train"], *tensors["val"], cfg, run_dir=folder, progress=False,
                                on_epoch=on_epoch)

    straight, h_straight = run(tmp_path / "a")
    with pytest.raises(Stop):
        run(tmp_path / "b", on_epoch=stop_after_first)  # interrupted after epoch 1's checkpoint
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    epochs_run = []
    resumed, h_resumed = run(tmp_path / "b", on_epoch=lambda row: epochs_run.append(row["epoch"]))
    assert epochs_run == [2, 3]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
        assert [h[key] for h in h_resumed] == [h[key] for h in h_straight], key
    for k, v in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k
    # a finished folder: nothing is trained again, the stored history comes back
    epochs_run.clear()
    _, again = run(tmp_path / "a", on_epoch=lambda row: epochs_run.append(row["epoch"]))
    assert epochs_run == [] and [h["train_loss"] for h in again] == [h["train_loss"] for h in h_straight]
    # more epochs (free to change) continue; other settings are refused
    with pytest.raises(InputError, match=r"other settings \(lr\)"):
        run(tmp_path / "a", cfg=TrainConfig(epochs=3, batch_size=64, lr=0.01))
    with pytest.raises(InputError, match="other model settings"):
        run(tmp_path / "a", model_kwargs={"blocks": 3, "width": 16})
    # --fresh semantics in the library: resume=False starts over
    torch.manual_seed(0)
    fresh = build_model("resnet", blocks=2, width=16)
    epochs_run.clear()
    fit(fresh, *tensors["train"], *tensors["val"], config, run_dir=tmp_path / "a", resume=False,
              progress=False, on_epoch=lambda row: epochs_run.append(row["epoch"]))
    assert epochs_run == [1, 2, 3]


# ------------------------------------------------------------------------------------------------- checkpoints
def save_best(model, path: Path, config=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "model_config": config or model.config,
                "model": model.state_dict(), "epoch": 1, "val_accuracy": 0.5}, path)
    return path


def test_load_checkpoint_checks_the_file(tmp_path):
    ode = save_best(build_model("odenet"), tmp_path / "ode" / "best.pt")
    model, state = load_checkpoint(ode, expect_model="odenet")
    assert model.name == "odenet" and count_parameters(model) == 59_333 and state["epoch"] == 1
    with pytest.raises(InputError, match=r"best.pt: checkpoint of a odenet, not of a resnet"):
        load_checkpoint(ode, expect_model="resnet")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(2048))
    with pytest.raises(InputError, match="junk.pt: not a readable checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(InputError, match="other.pt: not an ecglib checkpoint"):
        load_checkpoint(other)
    narrow = build_model("resnet", width=32)
    wrong = save_best(narrow, tmp_path / "wrong.pt", config={**narrow.config, "width": 64})
    with pytest.raises(InputError, match="wrong.pt: weights do not fit a resnet"):
        load_checkpoint(wrong)
    with pytest.raises(InputError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


# ---------------------------------------------------------------------------------------------------- guards
def test_nan_guard_on_a_huge_learning_rate(tensors, capsys):
    torch.manual_seed(0)
    model = build_model("resnet", blocks=2, width=16)
    capsys.readouterr()
    try:
        fit(model, *tensors["train"], *tensors["val"], TrainConfig(epochs=1, batch_size=32, lr=1e30),
                  progress=True)
    except TrainingError as exc:
        message = str(exc)
        # read while the exception (and with it fit's frame) is alive: the progress bar must already be closed,
        # so that the CLI's error line starts a line of its own
        err = capsys.readouterr().err
    else:
        pytest.fail("fit trained on with a learning rate of 1e30")
    assert re.search(r"training loss became nan at epoch 1, batch \d+: lower the learning rate \(--lr\)", message)
    assert "epoch 1/1" in err and err.endswith("\n"), repr(err[-200:])


def test_nan_guard_on_huge_inputs(tensors):
    x, y = tensors["train"]
    model = build_model("resnet", blocks=2, width=16)
    with pytest.raises(TrainingError, match="check the input data"):
        fit(model, x * 3e38, y, *tensors["val"], TrainConfig(epochs=1, batch_size=32),
                  progress=False)


def test_solver_advice_translation():
    advice = solver_advice(AssertionError("underflow in dt 1.2e-20"))
    assert isinstance(advice, TrainingError)
    for hint in ("underflow in dt", "--rtol/--atol", "--lr", "--solver rk4"):
        assert hint in str(advice)
    assert isinstance(solver_advice(AssertionError("max_num_steps exceeded")), TrainingError)
    assert solver_advice(AssertionError("something else")) is None


def test_ode_step_size_underflow_gives_advice(tensors, monkeypatch):
    """Dynamics that return NaN make dopri5 shrink its step until torchdiffeq asserts 'underflow in dt'."""

    def broken(self, t, h):
        self.calls += 1
        return torch.full_like(h, float("nan"))

    monkeypatch.setattr(ODEFunc, "forward", broken)
    x, y = tensors["train"]
    model = build_model("odenet", ode=ODEConfig.original())
    with pytest.raises(TrainingError, match=r"step size underflowed \(underflow in dt.*--solver rk4"):
        fit(model, x[:32], y[:32], x[:0], y[:0], TrainConfig(epochs=1, batch_size=32), progress=False)
    with pytest.raises(TrainingError, match="underflow in dt"):
        predict(model, x[:8])


# ------------------------------------------------------------------------------------------------ the commands
SYNTHETIC_ARGS = ["--source", "synthetic", "--synthetic-seconds", "20"]
RESNET_RUN = ["train", "--model", "resnet", *SYNTHETIC_ARGS, "--limit", "600", "--epochs", "3",
              "--batch-size", "64", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def synthetic_cache(tmp_path_factory):
    """A cache with the 48 synthetic records of 20 s and their beats, shared by the command-line runs."""
    folder = tmp_path_factory.mktemp("synthetic-cache")
    load_beats("synthetic", synthetic_seconds=20, cache_dir=folder)
    return folder


def _bad_npz(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    x, y = rng.random((80, 187)).astype(np.float32), (np.arange(80) % 5).astype(np.int64)
    paths["shape"] = folder / "shape.npz"
    np.savez(paths["shape"], x=x[:, :180], y=y)
    paths["nan"] = folder / "nan.npz"
    x_nan = x.copy()
    x_nan[11, 40] = np.nan
    np.savez(paths["nan"], x=x_nan, y=y)
    paths["label7"] = folder / "label7.npz"
    y7 = y.copy()
    y7[23] = 7
    np.savez(paths["label7"], x=x, y=y7)
    paths["labels_short"] = folder / "labels_short.npz"
    np.savez(paths["labels_short"], x=x, y=y[:70])
    return paths


def _kill_after_first_epoch(run: Path, env: dict[str, str]) -> dict:
    """Start the resnet run, SIGKILL it as soon as epoch 1's checkpoint exists, then rerun it to the end."""
    cmd = [sys.executable, "-m", "ecglib", *RESNET_RUN, "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env},
                            cwd=REPO, text=True)
    deadline = time.monotonic() + 240
    while not (run / "checkpoint.pt").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"run ended before its first checkpoint: {proc.returncode}\n{err}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    killed = {"returncode": proc.returncode, "had_metrics": (run / "metrics.json").exists(),
              "epoch": torch.load(run / "checkpoint.pt", weights_only=True)["epoch"]}
    killed["resumed"] = run_cli(*RESNET_RUN, "--out", run, env=env)
    return killed


@pytest.fixture(scope="module")
def cli_runs(synthetic_cache, tmp_path_factory):
    """All command-line training runs of this module, started together (each pays seconds of imports)."""
    root = tmp_path_factory.mktemp("cli-runs")
    env = {"ECGLIB_CACHE": str(synthetic_cache), "OMP_NUM_THREADS": "1"}
    bad = _bad_npz(root / "bad")
    calls = {
        "straight": ([*RESNET_RUN, "--out", root / "straight"], {"env": env}),
        "odenet": (["train", "--model", "odenet", *SYNTHETIC_ARGS, "--solver", "dopri5", "--limit", "200",
                    "--epochs", "1", "--batch-size", "64", "--threads", "1", "--quiet", "--out", root / "odenet"],
                   {"env": env}),
        # one bad file in a process of its own; the others below go through cli.main in this process
        "npz_label7": (["train", "--model", "resnet", "--data", bad["label7"], "--epochs", "1", "--quiet",
                        "--out", root / "run_label7"], {"env": env}),
    }
    resumed = {}
    killer = threading.Thread(target=lambda: resumed.update(_kill_after_first_epoch(root / "killed", env)))
    killer.start()
    results = dict(zip(calls, run_cli_many(list(calls.values()), workers=3)))
    killer.join()
    return {"root": root, "env": env, "bad": bad, "killed": resumed, **results}


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_train_writes_metrics_json(cli_runs):
    result = cli_runs["straight"]
    assert result.rc == 0, result.stderr
    assert "resnet: test accuracy" in result.stdout and "182,853 parameters" in result.stdout
    run = cli_runs["root"] / "straight"
    m = _metrics(run)
    for key in ("accuracy", "macro_f1", "baseline_accuracy", "per_class", "confusion_matrix", "params",
                "seconds_per_epoch", "nfe_forward", "nfe_backward", "activation_bytes", "config"):
        assert key in m, key
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (5, 5)
    assert cm.sum() == m["n_test"] == m["split_sizes"]["test"] == 120  # 20% of --limit 600
    assert m["split_sizes"] == {"train": 432, "val": 48, "test": 120}
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert [m["per_class"][c]["support"] for c in CLASSES] == cm.sum(axis=1).tolist()  # rows: true class
    assert m["params"] == 182_853
    assert len(m["seconds_per_epoch"]) == 3 and all(s > 0 for s in m["seconds_per_epoch"])
    assert m["nfe_forward"] == 0 and m["nfe_backward"] == 0
    assert m["activation_bytes"] > 0
    assert 0 < m["baseline_accuracy"] < 1 and 0 <= m["macro_f1"] <= 1
    assert m["config"]["model"]["model"] == "resnet" and m["config"]["train"]["epochs"] == 3
    assert m["config"]["data"]["limit"] == 600 and m["config"]["split"] == "intra"
    assert [h["epoch"] for h in m["history"]] == [1, 2, 3]
    with open(run / "history.csv") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2, 3]


def test_resume_after_sigkill_matches_an_uninterrupted_run(cli_runs):
    killed = cli_runs["killed"]
    assert killed["returncode"] == -signal.SIGKILL
    assert not killed["had_metrics"], "the run finished before it was killed: nothing was resumed"
    assert killed["epoch"] in (1, 2)
    resumed = killed["resumed"]
    assert resumed.rc == 0, resumed.stderr
    a, b = _metrics(cli_runs["root"] / "straight"), _metrics(cli_runs["root"] / "killed")
    assert b["accuracy"] == a["accuracy"]
    assert b["confusion_matrix"] == a["confusion_matrix"]
    assert b["macro_f1"] == a["macro_f1"] and b["best_epoch"] == a["best_epoch"]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
        assert [h[key] for h in b["history"]] == [h[key] for h in a["history"]], key
    best_a = torch.load(cli_runs["root"] / "straight" / "best.pt", weights_only=True)["model"]
    best_b = torch.load(cli_runs["root"] / "killed" / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)


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
    path = _bad_npz(tmp_path)["labels_short"]
    line = assert_one_line_error(run_main(capsys, "train", "--model", "odenet", "--data", path, "--out",
                                          tmp_path / "run"), "labels_short.npz", "70 labels for 80 beats")
    assert str(path) in line and not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------------- evaluate
@pytest.fixture(scope="module")
def evaluations(cli_runs):
    """The finished runs, and copies of the resnet run with a foreign best.pt."""
    import shutil

    root, env = cli_runs["root"], cli_runs["env"]
    assert cli_runs["straight"].rc == 0 and cli_runs["odenet"].rc == 0, cli_runs["odenet"].stderr
    broken = {}
    for name in ("odenet_ckpt", "random_file", "width_mismatch", "narrow_resnet"):
        folder = root / f"wrong_{name}"
        shutil.copytree(root / "straight", folder)
        broken[name] = folder / "best.pt"
    save_best(build_model("odenet", **FAST_ODE), broken["odenet_ckpt"])
    broken["random_file"].write_bytes(os.urandom(4096))
    narrow = build_model("resnet", width=32)
    save_best(narrow, broken["width_mismatch"], config={**narrow.config, "width": 64})
    save_best(narrow, broken["narrow_resnet"])
    return {"root": root, "broken": broken, "env": env}


@pytest.fixture
def evaluate(evaluations, monkeypatch, capsys):
    """`ecglib evaluate ARGS` through cli.main, with the runs' synthetic cache."""
    monkeypatch.setenv("ECGLIB_CACHE", evaluations["env"]["ECGLIB_CACHE"])
    return lambda *args: run_main(capsys, "evaluate", *args)


def test_evaluate_reproduces_the_run(evaluations, evaluate):
    result = evaluate(evaluations["root"] / "straight", "--out", evaluations["root"] / "resnet_eval.json")
    assert result.rc == 0, result.stderr
    assert "accuracy" in result.stdout and "NFE" in result.stdout
    again = json.loads((evaluations["root"] / "resnet_eval.json").read_text())
    m = _metrics(evaluations["root"] / "straight")
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
    trained = _metrics(evaluations["root"] / "odenet")
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
