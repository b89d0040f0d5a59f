"""Conclusions computed from the comparison table and the tolerance sweep, never written in advance."""
from __future__ import annotations

import pandas as pd
import pytest

from ecglib.report.conclusions import conclusions

BASE = {"accuracy": 0.95, "macro-F1": 0.80, "recall N": 0.99, "recall S": 0.60, "recall V": 0.90, "recall F": 0.40,
        "recall Q": 0.95, "baseline": 0.83, "params": 182_853, "s/epoch": 57.0, "NFE fwd/batch": 0.0,
        "NFE bwd/batch": 0.0, "activation MB/step": 55.0, "inference beats/s": 5000.0, "epochs": 5,
        "test beats": 21_888}


def table(resnet: dict | None = None, odenet: dict | None = None) -> pd.DataFrame:
    rows = {"ResNet": {"model": "resnet", **BASE, **(resnet or {})},
            "ODE-Net": {"model": "odenet", **BASE, "params": 59_333, "s/epoch": 109.0, "NFE fwd/batch": 12.0,
                        "activation MB/step": 109.0, "inference beats/s": 2500.0, **(odenet or {})}}
    return pd.DataFrame.from_dict(rows, orient="index")


def sweep(rows: list[tuple[str, float, float]], trained: int = 0) -> pd.DataFrame:
    """(setting, accuracy, NFE/batch) rows; the ``trained`` one first as compare.tolerance_sweep puts it."""
    return pd.DataFrame([{"setting": s + (" (trained)" if i == trained else ""), "accuracy": a, "NFE/batch": n,
                          "beats/s": 10_000 / n, "trained": i == trained} for i, (s, a, n) in enumerate(rows)])


def line(lines: list[str], start: str) -> str:
    found = [x for x in lines if x.startswith(start)]
    assert len(found) == 1, (start, lines)
    return found[0]


def test_a_table_without_both_models_only_lists_the_runs():
    t = table().loc[["ResNet"]]
    assert conclusions(t) == ["The table holds ResNet: accuracy 0.9500; conclusions compare a ResNet with an ODE-Net."]


def test_accuracy_level_or_one_model_ahead():
    level = line(conclusions(table(odenet={"accuracy": 0.9505})), "Accuracy")
    assert "are level" in level and "+0.05 points" in level
    ahead = line(conclusions(table(odenet={"accuracy": 0.9600})), "Accuracy")
    assert "the ODE-Net is more accurate than the ResNet, 96.00% against 95.00% (1.0 point)" in ahead


def test_neither_model_beats_the_majority_baseline():
    lines = conclusions(table({"accuracy": 0.8300}, {"accuracy": 0.8305}))
    assert "neither model beats it" in line(lines, "Majority baseline")
    assert sum(x.startswith("Majority baseline") for x in lines) == 1


def test_one_model_beats_the_baseline_and_the_other_does_not():
    text = line(conclusions(table({"accuracy": 0.8302}, {"accuracy": 0.9200})), "Majority baseline")
    assert "the ResNet does not beat it" in text
    assert "the ODE-Net beats it by 9.0 points (removing 53% of the baseline's errors)" in text


def test_classes_never_recognised_or_the_hardest_one():
    never = conclusions(table({"recall S": 0.0, "recall F": 0.0}, {"recall S": 0.0, "recall F": 0.0}))
    assert line(never, "Never recognised").startswith("Never recognised by either model: S, F")
    hardest = line(conclusions(table()), "The hardest class")
    assert hardest.startswith("The hardest class for both is F")


def test_macro_f1_level_or_higher_for_one():
    assert "level;" in line(conclusions(table()), "Per class")
    assert "higher for the ODE-Net" in line(conclusions(table(odenet={"macro-F1": 0.85})), "Per class")


def test_costs_parameters_time_and_memory_with_and_without_the_adjoint():
    lines = conclusions(table())
    assert "3.1x the parameters" in line(lines, "Parameters")
    assert "takes 1.91x the ResNet's time per epoch (109.0 s vs 57.0 s)" in line(lines, "Training time")
    assert "without the adjoint it grows" in line(lines, "Activation memory")
    adjoint = conclusions(table(odenet={"NFE bwd/batch": 28.0, "activation MB/step": 21.8}))
    assert "the adjoint keeps it flat" in line(adjoint, "Activation memory")


def test_sweep_finds_a_cheaper_setting_within_tolerance_and_the_largest_loss():
    s = sweep([("rk4 3 steps", 0.9500, 12), ("rk4 1 step", 0.9495, 4), ("dopri5 tol 0.1", 0.9300, 14)])
    lines = conclusions(table(), s)
    assert "rk4 1 step needs 4 NFE/batch instead of 12 (3.0x fewer evaluations" in line(lines, "Tolerance sweep")
    assert "dopri5 tol 0.1 (14 NFE/batch) drops accuracy to 93.00% (-2.0 points)" in line(lines, "Largest loss")


def test_sweep_without_a_cheaper_setting():
    s = sweep([("rk4 3 steps", 0.9500, 12), ("rk4 1 step", 0.9300, 4), ("rk4 4 steps", 0.9500, 16)])
    assert "no setting cheaper than the trained one (rk4 3 steps, 12 NFE/batch)" in \
        line(conclusions(table(), s), "Tolerance sweep")


def test_sweep_of_a_model_at_the_baseline_reports_only_costs():
    s = sweep([("rk4 3 steps", 0.83, 12), ("rk4 1 step", 0.83, 4)])
    text = line(conclusions(table({"accuracy": 0.83}, {"accuracy": 0.83}), s), "Tolerance sweep")
    assert "answers the majority class whatever the solver" in text and "rk4 1 step: 4" in text


@pytest.mark.parametrize("sweep_table", [None, sweep([])])
def test_no_sweep_no_sweep_sentence(sweep_table):
    assert not any(x.startswith(("Tolerance sweep", "Largest loss")) for x in conclusions(table(), sweep_table))
