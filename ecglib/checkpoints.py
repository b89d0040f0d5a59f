"""Checkpoint files: a model's settings and weights (and, for a run's checkpoint.pt, its training state), written
atomically and read back checked.

:func:`read_checkpoint` is the one place a checkpoint file is checked; :func:`load_checkpoint` rebuilds its model.
Files load with ``torch.load(weights_only=True)``: no code in a checkpoint runs.
"""
from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .config import MODELS, model_size_problem
from .data.facts import CLASSES
from .errors import InputError, first_line
from .files import atomic_path
from .models import Classifier, model_from_config
from .runs import RunFolder

CHECKPOINT_FORMAT = "ecglib-checkpoint-v1"


# ------------------------------------------------------------------------------------------------ checkpoints
def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> None:
    """torch.save ``state`` (with the format tag added) atomically."""

    # Serialised in memory first (a few MB): torch.save writing to a full disk fails with a RuntimeError about
    # its zip container that hides the OSError; a plain write reports "no space left" for the user's path.
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(buffer.getbuffer())


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checked content of an ecglib checkpoint (loaded with weights_only=True: no code runs).

    Raises InputError naming ``path`` for a missing, empty or corrupt file, a file that is not an ecglib
    checkpoint, or one whose model settings or weights have the wrong type.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling and zip errors alike mean a corrupt file
        raise InputError(f"{path}: not a readable checkpoint ({first_line(exc)})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not an ecglib checkpoint")
    config, weights = state.get("model_config"), state.get("model")
    if not isinstance(config, dict) or not isinstance(weights, dict) \
            or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise InputError(f"{path}: damaged ecglib checkpoint (model settings or weights missing or of the wrong type)")
    if config.get("model") not in MODELS:
        raise InputError(f"{path}: checkpoint of an unknown model {config.get('model')!r}")
    return state


def load_checkpoint(path: str | os.PathLike, expect_model: str | None = None) -> tuple[Classifier, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint (a file, or a run folder's best.pt).

    Raises InputError for everything :func:`read_checkpoint` refuses, a checkpoint of another model than
    ``expect_model``, settings that make no model, weights that do not fit them, and weights that are not finite.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    state = read_checkpoint(path)
    config = dict(state["model_config"])
    if expect_model is not None and config["model"] != expect_model:
        raise InputError(f"{path}: checkpoint of a {config['model']}, not of a {expect_model}")
    # Sizes checked from the settings, before building: a damaged or hostile file must not make us allocate GBs.
    problem = model_size_problem(config["model"], config.get("width", 64), config.get("blocks", 6),
                                 config.get("n_classes", 5))
    if problem is not None:
        raise InputError(f"{path}: checkpoint asks for an unusable model ({problem})")
    if config.get("n_classes", 5) != len(CLASSES):
        raise InputError(f"{path}: checkpoint of a model with {config.get('n_classes')} classes; ecglib's have "
                         f"{len(CLASSES)} (the AAMI classes)")
    try:
        model = model_from_config(config)
    except InputError as exc:
        raise InputError(f"{path}: checkpoint with unusable model settings ({exc})") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: checkpoint with unusable model settings ({first_line(exc)})") from None
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        detail = (lines[1] if len(lines) > 1 else lines[0]).strip()[:100] if lines else ""
        raise InputError(f"{path}: weights do not fit a {config['model']} with {config} ({detail})") from None
    bad = [name for name, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise InputError(f"{path}: weights are not finite (NaN or inf in {bad[0]}): the run diverged or the file "
                         "is damaged")
    return model, state


def load_run_model(run_dir: str | os.PathLike, expect_model: str | None = None) -> Classifier:
    """The kept weights of a run folder (RUN/best.pt), checked against what RUN/metrics.json, when there, says the
    run trained; InputError naming the file when they disagree."""
    run = RunFolder(run_dir)
    saved = run.metrics()["config"].get("model", {}) if run.metrics_file.exists() else {}
    model, _ = load_checkpoint(run.best, expect_model=expect_model or saved.get("model"))
    differ = [k for k in ("width", "blocks", "n_classes") if k in saved and saved[k] != model.config.get(k)]
    if differ:
        raise InputError(f"{run.best}: checkpoint of a {model.name} with "
                         f"{', '.join(f'{k} {model.config.get(k)}' for k in differ)}, but the run's "
                         f"metrics.json describes {', '.join(f'{k} {saved[k]}' for k in differ)}")
    return model
