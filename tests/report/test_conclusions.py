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


# ---------------------------------------------------------------------------------- the report's other tables
def test_missed_ectopic_beats_are_counted_per_model_with_their_prematurity():
    import numpy as np

    from ecglib.data.facts import RHYTHM_NAMES
    from ecglib.report.anchors import missed_beats_table

    # 4 S beats: two called N (not premature: pre/local 1.0 and 0.9), two found (premature: 0.6, 0.7); 2 V beats,
    # both found by the first model, one called N by the second; 3 N beats.
    y = np.array([1, 1, 1, 1, 2, 2, 0, 0, 0])
    first = np.array([0, 0, 1, 1, 2, 2, 0, 0, 0])
    second = np.array([0, 1, 1, 1, 0, 2, 0, 0, 0])
    rhythm = np.ones((len(y), len(RHYTHM_NAMES)))
    rhythm[:, RHYTHM_NAMES.index("pre_over_local")] = [1.0, 0.9, 0.6, 0.7, 0.5, 0.55, 1, 1, 1]
    missed = missed_beats_table(y, {"ResNet": first, "ODE-Net": second}, rhythm)
    s = missed[(missed["model"] == "ResNet") & (missed["class"] == "S")].iloc[0]
    assert (s["beats"], s["called N"], s["share"]) == (4, 2, 0.5)
    assert s["pre_over_local median, called N"] == pytest.approx(0.95)
    assert s["pre_over_local median, found"] == pytest.approx(0.65)
    lines = conclusions(table(), missed=missed)
    assert line(lines, "S beats called N") == (
        "S beats called N: 2 of 4 by the ResNet (50%), 1 of 4 by the ODE-Net (25%); pre-RR over local RR, median of "
        "those called N vs of the S beats found: 0.95 vs 0.65 (ResNet), 1.00 vs 0.70 (ODE-Net).")
    # the first model misses no V beat: its medians of the missed are undefined, and the sentence leaves it out
    v = line(lines, "V beats called N")
    assert "0 of 2 by the ResNet (0%), 1 of 2 by the ODE-Net (50%)" in v and "0.50 vs 0.55 (ODE-Net)" in v
    assert "(ResNet)" not in v


def test_no_missed_beats_or_no_such_class_is_said_in_words():
    import numpy as np

    from ecglib.report.anchors import missed_beats_table

    y = np.array([0, 0, 2, 2])
    missed = missed_beats_table(y, {"ResNet": y, "ODE-Net": y})  # perfect, and no S beat at all; no rhythm
    lines = conclusions(table(), missed=missed)
    assert line(lines, "S beats called N") == "S beats called N: there is no S beat among the test beats."
    assert line(lines, "V beats called N") == "V beats called N: none of the 2 V test beats, by any model."


def protocols_table() -> pd.DataFrame:
    rows = []
    for model, intra_acc, inter_acc in (("ResNet", 0.97, 0.88), ("ODE-Net", 0.96, 0.90)):
        for split, features, acc, base, s_se, s_pp in (("intra", "beat", intra_acc, 0.83, 70.0, 80.0),
                                                        ("intra", "beat+rhythm", intra_acc, 0.83, 75.0, 70.0),
                                                        ("inter", "beat", inter_acc, 0.89, 2.0, 10.0),
                                                        ("inter", "beat+rhythm", 0.91, 0.89, 80.0, 40.0)):
            rows.append({"run": f"{model}, {split}, {features}", "accuracy": acc, "baseline": base, "macro-F1": 0.5,
                         "kappa": 0.4, "S Se": s_se, "S +P": s_pp, "V Se": 85.0, "V +P": 88.0})
    return pd.DataFrame(rows).set_index("run")


def test_protocol_table_gives_the_patient_leak_and_the_rhythm_on_new_patients():
    lines = conclusions(table(), protocols=protocols_table())
    leak = [x for x in lines if x.startswith("Patient leak")]
    assert len(leak) == 2
    assert leak[0] == ("Patient leak (ResNet, beat alone): accuracy 97.00% on intra-patient against 88.00% on "
                       "inter-patient, +14.0 points and -1.0 point from each split's majority baseline (83.00%, "
                       "89.00%); S Se 70.0% against 2.0%.")
    rhythm = line(lines, "Rhythm on new patients (ODE-Net")
    assert "S Se / +P 2.0 / 10.0% with the beat alone, 80.0 / 40.0% with beat+rhythm" in rhythm
    assert "de Chazal et al. 2004, RR intervals and morphology: S 76 / 38%, V 77 / 82%" in rhythm


def test_protocol_rows_that_are_not_model_split_features_are_left_out():
    odd = protocols_table().rename(index={"ResNet, inter, beat": "my own run"})
    lines = conclusions(table(), protocols=odd)
    assert not any(x.startswith(("Patient leak (ResNet", "Rhythm on new patients (ResNet")) for x in lines)
    assert any(x.startswith("Patient leak (ODE-Net") for x in lines)


def test_test_set_intervals_say_whether_the_difference_holds_zero():
    import numpy as np

    from ecglib.experiments.stats import bootstrap_accuracy

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 2000)
    records = np.repeat(np.arange(40), 50)
    same = np.where(rng.random(2000) < 0.9, y, (y + 1) % 5)
    better = np.where(same == y, y, np.where(rng.random(2000) < 0.8, y, same))  # fixes most of its errors
    close = bootstrap_accuracy(y, {"ResNet": same, "ODE-Net": same.copy()}, records)
    text = line(conclusions(table(), intervals=close), "Test-set noise")
    assert "bootstrap over the 40 test records (2,000 beats)" in text
    assert "ODE-Net - ResNet +0.00 points [+0.00, +0.00], the interval holds 0" in text
    apart = bootstrap_accuracy(y, {"ResNet": same, "ODE-Net": better}, records)
    assert "the interval excludes 0 on these test beats" in line(conclusions(table(), intervals=apart),
                                                                  "Test-set noise")


def test_seed_intervals_and_paired_differences_of_a_sweep():
    seeds = pd.DataFrame([
        {"configuration": "resnet6", "n": 3, "accuracy_mean": 0.95, "accuracy_ci_low": 0.94, "accuracy_ci_high": 0.96},
        {"configuration": "odenet", "n": 3, "accuracy_mean": 0.96, "accuracy_ci_low": 0.955,
         "accuracy_ci_high": 0.965},
        {"configuration": "original", "n": 1, "accuracy_mean": 0.955, "accuracy_ci_low": float("nan"),
         "accuracy_ci_high": float("nan")}])
    paired = pd.DataFrame([{"a": "resnet6", "b": "odenet", "metric": "accuracy", "n": 3, "mean": -0.01, "sd": 0.01,
                            "ci_low": -0.035, "ci_high": 0.015}])
    lines = conclusions(table(), seeds=seeds, paired=paired)
    assert line(lines, "Over training seeds") == (
        "Over training seeds (sweep, 95 % t intervals): resnet6 95.00% [94.00%, 96.00%] (n=3), odenet 96.00% "
        "[95.50%, 96.50%] (n=3), original 95.50% [n/a] (n=1).")
    assert line(lines, "Paired differences") == (
        "Paired differences of accuracy over the same seeds: resnet6 - odenet -1.00 points [-3.50, +1.50] (n=3), "
        "the interval holds 0: no difference shown.")


def test_without_the_other_tables_only_the_comparison_is_concluded():
    assert conclusions(table()) == conclusions(table(), missed=pd.DataFrame(), protocols=pd.DataFrame(),
                                               intervals=None, seeds=None)
