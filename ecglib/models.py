"""The two models of the study: a ResNet and an ODE-Net that share stem, head and block.

Both follow the torchdiffeq MNIST example (Chen et al. 2018, "Neural Ordinary Differential Equations") ported to
1-D. Input: beats shaped (batch, 1, 187). Output: logits (batch, 5).

A residual block computes h + f(h): one explicit Euler step of size 1 of dh/dt = f(h). The ResNet stacks six such
steps with six different f; the ODE-Net keeps one f (with t as an extra input channel) and integrates
dh/dt = f(t, h) from t = 0 to t = 1 with an ODE solver. The default, :class:`ecglib.config.ODEConfig` (which decides
it), is a fixed grid of midpoint steps backpropagated directly (two steps: four evaluations of f, against the
ResNet's six blocks). An adaptive solver, which chooses its own steps from its tolerances (dopri5, as in the
original study), is used only when an ODEConfig asks for one.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import fields
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import MAX_ADAPTIVE_STEPS, MODELS, TORCHODE_SOLVERS, ODEConfig, model_size_problem
from .errors import InputError


def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels), channels)


def stem(width: int = 64, in_channels: int = 1) -> nn.Sequential:
    """(B, in_channels, 187) -> (B, width, 46): a plain conv then two stride-2 convs."""
    return nn.Sequential(
        nn.Conv1d(in_channels, width, 3), norm(width), nn.ReLU(inplace=True),
        nn.Conv1d(width, width, 4, 2, 1), norm(width), nn.ReLU(inplace=True),
        nn.Conv1d(width, width, 4, 2, 1),
    )


def head(width: int = 64, n_classes: int = 5) -> nn.Sequential:
    """(B, width, L) -> (B, n_classes) logits."""
    return nn.Sequential(norm(width), nn.ReLU(inplace=True), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                         nn.Linear(width, n_classes))


class ResBlock(nn.Module):
    """Pre-activation residual block: h + conv(relu(gn(conv(relu(gn(h))))))."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = norm(width), nn.Conv1d(width, width, 3, padding=1, bias=False)
        self.norm2, self.conv2 = norm(width), nn.Conv1d(width, width, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.norm1(h)))
        out = self.conv2(self.relu(self.norm2(out)))
        return h + out


class TimeMap(NamedTuple):
    """What a ConcatConv1d needs at every evaluation of a solve, computed once per solve from its weights."""

    weight: torch.Tensor  # (C_out, C_in, k): the kernel's weights on h (a view of the parameter)
    ones: torch.Tensor  # (1, C_out, L): the kernel's t-weights convolved with a row of ones, zero padding included


class ConcatConv1d(nn.Conv1d):
    """Conv1d that sees the time t as one more constant input channel, so the dynamics can vary with t."""

    def __init__(self, channels_in: int, channels_out: int, kernel_size: int = 3) -> None:
        super().__init__(channels_in + 1, channels_out, kernel_size, padding=kernel_size // 2)

    def time_map(self, length: int) -> TimeMap:
        # Convolving the constant plane t is linear in t: t times the kernel's response to a row of ones, which
        # differs from the sum of the t-weights only at the edges (the zero padding). It depends on the weights
        # alone, so a solve computes it once and every evaluation adds t times it; gradients reach the t-weights
        # through it, summed over the evaluations.
        w = self.weight
        return TimeMap(w[:, 1:], F.conv1d(w.new_ones(1, 1, length), w[:, :1], padding=self.padding))

    def forward(self, t: torch.Tensor | float, h: torch.Tensor,  # type: ignore[override]
                time_map: TimeMap | None = None) -> torch.Tensor:
        """Same as convolving torch.cat([t * ones, h]) (:meth:`reference`), without building that (batch, C + 1, L)
        copy. t: a scalar, or (B,) times of the B states (torchode steps each beat on its own clock); h (B, C, L);
        time_map: this layer's :meth:`time_map` for h's length, computed here when None."""
        m = time_map if time_map is not None else self.time_map(h.shape[2])
        out = F.conv1d(h, m.weight, self.bias, padding=self.padding)
        if isinstance(t, torch.Tensor):
            t = t.to(h.dtype).reshape(-1, 1, 1) if t.dim() else t.to(h.dtype)
        return out.add_(t * m.ones)  # in place: the convolution keeps its input for backward, not its output

    def reference(self, t: torch.Tensor | float, h: torch.Tensor) -> torch.Tensor:
        """The definition: convolve h with the constant plane t concatenated as channel 0 (tests compare to it)."""
        plane = torch.as_tensor(t, dtype=h.dtype).reshape(-1, 1, 1).expand(h.shape[0], 1, h.shape[2])
        return F.conv1d(torch.cat([plane, h], dim=1), self.weight, self.bias, padding=self.padding)


# The exact rewrites of the ODE block, each on unless switched off in ODEFunc.rewrites (tests and
# benchmarks/bench_ode_rewrites.py compare with and without them). Off, the block computes its plain formulation.
#   time_map: the time channel's response computed once per solve, not at every evaluation (ConcatConv1d.time_map)
#   norms: F.group_norm and an in-place ReLU called directly, not through nn.Module calls
#   direct_solve: euler, midpoint and rk4 solved by fixed_grid_solve, not by torchdiffeq's odeint (ODEBlock)
REWRITES = ("time_map", "norms", "direct_solve")


class ODEFunc(nn.Module):
    """The dynamics f(t, h) = gn(conv_t(relu(gn(conv_t(relu(gn(h))))))); counts its own evaluations."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = norm(width), ConcatConv1d(width, width)
        self.norm2, self.conv2 = norm(width), ConcatConv1d(width, width)
        self.norm3 = norm(width)
        self.relu = nn.ReLU(inplace=True)
        self.calls = 0
        self.rewrites = set(REWRITES)  # not state: a checkpoint holds the weights alone

    def forward(self, t: torch.Tensor | float, h: torch.Tensor,
                maps: tuple[TimeMap, TimeMap] | None = None) -> torch.Tensor:
        self.calls += 1
        return self.dynamics(t, h, maps)

    def time_maps(self, length: int) -> tuple[TimeMap, TimeMap] | None:
        """The two convolutions' time maps for states of this length, to pass to every evaluation of one solve;
        None when the time_map rewrite is off (each evaluation then computes its own)."""
        if "time_map" not in self.rewrites:
            return None
        return self.conv1.time_map(length), self.conv2.time_map(length)

    def dynamics(self, t: torch.Tensor | float, h: torch.Tensor,
                 maps: tuple[TimeMap, TimeMap] | None = None) -> torch.Tensor:
        """f(t, h) itself, without the counting (what torch.compile may wrap: the counter would recompile it)."""
        m1, m2 = maps if maps is not None else (None, None)
        if "norms" not in self.rewrites:
            out = self.conv1(t, self.relu(self.norm1(h)), m1)
            out = self.conv2(t, self.relu(self.norm2(out)), m2)
            return self.norm3(out)
        # The norms' own kernels, without three module calls per evaluation; each ReLU overwrites its norm's
        # output, which nothing else keeps (GroupNorm saves its input for backward, ReLU and the convolution the
        # ReLU's output).
        n1, n2, n3 = self.norm1, self.norm2, self.norm3
        out = self.conv1(t, F.group_norm(h, n1.num_groups, n1.weight, n1.bias, n1.eps).relu_(), m1)
        out = self.conv2(t, F.group_norm(out, n2.num_groups, n2.weight, n2.bias, n2.eps).relu_(), m2)
        return F.group_norm(out, n3.num_groups, n3.weight, n3.bias, n3.eps)


# The fixed-grid methods that fixed_grid_solve takes; the others (heun2, heun3, the Adams methods) go to torchdiffeq.
DIRECT_SOLVERS = ("euler", "midpoint", "rk4")


def fixed_grid(step_size: float, dtype: torch.dtype) -> list[torch.Tensor]:
    """The time points from 0 to 1 of torchdiffeq's fixed-grid solvers (FixedGridODESolver's grid constructor),
    computed as it does: k * step_size in ``dtype`` for k < ceil(1 / step_size + 1), the last one set to 1."""
    start, end = torch.zeros((), dtype=dtype), torch.ones((), dtype=dtype)
    n = int(torch.ceil((end - start) / step_size + 1).item())
    grid = torch.arange(0, n, dtype=dtype) * step_size + start
    grid[-1] = end
    return list(grid)


def fixed_grid_solve(func: ODEFunc, h: torch.Tensor, solver: str, step_size: float) -> torch.Tensor:
    """h(1) by ``solver`` (one of DIRECT_SOLVERS) on torchdiffeq's grid, with torchdiffeq's step formulas
    (fixed_grid.py; rk4 is its rk4_alt_step_func, Kutta's 3/8 rule), evaluating ``func`` as often and at the same
    times. What it leaves out is per-step machinery a plain fixed-grid solve does not need: the time casts and
    |y| of its perturbation wrapper, the solution tensor and its copies, the interpolation checks. Each update is
    one fused torch.add(y, k, alpha=dt), where torchdiffeq multiplies and adds (the same values up to rounding,
    1e-7 relative, and fewer passes over the state in both directions)."""
    maps = func.time_maps(h.shape[-1])
    grid = fixed_grid(step_size, h.dtype)
    y = h
    for t0, t1 in zip(grid[:-1], grid[1:]):
        dt = t1 - t0
        step = float(dt)
        if solver == "euler":
            y = torch.add(y, func(t0, y, maps), alpha=step)
        elif solver == "midpoint":
            half = 0.5 * dt
            y_mid = torch.add(y, func(t0, y, maps), alpha=float(half))
            y = torch.add(y, func(t0 + half, y_mid, maps), alpha=step)
        elif solver == "rk4":
            k1 = func(t0, y, maps)
            k2 = func(t0 + dt * (1 / 3), torch.add(y, k1, alpha=step / 3), maps)
            k3 = func(t0 + dt * (2 / 3), torch.add(y, torch.add(k2, k1, alpha=-1 / 3), alpha=step), maps)
            k4 = func(t1, torch.add(y, (k1 - k2).add_(k3), alpha=step), maps)
            y = torch.add(y, torch.add(k1, k2 + k3, alpha=3).add_(k4), alpha=step * 0.125)
        else:
            raise ValueError(f"fixed_grid_solve takes {', '.join(DIRECT_SOLVERS)}, not {solver!r}")
    return y


class RegularisedDynamics(nn.Module):
    """The dynamics with RNODE's two running integrals as extra state (Finlay et al. 2020): the state is
    (h (B, C, L), kinetic (B,), jacobian (B,)), and d kinetic / dt = mean of f(t, h)^2 over h's elements, d jacobian
    / dt = mean of (eps^T df/dh)^2 with one Gaussian eps per solve (Hutchinson's estimate of the squared Frobenius
    norm of the Jacobian, per element). Integrated by the same solver as h, so the integrals follow its steps."""

    def __init__(self, func: ODEFunc, eps: torch.Tensor | None) -> None:
        super().__init__()
        self.func = func
        self.eps = eps

    def forward(self, t: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        h = state[0]
        if self.eps is not None and not (torch.is_grad_enabled() and h.requires_grad):
            h = h.detach().requires_grad_(True)  # the adjoint's forward solve runs without a graph
        with torch.enable_grad():
            f = self.func(t, h)
            kinetic = f.pow(2).flatten(1).mean(1)
            if self.eps is None:
                return f, kinetic, torch.zeros_like(kinetic)
            # create_graph: the regulariser's own gradient flows back into the weights (a double backward).
            (vjp,) = torch.autograd.grad(f, h, self.eps, create_graph=True)
        return f, kinetic, vjp.pow(2).flatten(1).mean(1)


class ODEBlock(nn.Module):
    """h(1) = h(0) + integral_0^1 f(t, h(t)) dt, solved with the settings of an :class:`ODEConfig` (solver, step
    size or tolerances, adjoint or direct backpropagation, torchdiffeq or torchode, RNODE regularisation; see
    :mod:`ecglib.config`).

    With regularisation, a training-mode forward pass leaves the weighted RNODE penalty (a scalar tensor, part of
    the graph) in ``self.penalty`` for the loss; evaluation mode solves for h alone and sets it to None.
    """

    def __init__(self, func: ODEFunc, config: ODEConfig | None = None) -> None:
        super().__init__()
        self.func = func
        self.config = config or ODEConfig()
        self.register_buffer("t", torch.tensor([0.0, 1.0]), persistent=False)
        self.forward_calls = 0
        self.penalty: torch.Tensor | None = None

    def solver_kwargs(self) -> dict[str, Any]:
        c = self.config
        kwargs: dict[str, Any] = {"method": c.solver, "rtol": c.rtol, "atol": c.atol}
        # An adaptive solve gets a step limit, so that dynamics grown stiff stop with a message instead of running
        # on for hours; a fixed-grid solve's steps are bounded when its ODEConfig is made.
        kwargs["options"] = {"step_size": c.step_size} if c.fixed_grid else {"max_num_steps": MAX_ADAPTIVE_STEPS}
        if c.adjoint:
            adjoint_options = dict(kwargs["options"])
            if c.seminorm:
                adjoint_options["norm"] = "seminorm"
            kwargs["adjoint_options"] = adjoint_options
        return kwargs

    @property
    def direct(self) -> bool:
        """Whether fixed_grid_solve computes this block: an euler, midpoint or rk4 solve by torchdiffeq without the
        adjoint and without RNODE's running costs, the direct_solve rewrite on."""
        c = self.config
        return ("direct_solve" in self.func.rewrites and c.backend == "torchdiffeq" and c.solver in DIRECT_SOLVERS
                and not c.adjoint and not (c.regularised and self.training))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        before = self.func.calls
        self.penalty = None
        if self.config.backend == "torchode":
            out = self._solve_torchode(h)
        elif self.config.regularised and self.training:
            out = self._solve_regularised(h)
        elif self.direct:
            out = fixed_grid_solve(self.func, h, self.config.solver, float(self.config.step_size))
        elif self.config.adjoint:
            # The adjoint re-evaluates the dynamics in its backward solve and takes the gradients of the parameters
            # it is given there: every evaluation must reach the weights itself, so no time maps.
            from torchdiffeq import odeint_adjoint

            out = odeint_adjoint(self.func, h, self.t.to(h.dtype), **self.solver_kwargs())[-1]
        else:
            from torchdiffeq import odeint

            out = odeint(self._with_time_maps(h), h, self.t.to(h.dtype), **self.solver_kwargs())[-1]
        self.forward_calls += self.func.calls - before
        return out

    def _with_time_maps(self, h: torch.Tensor) -> Any:
        """The dynamics for a solve of h by backpropagation through the solver: with the time maps of this solve."""
        maps = self.func.time_maps(h.shape[-1])
        return self.func if maps is None else functools.partial(self.func, maps=maps)

    def _solve_regularised(self, h: torch.Tensor) -> torch.Tensor:
        from torchdiffeq import odeint, odeint_adjoint

        c = self.config
        eps = torch.randn_like(h) if c.jacobian > 0 else None
        zero = h.new_zeros(h.shape[0])
        dynamics = RegularisedDynamics(self.func, eps)
        kwargs = self.solver_kwargs()
        if c.adjoint:
            kwargs["adjoint_params"] = tuple(self.func.parameters())
            solve = odeint_adjoint
        else:
            solve = odeint
        hs, kinetic, jacobian = solve(dynamics, (h, zero, zero), self.t.to(h.dtype), **kwargs)
        self.penalty = c.kinetic * kinetic[-1].mean() + c.jacobian * jacobian[-1].mean()
        return hs[-1]

    def _solve_torchode(self, h: torch.Tensor) -> torch.Tensor:
        # torchode solves (batch, features) states, each beat with its own step sizes when adaptive.
        import torchode as to

        c, shape, n = self.config, h.shape, h.shape[0]
        func = self._with_time_maps(h)
        term = to.ODETerm(lambda t, y: func(t, y.view(shape)).flatten(1), with_stats=False)
        method = {"dopri5": to.Dopri5, "heun": to.Heun, "euler": to.Euler}[TORCHODE_SOLVERS[c.solver]](term=term)
        t0, t1 = h.new_zeros(n), h.new_ones(n)
        if c.fixed_grid:
            controller: Any = to.FixedStepController()
            dt0 = h.new_full((n,), float(c.step_size))
        else:
            controller, dt0 = to.IntegralController(atol=c.atol, rtol=c.rtol, term=term), None
        solver = to.AutoDiffAdjoint(method, controller, max_steps=MAX_ADAPTIVE_STEPS)
        solution = solver.solve(to.InitialValueProblem(y0=h.flatten(1), t_start=t0, t_end=t1,
                                                       t_eval=torch.stack([t0, t1], 1)), dt0=dt0)
        if bool((solution.status != 0).any()):
            raise AssertionError(f"torchode stopped before t = 1 (status {int(solution.status.max())}): "
                                 f"max_num_steps exceeded or the step size vanished")
        return solution.ys[:, -1].view(shape)


# Width of the learned projection of the rhythm features that joins the pooled morphology features.
RHYTHM_PROJECTION = 16


class Classifier(nn.Module):
    """stem -> features -> head; ``features`` is six ResBlocks or one ODEBlock.

    With ``rhythm_features`` k > 0, the k rhythm features of each beat are standardised with the buffers
    ``rhythm_mean``/``rhythm_std`` (set from the training split by :meth:`set_rhythm_stats`, saved with the weights),
    projected by Linear(k, 16) + ReLU, and concatenated to the pooled morphology features before the head's final
    Linear. With k = 0 the model is exactly the original one.

    ``logit_offsets`` (n_classes,) are added to the logits in evaluation mode only (a decision threshold: the
    training loss never sees them); they live in the config, not in the weights.
    """

    def __init__(self, name: str, features: nn.Module, width: int, n_classes: int, config: dict[str, Any],
                 rhythm_features: int = 0, in_channels: int = 1,
                 logit_offsets: Sequence[float] | None = None) -> None:
        super().__init__()
        self.name = name
        self.config = config
        self.stem = stem(width, in_channels)
        self.features = features
        self.rhythm_features = rhythm_features
        if rhythm_features:
            self.rhythm = nn.Sequential(nn.Linear(rhythm_features, RHYTHM_PROJECTION), nn.ReLU(inplace=True))
            self.register_buffer("rhythm_mean", torch.zeros(rhythm_features))
            self.register_buffer("rhythm_std", torch.ones(rhythm_features))
            # The head's norm and pooling see the morphology channels; its final Linear sees them and the rhythm.
            self.head = nn.Sequential(norm(width), nn.ReLU(inplace=True), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                                      nn.Linear(width + RHYTHM_PROJECTION, n_classes))
        else:
            self.head = head(width, n_classes)
        offsets = torch.zeros(n_classes) if logit_offsets is None else torch.tensor(logit_offsets, dtype=torch.float)
        self.register_buffer("logit_offsets", offsets, persistent=False)  # state_dicts stay those of the weights

    def forward(self, x: torch.Tensor, rhythm: torch.Tensor | None = None,
                keep_morphology: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, in_channels, 187) beats in [0, 1] and, by channel, their neighbours or their difference to the
        record template (in_channels 1 to 4, see ecglib.data.inputs.input_layout);
        rhythm: (B, k) raw rhythm features, required exactly when the model was built with k > 0;
        keep_morphology: (B,) bool, for a model with a rhythm input in training (morphology dropout): where False,
        the beat's pooled morphology features are zeroed and its logits come from its rhythm alone.
        Returns (B, n_classes) logits, plus ``logit_offsets`` in evaluation mode."""
        logits = self._logits(x, rhythm, keep_morphology)
        return logits if self.training else logits + self.logit_offsets.to(logits.dtype)

    def _logits(self, x: torch.Tensor, rhythm: torch.Tensor | None,
                keep_morphology: torch.Tensor | None) -> torch.Tensor:
        h = self.features(self.stem(x))
        if not self.rhythm_features:
            if rhythm is not None:
                raise ValueError("this model takes no rhythm features")
            if keep_morphology is not None:
                raise ValueError("morphology dropout needs a model with a rhythm input")
            return self.head(h)
        if rhythm is None or rhythm.shape != (x.shape[0], self.rhythm_features):
            raise ValueError(f"this model needs rhythm features shaped ({x.shape[0]}, {self.rhythm_features}), got "
                             f"{None if rhythm is None else tuple(rhythm.shape)}")
        r = self.rhythm((rhythm.to(self.rhythm_mean.dtype) - self.rhythm_mean) / self.rhythm_std)
        pooled = self.head[:-1](h)
        if keep_morphology is not None:
            if keep_morphology.shape != (x.shape[0],):
                raise ValueError(f"keep_morphology must be shaped ({x.shape[0]},), got {tuple(keep_morphology.shape)}")
            pooled = pooled * keep_morphology.to(pooled.dtype).unsqueeze(1)
        return self.head[-1](torch.cat([pooled, r], dim=1))

    @torch.no_grad()
    def set_rhythm_stats(self, rhythm: torch.Tensor) -> None:
        """Standardise rhythm features with the mean and standard deviation of ``rhythm`` (n, k), the training split's;
        a constant feature keeps a std of 1."""
        std = rhythm.double().std(0, unbiased=False)
        self.rhythm_mean.copy_(rhythm.double().mean(0).to(self.rhythm_mean.dtype))
        self.rhythm_std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)).to(self.rhythm_std.dtype))

    def set_logit_offsets(self, offsets: Sequence[float] | None) -> None:
        """Decide with other logit offsets from now on (None or zeros: the plain argmax); the config follows, so a
        checkpoint saved afterwards keeps them. The weights are untouched."""
        values = _offsets(offsets, self.logit_offsets.numel())
        self.logit_offsets.copy_(torch.tensor(values or [0.0] * self.logit_offsets.numel()))
        self.config.pop("logit_offsets", None)
        if values is not None:
            self.config["logit_offsets"] = values

    def penalty(self) -> torch.Tensor | None:
        """The ODE block's RNODE penalty of the last training-mode forward pass (a scalar in the graph), else None."""
        return self.ode.penalty if self.ode is not None else None

    @property
    def ode(self) -> ODEBlock | None:
        return self.features if isinstance(self.features, ODEBlock) else None

    def nfe(self) -> tuple[int, int]:
        """(forward, backward) evaluations of the ODE dynamics since the last reset_nfe(); (0, 0) for a ResNet.
        Backward counts the evaluations that the backward pass makes itself: the adjoint solve's (each a forward
        evaluation plus a vector-Jacobian product); direct backpropagation re-evaluates nothing and counts 0."""
        if self.ode is None:
            return 0, 0
        return self.ode.forward_calls, self.ode.func.calls - self.ode.forward_calls

    def reset_nfe(self) -> None:
        if self.ode is not None:
            self.ode.forward_calls = 0
            self.ode.func.calls = 0

    def set_solver(self, **settings: Any) -> None:
        """Change the ODE settings in place (keys of :class:`ODEConfig`; None keeps a setting): train precise,
        deploy loose. Switching to an adaptive solver drops the step size. No effect on a ResNet."""
        if self.ode is None:
            return
        self.ode.config = ODEConfig.from_dict(settings, base=self.ode.config)
        for key in [f.name for f in fields(ODEConfig)]:  # a setting back at its default leaves the config
            self.config.pop(key, None)
        self.config.update(self.ode.config.to_dict())


def _offsets(offsets: Sequence[float] | None, n_classes: int) -> list[float] | None:
    """``offsets`` as floats, checked; None when absent or all zero (the plain argmax)."""
    if offsets is None:
        return None
    values = [float(v) for v in offsets]
    if len(values) != n_classes or not all(math.isfinite(v) for v in values):
        raise ValueError(f"logit_offsets {list(offsets)!r} are not {n_classes} finite numbers")
    return values if any(values) else None


def build_model(name: str, width: int = 64, blocks: int = 6, n_classes: int = 5, ode: ODEConfig | None = None,
                rhythm_features: int = 0, in_channels: int = 1, rhythm_inputs: Sequence[str] | None = None,
                logit_offsets: Sequence[float] | None = None) -> Classifier:
    """A ResNet ("resnet", ``blocks`` residual blocks: 182,853 parameters by default) or an ODE-Net ("odenet",
    one ODE block integrated as ``ode`` says, the project default when None: 59,333 parameters by default).

    rhythm_features: k > 0 adds the rhythm input (k features per beat, see Classifier; 16 k + 96 more parameters).
    rhythm_inputs: the names of those k features (ecglib.data.facts.RHYTHM_INPUTS), kept in the config so that whoever
      evaluates the model gives it the same columns; k is their number when ``rhythm_features`` is 0.
    in_channels: channels of the input beat (ecglib.data.inputs.input_layout says which: 2 adds the beat minus its
    record's template, 3 the predecessor and successor, 4 both); 192 more parameters per channel beyond the first.
    logit_offsets: n_classes finite numbers added to the logits when the model decides (evaluation mode), e.g. to
    favour a rare class; none or all zero: the plain argmax. No parameters.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if width < 1 or blocks < 1 or n_classes < 2:
        raise ValueError(f"width {width} and blocks {blocks} must be at least 1, classes {n_classes} at least 2")
    if rhythm_inputs is not None:
        rhythm_features = rhythm_features or len(rhythm_inputs)
        if len(rhythm_inputs) != rhythm_features or not all(isinstance(n, str) for n in rhythm_inputs):
            raise ValueError(f"rhythm_inputs {list(rhythm_inputs)!r} are not {rhythm_features} feature names")
    logit_offsets = _offsets(logit_offsets, n_classes)
    problem = model_size_problem(name, width, blocks, n_classes)
    if problem is not None:  # refused before any memory is taken
        raise InputError(f"{name} of width {width}, {blocks} blocks and {n_classes} classes: {problem}")
    config: dict[str, Any] = {"model": name, "width": width, "n_classes": n_classes}
    if name == "resnet":
        config["blocks"] = blocks
        features: nn.Module = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
    else:
        ode = ode or ODEConfig()
        config.update(ode.to_dict())
        features = ODEBlock(ODEFunc(width), ode)
    # Only non-default options enter the config, so that the original models' checkpoints stay as they were.
    if rhythm_features:
        config["rhythm_features"] = rhythm_features
    if rhythm_inputs is not None and rhythm_features:
        config["rhythm_inputs"] = list(rhythm_inputs)
    if in_channels != 1:
        config["in_channels"] = in_channels
    if logit_offsets is not None:
        config["logit_offsets"] = logit_offsets
    return Classifier(name, features, width, n_classes, config, rhythm_features, in_channels, logit_offsets)


def model_from_config(config: dict[str, Any]) -> Classifier:
    """Rebuild an untrained model from its ``config`` (what a checkpoint and metrics.json store: the model's
    name, width, blocks or ODE settings). Raises ValueError or InputError for settings that make no model."""
    config = dict(config)
    name = config.pop("model", None)
    ode_keys = {f.name for f in fields(ODEConfig)}
    ode = {k: config.pop(k) for k in list(config) if k in ode_keys}
    if name == "odenet":
        return build_model(name, ode=ODEConfig(**ode), **config)
    return build_model(name, **config)
