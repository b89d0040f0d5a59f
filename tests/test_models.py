"""The two models: shapes, exact parameter counts, the NFE bookkeeping, solver choice."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import K

from ecglib.config import (
    ADAPTIVE_SOLVERS,
    FIXED_GRID_SOLVERS,
    MODELS,
    SETTINGS,
    SOLVERS,
    ODEConfig,
    TrainConfig,
    logit_offsets,
)
from ecglib.data.facts import BEAT_LENGTH, CLASSES, RHYTHM_INPUTS
from ecglib.errors import InputError
from ecglib.inference import predict
from ecglib.metrics import count_parameters
from ecglib.models import REWRITES, ConcatConv1d, build_model, fixed_grid, fixed_grid_solve, model_from_config
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
    ("midpoint", {}, 4),                # the default: two steps, 2 evaluations each
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


def test_the_default_odenet_takes_exactly_two_midpoint_steps():
    model = build_model("odenet")
    assert model.ode.config == ODEConfig() and ODEConfig().steps == 2 and ODEConfig().solver == "midpoint"
    model.reset_nfe()
    model(batch(2)[0]).sum().backward()
    assert model.nfe() == (4, 0)  # 2 steps of 2 evaluations, direct backprop: none backwards


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
    assert ODEConfig().label() == "midpoint, 2 steps, direct backpropagation"
    assert original.label() == "dopri5, rtol 0.001, atol 0.001, adjoint"


def test_an_adaptive_solve_has_a_step_limit():
    model = odenet(solver="dopri5")
    assert model.ode.solver_kwargs()["options"]["max_num_steps"] > 0


FAST_ODE = {"ode": ODEConfig(solver="rk4", step_size=0.5, adjoint=False)}


# -------------------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize("name, kwargs, plain", [("resnet", {}, 182_853), ("odenet", FAST_ODE, 59_333)])
def test_parameters_and_shapes_with_and_without_rhythm(name, kwargs, plain):
    x, r = torch.rand(4, 1, BEAT_LENGTH), torch.rand(4, K)
    model = build_model(name, **kwargs)
    assert count_parameters(model) == plain
    assert "rhythm_features" not in model.config and "in_channels" not in model.config
    assert model(x).shape == (4, 5)
    with pytest.raises(ValueError, match="no rhythm"):
        model(x, r)
    rhythmic = build_model(name, rhythm_features=K, **kwargs)
    assert count_parameters(rhythmic) == plain + (K * 16 + 16) + 16 * 5
    assert rhythmic(x, r).shape == (4, 5)
    with pytest.raises(ValueError, match="needs rhythm"):
        rhythmic(x)
    ctx = build_model(name, rhythm_features=K, in_channels=3, **kwargs)
    assert count_parameters(ctx) == count_parameters(rhythmic) + 2 * 64 * 3
    assert ctx(torch.rand(4, 3, BEAT_LENGTH), r).shape == (4, 5)


def test_rhythm_standardisation_travels_with_the_weights(tmp_path):
    model = build_model("resnet", width=8, blocks=1, rhythm_features=3)
    r = torch.tensor([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0]])
    model.set_rhythm_stats(r)
    torch.testing.assert_close(model.rhythm_mean, torch.tensor([2.0, 5.0, 3.0]))
    torch.testing.assert_close(model.rhythm_std, torch.tensor([1.0, 1.0, 1.0]))  # the constant one keeps std 1
    again = build_model("resnet", width=8, blocks=1, rhythm_features=3)
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again.rhythm_mean, model.rhythm_mean)


# ------------------------------------------------------------------------------------------- morphology dropout
@pytest.mark.parametrize("name", ["resnet", "odenet"])
def test_morphology_dropout_leaves_a_dropped_beat_its_rhythm_alone(name):
    kwargs = {"width": 8, "blocks": 1, **(FAST_ODE if name == "odenet" else {})}
    model = build_model(name, rhythm_inputs=RHYTHM_INPUTS, in_channels=4, **kwargs).eval()
    x, r = torch.rand(6, 4, BEAT_LENGTH), torch.rand(6, len(RHYTHM_INPUTS))
    other = torch.rand(6, 4, BEAT_LENGTH)
    keep = torch.tensor([True, False, True, False, False, True])
    with torch.no_grad():
        plain, dropped = model(x, r), model(x, r, keep)
        torch.testing.assert_close(model(x, r, torch.ones(6, dtype=torch.bool)), plain)
        torch.testing.assert_close(dropped[keep], plain[keep])
        # A dropped beat's logits do not depend on its shape: they are the head's bias plus its rhythm's share.
        torch.testing.assert_close(model(other, r, keep)[~keep], dropped[~keep])
        rhythm_part = model.rhythm((r - model.rhythm_mean) / model.rhythm_std)
        alone = model.head[-1](torch.cat([torch.zeros(6, 8), rhythm_part], dim=1))
        torch.testing.assert_close(dropped[~keep], alone[~keep])
        assert not torch.allclose(dropped[~keep], plain[~keep])
    with pytest.raises(ValueError, match="keep_morphology must be shaped"):
        model(x, r, keep[:3])
    with pytest.raises(ValueError, match="needs a model with a rhythm input"):
        build_model(name, **kwargs)(x[:, :1], None, keep)


# ------------------------------------------------------------------------------------------- S decision offset
@pytest.mark.parametrize("name", ["resnet", "odenet"])
def test_logit_offsets_move_decisions_not_training(name):
    kwargs = {"width": 8, "blocks": 1, **(FAST_ODE if name == "odenet" else {})}
    torch.manual_seed(0)
    plain = build_model(name, rhythm_inputs=RHYTHM_INPUTS, **kwargs)
    offsets = logit_offsets(0.7)
    assert offsets == [0.0, 0.7, 0.0, 0.0, 0.0] and logit_offsets(0.0) is None
    shifted = build_model(name, rhythm_inputs=RHYTHM_INPUTS, logit_offsets=offsets, **kwargs)
    shifted.load_state_dict(plain.state_dict())  # the offsets are no weights: the same state_dict fits both
    assert shifted.config["logit_offsets"] == offsets and "logit_offsets" not in plain.config
    assert count_parameters(shifted) == count_parameters(plain)
    x, r = torch.rand(5, 1, BEAT_LENGTH), torch.rand(5, len(RHYTHM_INPUTS))
    with torch.no_grad():
        torch.testing.assert_close(shifted.train()(x, r), plain.train()(x, r))  # the loss never sees them
        torch.testing.assert_close(shifted.eval()(x, r), plain.eval()(x, r) + torch.tensor(offsets))
        rebuilt = model_from_config(shifted.config)
        rebuilt.load_state_dict(plain.state_dict())
        torch.testing.assert_close(rebuilt.eval()(x, r), shifted(x, r))
        shifted.set_logit_offsets([0.0] * 5)
        torch.testing.assert_close(shifted(x, r), plain(x, r))
        assert "logit_offsets" not in shifted.config
    # A large enough offset calls every beat S; the plain model did not.
    huge = build_model(name, rhythm_inputs=RHYTHM_INPUTS, logit_offsets=logit_offsets(1e3), **kwargs)
    huge.load_state_dict(plain.state_dict())
    assert (predict(huge, x, rhythm=r)[0] == CLASSES.index("S")).all()
    assert not (predict(plain, x, rhythm=r)[0] == CLASSES.index("S")).all()
    for bad in ([0.0, 1.0], [0.0, float("nan"), 0.0, 0.0, 0.0]):
        with pytest.raises(ValueError, match="are not 5 finite numbers"):
            build_model(name, logit_offsets=bad, **kwargs)
    with pytest.raises(InputError, match="s_offset: must be a finite number, not inf"):
        TrainConfig(s_offset=float("inf"))


def test_template_model_parameters():
    x, r = torch.rand(4, 2, BEAT_LENGTH), torch.rand(4, 10)
    plain = build_model("resnet", rhythm_features=10)
    model = build_model("resnet", rhythm_features=10, in_channels=2)
    assert count_parameters(model) == count_parameters(plain) + 64 * 3  # the stem's first conv sees one more channel
    assert model.config["in_channels"] == 2 and model(x, r).shape == (4, 5)


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

# ---------------------------------------------------------------------------------------- the exact rewrites
# The ODE block's exact rewrites (models.REWRITES) against the plain formulation: same outputs, same gradients, same
# NFE. The plain formulation is every rewrite off (ODEFunc.rewrites empty), the fixed grid solved by torchdiffeq's
# odeint; the time channel is checked against its definition (the constant plane concatenated and convolved).

REWRITE_TOL = 1e-5  # outputs and gradients of the rewritten block within 1e-5 of the plain formulation
N_RHYTHM = 7


def rewrite_batch(n: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 187, generator=g), torch.randint(0, 5, (n,), generator=g),
            torch.randn(n, N_RHYTHM, generator=g))


def plain_twin(ode: ODEConfig, rhythm: bool = False):
    """The same ODE-Net twice: with every rewrite (the default) and with none."""
    torch.manual_seed(0)
    fast = build_model("odenet", ode=ode, rhythm_features=N_RHYTHM if rhythm else 0)
    plain = copy.deepcopy(fast)
    plain.ode.func.rewrites = set()
    assert fast.ode.func.rewrites == set(REWRITES)
    return fast, plain


def train_step(model, x, y, r, rhythm: bool):
    """Logits and the loss's gradient of every parameter after one training-mode forward and backward pass."""
    model.train()
    model.zero_grad(set_to_none=True)
    model.reset_nfe()
    logits = model(x, r) if rhythm else model(x)
    F.cross_entropy(logits, y).backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


SOLVES = [("euler", 1), ("euler", 3), ("euler", 6), ("midpoint", 1), ("midpoint", 3), ("midpoint", 5),
          ("rk4", 1), ("rk4", 2), ("rk4", 3)]


@pytest.mark.parametrize("rhythm", [False, True], ids=["beat", "beat+rhythm"])
@pytest.mark.parametrize("solver, steps", SOLVES)
def test_rewrites_give_the_plain_outputs_gradients_and_nfe(solver, steps, rhythm):
    fast, plain = plain_twin(ODEConfig(solver=solver, step_size=1 / steps), rhythm)
    assert fast.ode.direct and not plain.ode.direct
    x, y, r = rewrite_batch()
    out_fast, grad_fast = train_step(fast, x, y, r, rhythm)
    out_plain, grad_plain = train_step(plain, x, y, r, rhythm)
    assert max_diff(out_fast, out_plain) <= REWRITE_TOL
    assert grad_fast.keys() == grad_plain.keys()
    worst = max(grad_fast, key=lambda n: max_diff(grad_fast[n], grad_plain[n]))
    assert max_diff(grad_fast[worst], grad_plain[worst]) <= REWRITE_TOL, worst
    evaluations = {"euler": 1, "midpoint": 2, "rk4": 4}[solver] * steps
    assert fast.nfe() == plain.nfe() == (evaluations, 0)
    # and in evaluation mode, without gradients, as the model decides
    fast.eval(), plain.eval()
    with torch.no_grad():
        assert max_diff(fast(x, r) if rhythm else fast(x), plain(x, r) if rhythm else plain(x)) <= REWRITE_TOL


@pytest.mark.parametrize("step_size", [1.0, 0.5, 1 / 3, 0.25, 1 / 6, 0.3, 0.15])
def test_the_grid_is_torchdiffeqs(step_size):
    """Same time points as torchdiffeq, including a step that does not divide 1 (a short last step)."""
    from torchdiffeq._impl.solvers import FixedGridODESolver

    t = torch.tensor([0.0, 1.0])
    expected = FixedGridODESolver._grid_constructor_from_step_size(step_size)(None, None, t)
    assert torch.equal(torch.stack(fixed_grid(step_size, torch.float32)), expected)


@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4"])
def test_fixed_grid_solve_is_torchdiffeqs_odeint_at_the_same_times(solver):
    """The solve alone, on dynamics that record the times they are evaluated at: same times, same result; a step of
    0.3 leaves a short last step."""
    from torchdiffeq import odeint

    torch.manual_seed(0)
    a = torch.randn(5, 5, dtype=torch.float64) * 0.5

    class Dynamics(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.times: list[float] = []
            self.calls = 0

        def time_maps(self, length):
            return None

        def forward(self, t, y, maps=None):
            self.times.append(float(t))
            return torch.tanh(y @ a) * torch.cos(3 * t)

    y0 = torch.randn(4, 5, 5, dtype=torch.float64)
    ours, theirs = Dynamics(), Dynamics()
    out = fixed_grid_solve(ours, y0, solver, 0.3)
    expected = odeint(theirs, y0, torch.tensor([0.0, 1.0], dtype=torch.float64), method=solver,
                      options={"step_size": 0.3})[-1]
    assert ours.times == theirs.times and len(ours.times) == {"euler": 4, "midpoint": 8, "rk4": 16}[solver]
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("t", [0.0, 0.37, 1.0, torch.tensor([0.1, 0.5, 0.9])])
def test_the_time_map_convolves_the_concatenated_time_channel(t):
    """ConcatConv1d with its time map, computed once or per call, against its definition, for a scalar time and
    per-beat times (torchode), edges included; gradients of the weights too."""
    conv = ConcatConv1d(4, 3, kernel_size=3)
    h = torch.randn(3, 4, 11, requires_grad=True)
    tt = torch.as_tensor(t)
    reference = conv.reference(tt, h)
    plane = tt.reshape(-1, 1, 1).expand(3, 1, 11)
    torch.testing.assert_close(reference, F.conv1d(torch.cat([plane, h], 1), conv.weight, conv.bias, padding=1))
    once = conv.time_map(11)
    for out in (conv(tt, h), conv(tt, h, once)):
        torch.testing.assert_close(out, reference, rtol=0, atol=REWRITE_TOL)
        g_out = torch.autograd.grad(out.sum(), (conv.weight, conv.bias, h))
        g_ref = torch.autograd.grad(reference.sum(), (conv.weight, conv.bias, h), retain_graph=True)
        for a, b in zip(g_out, g_ref):
            torch.testing.assert_close(a, b, rtol=0, atol=REWRITE_TOL)


@pytest.mark.parametrize("settings", [
    {"solver": "heun2", "step_size": 1 / 3},  # fixed grid, not one of the direct solvers: torchdiffeq's odeint
    {"solver": "dopri5", "step_size": None, "rtol": 1e-4, "atol": 1e-4},  # adaptive, direct backpropagation
    {"solver": "heun2", "step_size": 1 / 3, "backend": "torchode"},  # per-beat times
], ids=["heun2", "dopri5", "torchode"])
def test_the_time_map_rewrite_elsewhere_changes_nothing(settings):
    fast, plain = plain_twin(ODEConfig(**settings))
    assert not fast.ode.direct
    x, y, r = rewrite_batch()
    out_fast, grad_fast = train_step(fast, x, y, r, False)
    out_plain, grad_plain = train_step(plain, x, y, r, False)
    assert max_diff(out_fast, out_plain) <= REWRITE_TOL
    assert max(max_diff(grad_fast[n], grad_plain[n]) for n in grad_fast) <= REWRITE_TOL
    assert fast.nfe() == plain.nfe()


def test_the_adjoint_and_rnode_keep_their_own_paths():
    """The adjoint must reach the weights in every evaluation (no time maps, no direct solve); RNODE integrates its
    running costs with torchdiffeq in training, and the plain h in evaluation is solved directly."""
    adjoint = build_model("odenet", ode=ODEConfig(solver="rk4", step_size=0.5, adjoint=True))
    assert not adjoint.ode.direct
    x, y, _ = rewrite_batch()
    F.cross_entropy(adjoint(x), y).backward()
    assert adjoint.nfe() == (8, 8) and adjoint.ode.func.conv1.weight.grad.abs().sum() > 0
    rnode = build_model("odenet", ode=ODEConfig(solver="rk4", step_size=1.0, kinetic=0.01, jacobian=0.01))
    rnode.train()
    assert not rnode.ode.direct
    rnode(x)
    assert rnode.penalty() is not None
    rnode.eval()
    assert rnode.ode.direct


@pytest.mark.parametrize("rhythm", [False, True], ids=["beat", "beat+rhythm"])
def test_an_old_checkpoint_loads_and_predicts_the_same_classes(tmp_path, rhythm):
    """A state_dict saved by the plain block (every rewrite off: the keys and shapes the block had before them)
    loads into the rewritten one, strictly, and decides every beat alike."""
    torch.manual_seed(3)
    old = build_model("odenet", rhythm_features=N_RHYTHM if rhythm else 0)
    old.ode.func.rewrites = set()
    x, _, r = rewrite_batch(64, seed=4)
    old.eval()
    with torch.no_grad():
        old_logits = old(x, r) if rhythm else old(x)
    torch.save({"config": old.config, "state_dict": old.state_dict()}, tmp_path / "old.pt")

    saved = torch.load(tmp_path / "old.pt", weights_only=True)
    new = model_from_config(saved["config"])
    assert new.ode.func.rewrites == set(REWRITES)
    assert {k: v.shape for k, v in new.state_dict().items()} == {k: v.shape for k, v in saved["state_dict"].items()}
    new.load_state_dict(saved["state_dict"], strict=True)
    new.eval()
    with torch.no_grad():
        new_logits = new(x, r) if rhythm else new(x)
    assert max_diff(new_logits, old_logits) <= REWRITE_TOL
    assert torch.equal(new_logits.argmax(1), old_logits.argmax(1))


def test_the_state_dict_keys_are_those_before_the_rewrites():
    keys = set(build_model("odenet").state_dict())
    ode_keys = {k for k in keys if k.startswith("features.")}
    assert ode_keys == {f"features.func.{m}.{p}" for m in ("norm1", "norm2", "norm3", "conv1", "conv2")
                        for p in ("weight", "bias")}
