"""The speed levers of the ODE-Net (issue 13): RNODE regularisation, the torchode backend, deploy loose."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import ecglib.experiments.tolerance
from ecglib.config import ODEConfig, TrainConfig
from ecglib.errors import InputError
from ecglib.experiments.tolerance import tolerance_sweep
from ecglib.inference import predict_nfe
from ecglib.models import build_model, model_from_config
from ecglib.report.figures import plot_deploy_loose
from ecglib.training.loop import fit


def odenet(**settings):
    return build_model("odenet", ode=ODEConfig(**settings))


def batch(n: int = 6):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 187, generator=g), torch.randint(0, 5, (n,), generator=g)


# --------------------------------------------------------------------------------------------------------- RNODE
def test_rnode_penalty_of_one_euler_step_is_the_integrand_at_t0():
    # One Euler step from 0 to 1 integrates the running costs as their value at t = 0, h(0): the penalty is then
    # kinetic * mean_b mean(f^2) + jacobian * mean_b mean((eps^T df/dh)^2), computable by hand.
    x, _ = batch()
    torch.manual_seed(0)
    model = odenet(solver="euler", step_size=1.0, kinetic=0.3, jacobian=0.7)
    torch.manual_seed(5)
    model.train()
    model(x)
    penalty = model.penalty()
    h0 = model.stem(x).detach().requires_grad_(True)
    torch.manual_seed(5)
    eps = torch.randn_like(h0)  # the block draws its probe first in the forward pass, from the same state
    f = model.ode.func.dynamics(torch.tensor(0.0), h0)
    (vjp,) = torch.autograd.grad(f, h0, eps)
    expected = 0.3 * f.pow(2).flatten(1).mean(1).mean() + 0.7 * vjp.pow(2).flatten(1).mean(1).mean()
    torch.testing.assert_close(penalty, expected.detach(), rtol=1e-5, atol=1e-7)


def test_rnode_penalty_is_only_computed_in_training_and_only_when_asked():
    x, _ = batch()
    plain, regularised = odenet(), odenet(kinetic=0.01, jacobian=0.01)
    regularised.train()
    regularised(x)
    assert regularised.penalty() is not None and regularised.penalty().requires_grad
    regularised.eval()
    with torch.no_grad():
        regularised(x)
    assert regularised.penalty() is None
    plain.train()
    plain(x)
    assert plain.penalty() is None and build_model("resnet").penalty() is None


def test_rnode_changes_the_outputs_of_nothing_but_the_gradients():
    # The regularisation is a loss term: the forward pass gives the plain model's logits, the kinetic term pulls
    # the dynamics' output norm (its last GroupNorm's weight) towards zero.
    x, y = batch()
    torch.manual_seed(0)
    plain = odenet(step_size=0.5)
    regularised = odenet(step_size=0.5, kinetic=1.0)
    regularised.load_state_dict(plain.state_dict())
    plain.train(), regularised.train()
    torch.testing.assert_close(plain(x), regularised(x))
    losses = {}
    for name, m in (("plain", plain), ("regularised", regularised)):
        loss = F.cross_entropy(m(x), y)
        (loss + m.penalty() if m.penalty() is not None else loss).backward()
        losses[name] = m.ode.func.norm3.weight.grad.sum().item()
    assert losses["regularised"] > losses["plain"]  # a larger gradient pushes the weight down under descent


def test_rnode_with_the_adjoint_integrates_the_same_penalty_and_close_gradients():
    # The same forward solve gives the same penalty; the adjoint's gradients approach backprop's as the grid
    # refines (16 steps: within 1 % here; at 2 steps the two differ by a quarter with or without regularisation).
    x, y = batch()
    torch.manual_seed(0)
    for steps, settings, tolerance in ((16, {"kinetic": 0.1}, 0.02), (2, {"kinetic": 0.1, "jacobian": 0.1}, None)):
        direct = odenet(step_size=1 / steps, **settings)
        adjoint = odenet(step_size=1 / steps, adjoint=True, **settings)
        adjoint.load_state_dict(direct.state_dict())
        grads, penalties = [], []
        for m in (direct, adjoint):
            m.train()
            torch.manual_seed(3)  # the same Hutchinson probe
            logits = m(x)
            penalties.append(m.penalty().detach())
            (F.cross_entropy(logits, y) + m.penalty()).backward()
            grads.append(m.ode.func.norm3.weight.grad.clone())
        torch.testing.assert_close(penalties[0], penalties[1], rtol=1e-5, atol=1e-7)
        assert all(torch.isfinite(g).all() for g in grads)
        if tolerance is not None:
            assert (grads[0] - grads[1]).norm() / grads[0].norm() < tolerance


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


# ------------------------------------------------------------------------------------------------------ torchode
def test_torchode_fixed_steps_give_torchdiffeqs_numbers():
    x, y = batch()
    torch.manual_seed(0)
    a = odenet(solver="heun2", step_size=1 / 3)
    b = odenet(solver="heun2", step_size=1 / 3, backend="torchode")
    b.load_state_dict(a.state_dict())
    out_a, out_b = a(x), b(x)
    torch.testing.assert_close(out_a, out_b, rtol=1e-5, atol=1e-6)
    assert a.nfe() == b.nfe() == (6, 0)
    F.cross_entropy(out_a, y).backward()
    F.cross_entropy(out_b, y).backward()
    torch.testing.assert_close(a.ode.func.conv1.weight.grad, b.ode.func.conv1.weight.grad, rtol=1e-4, atol=1e-6)


def test_torchode_dopri5_solves_each_beat_to_the_tolerance():
    x, _ = batch()
    torch.manual_seed(0)
    precise = odenet(solver="dopri5", step_size=None, rtol=1e-7, atol=1e-7).eval()
    loose = odenet(solver="dopri5", step_size=None, backend="torchode").eval()
    loose.load_state_dict(precise.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(loose(x), precise(x), rtol=1e-2, atol=1e-2)
    assert loose.nfe()[0] > 6


@pytest.mark.parametrize("settings, problem", [
    ({"backend": "jax"}, "backend: must be one of torchdiffeq, torchode"),
    ({"backend": "torchode", "solver": "rk4", "step_size": 0.5}, "torchode has no solver 'rk4'"),
    ({"backend": "torchode", "solver": "heun2", "step_size": 0.5, "adjoint": True}, "direct backpropagation"),
    ({"backend": "torchode", "solver": "heun2", "step_size": 0.5, "kinetic": 0.1}, "direct backpropagation"),
    ({"kinetic": -0.1}, r"kinetic: must be a number in \[0, 100\], not -0.1"),
    ({"jacobian": float("nan")}, "jacobian: must be a number in .*, not nan"),
    ({"jacobian": True}, "jacobian: must be a number in .*, not True"),
])
def test_lever_settings_that_make_no_sense_are_refused(settings, problem):
    with pytest.raises(InputError, match=problem):
        ODEConfig(**settings)


def test_new_settings_enter_a_models_config_only_when_used():
    # Checkpoints written before the levers existed hold no backend/kinetic/jacobian: they must load and resume.
    plain = build_model("odenet").config
    assert not {"backend", "kinetic", "jacobian"} & set(plain)
    lever = odenet(solver="heun2", step_size=0.5, backend="torchode").config
    assert lever["backend"] == "torchode"
    assert model_from_config(lever).ode.config.backend == "torchode"
    rnode = odenet(kinetic=0.01, jacobian=0.02)
    assert (rnode.config["kinetic"], rnode.config["jacobian"]) == (0.01, 0.02)
    rnode.set_solver(kinetic=0.0, jacobian=0.0)
    assert "kinetic" not in rnode.config and not rnode.ode.config.regularised


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


# -------------------------------------------------------------------------------------------------- deploy loose
def test_deploy_loose_plot_takes_bench_rows_and_a_tolerance_sweep(tmp_path):
    import matplotlib

    matplotlib.use("Agg")

    x, y = batch(20)
    model = odenet().eval()  # the default: three midpoint steps, 6 evaluations
    sweep = tolerance_sweep(model, x, y.numpy(), [{"solver": "rk4", "step_size": 1.0},
                                                  {"solver": "dopri5", "rtol": 1e-2, "atol": 1e-2}])
    assert list(sweep["NFE/batch"])[:2] == [6, 4]
    ax = plot_deploy_loose(sweep)
    xs = sorted(float(v) for line in ax.get_lines() for v in line.get_xdata())
    assert xs == sorted(float(v) for v in sweep["NFE/batch"])
    rows = [{"config": "a", "solver": "rk4", "nfe_per_beat": n, "accuracy": acc, "trained": n == 4}
            for n, acc in ((4, 0.9), (8, 0.95), (16, 0.96))]
    ax = plot_deploy_loose(rows)
    assert [list(line.get_ydata()) for line in ax.get_lines()] == [[90.0, 95.0, 96.0]]
    ax.figure.savefig(tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 0
    json.dumps(rows)


def test_tolerance_sweep_skips_a_failing_setting_only_when_told(monkeypatch):

    x, y = batch(20)
    model = odenet().eval()
    real = predict_nfe

    def stiff(m, *args, **kwargs):  # an adaptive solve that hits its step limit
        if m.ode.config.solver == "dopri5":
            raise AssertionError("max_num_steps exceeded")
        return real(m, *args, **kwargs)

    monkeypatch.setattr(ecglib.experiments.tolerance, "predict_nfe", stiff)
    settings = [{"solver": "dopri5", "rtol": 1e-2, "atol": 1e-2}, {"solver": "rk4", "step_size": 1.0}]
    with pytest.raises(AssertionError):
        tolerance_sweep(model, x, y.numpy(), settings)
    sweep = tolerance_sweep(model, x, y.numpy(), settings, skip_failed=True)
    assert list(sweep["solver"]) == ["midpoint", "rk4"] and bool(sweep["trained"].iloc[0])
    assert model.ode.config.solver == "midpoint"  # restored after the sweep
