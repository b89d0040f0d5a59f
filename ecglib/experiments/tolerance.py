"""Train precise, deploy loose: a trained ODE-Net evaluated again at other solver settings, with the accuracy,
evaluations of the dynamics and inference speed each costs.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..config import ODEConfig
from ..errors import EcgError, InputError
from ..inference import predict_nfe
from ..metrics import beats_per_second

DEFAULT_SWEEP: list[dict[str, Any]] = [
    {"solver": "dopri5", "rtol": 1e-1, "atol": 1e-1},
    {"solver": "dopri5", "rtol": 1e-2, "atol": 1e-2},
    {"solver": "dopri5", "rtol": 1e-3, "atol": 1e-3},
    {"solver": "dopri5", "rtol": 1e-4, "atol": 1e-4},
    {"solver": "rk4", "step_size": 1.0},
    {"solver": "rk4", "step_size": 0.5},
    {"solver": "rk4", "step_size": 1 / 3},
    {"solver": "rk4", "step_size": 0.25},
    {"solver": "midpoint", "step_size": 1.0},
    {"solver": "midpoint", "step_size": 0.5},
    {"solver": "midpoint", "step_size": 1 / 3},
    {"solver": "midpoint", "step_size": 1 / 6},
]


def setting_label(config: ODEConfig) -> str:
    """'rk4 3 steps' or 'dopri5 tol 0.001': the solver part of a setting, for tables."""
    if config.fixed_grid:
        return f"{config.solver} {config.steps} step{'s' if config.steps != 1 else ''}"
    if config.rtol == config.atol:
        return f"{config.solver} tol {config.rtol:g}"
    return f"{config.solver} rtol {config.rtol:g} atol {config.atol:g}"


def tolerance_sweep(model: Any, x: Any, y: Any, settings: Sequence[Mapping[str, Any]] | None = None,
                    batch_size: int = 512, throughput_beats: int = 1024, rhythm: Any = None,
                    skip_failed: bool = False) -> Any:
    """Accuracy, NFE per batch and inference beats/s of a trained ODE-Net at other solver settings.

    model: an ODE-Net Classifier (e.g. from :func:`ecglib.checkpoints.load_checkpoint`); x (n, 1, 187), y (n,) the
    test beats; rhythm (n, k) their rhythm features for a model with a rhythm input. settings: dicts of
    :class:`ODEConfig` keys (default :data:`DEFAULT_SWEEP`), each applied to the trained setting. The first row is
    the setting the model was trained with ("trained"; a listed setting equal to it is not repeated); the model is
    restored to it afterwards. Beats/s: :func:`ecglib.metrics.beats_per_second` on up to ``throughput_beats`` beats,
    or the rate of the accuracy pass over all test beats if that was faster (other processes can only slow a timing
    down, so the faster of two is the better estimate). ``skip_failed``: a listed setting whose solve fails (an
    adaptive solver that the trained dynamics make too stiff for its step limit) is
    left out instead of stopping the sweep.
    """
    import pandas as pd


    if getattr(model, "ode", None) is None:
        raise InputError("the tolerance sweep needs an ODE-Net; this model has no ODE block")
    trained = model.ode.config
    saved_config = dict(model.config)
    y = np.asarray(y)
    rows, seen = [], set()
    try:
        for i, setting in enumerate([{}, *(settings if settings is not None else DEFAULT_SWEEP)]):
            model.ode.config = ODEConfig.from_dict(dict(setting), base=trained)
            current = model.ode.config
            label = setting_label(current)
            if label in seen:
                continue
            seen.add(label)
            started = time.perf_counter()
            try:
                pred, _, nfe = predict_nfe(model, x, batch_size=batch_size, rhythm=rhythm)
            except (EcgError, AssertionError, RuntimeError):
                if skip_failed and i > 0:
                    continue
                raise
            elapsed = time.perf_counter() - started
            speed = max(len(x) / elapsed if elapsed > 0 else 0.0,
                        beats_per_second(model, x, batch_size=batch_size, max_beats=throughput_beats,
                                         rhythm=rhythm))
            rows.append({"setting": label + (" (trained)" if i == 0 else ""),
                         "solver": current.solver,
                         "rtol": None if current.fixed_grid else current.rtol,
                         "step size": current.step_size,
                         "accuracy": float(np.mean(pred == y)) if len(y) else float("nan"),
                         "NFE/batch": nfe,
                         "beats/s": speed,
                         "trained": i == 0})
    finally:
        model.ode.config = trained
        model.config.clear()
        model.config.update(saved_config)
    table = pd.DataFrame(rows)
    table["Δ accuracy (points)"] = 100 * (table["accuracy"] - table["accuracy"].iloc[0])
    return table
