"""Train precise, deploy loose: a trained ODE-Net evaluated at other solver settings."""
from __future__ import annotations

import pytest
from conftest import batch, odenet

import ecglib.experiments.tolerance
from ecglib.experiments.tolerance import tolerance_sweep
from ecglib.inference import predict_nfe


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
