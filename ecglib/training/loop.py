"""One training loop for both models.

:func:`fit` trains and, given a run folder (:mod:`ecglib.runs`), checkpoints every epoch. Running the same
command again on the same folder resumes after the last finished epoch; because each epoch's batch order comes
from (seed, epoch) alone, a resumed CPU run ends with the same numbers as an uninterrupted one.
"""
from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..allocator import keep_freed_memory
from ..checkpoints import read_checkpoint, save_checkpoint
from ..config import TrainConfig
from ..data.facts import CLASSES
from ..data.inputs import input_layout
from ..errors import InputError, TrainingError
from ..inference import evaluate, gather_rows, pick_device, solver_advice
from ..models import Classifier
from ..runs import RunFolder, write_history
from .batches import WeightAverage, add_noise, class_weights, epoch_order, synthetic_s
from .resume import check_resumable, check_training_state


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
    keep_freed_memory()
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
                        yb, rb = synthetic_s(yb, gather_rows(r_train, idx, device), s_rhythm, config.synthetic_s, s_gen)
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
                    raise (solver_advice(exc) or exc) from None
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
        val = evaluate(judged, x_val, y_val, rhythm=r_val) if len(x_val) else \
            {"loss": float("nan"), "accuracy": float("nan"), "nfe": 0.0}
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
