"""One training loop for both models, and the run that joins data, model, training and metrics.

:func:`fit` trains and, given a run folder (:mod:`ecglib.runs`), checkpoints every epoch. Running the same
command again on the same folder resumes after the last finished epoch; because each epoch's batch order comes
from (seed, epoch) alone, a resumed CPU run ends with the same numbers as an uninterrupted one.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .batches import (WEIGHT_COUNT_FLOOR, WeightAverage, add_noise, class_weights, epoch_order,  # noqa: F401
                      synthetic_s)
from .beats import CLASSES, input_layout
from .config import TrainConfig
from .errors import InputError, TrainingError
from .models import Classifier, build_model
from .runs import RunFolder, beats_digest, check_best, check_resumable, check_resumable_data, check_training_state, \
    load_checkpoint, machine_description, nfe_per_batch, read_checkpoint, save_checkpoint, write_history


def pick_device(name: str = "auto") -> torch.device:
    """'auto' takes cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"--device {name}: unknown device; choose auto, cpu, cuda, cuda:N or mps") from None
    # Checked here, where training starts: torch would otherwise fail deep inside the first .to(device).
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"--device {name}: no CUDA device on this machine (torch {torch.__version__}); "
                             "use --device cpu or auto")
        if device.index is not None and device.index >= count:
            raise InputError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                       and torch.backends.mps.is_available()):
        raise InputError(f"--device {name}: no Apple MPS device on this machine; use --device cpu or auto")
    elif device.type != "cpu":
        raise InputError(f"--device {name}: unsupported device; choose auto, cpu, cuda, cuda:N or mps")
    return device


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


def _solver_advice(exc: BaseException) -> TrainingError | None:
    text = str(exc)
    if "underflow in dt" in text or "max_num_steps" in text:
        return TrainingError(f"the ODE solver's step size underflowed ({text.strip()[:80]}): the dynamics became "
                             "too stiff; loosen the tolerance (--rtol/--atol), lower the learning rate (--lr), "
                             "or use a fixed-grid solver (--solver rk4)")
    return None


def _rows(r: torch.Tensor | None, idx: Any, device: torch.device) -> torch.Tensor | None:
    return None if r is None else r[idx].to(device, non_blocking=True)


# ------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 512,
            device: torch.device | None = None, progress: bool = False, rhythm: torch.Tensor | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Class predictions (n,) and logits (n, 5) for beats x (n, C, 187) and, for a model with a rhythm input,
    their rhythm features (n, k); ``progress``: a bar of beats done."""
    from tqdm.auto import tqdm

    device = device or next(model.parameters()).device
    model.eval()
    out = []
    bar = tqdm(total=len(x), desc="evaluating", unit="beat", unit_scale=True, disable=not progress, leave=False,
               dynamic_ncols=True)
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            logits = model(xb) if rhythm is None else model(xb, _rows(rhythm, slice(i, i + batch_size), device))
            out.append(logits.float().cpu())
            bar.update(len(xb))
    except AssertionError as exc:
        raise (_solver_advice(exc) or exc) from None
    finally:
        bar.close()
    logits = torch.cat(out) if out else torch.empty(0, 5)
    return logits.argmax(1).numpy(), logits.numpy()


def predict_nfe(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 512, device: torch.device | None = None,
                progress: bool = False, rhythm: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`predict` and the mean forward evaluations of the ODE dynamics per batch (0 for a ResNet)."""
    if isinstance(model, Classifier):
        model.reset_nfe()
    pred, logits = predict(model, x, batch_size, device, progress=progress, rhythm=rhythm)
    calls = model.nfe()[0] if isinstance(model, Classifier) else 0
    return pred, logits, nfe_per_batch(calls, len(x), batch_size)


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512,
             rhythm: torch.Tensor | None = None) -> dict[str, float]:
    """Loss, accuracy and forward NFE per batch of the model on (x, y) (and the beats' rhythm features)."""
    pred, logits, nfe = predict_nfe(model, x, batch_size, rhythm=rhythm)
    loss = float(F.cross_entropy(torch.from_numpy(logits), y)) if len(y) else float("nan")
    return {"loss": loss, "accuracy": float(np.mean(pred == y.numpy())) if len(y) else float("nan"), "nfe": nfe}


# ------------------------------------------------------------------------------------------------------- fit
def fit(model: Classifier, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
        config: TrainConfig | None = None, run_dir: str | os.PathLike | None = None, resume: bool = True,
        progress: bool = True, on_epoch: Callable[[dict[str, Any]], None] | None = None,
        on_step: Callable[[dict[str, Any]], None] | None = None, max_steps: int | None = None,
        checkpoint_extra: dict[str, Any] | None = None, r_train: torch.Tensor | None = None,
        r_val: torch.Tensor | None = None) -> list[dict[str, Any]]:
    """Train ``model`` on (x_train (n, C, 187), y_train (n,)) and return the per-epoch history.

    r_train, r_val: (n, k) raw rhythm features of the beats, for a model with a rhythm input (standardise them with
    ``model.set_rhythm_stats(r_train)`` first). TrainConfig says how class_weight, sampler, noise,
    morphology_dropout and synthetic_s shape the training. With ``config.ema``, the moving average of the weights
    (:class:`WeightAverage`) is what is validated and kept as best.pt, and ``model`` ends holding it.

    Each history row: epoch, train loss and accuracy, validation loss and accuracy, mean forward and backward NFE
    per training batch, validation NFE per batch, seconds of the epoch and the last learning rate. With a
    ``run_dir``, a checkpoint is written after every epoch, the best-on-validation weights (the last epoch's with
    ``config.keep`` "last") go to best.pt, and an existing checkpoint there is resumed when ``resume`` is true.

    Hooks for measurements (the benchmark): ``on_step`` is called after every optimizer step with a dict of
    epoch, step (counted from the start of training), loss, nfe_forward, nfe_backward and seconds (of that step,
    the GPU synchronised); ``max_steps`` ends training after that many steps, mid-epoch if need be (an epoch cut
    short leaves no history row and no checkpoint). ``on_epoch`` gets each finished epoch's history row.
    ``checkpoint_extra``: more entries for checkpoint.pt (run_training stores the data settings there).
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
    if config.morphology_dropout and r_train is None:
        raise InputError(f"morphology dropout {config.morphology_dropout:g} needs the rhythm input (--features "
                         "beat+rhythm): without it a dropped beat has nothing left to be named by")
    if config.synthetic_s and r_train is None:
        raise InputError(f"synthetic S beats ({config.synthetic_s:g}) need the rhythm input (--features beat+rhythm): "
                         "an S beat is made of an N beat's shape and an S beat's rhythm")
    s_rhythm = r_train[y_train == CLASSES.index("S")].to(device) if config.synthetic_s else None
    if config.synthetic_s and not len(s_rhythm):
        raise InputError("synthetic S beats need S beats in the training split, whose rhythm they borrow; without "
                         "any, give --synthetic-s 0")
    weight = class_weights(y_train, config.class_weight)
    weight = weight.to(device) if weight is not None else None
    optimizer = _make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config, steps_per_epoch * config.epochs))
    average = WeightAverage(model, config.ema) if config.ema else None
    history: list[dict[str, Any]] = []
    best_acc, start_epoch = -1.0, 0

    run = RunFolder(run_dir) if run_dir is not None else None
    if run is not None:
        run.path.mkdir(parents=True, exist_ok=True)
        if run.checkpoint.exists() and resume:
            state = read_checkpoint(run.checkpoint)
            check_training_state(state, run.checkpoint)
            check_resumable(state, model, config, run.checkpoint)
            try:
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                if average is not None:
                    average.model.load_state_dict(state["average"]["model"])
                    average.updates = int(state["average"]["updates"])
                history, best_acc, start_epoch = list(state["history"]), float(state["best_val_accuracy"]), \
                    int(state["epoch"])
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise InputError(f"{run.checkpoint}: damaged checkpoint ({type(exc).__name__}: "
                                 f"{str(exc).strip()[:80]}); start afresh with --fresh") from None
            if progress and start_epoch < config.epochs:
                tqdm.write(f"resuming {run.path} after epoch {start_epoch}")

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    total_steps = start_epoch * steps_per_epoch
    layout = input_layout(x_train.shape[1]) if config.noise else {}
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        model.train()
        order = epoch_order(y_train, config, epoch)
        noise_gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch + 50_021)  # resumes repeat it
        drop_gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch + 70_019)
        s_gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch + 90_011)
        loss_sum, correct, seen, nfe_f, nfe_b = 0.0, 0, 0, 0, 0
        bar = tqdm(total=n, desc=f"{model.name} epoch {epoch + 1}/{config.epochs}", unit="beat", unit_scale=True,
                   disable=not progress, dynamic_ncols=True, leave=True)
        try:  # close the bar before an error propagates, so that the error starts its own line
            for step in range(steps_per_epoch):
                if max_steps is not None and total_steps >= max_steps:
                    return history
                step_started = time.perf_counter()
                idx = order[step * config.batch_size:(step + 1) * config.batch_size]
                xb, yb = x_train[idx].to(device, non_blocking=True), y_train[idx].to(device, non_blocking=True)
                xb = add_noise(xb, config.noise, layout, noise_gen)
                model.reset_nfe()
                try:
                    keep = (torch.rand(len(idx), generator=drop_gen) >= config.morphology_dropout).to(device) \
                        if config.morphology_dropout else None
                    if r_train is None:
                        logits = model(xb)
                    else:
                        yb, rb = synthetic_s(yb, _rows(r_train, idx, device), s_rhythm, config.synthetic_s, s_gen)
                        logits = model(xb, rb, keep)
                    loss = F.cross_entropy(logits, yb, weight=weight)
                    # An RNODE-regularised ODE-Net adds its penalty; the history reports the classification loss.
                    penalty = model.penalty()
                    total = loss if penalty is None else loss + penalty
                    if not torch.isfinite(total):
                        raise TrainingError(f"the training loss became {total.item()} at epoch {epoch + 1}, batch "
                                            f"{step + 1}: lower the learning rate (--lr) or check the input data")
                    optimizer.zero_grad(set_to_none=True)
                    total.backward()
                except AssertionError as exc:
                    raise (_solver_advice(exc) or exc) from None
                optimizer.step()
                scheduler.step()
                if average is not None:
                    average.update(model)
                total_steps += 1
                f_calls, b_calls = model.nfe()
                nfe_f, nfe_b = nfe_f + f_calls, nfe_b + b_calls
                loss_sum += loss.item() * len(yb)
                correct += int((logits.argmax(1) == yb).sum())
                seen += len(yb)
                if on_step is not None:
                    sync()
                    on_step({"epoch": epoch + 1, "step": total_steps, "loss": loss.item(), "nfe_forward": f_calls,
                             "nfe_backward": b_calls, "seconds": time.perf_counter() - step_started})
                bar.update(len(yb))
                if step % 10 == 0 or step == steps_per_epoch - 1:
                    post = {"loss": f"{loss_sum / seen:.4f}", "acc": f"{correct / seen:.4f}"}
                    if model.ode is not None:
                        post["nfe"] = f"{nfe_f / (step + 1):.0f}/{nfe_b / (step + 1):.0f}"
                    bar.set_postfix(post, refresh=False)
        finally:
            bar.close()
        judged = model if average is None else average.model
        val = evaluate(judged, x_val, y_val, rhythm=r_val) if len(x_val) else {"loss": float("nan"), "accuracy": float("nan"),
                                                                 "nfe": 0.0}
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
            improved = config.keep == "last" or not math.isfinite(val["accuracy"]) or val["accuracy"] > best_acc
            if improved:
                best_acc = val["accuracy"] if math.isfinite(val["accuracy"]) else best_acc
                save_checkpoint({"model_config": model.config, "model": judged.state_dict(), "epoch": epoch + 1,
                                 "val_accuracy": val["accuracy"]}, run.best)
            save_checkpoint({"model_config": model.config, "model": model.state_dict(),
                             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                             "train_config": asdict(config), "epoch": epoch + 1, "history": history,
                             "best_val_accuracy": best_acc,
                             **({} if average is None else
                                {"average": {"model": average.model.state_dict(), "updates": average.updates}}),
                             **(checkpoint_extra or {})}, run.checkpoint)
            write_history(history, run.file("history.csv"))
        if on_epoch is not None:
            on_epoch(row)
    if average is not None:
        model.load_state_dict(average.model.state_dict())
    return history


# ------------------------------------------------------------------------------------------------------- run
def run_training(model_name: str, beats: Any, split: Any, out: str | os.PathLike,
                 config: TrainConfig | None = None, model_kwargs: dict[str, Any] | None = None,
                 resume: bool = True, progress: bool = True, data_config: dict[str, Any] | None = None,
                 fresh: bool = False, features: str = "beat", context: bool = False, template: bool = False
                 ) -> dict[str, Any]:
    """Train ``model_name`` on ``split`` of ``beats``, test the kept weights (``config.keep``), write the run folder.

    model_kwargs: for :func:`ecglib.models.build_model` (width, blocks, ode). features: "beat" (the beat's samples
    only: the original study) or "beat+rhythm" (also the beat's rhythm features, ``beats.rhythm``, standardised
    with the training split's mean and std). context: feed each beat with its predecessor and successor (3 input
    channels, data.context_beats). template: one more channel, the beat minus its record's median beat
    (data.template_difference). Returns the metrics also written to ``out/metrics.json``: test accuracy,
    macro-F1, baseline, per-class scores and gross statistics (Se, +P, FPR, kappa), confusion matrices, the records
    of each split part, and the costs (parameters, seconds per epoch, NFE, activation memory, beats per second).

    The folder is locked for the whole run (:meth:`RunFolder.lock`: a second training into it is refused);
    ``fresh`` clears what an earlier run left, else a checkpoint there is resumed only if it was trained on the
    same data (``data_config`` and the beats' digest), split, model and recipe. A failed run leaves no
    metrics.json, and no run folder if this call created it and no epoch finished.
    """
    import shutil

    run = RunFolder(out)
    created = not run.path.exists()
    with run.lock():
        try:
            return _run_training_locked(model_name, beats, split, run, config, model_kwargs, resume, progress,
                                        data_config, fresh, features, context, template)
        except BaseException:
            # Nothing that looks like a result: metrics.json is written last (and an earlier one was removed
            # before training), and a folder this call made goes while it holds no finished epoch. Still under
            # the lock, so that no other training is in the folder.
            if created and not run.checkpoint.exists():
                shutil.rmtree(run.path, ignore_errors=True)
            raise


def _run_training_locked(model_name: str, beats: Any, split: Any, run: RunFolder, config: TrainConfig | None,
                         model_kwargs: dict[str, Any] | None, resume: bool, progress: bool,
                         data_config: dict[str, Any] | None, fresh: bool, features: str, context: bool,
                         template: bool = False) -> dict[str, Any]:
    from .data import FEATURE_SETS, RHYTHM_INPUTS, beat_tensors, class_offsets, split_records
    from .files import atomic_write_text
    from .metrics import activation_bytes, beats_per_second, classification_metrics, count_parameters, cuda_peak_bytes

    if features not in FEATURE_SETS:
        raise InputError(f"unknown feature set {features!r}; choose {', '.join(FEATURE_SETS)}")
    config = config or TrainConfig()
    if fresh:
        run.clear()
    seed_everything(config.seed)
    tensors = beat_tensors(beats, features, context, template=template, rhythm_inputs=RHYTHM_INPUTS)
    model_kwargs = dict(model_kwargs or {})
    if tensors.rhythm is not None:
        model_kwargs["rhythm_inputs"] = RHYTHM_INPUTS
    if context or template:
        model_kwargs["in_channels"] = tensors.x.shape[1]
    model = build_model(model_name, **model_kwargs, logit_offsets=class_offsets(config.s_offset))
    x_tr, y_tr, r_tr = tensors.part(split.train)
    x_va, y_va, r_va = tensors.part(split.val)
    x_te, y_te, r_te = tensors.part(split.test)
    if len(x_te) == 0:
        raise InputError("the test split is empty")
    # "template" only when on, so that the checkpoints of runs from before the option still resume.
    data_state = {**(data_config or {}), "split": split.protocol, "features": features, "context": context,
                  **({"template": True} if template else {}),
                  "beats": beats_digest(x_tr.numpy(), y_tr.numpy(), x_va.numpy(), y_va.numpy(), x_te.numpy(),
                                        y_te.numpy(), *([] if r_tr is None else [r_tr.numpy()]))}
    if resume and run.checkpoint.exists():
        state = read_checkpoint(run.checkpoint)
        check_training_state(state, run.checkpoint)
        # all checked before anything in the folder changes: a refused resume leaves it as it was
        check_resumable(state, model, config, run.checkpoint)
        check_resumable_data(state, data_state, run.checkpoint)
        check_best(read_checkpoint(run.best), model, run.best)  # there, whole and this run's, or the result lies
    # A run that goes on must not leave the last run's metrics behind if it fails.
    run.metrics_file.unlink(missing_ok=True)
    if r_tr is not None:
        model.set_rhythm_stats(r_tr)
    history = fit(model, x_tr, y_tr, x_va, y_va, config, run_dir=run.path, resume=resume, progress=progress,
                  checkpoint_extra={"data_config": data_state}, r_train=r_tr, r_val=r_va)

    best, best_state = load_checkpoint(run.best)
    check_best(best_state, model, run.best)
    device = pick_device(config.device)
    best.to(device)
    pred, _, test_nfe = predict_nfe(best, x_te, device=device, rhythm=r_te)
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
        "best_epoch": int(best_state["epoch"]),
        "split_sizes": split.sizes(),
        "split": {"protocol": split.protocol, **split_records(beats, split)},
        "features": features, "context": context, "template": template,
        "device": str(device), "machine": machine_description(device),
        "config": {"model": best.config, "train": asdict(config), "data": data_config or {},
                   "split": split.protocol, "features": features, "context": context,
                   # only when on: sweeps recognise their finished runs by this config, written before the option
                   **({"template": True} if template else {})},
        "history": history,
    })
    atomic_write_text(run.metrics_file, json.dumps(metrics, indent=2))
    return metrics
