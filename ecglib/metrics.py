"""Metrics: pure functions of labels and predictions, plus measurements of a model's cost.

Accuracy alone misleads on MIT-BIH, where 83% of beats are normal: always read it against the majority-class
baseline, per class, and with the AAMI sensitivity (recall) and positive predictivity (precision) of S and V beats.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix as _sk_confusion
from sklearn.metrics import precision_recall_fscore_support

from .data.facts import CLASSES


def majority_baseline(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy on y_test of always predicting the most frequent class of y_train."""
    majority = np.bincount(np.asarray(y_train)).argmax()
    return float(np.mean(np.asarray(y_test) == majority))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, normalize: bool = False) -> np.ndarray:
    """(5, 5) confusion matrix, rows = true class, columns = predicted; rows sum to 1 when ``normalize``
    (a class absent from y_true keeps a row of zeros)."""
    cm = _sk_confusion(y_true, y_pred, labels=list(range(len(CLASSES))))
    if not normalize:
        return cm
    rows = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_train: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrices, AAMI Se/+P of S and V,
    and the majority baseline (from y_train when given, else from y_true)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(range(len(CLASSES)))
    prec, rec, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    present = support > 0
    per_class = {c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                     "support": int(support[i])} for i, c in enumerate(CLASSES)}
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        # Macro-F1 over the classes present in the test set: a class with no test beat has no F1 to average.
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "baseline_accuracy": majority_baseline(y_true if y_train is None else y_train, y_true),
        "per_class": per_class,
        "confusion_matrix": confusion(y_true, y_pred).tolist(),
        "confusion_matrix_normalized": confusion(y_true, y_pred, normalize=True).round(6).tolist(),
        "aami": {c: {"sensitivity": per_class[c]["recall"], "positive_predictivity": per_class[c]["precision"]}
                 for c in ("S", "V")},
        "gross": gross_statistics(y_true, y_pred),
        "kappa": cohen_kappa(y_true, y_pred),
        "n_test": int(len(y_true)),
    }


def gross_statistics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, dict[str, float]]:
    """Per class, the gross statistics the ECG literature reports (AAMI EC57, de Chazal et al. 2004): pooled over
    all test beats of all records, Se = TP / (TP + FN), +P = TP / (TP + FP), FPR = FP / (FP + TN), plus TP, FN,
    FP counts. An undefined ratio (no beat of the class, or none predicted) is 0."""
    cm = confusion(np.asarray(y_true), np.asarray(y_pred)).astype(np.int64)
    total = int(cm.sum())
    out = {}
    for i, c in enumerate(CLASSES):
        tp, fn, fp = int(cm[i, i]), int(cm[i].sum() - cm[i, i]), int(cm[:, i].sum() - cm[i, i])
        tn = total - tp - fn - fp
        out[c] = {"se": tp / (tp + fn) if tp + fn else 0.0, "ppv": tp / (tp + fp) if tp + fp else 0.0,
                  "fpr": fp / (fp + tn) if fp + tn else 0.0, "tp": tp, "fn": fn, "fp": fp}
    return out


def cohen_kappa(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Cohen's kappa of predictions against labels over the 5 classes (scikit-learn); 0 when undefined."""
    from sklearn.metrics import cohen_kappa_score

    value = cohen_kappa_score(np.asarray(y_true), np.asarray(y_pred), labels=list(range(len(CLASSES))))
    return float(value) if np.isfinite(value) else 0.0


# ------------------------------------------------------------------------------------------------- efficiency
def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def activation_bytes(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                     rhythm: torch.Tensor | None = None) -> int:
    """Bytes of the tensors autograd saves for backward in one training step on batch (x, y).

    Parameters are not counted, and a tensor saved several times counts once. This is the memory that grows with
    depth in a ResNet and with solver steps in a directly backpropagated ODE-Net, and stays small with the adjoint.
    """
    # A batch sliced from the training tensor is a view that would bring the whole dataset's storage into the count.
    x = x.clone()
    params = {p.data_ptr() for p in model.parameters()}
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.data_ptr() not in params and t.numel() > 0:
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            seen[key] = t.untyped_storage().nbytes()
        return t

    was_training = model.training
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = torch.nn.functional.cross_entropy(_call(model, x, rhythm), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return int(sum(seen.values()))


def cuda_peak_bytes(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                    rhythm: torch.Tensor | None = None) -> int | None:
    """Peak CUDA memory of one training step, or None off the GPU."""
    if x.device.type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(x.device)
    loss = torch.nn.functional.cross_entropy(_call(model, x, rhythm), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated(x.device))


@torch.no_grad()
def beats_per_second(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 512, max_beats: int = 4096,
                     rhythm: torch.Tensor | None = None) -> float:
    """Inference throughput on up to ``max_beats`` beats of x (and their rhythm features), after one warm-up batch."""
    model.eval()
    x = x[:max_beats]
    rhythm = rhythm[:max_beats] if rhythm is not None else None
    _call(model, x[:batch_size], None if rhythm is None else rhythm[:batch_size])
    _sync(x)
    start = time.perf_counter()
    for i in range(0, len(x), batch_size):
        _call(model, x[i:i + batch_size], None if rhythm is None else rhythm[i:i + batch_size])
    _sync(x)
    return len(x) / (time.perf_counter() - start)


def _call(model: torch.nn.Module, x: torch.Tensor, rhythm: torch.Tensor | None) -> torch.Tensor:
    # A model with a rhythm input takes the beats' rhythm features as a second argument; the others take x alone.
    return model(x) if rhythm is None else model(x, rhythm)


def _sync(x: torch.Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize()
