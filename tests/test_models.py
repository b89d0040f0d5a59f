"""The two models: shapes, exact parameter counts, the NFE bookkeeping, solver choice."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ecglib.config import ADAPTIVE_SOLVERS, FIXED_GRID_SOLVERS, MODELS, SETTINGS, SOLVERS, ODEConfig
from ecglib.errors import InputError
from ecglib.metrics import count_parameters
from ecglib.models import ConcatConv1d, build_model
from ecglib.params import arg_type


def ode(**settings) -> ODEConfig:
    """The project default with ``settings`` changed (an adaptive solver drops the step size)."""
    return ODEConfig.from_dict(settings)


def odenet(**settings):
    return build_model("odenet", ode=ode(**settings))


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
    with pytest.raises(InputError, match="solver: must be one of dopri5"):
        odenet(solver="rk45")


def test_resnet_counts_no_nfe():
    model = build_model("resnet")
    x, y = batch()
    F.cross_entropy(model(x), y).backward()
    assert model.nfe() == (0, 0)
    assert model.ode is None


def test_nfe_with_adjoint_and_direct_backprop():
    x, y = batch()
    adjoint = odenet(solver="dopri5", adjoint=True)
    assert adjoint.nfe() == (0, 0)
    F.cross_entropy(adjoint(x), y).backward()
    forward, backward = adjoint.nfe()
    assert forward > 0 and backward > 0
    assert forward % 6 == 2  # dopri5: 6 evaluations per step plus the initial 2 (FSAL, first-step selection)

    direct = odenet(solver="dopri5", adjoint=False)
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
    model = odenet(solver="dopri5")
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
    ("midpoint", {}, 6),                # the default's three steps, 2 evaluations each
    ("rk4", {"step_size": 1.0}, 4),     # one step
])
def test_fixed_grid_solvers(solver, kwargs, expected_nfe):
    model = odenet(solver=solver, adjoint=False, **kwargs)
    x, y = batch()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.nfe() == (expected_nfe, 0)
    assert model.config["solver"] == solver
    assert model.ode.solver_kwargs()["options"]["step_size"] == kwargs.get("step_size", ODEConfig().step_size)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_dopri5_adjoint_seminorm_gives_nearly_the_same_gradients():
    x, y = batch()
    plain = odenet(solver="dopri5", adjoint=True, seminorm=False, rtol=1e-5, atol=1e-5)
    semi = odenet(solver="dopri5", adjoint=True, seminorm=True, rtol=1e-5, atol=1e-5)
    semi.load_state_dict(plain.state_dict())
    assert semi.ode.solver_kwargs()["adjoint_options"]["norm"] == "seminorm"
    assert "norm" not in plain.ode.solver_kwargs()["adjoint_options"]
    for m in (plain, semi):
        F.cross_entropy(m(x), y).backward()
    assert semi.nfe()[1] > 0 and plain.nfe()[1] > 0
    assert semi.nfe()[0] == plain.nfe()[0]  # the seminorm changes only the backward solve
    assert rel_err(semi.ode.func.conv1.weight.grad, plain.ode.func.conv1.weight.grad) < 0.15
    assert rel_err(semi.stem[0].weight.grad, plain.stem[0].weight.grad) < 0.15


def test_adjoint_gradients_match_direct_backprop():
    x, y = batch()
    adjoint = odenet(solver="dopri5", adjoint=True, rtol=1e-5, atol=1e-5)
    direct = odenet(solver="dopri5", adjoint=False, rtol=1e-5, atol=1e-5)
    direct.load_state_dict(adjoint.state_dict())
    for m in (adjoint, direct):
        F.cross_entropy(m(x), y).backward()
    # the adjoint integrates the gradient backwards: close to, not equal to, backprop through the solver
    assert rel_err(adjoint.ode.func.conv2.weight.grad, direct.ode.func.conv2.weight.grad) < 0.1
    assert rel_err(adjoint.stem[0].weight.grad, direct.stem[0].weight.grad) < 0.15
    torch.testing.assert_close(adjoint.head[4].weight.grad, direct.head[4].weight.grad, rtol=1e-3, atol=1e-5)


def test_set_solver_changes_settings():
    model = odenet(solver="dopri5", adjoint=True)
    assert (model.ode.config.solver, model.ode.config.rtol, model.ode.config.adjoint) == ("dopri5", 1e-3, True)
    model.set_solver(solver="rk4", step_size=0.5, rtol=None, adjoint=False)
    c = model.ode.config
    assert c.solver == "rk4" and c.step_size == 0.5 and c.adjoint is False
    assert c.rtol == 1e-3  # None leaves a setting alone
    assert model.config["solver"] == "rk4" and model.config["step_size"] == 0.5 and model.config["adjoint"] is False
    x, _ = batch()
    with torch.no_grad():
        model(x)
    assert model.nfe() == (8, 0)  # two rk4 steps now
    model.set_solver(solver="dopri5")  # back to an adaptive solver: the step size goes
    assert model.ode.config.step_size is None and model.config["step_size"] is None
    with pytest.raises(InputError, match="unknown ODE setting"):
        model.set_solver(tolerance=1e-3)
    with pytest.raises(InputError, match="unknown ODE setting"):
        model.set_solver(forward_calls=3)
    with pytest.raises(InputError, match="needs a step size"):
        model.set_solver(solver="euler")
    # a ResNet has no solver: a no-op
    resnet = build_model("resnet")
    resnet.set_solver(rtol=1e-2)
    assert "rtol" not in resnet.config


def test_loose_solver_is_close_to_precise_solver():
    """Train precise, deploy loose: the predictions of rk4 and dopri5 of the same weights agree closely."""
    x, _ = batch(8)
    model = odenet(solver="dopri5", rtol=1e-6, atol=1e-6)
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



def test_the_default_odenet_takes_exactly_three_midpoint_steps():
    model = build_model("odenet")
    assert model.ode.config == ODEConfig() and ODEConfig().steps == 3 and ODEConfig().solver == "midpoint"
    model.reset_nfe()
    model(batch(2)[0]).sum().backward()
    assert model.nfe() == (6, 0)  # 3 steps of 2 evaluations, direct backprop: none backwards


@pytest.mark.parametrize("text, value", [("1/3", 1 / 3), ("0.25", 0.25), (" 1/4 ", 0.25), ("1", 1.0)])
def test_step_size_option_takes_numbers_and_fractions(text, value):
    step_size = arg_type(SETTINGS["step_size"])
    assert step_size(text) == value
    model = odenet(solver="rk4", step_size=step_size(text), adjoint=False)
    model.reset_nfe()
    model(batch(2)[0])
    assert model.nfe()[0] == 4 * round(1 / value)


@pytest.mark.parametrize("text", ["abc", "0", "-0.5", "2", "1/0", ""])
def test_step_size_option_rejects_what_is_not_a_step(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        arg_type(SETTINGS["step_size"])(text)


def test_the_solver_registry_is_torchdiffeqs():
    from torchdiffeq._impl.odeint import SOLVERS as TORCHDIFFEQ


    # scipy_solver wraps scipy's integrators and needs options of its own: the study does not offer it.
    assert set(SOLVERS) == set(TORCHDIFFEQ) - {"scipy_solver"}
    assert not set(ADAPTIVE_SOLVERS) & set(FIXED_GRID_SOLVERS)


@pytest.mark.parametrize("settings, problem", [
    ({"solver": "rk4", "step_size": None}, "needs a step size"),
    ({"solver": "rk4", "step_size": 1e-6}, r"step_size: must be .* in \[1/1000, 1\] .*, not 1e-06"),
    ({"solver": "rk4", "step_size": 0.0}, "step_size: must be .*, not 0.0"),
    ({"solver": "dopri5", "step_size": 0.5}, "chooses its own steps"),
    ({"solver": "dopri5", "step_size": None, "rtol": -1e-3}, "rtol"),
    ({"solver": "dopri5", "step_size": None, "atol": float("nan")}, "atol"),
    ({"solver": "dopri5", "step_size": None, "seminorm": True, "adjoint": False}, "seminorm"),
    ({"solver": "rk45"}, "solver: must be one of"),
])
def test_ode_settings_that_make_no_sense_are_refused(settings, problem):
    with pytest.raises(InputError, match=problem):
        ODEConfig(**{**ODEConfig().to_dict(), **settings})


def test_the_original_settings_and_the_default_are_one_object_each():
    original = ODEConfig.original()
    assert (original.solver, original.step_size, original.rtol, original.atol, original.adjoint) == \
        ("dopri5", None, 1e-3, 1e-3, True)
    assert ODEConfig().label() == "midpoint, 3 steps, direct backpropagation"
    assert original.label() == "dopri5, rtol 0.001, atol 0.001, adjoint"


def test_an_adaptive_solve_has_a_step_limit():
    model = odenet(solver="dopri5")
    assert model.ode.solver_kwargs()["options"]["max_num_steps"] > 0
