"""One training loop for both models, and the run that joins data, model, training and metrics.

A run folder holds ``checkpoint.pt`` (written after every epoch: model, optimizer, schedule, history),
``best.pt`` (the weights best on validation), ``history.csv`` and, when the run ends, ``metrics.json``.
Running the same command again on the same folder resumes after the last finished epoch; because each epoch's
batch order comes from (seed, epoch) alone, a resumed CPU run ends with the same numbers as an uninterrupted one.
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError, TrainingError
from .models import Classifier, build_model

CHECKPOINT_FORMAT = "ecglib-checkpoint-v1"
CLASS_WEIGHTS = ("none", "balanced", "sqrt")
# Class counts are floored at this share of the training beats before weighting: DS1 holds 8 Q beats among 45,000,
# whose balanced weight (about 1,100) would let a single Q beat dominate a batch and derail SGD.
WEIGHT_COUNT_FLOOR = 0.01
SAMPLERS = ("shuffle", "balanced")
# Everything in TrainConfig but these may differ between a run and its resumption.
RESUME_FREE = ("epochs", "device", "threads")


@dataclass
class TrainConfig:
    """The training recipe. Defaults: the original study's (SGD, lr 0.1, momentum 0.9, batch 128, 5 epochs), with
    one documented improvement: a linear warm-up over the first 5% of steps and a cosine decay to zero."""

    epochs: int = 5
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup: float = 0.05
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    # Class imbalance (see class_weights and fit): loss weights none | balanced | sqrt; batches drawn by shuffling
    # (every beat once per epoch) or by a class-balanced sampler (with replacement, each class equally often).
    class_weight: str = "none"
    sampler: str = "shuffle"

    def __post_init__(self) -> None:
        if self.class_weight not in CLASS_WEIGHTS:
            raise InputError(f"unknown class weighting {self.class_weight!r}; choose {', '.join(CLASS_WEIGHTS)}")
        if self.sampler not in SAMPLERS:
            raise InputError(f"unknown sampler {self.sampler!r}; choose {', '.join(SAMPLERS)}")
        if self.optimizer not in ("sgd", "adam"):
            raise InputError(f"unknown optimizer {self.optimizer!r}; choose sgd or adam")
        if self.schedule not in ("none", "cosine", "onecycle"):
            raise InputError(f"unknown schedule {self.schedule!r}; choose none, cosine or onecycle")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise InputError("epochs and batch size must be at least 1 and the learning rate positive")


def pick_device(name: str = "auto") -> torch.device:
    """'auto' takes cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _lr_factor(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    warm = max(1, int(config.warmup * total_steps)) if config.schedule != "none" else 0

    def factor(step: int) -> float:
        if config.schedule == "none":
            return 1.0
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        if config.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, 1.0 - progress)  # onecycle: linear down after the warm-up

    return factor


def _make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def _atomic_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file so that a reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _solver_advice(exc: BaseException) -> TrainingError | None:
    text = str(exc)
    if "underflow in dt" in text or "max_num_steps" in text:
        return TrainingError(f"the ODE solver's step size underflowed ({text.strip()[:80]}): the dynamics became "
                             "too stiff; loosen the tolerance (--rtol/--atol), lower the learning rate (--lr), "
                             "or use a fixed-grid solver (--solver rk4)")
    return None


def class_weights(y: np.ndarray | torch.Tensor, mode: str = "none", n_classes: int = 5) -> torch.Tensor | None:
    """Loss weights (n_classes,) from training labels y (n,): None for "none"; "balanced" n / (K n_c) (each class
    weighs as much as any other in the loss; K the classes present); "sqrt" the square root of that (a milder
    correction). n_c is floored at WEIGHT_COUNT_FLOOR n, so that a class of a handful of beats gets a large but
    bounded weight. A class absent from y gets weight 1."""
    if mode == "none":
        return None
    if mode not in CLASS_WEIGHTS:
        raise InputError(f"unknown class weighting {mode!r}; choose {', '.join(CLASS_WEIGHTS)}")
    counts = np.bincount(np.asarray(y), minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.ones(n_classes)
    floored = np.maximum(counts[present], WEIGHT_COUNT_FLOOR * counts.sum())
    w[present] = counts.sum() / (present.sum() * floored)
    if mode == "sqrt":
        w = np.sqrt(w)
    return torch.tensor(w, dtype=torch.float32)


def _epoch_order(y: torch.Tensor, config: TrainConfig, epoch: int) -> torch.Tensor:
    """The beat indices of one epoch, from (seed, epoch) alone so that a resumed run repeats them."""
    gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    n = len(y)
    if config.sampler == "shuffle":
        return torch.randperm(n, generator=gen)
    counts = torch.bincount(y, minlength=int(y.max()) + 1).double()
    p = (1.0 / counts)[y]
    return torch.multinomial(p, n, replacement=True, generator=gen)


def _rows(r: torch.Tensor | None, idx: Any, device: torch.device) -> torch.Tensor | None:
    return None if r is None else r[idx].to(device, non_blocking=True)


# ------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 512,
            device: torch.device | None = None, rhythm: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class predictions (n,) and logits (n, 5) for beats x (n, C, 187) and, for a model with a rhythm input,
    their rhythm features (n, k)."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            logits = model(xb) if rhythm is None else model(xb, _rows(rhythm, slice(i, i + batch_size), device))
            out.append(logits.float().cpu())
    except AssertionError as exc:
        raise (_solver_advice(exc) or exc) from None
    logits = torch.cat(out) if out else torch.empty(0, 5)
    return logits.argmax(1).numpy(), logits.numpy()


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512,
             rhythm: torch.Tensor | None = None) -> dict[str, float]:
    """Loss, accuracy and forward NFE per batch of the model on (x, y) (and the beats' rhythm features)."""
    if isinstance(model, Classifier):
        model.reset_nfe()
    pred, logits = predict(model, x, batch_size, rhythm=rhythm)
    n_batches = max(1, math.ceil(len(x) / batch_size))
    nfe = model.nfe()[0] / n_batches if isinstance(model, Classifier) else 0.0
    loss = float(F.cross_entropy(torch.from_numpy(logits), y)) if len(y) else float("nan")
    return {"loss": loss, "accuracy": float(np.mean(pred == y.numpy())) if len(y) else float("nan"), "nfe": nfe}


# ------------------------------------------------------------------------------------------------- checkpoints
def load_checkpoint(path: str | os.PathLike, expect_model: str | None = None) -> tuple[Classifier, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint (best.pt or checkpoint.pt); loads with weights_only=True.

    Raises InputError for a missing or corrupt file, a file that is no ecglib checkpoint, a checkpoint of another
    model than ``expect_model``, or weights that do not fit the stored architecture.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    if not path.exists():
        raise InputError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling and zip errors alike mean a corrupt file
        raise InputError(f"{path}: not a readable checkpoint ({str(exc).strip().splitlines()[0][:120]})") from None
    if (not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT
            or not isinstance(state.get("model_config"), dict) or "model" not in state):
        raise InputError(f"{path}: not an ecglib checkpoint")
    config = dict(state["model_config"])
    if config.get("model") not in ("resnet", "odenet"):
        raise InputError(f"{path}: checkpoint of an unknown model {config.get('model')!r}")
    name = config.pop("model")
    if expect_model is not None and name != expect_model:
        raise InputError(f"{path}: checkpoint of a {name}, not of a {expect_model}")
    try:
        model = build_model(name, **config)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: checkpoint with unusable model settings ({exc})") from None
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise InputError(f"{path}: weights do not fit a {name} with {config} ({first[1].strip()[:100] if len(first) > 1 else first[0][:100]})") from None
    return model, state


def _check_resumable(state: dict[str, Any], model: Classifier, config: TrainConfig, path: Path) -> None:
    if state.get("model_config") != model.config:
        raise InputError(f"{path}: this run folder holds a {state['model_config'].get('model')} run with other "
                         "model settings; use another --out folder or --fresh")
    saved = {k: v for k, v in state.get("train_config", {}).items() if k not in RESUME_FREE}
    # Options added after the checkpoint was written (class_weight, sampler) were at their defaults then.
    saved = {**{k: v for k, v in asdict(TrainConfig()).items() if k not in RESUME_FREE}, **saved}
    now = {k: v for k, v in asdict(config).items() if k not in RESUME_FREE}
    if saved != now:
        diff = sorted(k for k in now if saved.get(k) != now[k])
        raise InputError(f"{path}: this run folder was trained with other settings ({', '.join(diff)}); "
                         "use another --out folder or --fresh")


# ------------------------------------------------------------------------------------------------------- fit
HISTORY_FIELDS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "nfe_forward",
                  "nfe_backward", "val_nfe", "seconds", "lr")


def fit(model: Classifier, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
        config: TrainConfig | None = None, run_dir: str | os.PathLike | None = None, resume: bool = True,
        progress: bool = True, on_epoch: Callable[[dict[str, Any]], None] | None = None,
        r_train: torch.Tensor | None = None, r_val: torch.Tensor | None = None) -> list[dict[str, Any]]:
    """Train ``model`` on (x_train (n, C, 187), y_train (n,)) and return the per-epoch history.

    r_train, r_val: (n, k) raw rhythm features of the beats, for a model with a rhythm input (standardise them with
    ``model.set_rhythm_stats(r_train)`` first). ``config.class_weight`` weights the loss, ``config.sampler``
    draws the batches (see TrainConfig).

    Each history row: epoch, train loss and accuracy, validation loss and accuracy, mean forward and backward NFE
    per training batch, validation NFE per batch, seconds of the epoch and the last learning rate. With a
    ``run_dir``, a checkpoint is written after every epoch, the best-on-validation weights go to best.pt, and an
    existing checkpoint there is resumed when ``resume`` is true.
    """
    from tqdm.auto import tqdm

    config = config or TrainConfig()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    model.to(device)
    n = len(x_train)
    if n == 0:
        raise InputError("no training beats")
    steps_per_epoch = math.ceil(n / config.batch_size)
    weight = class_weights(y_train, config.class_weight)
    weight = weight.to(device) if weight is not None else None
    optimizer = _make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config, steps_per_epoch * config.epochs))
    history: list[dict[str, Any]] = []
    best_acc, start_epoch = -1.0, 0

    run = Path(run_dir) if run_dir is not None else None
    if run is not None:
        run.mkdir(parents=True, exist_ok=True)
        ckpt = run / "checkpoint.pt"
        if ckpt.exists() and resume:
            try:
                state = torch.load(ckpt, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001
                raise InputError(f"{ckpt}: unreadable checkpoint ({str(exc).strip()[:100]}); use --fresh") from None
            if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
                raise InputError(f"{ckpt}: not an ecglib checkpoint; use another --out folder or --fresh")
            _check_resumable(state, model, config, ckpt)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history, best_acc, start_epoch = list(state["history"]), state["best_val_accuracy"], state["epoch"]
            if progress and start_epoch < config.epochs:
                tqdm.write(f"resuming {run} after epoch {start_epoch}")

    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        model.train()
        order = _epoch_order(y_train, config, epoch)
        loss_sum, correct, seen, nfe_f, nfe_b = 0.0, 0, 0, 0, 0
        bar = tqdm(total=n, desc=f"{model.name} epoch {epoch + 1}/{config.epochs}", unit="beat", unit_scale=True,
                   disable=not progress, dynamic_ncols=True, leave=True)
        try:  # close the bar before an error propagates, so that the error starts its own line
            for step in range(steps_per_epoch):
                idx = order[step * config.batch_size:(step + 1) * config.batch_size]
                xb, yb = x_train[idx].to(device, non_blocking=True), y_train[idx].to(device, non_blocking=True)
                model.reset_nfe()
                try:
                    logits = model(xb) if r_train is None else model(xb, _rows(r_train, idx, device))
                    loss = F.cross_entropy(logits, yb, weight=weight)
                    if not torch.isfinite(loss):
                        raise TrainingError(f"the training loss became {loss.item()} at epoch {epoch + 1}, batch "
                                            f"{step + 1}: lower the learning rate (--lr) or check the input data")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                except AssertionError as exc:
                    raise (_solver_advice(exc) or exc) from None
                optimizer.step()
                scheduler.step()
                f_calls, b_calls = model.nfe()
                nfe_f, nfe_b = nfe_f + f_calls, nfe_b + b_calls
                loss_sum += loss.item() * len(yb)
                correct += int((logits.argmax(1) == yb).sum())
                seen += len(yb)
                bar.update(len(yb))
                if step % 10 == 0 or step == steps_per_epoch - 1:
                    post = {"loss": f"{loss_sum / seen:.4f}", "acc": f"{correct / seen:.4f}"}
                    if model.ode is not None:
                        post["nfe"] = f"{nfe_f / (step + 1):.0f}/{nfe_b / (step + 1):.0f}"
                    bar.set_postfix(post, refresh=False)
        finally:
            bar.close()
        val = (evaluate(model, x_val, y_val, rhythm=r_val) if len(x_val)
               else {"loss": float("nan"), "accuracy": float("nan"), "nfe": 0.0})
        row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
               "val_loss": val["loss"], "val_accuracy": val["accuracy"], "nfe_forward": nfe_f / steps_per_epoch,
               "nfe_backward": nfe_b / steps_per_epoch, "val_nfe": val["nfe"],
               "seconds": time.perf_counter() - started, "lr": scheduler.get_last_lr()[0]}
        history.append(row)
        if progress:
            tqdm.write(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
                       f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f} | {row['seconds']:.0f} s")
        if run is not None:
            # A run without validation keeps its last epoch as "best".
            improved = not math.isfinite(val["accuracy"]) or val["accuracy"] > best_acc
            if improved:
                best_acc = val["accuracy"] if math.isfinite(val["accuracy"]) else best_acc
                _atomic_save({"format": CHECKPOINT_FORMAT, "model_config": model.config,
                              "model": model.state_dict(), "epoch": epoch + 1, "val_accuracy": val["accuracy"]},
                             run / "best.pt")
            _atomic_save({"format": CHECKPOINT_FORMAT, "model_config": model.config, "model": model.state_dict(),
                          "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                          "train_config": asdict(config), "epoch": epoch + 1, "history": history,
                          "best_val_accuracy": best_acc}, run / "checkpoint.pt")
            write_history(history, run / "history.csv")
        if on_epoch is not None:
            on_epoch(row)
    return history


def write_history(history: list[dict[str, Any]], path: Path) -> None:
    from io import StringIO

    buf = StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buf.getvalue())


# ------------------------------------------------------------------------------------------------------- run
def train_config_from(**kwargs: Any) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in kwargs.items() if k in names and v is not None})


def run_training(model_name: str, beats: Any, split: Any, out: str | os.PathLike,
                 config: TrainConfig | None = None, model_kwargs: dict[str, Any] | None = None,
                 resume: bool = True, progress: bool = True, data_config: dict[str, Any] | None = None,
                 features: str = "beat", context: bool = False) -> dict[str, Any]:
    """Train ``model_name`` on ``split`` of ``beats``, test the best-on-validation weights, and write the run folder.

    features: "beat" (the beat's samples only: the original study) or "beat+rhythm" (also the beat's rhythm
    features, ``beats.rhythm``, standardised with the training split's mean and std). context: feed each beat
    with its predecessor and successor (3 input channels, data.context_beats).
    Returns the metrics also written to ``out/metrics.json``: test accuracy, macro-F1, baseline, per-class scores
    and gross statistics (Se, +P, FPR, kappa), confusion matrices, the records of each split part, and the costs
    (parameters, seconds per epoch, NFE, activation memory, beats per second).
    """
    from .data import FEATURE_SETS, split_records
    from .metrics import activation_bytes, beats_per_second, classification_metrics, count_parameters, cuda_peak_bytes

    if features not in FEATURE_SETS:
        raise InputError(f"unknown feature set {features!r}; choose {', '.join(FEATURE_SETS)}")
    config = config or TrainConfig()
    out = Path(out)
    seed_everything(config.seed)
    tensors = beat_tensors(beats, features, context)
    model_kwargs = dict(model_kwargs or {})
    if tensors.rhythm is not None:
        model_kwargs["rhythm_features"] = tensors.rhythm.shape[1]
    if context:
        model_kwargs["in_channels"] = tensors.x.shape[1]
    model = build_model(model_name, **model_kwargs)
    x_tr, y_tr, r_tr = tensors.part(split.train)
    x_va, y_va, r_va = tensors.part(split.val)
    x_te, y_te, r_te = tensors.part(split.test)
    if len(x_te) == 0:
        raise InputError("the test split is empty")
    if r_tr is not None:
        model.set_rhythm_stats(r_tr)
    history = fit(model, x_tr, y_tr, x_va, y_va, config, run_dir=out, resume=resume, progress=progress,
                  r_train=r_tr, r_val=r_va)

    best, _ = load_checkpoint(out / "best.pt")
    device = pick_device(config.device)
    best.to(device)
    best.reset_nfe()
    pred, _ = predict(best, x_te, device=device, rhythm=r_te)
    test_nfe = best.nfe()[0] / max(1, math.ceil(len(x_te) / 512))
    metrics = classification_metrics(y_te.numpy(), pred, y_train=y_tr.numpy())
    if len(x_va):
        # The validation scores of the same weights: what model choices (class weighting, features) are made on.
        val_pred, _ = predict(best, x_va, device=device, rhythm=r_va)
        val_m = classification_metrics(y_va.numpy(), val_pred, y_train=y_tr.numpy())
        metrics["validation"] = {k: val_m[k] for k in ("accuracy", "macro_f1", "baseline_accuracy", "gross", "kappa",
                                                       "confusion_matrix", "n_test")}
    xb, yb = x_tr[: config.batch_size].to(device), y_tr[: config.batch_size].to(device)
    rb = r_tr[: config.batch_size].to(device) if r_tr is not None else None
    metrics.update({
        "model": model_name,
        "params": count_parameters(best),
        "seconds_per_epoch": [h["seconds"] for h in history],
        "nfe_forward": float(np.mean([h["nfe_forward"] for h in history])),
        "nfe_backward": float(np.mean([h["nfe_backward"] for h in history])),
        "test_nfe_forward": test_nfe,
        "activation_bytes": activation_bytes(best, xb, yb, rhythm=rb),
        "cuda_peak_bytes": cuda_peak_bytes(best, xb, yb, rhythm=rb),
        "beats_per_second": beats_per_second(best, x_te.to(device),
                                             rhythm=r_te.to(device) if r_te is not None else None),
        "best_epoch": int(torch.load(out / "best.pt", weights_only=True)["epoch"]),
        "split_sizes": split.sizes(),
        "split": {"protocol": split.protocol, **split_records(beats, split)},
        "features": features,
        "context": context,
        "device": str(device),
        "machine": machine_description(device),
        "config": {"model": best.config, "train": asdict(config), "data": data_config or {},
                   "split": split.protocol, "features": features, "context": context},
        "history": history,
    })
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


@dataclass
class BeatTensors:
    """A Beats table as tensors: x (n, C, 187) float32 (C = 1, or 3 with context), y (n,) int64, rhythm (n, k)
    float32 raw rhythm features or None."""

    x: torch.Tensor
    y: torch.Tensor
    rhythm: torch.Tensor | None

    def part(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        i = torch.from_numpy(np.asarray(index, dtype=np.int64))
        return self.x[i], self.y[i], None if self.rhythm is None else self.rhythm[i]


def beat_tensors(beats: Any, features: str = "beat", context: bool = False, name: str = "beats") -> BeatTensors:
    """The inputs a model takes for ``features`` ("beat" or "beat+rhythm") and ``context``, for the whole table
    (context needs the neighbours, so build it before taking parts). InputError naming ``name`` when the beats
    lack rhythm features or neighbours (the Kaggle source)."""
    from .data import context_beats, require_rhythm

    if context:
        x = torch.from_numpy(context_beats(beats))
    else:
        x = torch.from_numpy(np.ascontiguousarray(beats.x))[:, None, :]
    rhythm = torch.from_numpy(np.ascontiguousarray(require_rhythm(beats, name))) if features == "beat+rhythm" else None
    return BeatTensors(x, torch.from_numpy(beats.y.astype(np.int64)), rhythm)


def machine_description(device: torch.device | None = None) -> str:
    """A short description of where numbers were measured: CPU model and cores, or the GPU's name."""
    import platform

    device = device or pick_device()
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
