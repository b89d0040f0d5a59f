"""Figures drawn from real tables: rhythm ratios, deploy-loose rows."""
from __future__ import annotations

import json

import pytest
from conftest import batch, odenet

from ecglib.data.facts import CLASSES
from ecglib.experiments.tolerance import tolerance_sweep
from ecglib.report.anchors import anchors_table, rr_ratio_table, runs_table
from ecglib.report.figures import plot_deploy_loose, plot_rr_ratios


# ------------------------------------------------------------------------------------------------ notebook helpers
def test_rhythm_plot_helpers(tmp_path, synthetic_beats):
    import matplotlib

    matplotlib.use("Agg")

    table = rr_ratio_table(synthetic_beats)
    assert table.loc["S", "pre_over_local median"] < table.loc["N", "pre_over_local median"]
    axes = plot_rr_ratios(synthetic_beats)
    assert len(axes) == 2 and axes[0].get_legend() is not None
    assert list(anchors_table().columns) == ["inputs", "S Se", "S +P", "V Se", "V +P"]
    m = {"accuracy": 0.9, "baseline_accuracy": 0.8, "macro_f1": 0.5, "kappa": 0.4,
         "gross": {c: {"se": 0.5, "ppv": 0.25} for c in CLASSES}}
    rows = runs_table({"resnet": [m, {**m, "accuracy": 0.8}]})
    assert rows.loc["resnet", "accuracy"] == pytest.approx(0.85) and rows.loc["resnet", "S Se"] == 50.0


# -------------------------------------------------------------------------------------------------- deploy loose
def test_deploy_loose_plot_takes_bench_rows_and_a_tolerance_sweep(tmp_path):
    import matplotlib

    matplotlib.use("Agg")

    x, y = batch(20)
    model = odenet().eval()  # the default: two midpoint steps, 4 evaluations
    sweep = tolerance_sweep(model, x, y.numpy(), [{"solver": "midpoint", "step_size": 1.0},
                                                  {"solver": "dopri5", "rtol": 1e-2, "atol": 1e-2}])
    assert list(sweep["NFE/batch"])[:2] == [4, 2]
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
