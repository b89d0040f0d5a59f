"""The one training loop: learning, run folders, resuming, keeping the best or last epoch, NaN and solver guards."""
from __future__ import annotations

import csv
import re

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    FAST_ODE,
    odenet,
)

import ecglib.experiments.tolerance
import ecglib.training.loop
from ecglib.checkpoints import CHECKPOINT_FORMAT, load_checkpoint
from ecglib.config import ODEConfig, TrainConfig
from ecglib.data.inputs import to_tensors
from ecglib.data.splits import split_beats
from ecglib.errors import InputError, TrainingError
from ecglib.inference import evaluate as evaluate_model
from ecglib.inference import predict, solver_advice
from ecglib.models import ODEFunc, build_model
from ecglib.runs import HISTORY_FIELDS
from ecglib.training.loop import fit


@pytest.fixture(scope="module")
def tensors(synthetic_beats):
    split = split_beats(synthetic_beats, "intra", seed=0)
    return {part: to_tensors(synthetic_beats, getattr(split, part)) for part in ("train", "val", "test")}


def full_loss(model, x, y) -> float:
    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


def test_fit_adds_the_penalty_and_trains_to_other_weights():

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 187, generator=g), torch.randint(0, 5, (64,), generator=g)
    cfg = TrainConfig(epochs=1, batch_size=32, optimizer="adam", lr=1e-2, threads=1)
    weights = []
    for settings in ({}, {"kinetic": 1.0}):
        torch.manual_seed(0)
        model = odenet(solver="rk4", step_size=1.0, **settings)
        history = fit(model, x, y, x[:0], y[:0], cfg, progress=False)
        assert torch.isfinite(torch.tensor(history[-1]["train_loss"]))
        weights.append(model.ode.func.norm3.weight.detach().clone())
    assert not torch.equal(weights[0], weights[1])


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
