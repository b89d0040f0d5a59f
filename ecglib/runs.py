"""Run folders: what one training leaves behind, and the one way to read it back.

A run folder holds ``checkpoint.pt`` (written after every epoch: model, optimizer, schedule, history), ``best.pt``
(the weights best on validation), ``history.csv`` and, when the run ends, ``metrics.json`` (the test metrics and
the data, split, model and recipe the run used). :class:`RunFolder` opens one, clears it for a fresh start,
reads its metrics, rebuilds its model and its test beats; :func:`read_checkpoint` is the single place where a
checkpoint file is checked.
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from io import StringIO
from pathlib import Path
from typing import Any

import torch

from .errors import InputError
from .files import atomic_path, atomic_write_text
from .models import MODELS, Classifier, model_from_config

CHECKPOINT_FORMAT = "ecglib-checkpoint-v1"
RUN_FILES = ("checkpoint.pt", "best.pt", "history.csv", "metrics.json")
HISTORY_FIELDS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "nfe_forward",
                  "nfe_backward", "val_nfe", "seconds", "lr")


# ------------------------------------------------------------------------------------------------ checkpoints
def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> None:
    """torch.save ``state`` (with the format tag added) atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # A file object, not the path: torch derives the archive's name from a path's stem, which the hidden
        # temporary name does not have.
        torch.save({"format": CHECKPOINT_FORMAT, **state}, fh)


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
        raise InputError(f"{path}: not a readable checkpoint ({_first_line(exc)})") from None
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
    try:
        model = model_from_config(config)
    except InputError as exc:
        raise InputError(f"{path}: checkpoint with unusable model settings ({exc})") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: checkpoint with unusable model settings ({_first_line(exc)})") from None
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


def write_history(history: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> None:
    buf = StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buf.getvalue())


# ------------------------------------------------------------------------------------------------ run folders
class RunFolder:
    """One run folder: its files, its metrics, its model and its test beats."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    def is_finished(self) -> bool:
        return self.metrics_file.is_file() and self.best.is_file()

    def clear(self) -> None:
        """Remove what an earlier run left, for a fresh start (other files in the folder stay)."""
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)

    def metrics(self) -> dict[str, Any]:
        """The run's metrics.json, checked to be the metrics of a finished run."""
        path = self.metrics_file
        if not path.is_file():
            raise InputError(f"{path}: not found; train the model first (notebook 02_train or `ecglib train`)")
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: unreadable run metrics, not valid JSON ({_first_line(exc)})") from None
        if not isinstance(metrics, dict) or not isinstance(metrics.get("config"), dict) \
                or not isinstance(metrics.get("accuracy"), (int, float)) or metrics.get("model") not in MODELS:
            raise InputError(f"{path}: unreadable run metrics, not those of an ecglib run (no model, accuracy or config)")
        config = metrics["config"]
        for key in ("model", "train", "data"):
            if not isinstance(config.get(key, {}), dict):
                raise InputError(f"{path}: config.{key} is not a mapping")
        return metrics

    def load_model(self, expect_model: str | None = None) -> Classifier:
        """The best weights, checked against what metrics.json (when there) says the run trained."""
        saved = self.metrics()["config"].get("model", {}) if self.metrics_file.exists() else {}
        model, _ = load_checkpoint(self.best, expect_model=expect_model or saved.get("model"))
        differ = [k for k in ("width", "blocks", "n_classes") if k in saved and saved[k] != model.config.get(k)]
        if differ:
            raise InputError(f"{self.best}: checkpoint of a {model.name} with "
                             f"{', '.join(f'{k} {model.config.get(k)}' for k in differ)}, but the run's "
                             f"metrics.json describes {', '.join(f'{k} {saved[k]}' for k in differ)}")
        return model

    def test_set(self, download: bool = False) -> tuple[torch.Tensor, torch.Tensor, Any, Any]:
        """Rebuild the run's test beats from its metrics.json: (x (n, 1, 187), y (n,), beats, split)."""
        from .data import to_tensors

        beats, split = beats_of_run(self.metrics()["config"], download=download)
        x, y = to_tensors(beats, split.test)
        return x, y, beats, split


def beats_of_run(config: Mapping[str, Any], download: bool = False, **overrides: Any) -> tuple[Any, Any]:
    """The beats and split a run used, from its metrics.json ``config`` (empty: the synthetic defaults).

    overrides: arguments of :func:`ecglib.data.load_split` that replace the run's (source, mitdb_dir, kaggle_dir,
    npz, split, limit, seed); giving ``source`` or ``npz`` replaces the run's data altogether.
    """
    from .data import load_split

    d = dict(config.get("data", {}))
    given = {k: v for k, v in overrides.items() if v is not None}
    if "source" in given or "npz" in given:
        d = {k: v for k, v in d.items() if k in ("val_fraction", "limit", "split")}
    settings = {"source": d.get("source") or "synthetic", "mitdb_dir": d.get("mitdb_dir"),
                "kaggle_dir": d.get("kaggle_dir"), "npz": d.get("data"),
                "split": config.get("split", d.get("split", "intra")), "limit": d.get("limit"),
                "seed": config.get("train", {}).get("seed", 0), "val_fraction": d.get("val_fraction", 0.1),
                "synthetic_seconds": d.get("synthetic_seconds", 60.0), **given}
    return load_split(download=download, **settings)


def nfe_per_batch(forward_calls: int, n_beats: int, batch_size: int) -> float:
    """Mean evaluations of the ODE dynamics per batch when ``n_beats`` beats went through in batches."""
    return forward_calls / max(1, math.ceil(n_beats / batch_size))


def machine_description(device: torch.device | None = None) -> str:
    """A short description of where numbers were measured: CPU model and cores, or the GPU's name."""
    import platform

    device = device or torch.device("cpu")
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__
