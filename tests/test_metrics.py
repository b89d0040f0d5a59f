"""Metrics against hand-computed examples and scikit-learn; the memory measurement of both models."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from ecglib.config import ODEConfig
from ecglib.metrics import (
    activation_bytes,
    beats_per_second,
    classification_metrics,
    cohen_kappa,
    confusion,
    count_parameters,
    cuda_peak_bytes,
    gross_statistics,
    majority_baseline,
)
from ecglib.models import build_model

# A small example worked out by hand (classes N=0, S=1, V=2, F=3; no Q=4 in the test set).
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 3])
Y_PRED = np.array([0, 0, 1, 0, 1, 0, 2, 2, 0, 3])
CONFUSION = [[3, 1, 0, 0, 0],
             [1, 1, 0, 0, 0],
             [1, 0, 2, 0, 0],
             [0, 0, 0, 1, 0],
             [0, 0, 0, 0, 0]]
PRECISION = {"N": 3 / 5, "S": 1 / 2, "V": 1.0, "F": 1.0, "Q": 0.0}
RECALL = {"N": 3 / 4, "S": 1 / 2, "V": 2 / 3, "F": 1.0, "Q": 0.0}
F1 = {"N": 2 / 3, "S": 1 / 2, "V": 0.8, "F": 1.0, "Q": 0.0}


def test_accuracy_and_baseline():
    m = classification_metrics(Y_TRUE, Y_PRED)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["n_test"] == 10
    assert m["baseline_accuracy"] == pytest.approx(0.4)  # majority of y_true is N: 4 of 10
    with_train = classification_metrics(Y_TRUE, Y_PRED, y_train=np.array([2, 2, 2, 0, 1]))
    assert with_train["baseline_accuracy"] == pytest.approx(0.3)  # majority of training labels is V: 3 of 10
    assert majority_baseline(np.array([4, 4, 1]), np.array([4, 1, 1, 1])) == pytest.approx(0.25)


def test_per_class_scores_by_hand():
    m = classification_metrics(Y_TRUE, Y_PRED)
    for c in "NSVFQ":
        assert m["per_class"][c]["precision"] == pytest.approx(PRECISION[c]), c
        assert m["per_class"][c]["recall"] == pytest.approx(RECALL[c]), c
        assert m["per_class"][c]["f1"] == pytest.approx(F1[c]), c
    assert [m["per_class"][c]["support"] for c in "NSVFQ"] == [4, 2, 3, 1, 0]
    # macro-F1 over the four classes present in the test set
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0.8 + 1.0) / 4)


def test_confusion_matrix_rows_are_true_classes():
    cm = confusion(Y_TRUE, Y_PRED)
    assert cm.tolist() == CONFUSION
    assert classification_metrics(Y_TRUE, Y_PRED)["confusion_matrix"] == CONFUSION
    assert cm.sum(axis=1).tolist() == [4, 2, 3, 1, 0]
    norm = confusion(Y_TRUE, Y_PRED, normalize=True)
    np.testing.assert_allclose(norm.sum(axis=1), [1, 1, 1, 1, 0])
    np.testing.assert_allclose(norm[0], [0.75, 0.25, 0, 0, 0])
    np.testing.assert_allclose(norm[2], [1 / 3, 0, 2 / 3, 0, 0])
    stored = classification_metrics(Y_TRUE, Y_PRED)["confusion_matrix_normalized"]
    np.testing.assert_allclose(stored, norm, atol=1e-6)


def test_aami_sensitivity_and_positive_predictivity():
    aami = classification_metrics(Y_TRUE, Y_PRED)["aami"]
    assert set(aami) == {"S", "V"}
    assert aami["S"] == {"sensitivity": pytest.approx(0.5), "positive_predictivity": pytest.approx(0.5)}
    assert aami["V"] == {"sensitivity": pytest.approx(2 / 3), "positive_predictivity": pytest.approx(1.0)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_f1_matches_sklearn_over_present_labels(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.choice(5, size=300, p=[0.7, 0.1, 0.1, 0.1, 0.0] if seed == 0 else [0.6, 0.1, 0.1, 0.1, 0.1])
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 5, 300))
    present = sorted(set(y_true.tolist()))
    expected = f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
    m = classification_metrics(y_true, y_pred)
    assert m["macro_f1"] == pytest.approx(expected)
    assert m["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == 300 and np.trace(cm) == (y_true == y_pred).sum()


def test_perfect_and_empty_predictions():
    y = np.array([0, 1, 2, 3, 4, 0])
    m = classification_metrics(y, y)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0
    m = classification_metrics(y, np.zeros_like(y))
    assert m["per_class"]["N"]["recall"] == 1.0 and m["per_class"]["S"]["recall"] == 0.0
    assert m["per_class"]["N"]["precision"] == pytest.approx(2 / 6)


def test_count_parameters_counts_trainable_only():
    model = build_model("resnet")
    total = count_parameters(model)
    for p in model.head.parameters():
        p.requires_grad_(False)
    assert count_parameters(model) == total - sum(p.numel() for p in model.head.parameters())


def test_activation_bytes():
    torch.manual_seed(0)
    x, y = torch.rand(4, 1, 187), torch.randint(0, 5, (4,))
    resnet = build_model("resnet")
    resnet.eval()
    r = activation_bytes(resnet, x, y)
    assert r > x.numel() * 4  # at least the stem's activations
    assert not resnet.training  # mode restored
    assert all(p.grad is None for p in resnet.parameters())  # no gradients left behind

    adjoint = build_model("odenet", ode=ODEConfig.from_dict(dict(solver="dopri5", adjoint=True)))
    direct = build_model("odenet", ode=ODEConfig.from_dict(dict(solver="dopri5", adjoint=False)))
    direct.load_state_dict(adjoint.state_dict())
    a, d = activation_bytes(adjoint, x, y), activation_bytes(direct, x, y)
    assert 0 < a and 5 * a < d, (a, d)  # the adjoint keeps no solver steps
    # direct backprop memory grows with the number of solver steps; the adjoint's does not
    fine = build_model("odenet", ode=ODEConfig.from_dict(dict(solver="dopri5", adjoint=False, rtol=1e-6, atol=1e-6)))
    fine.load_state_dict(adjoint.state_dict())
    assert activation_bytes(fine, x, y) > 1.5 * d
    fine_adjoint = build_model("odenet", ode=ODEConfig.from_dict(dict(solver="dopri5", adjoint=True, rtol=1e-6,
                                                                      atol=1e-6)))
    fine_adjoint.load_state_dict(adjoint.state_dict())
    assert activation_bytes(fine_adjoint, x, y) == a
    # memory scales with the batch
    assert activation_bytes(resnet, x[:2], y[:2]) < r


def test_beats_per_second_and_cuda_peak_off_gpu():
    model = build_model("resnet")
    x = torch.rand(64, 1, 187)
    assert beats_per_second(model, x, batch_size=32) > 0
    assert cuda_peak_bytes(model, x, torch.zeros(64, dtype=torch.long)) is None


def test_activation_bytes_of_a_batch_sliced_from_the_dataset_counts_the_batch_only():
    torch.manual_seed(0)
    dataset = torch.rand(50_000, 1, 187)  # 37 MB, several times one step's activations
    y = torch.randint(0, 5, (32,))
    model = build_model("resnet", blocks=1)
    sliced = activation_bytes(model, dataset[:32], y)
    standalone = activation_bytes(model, dataset[:32].clone(), y)
    assert sliced == standalone
    assert sliced < dataset.numel() * 4


# ------------------------------------------------------------------------------------------------------- metrics
def test_gross_statistics_and_kappa():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 2, 1, 0, 2, 2])
    g = gross_statistics(y_true, y_pred)
    assert g["N"] == {"se": 0.5, "ppv": 2 / 3, "fpr": 1 / 4, "tp": 2, "fn": 2, "fp": 1}
    assert g["S"]["se"] == 0.5 and g["S"]["ppv"] == 0.5 and g["S"]["fpr"] == 1 / 6
    assert g["V"]["se"] == 1.0 and g["V"]["ppv"] == 2 / 3 and g["V"]["fpr"] == 1 / 6
    assert g["F"] == {"se": 0.0, "ppv": 0.0, "fpr": 0.0, "tp": 0, "fn": 0, "fp": 0}
    # observed agreement 5/8, chance agreement (4*3 + 2*2 + 2*3) / 64
    pe = (4 * 3 + 2 * 2 + 2 * 3) / 64
    assert cohen_kappa(y_true, y_pred) == pytest.approx((5 / 8 - pe) / (1 - pe))
