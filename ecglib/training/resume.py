"""Resuming a run: the checks that a checkpoint may be continued with these settings and on these beats.

A resumed run must be the same run: same model settings, same recipe (but the epochs, the device and the thread
count), same data and split, the same beats byte for byte (:func:`beats_digest`). Every check raises an InputError
naming the file and saying how to start afresh, before anything in the folder changes.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..errors import InputError
from ..models import Classifier
from ..runs import HISTORY_FIELDS


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_training_state(state: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Refuse a checkpoint.pt that cannot be resumed: a training-state key missing or of the wrong type.

    Keys: optimizer and scheduler (mappings), train_config (a mapping), epoch (a whole number >= 0),
    history (one mapping of numbers per finished epoch), best_val_accuracy (a number). ``state`` is what
    :func:`read_checkpoint` returned.
    """
    def bad(key: str, what: str) -> InputError:
        return InputError(f"{path}: damaged checkpoint ({key} {what}); start afresh with --fresh")

    for key in ("optimizer", "scheduler", "train_config"):
        if key not in state:
            raise bad(key, "missing")
        if not isinstance(state[key], dict):
            raise bad(key, f"is a {type(state[key]).__name__}, not a mapping")
    epoch = state.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise bad("epoch", f"{epoch!r} is not a number of finished epochs")
    history = state.get("history")
    if not isinstance(history, list) or len(history) != epoch \
            or not all(isinstance(row, dict) and row.get("epoch") == i + 1
                       and all(_is_number(row.get(k)) for k in HISTORY_FIELDS) for i, row in enumerate(history)):
        raise bad("history", f"is not one row of numbers per finished epoch ({epoch})")
    # The optimizer's and the schedule's own load_state_dict take any mapping and fail only steps later.
    groups = state["optimizer"].get("param_groups")
    if not isinstance(state["optimizer"].get("state"), dict) or not isinstance(groups, list) or not groups \
            or not all(isinstance(g, dict) and isinstance(g.get("params"), list) and _is_number(g.get("lr"))
                       for g in groups):
        raise bad("optimizer", "state is not that of a torch optimizer")
    scheduler = state["scheduler"]
    last = scheduler.get("last_epoch")
    if isinstance(last, bool) or not isinstance(last, int) or last < 0 \
            or not isinstance(scheduler.get("base_lrs"), list) \
            or not all(_is_number(v) for v in scheduler["base_lrs"]):
        raise bad("scheduler", "state is not that of a learning-rate schedule")
    if not isinstance(state.get("best_val_accuracy"), (int, float)) or isinstance(state["best_val_accuracy"], bool):
        raise bad("best_val_accuracy", "missing or not a number")
    data = state.get("data_config")
    if data is not None and not isinstance(data, dict):
        raise bad("data_config", "is not a mapping")


# ------------------------------------------------------------------------------------------------- resuming
# Everything in TrainConfig but these may differ between a run and its resumption.
RESUME_FREE = ("epochs", "device", "threads")


def _describe(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def check_resumable(state: dict[str, Any], model: Classifier, config: TrainConfig, path: Path) -> None:
    afresh = "start afresh with --fresh (or another --out folder) to train with the new ones"
    if state.get("model_config") != model.config:
        saved_model = state["model_config"]
        diff = sorted(k for k in set(saved_model) | set(model.config) if saved_model.get(k) != model.config.get(k))
        what = ", ".join(f"{k} {_describe(saved_model.get(k))} (now {_describe(model.config.get(k))})"
                         for k in diff[:3])
        raise InputError(f"{path}: this run folder holds a {saved_model.get('model')} run with other model "
                         f"settings: {what}; {afresh}")
    saved = {k: v for k, v in state.get("train_config", {}).items() if k not in RESUME_FREE}
    # Options added after the checkpoint was written (class_weight, sampler) were at their defaults then.
    saved = {**{k: v for k, v in asdict(TrainConfig()).items() if k not in RESUME_FREE}, **saved}
    now = {k: v for k, v in asdict(config).items() if k not in RESUME_FREE}
    if saved != now:
        diff = sorted(k for k in now if saved.get(k) != now[k])
        what = ", ".join(f"{k} {_describe(saved.get(k))} (now {_describe(now[k])})" for k in diff[:3])
        raise InputError(f"{path}: this run folder was trained with other settings ({', '.join(diff)}): {what}; "
                         f"{afresh}")


# What a run folder remembers of its data, and must find again to resume: where the beats come from, which of
# them, how they are split, and a digest of the beats themselves (a file changed under the same name).
RESUME_DATA_KEYS = ("source", "data", "mitdb_dir", "kaggle_dir", "synthetic_seconds", "limit", "split",
                    "val_fraction", "val_records", "leads", "beats")


def check_resumable_data(state: dict[str, Any], data: dict[str, Any], path: Path) -> None:
    """Refuse to resume a checkpoint that was trained on other data, another subset or another split."""
    saved = state.get("data_config")
    if not isinstance(saved, dict):
        return  # a checkpoint from before data settings were stored: nothing to compare
    diff = [k for k in RESUME_DATA_KEYS if (k in saved or k in data) and saved.get(k) != data.get(k)]
    if diff:
        what = ", ".join(f"{k} {_describe(saved.get(k))} (now {_describe(data.get(k))})" if k != "beats"
                         else "the beats' content" for k in diff[:3])
        raise InputError(f"{path}: this run folder was started on other data: {what}; start afresh with --fresh "
                         "(or another --out folder) to train on these")


def check_best(state: dict[str, Any], model: Classifier, path: Path) -> None:
    """The run's best.pt must hold weights of the model trained, with the epoch they come from."""
    epoch = state.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise InputError(f"{path}: damaged checkpoint (epoch {epoch!r}); start afresh with --fresh")
    if state.get("model_config") != model.config:
        raise InputError(f"{path}: weights of another model than this run trains "
                         f"({state.get('model_config')}); start afresh with --fresh")


def beats_digest(*arrays: np.ndarray) -> str:
    """BLAKE2b of the arrays' bytes: the identity of the beats a run trains, validates and tests on."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for arr in arrays:
        a = np.ascontiguousarray(arr)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()
