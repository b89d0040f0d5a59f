"""The two models: shapes, exact parameter counts, the NFE bookkeeping, solver choice."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ecglib.metrics import count_parameters
from ecglib.models import MODELS, ConcatConv1d, build_model


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def batch(n: int = 6):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 187, generator=g), torch.randint(0, 5, (n,), generator=g)


@pytest.mark.parametrize("name", MODELS)
def test_output_shape(name):
    model = build_model(name)
    x, _ = batch(7)
    out = model(x)
    assert out.shape == (7, 5) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # each beat is classified on its own (GroupNorm, no batch statistics)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x[:3]), model(x)[:3], rtol=1e-4, atol=1e-4)


def test_exact_parameter_counts():
    assert count_parameters(build_model("resnet")) == 182_853
    assert count_parameters(build_model("odenet")) == 59_333
    # and they scale as the architecture says: fewer blocks, fewer parameters
    assert count_parameters(build_model("resnet", blocks=2)) < 182_853
    assert count_parameters(build_model("odenet", width=32)) < 59_333


def test_unknown_model_or_solver():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("transformer")
    with pytest.raises(ValueError, match="unknown ODE solver"):
        build_model("odenet", solver="rk45")


def test_resnet_counts_no_nfe():
    model = build_model("resnet")
    x, y = batch()
    F.cross_entropy(model(x), y).backward()
    assert model.nfe() == (0, 0)
    assert model.ode is None


def test_nfe_with_adjoint_and_direct_backprop():
    x, y = batch()
    adjoint = build_model("odenet", adjoint=True)
    assert adjoint.nfe() == (0, 0)
    F.cross_entropy(adjoint(x), y).backward()
    forward, backward = adjoint.nfe()
    assert forward > 0 and backward > 0
    assert forward % 6 == 2  # dopri5: 6 evaluations per step plus the initial 2 (FSAL, first-step selection)

    direct = build_model("odenet", adjoint=False)
    direct.load_state_dict(adjoint.state_dict())
    F.cross_entropy(direct(x), y).backward()
    assert direct.nfe() == (forward, 0)  # same weights, same forward solve; nothing re-evaluated backward
    assert direct.ode.func.conv1.weight.grad is not None

    adjoint.reset_nfe()
    assert adjoint.nfe() == (0, 0)
    with torch.no_grad():
        adjoint(x)
    assert adjoint.nfe() == (forward, 0)


def test_nfe_grows_when_the_tolerance_tightens():
    x, _ = batch()
    model = build_model("odenet")
    counts = []
    with torch.no_grad():
        for tol in (1e-1, 1e-3, 1e-6):
            model.set_solver(rtol=tol, atol=tol)
            model.reset_nfe()
            model(x)
            counts.append(model.nfe()[0])
    assert counts[0] <= counts[1] < counts[2]
    assert counts[0] < counts[2]


@pytest.mark.parametrize("solver, kwargs, expected_nfe", [
    ("rk4", {"step_size": 0.25}, 16),   # 4 steps of 4 evaluations
    ("rk4", {"step_size": 0.5}, 8),
    ("euler", {"step_size": 0.1}, 10),
    ("midpoint", {}, 8),                # fixed-grid solvers default to step 0.25
])
def test_fixed_grid_solvers(solver, kwargs, expected_nfe):
    model = build_model("odenet", solver=solver, adjoint=False, **kwargs)
    x, y = batch()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.nfe() == (expected_nfe, 0)
    assert model.config["solver"] == solver
    assert model.ode.solver_kwargs()["options"]["step_size"] == kwargs.get("step_size", 0.25)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_dopri5_adjoint_seminorm_gives_nearly_the_same_gradients():
    x, y = batch()
    plain = build_model("odenet", solver="dopri5", adjoint=True, seminorm=False, rtol=1e-5, atol=1e-5)
    semi = build_model("odenet", solver="dopri5", adjoint=True, seminorm=True, rtol=1e-5, atol=1e-5)
    semi.load_state_dict(plain.state_dict())
    assert semi.ode.solver_kwargs()["adjoint_options"] == {"norm": "seminorm"}
    assert "norm" not in plain.ode.solver_kwargs()["adjoint_options"]
    for m in (plain, semi):
        F.cross_entropy(m(x), y).backward()
    assert semi.nfe()[1] > 0 and plain.nfe()[1] > 0
    assert semi.nfe()[0] == plain.nfe()[0]  # the seminorm changes only the backward solve
    assert rel_err(semi.ode.func.conv1.weight.grad, plain.ode.func.conv1.weight.grad) < 0.15
    assert rel_err(semi.stem[0].weight.grad, plain.stem[0].weight.grad) < 0.15


def test_adjoint_gradients_match_direct_backprop():
    x, y = batch()
    adjoint = build_model("odenet", adjoint=True, rtol=1e-5, atol=1e-5)
    direct = build_model("odenet", adjoint=False, rtol=1e-5, atol=1e-5)
    direct.load_state_dict(adjoint.state_dict())
    for m in (adjoint, direct):
        F.cross_entropy(m(x), y).backward()
    # the adjoint integrates the gradient backwards: close to, not equal to, backprop through the solver
    assert rel_err(adjoint.ode.func.conv2.weight.grad, direct.ode.func.conv2.weight.grad) < 0.1
    assert rel_err(adjoint.stem[0].weight.grad, direct.stem[0].weight.grad) < 0.15
    torch.testing.assert_close(adjoint.head[4].weight.grad, direct.head[4].weight.grad, rtol=1e-3, atol=1e-5)


def test_set_solver_changes_settings():
    model = build_model("odenet")
    assert (model.ode.solver, model.ode.rtol, model.ode.adjoint) == ("dopri5", 1e-3, True)
    model.set_solver(solver="rk4", step_size=0.5, rtol=None, adjoint=False)
    assert model.ode.solver == "rk4" and model.ode.step_size == 0.5 and model.ode.adjoint is False
    assert model.ode.rtol == 1e-3  # None leaves a setting alone
    assert model.config["solver"] == "rk4" and model.config["step_size"] == 0.5 and model.config["adjoint"] is False
    x, _ = batch()
    with torch.no_grad():
        model(x)
    assert model.nfe() == (8, 0)  # two rk4 steps now
    with pytest.raises(ValueError, match="unknown solver setting"):
        model.set_solver(tolerance=1e-3)
    with pytest.raises(ValueError, match="unknown solver setting"):
        model.set_solver(forward_calls=3)
    # a ResNet has no solver: a no-op
    resnet = build_model("resnet")
    resnet.set_solver(rtol=1e-2)
    assert "rtol" not in resnet.config


def test_loose_solver_is_close_to_precise_solver():
    """Train precise, deploy loose: the predictions of rk4 and dopri5 of the same weights agree closely."""
    x, _ = batch(8)
    model = build_model("odenet", rtol=1e-6, atol=1e-6)
    model.eval()
    with torch.no_grad():
        precise = model(x)
        model.set_solver(solver="rk4", step_size=0.25)
        loose = model(x)
    torch.testing.assert_close(loose, precise, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("t", [0.0, 0.37, 1.0])
def test_concat_conv_equals_convolving_the_concatenated_time_channel(t):
    conv = ConcatConv1d(4, 3, kernel_size=3)
    h = torch.randn(2, 4, 11, requires_grad=True)
    tt = torch.tensor(t)
    reference = F.conv1d(torch.cat([tt.expand(2, 1, 11), h], dim=1), conv.weight, conv.bias, padding=1)
    out = conv(tt, h)
    torch.testing.assert_close(out, reference)
    g_out, = torch.autograd.grad(out.sum(), conv.weight)
    g_ref, = torch.autograd.grad(reference.sum(), conv.weight)
    torch.testing.assert_close(g_out, g_ref)



def test_the_cli_default_takes_exactly_three_rk4_steps():
    from ecglib.cli import DEFAULT_ODE

    model = build_model("odenet", **DEFAULT_ODE)
    model.reset_nfe()
    model(batch(2)[0]).sum().backward()
    assert model.nfe() == (12, 0)  # 3 steps of 4 evaluations, direct backprop: none backwards


@pytest.mark.parametrize("text, value", [("1/3", 1 / 3), ("0.25", 0.25), (" 1/4 ", 0.25), ("1", 1.0)])
def test_step_size_option_takes_numbers_and_fractions(text, value):
    from ecglib.cli import _step_size

    assert _step_size(text) == value
    model = build_model("odenet", solver="rk4", step_size=_step_size(text), adjoint=False)
    model.reset_nfe()
    model(batch(2)[0])
    assert model.nfe()[0] == 4 * round(1 / value)


@pytest.mark.parametrize("text", ["abc", "0", "-0.5", "2", "1/0", ""])
def test_step_size_option_rejects_what_is_not_a_step(text):
    import argparse

    from ecglib.cli import _step_size

    with pytest.raises(argparse.ArgumentTypeError):
        _step_size(text)
