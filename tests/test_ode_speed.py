"""The ODE block's exact rewrites (issue 28) against the plain formulation: same outputs, same gradients, same NFE.

The plain formulation is the block as it was before them: every rewrite off (``ODEFunc.rewrites`` empty), the
fixed grid solved by torchdiffeq's ``odeint``; the time channel is checked against its definition (the constant
plane concatenated and convolved) on its own.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from ecglib.config import ODEConfig
from ecglib.models import REWRITES, ConcatConv1d, build_model, fixed_grid, fixed_grid_solve, model_from_config

TOL = 1e-5  # issue 28: outputs and gradients within 1e-5 of the plain formulation
RHYTHM = 7


def batch(n: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 187, generator=g), torch.randint(0, 5, (n,), generator=g),
            torch.randn(n, RHYTHM, generator=g))


def pair(ode: ODEConfig, rhythm: bool = False):
    """The same ODE-Net twice: with every rewrite (the default) and with none."""
    torch.manual_seed(0)
    fast = build_model("odenet", ode=ode, rhythm_features=RHYTHM if rhythm else 0)
    plain = copy.deepcopy(fast)
    plain.ode.func.rewrites = set()
    assert fast.ode.func.rewrites == set(REWRITES)
    return fast, plain


def run(model, x, y, r, rhythm: bool):
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
    fast, plain = pair(ODEConfig(solver=solver, step_size=1 / steps), rhythm)
    assert fast.ode.direct and not plain.ode.direct
    x, y, r = batch()
    out_fast, grad_fast = run(fast, x, y, r, rhythm)
    out_plain, grad_plain = run(plain, x, y, r, rhythm)
    assert max_diff(out_fast, out_plain) <= TOL
    assert grad_fast.keys() == grad_plain.keys()
    worst = max(grad_fast, key=lambda n: max_diff(grad_fast[n], grad_plain[n]))
    assert max_diff(grad_fast[worst], grad_plain[worst]) <= TOL, worst
    evaluations = {"euler": 1, "midpoint": 2, "rk4": 4}[solver] * steps
    assert fast.nfe() == plain.nfe() == (evaluations, 0)
    # and in evaluation mode, without gradients, as the model decides
    fast.eval(), plain.eval()
    with torch.no_grad():
        assert max_diff(fast(x, r) if rhythm else fast(x), plain(x, r) if rhythm else plain(x)) <= TOL


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
        torch.testing.assert_close(out, reference, rtol=0, atol=TOL)
        g_out = torch.autograd.grad(out.sum(), (conv.weight, conv.bias, h))
        g_ref = torch.autograd.grad(reference.sum(), (conv.weight, conv.bias, h), retain_graph=True)
        for a, b in zip(g_out, g_ref):
            torch.testing.assert_close(a, b, rtol=0, atol=TOL)


@pytest.mark.parametrize("settings", [
    {"solver": "heun2", "step_size": 1 / 3},  # fixed grid, not one of the direct solvers: torchdiffeq's odeint
    {"solver": "dopri5", "step_size": None, "rtol": 1e-4, "atol": 1e-4},  # adaptive, direct backpropagation
    {"solver": "heun2", "step_size": 1 / 3, "backend": "torchode"},  # per-beat times
], ids=["heun2", "dopri5", "torchode"])
def test_the_time_map_rewrite_elsewhere_changes_nothing(settings):
    fast, plain = pair(ODEConfig(**settings))
    assert not fast.ode.direct
    x, y, r = batch()
    out_fast, grad_fast = run(fast, x, y, r, False)
    out_plain, grad_plain = run(plain, x, y, r, False)
    assert max_diff(out_fast, out_plain) <= TOL
    assert max(max_diff(grad_fast[n], grad_plain[n]) for n in grad_fast) <= TOL
    assert fast.nfe() == plain.nfe()


def test_the_adjoint_and_rnode_keep_their_own_paths():
    """The adjoint must reach the weights in every evaluation (no time maps, no direct solve); RNODE integrates its
    running costs with torchdiffeq in training, and the plain h in evaluation is solved directly."""
    adjoint = build_model("odenet", ode=ODEConfig(solver="rk4", step_size=0.5, adjoint=True))
    assert not adjoint.ode.direct
    x, y, _ = batch()
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
    """A state_dict saved by the plain block (the keys and shapes the code had before issue 28) loads into the
    rewritten one, strictly, and decides every beat alike."""
    torch.manual_seed(3)
    old = build_model("odenet", rhythm_features=RHYTHM if rhythm else 0)
    old.ode.func.rewrites = set()
    x, _, r = batch(64, seed=4)
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
    assert max_diff(new_logits, old_logits) <= TOL
    assert torch.equal(new_logits.argmax(1), old_logits.argmax(1))


def test_the_state_dict_keys_are_those_before_the_rewrites():
    keys = set(build_model("odenet").state_dict())
    ode_keys = {k for k in keys if k.startswith("features.")}
    assert ode_keys == {f"features.func.{m}.{p}" for m in ("norm1", "norm2", "norm3", "conv1", "conv2")
                        for p in ("weight", "bias")}
