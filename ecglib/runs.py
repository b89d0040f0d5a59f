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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from io import StringIO
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from .config import TrainConfig, model_size_problem
from .errors import InputError, first_line
from .files import atomic_path, atomic_write_text, clear_stale_temporaries
from .models import MODELS, Classifier, model_from_config

CHECKPOINT_FORMAT = "ecglib-checkpoint-v1"
RUN_FILES = ("checkpoint.pt", "best.pt", "history.csv", "metrics.json")
N_CLASSES = 5  # the AAMI classes N, S, V, F, Q (ecglib.data.CLASSES, without importing the data module)
HISTORY_FIELDS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "nfe_forward",
                  "nfe_backward", "val_nfe", "seconds", "lr")


# ------------------------------------------------------------------------------------------------ checkpoints
def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> None:
    """torch.save ``state`` (with the format tag added) atomically."""
    import io

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
    # Sizes checked from the settings, before building: a damaged or hostile file must not make us allocate GBs.
    problem = model_size_problem(config["model"], config.get("width", 64), config.get("blocks", 6),
                                 config.get("n_classes", 5))
    if problem is not None:
        raise InputError(f"{path}: checkpoint asks for an unusable model ({problem})")
    if config.get("n_classes", 5) != N_CLASSES:
        raise InputError(f"{path}: checkpoint of a model with {config.get('n_classes')} classes; ecglib's have "
                         f"{N_CLASSES} (the AAMI classes)")
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


def write_history(history: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> None:
    buf = StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buf.getvalue())


# ------------------------------------------------------------------------------------------------ run folders
_HELD_LOCKS: set[Path] = set()  # the run folders this process holds the lock of (RunFolder.lock)
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

    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this folder's lock (fcntl.flock on RUN_DIR/.lock) for a whole training: a second process that
        tries to write the folder meanwhile is refused in one line naming the holder's pid. The lock goes with
        the process, also when it is killed; the file is removed on release. Creates the folder."""
        import fcntl

        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot create the run folder ({exc.strerror or exc})") from None
        while True:
            try:
                fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise InputError(f"{self.lock_file}: cannot create the run folder's lock "
                                 f"({exc.strerror or exc})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise InputError(f"{self.path}: another training (pid {holder}) is writing this run folder; wait "
                                 "for it to end or use another --out") from None
            except OSError as exc:  # a file system without locks
                os.close(fd)
                raise InputError(f"{self.lock_file}: cannot lock the run folder ({exc.strerror or exc})") from None
            # The previous holder may have removed the file between our open and our lock: lock the file that
            # is there now, or a third process could lock a new one beside us.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        held = self.path.resolve()
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _HELD_LOCKS.add(held)
            clear_stale_temporaries(self.path)
            yield
        finally:
            _HELD_LOCKS.discard(held)
            try:
                self.lock_file.unlink(missing_ok=True)
            except OSError:
                pass
            os.close(fd)

    def is_finished(self) -> bool:
        return self.metrics_file.is_file() and self.best.is_file()

    def clear(self) -> None:
        """Remove what an earlier run left, for a fresh start (other files in the folder stay). Refused while
        another process trains into the folder."""
        if self.path.resolve() not in _HELD_LOCKS and self.lock_file.exists():
            with self.lock():  # raises, naming the holder, if the folder is in use
                pass
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
        problem = _metrics_problem(metrics)
        if problem is not None:
            raise InputError(f"{path}: unreadable run metrics ({problem})")
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

    def test_set(self, download: bool = False) -> TestSet:
        """Rebuild the run's test beats from its metrics.json, as the run's model takes them."""
        from .data import model_inputs

        config = self.metrics()["config"]
        beats, split = beats_of_run(config, download=download)
        x, y, rhythm = model_inputs(beats, config.get("model", {}), str(self.metrics_file)).part(split.test)
        return TestSet(x, y, rhythm, beats, split)


class TestSet(NamedTuple):
    """A run's test beats: x (n, C, 187), y (n,), rhythm (n, k) or None, and the Beats and Split they come from."""

    x: torch.Tensor
    y: torch.Tensor
    rhythm: torch.Tensor | None
    beats: Any
    split: Any


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
                "synthetic_seconds": d.get("synthetic_seconds", 60.0), "val_records": d.get("val_records"), **given}
    return load_split(download=download, **settings)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metrics_problem(m: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of a run's metrics.json (what :func:`ecglib.train.run_training` writes and
    the notebooks and ``ecglib evaluate`` read), or None. Checks types and ranges, not the numbers' truth."""
    from .config import SOLVERS, TrainConfig

    config = m["config"]
    if not 0 <= m["accuracy"] <= 1:
        return f"accuracy {m['accuracy']!r} outside [0, 1]"
    for key in ("macro_f1", "baseline_accuracy"):
        if key in m and not (_is_number(m[key]) and (0 <= m[key] <= 1 or m[key] != m[key])):
            return f"{key} {m[key]!r} is not a number in [0, 1]"
    for key in ("params", "n_test", "best_epoch"):
        if key in m and (not isinstance(m[key], int) or isinstance(m[key], bool) or m[key] < 0):
            return f"{key} {m[key]!r} is not a whole number"
    if "per_class" in m and not (isinstance(m["per_class"], dict)
                                 and all(isinstance(v, dict) for v in m["per_class"].values())):
        return "per_class is not a mapping of class to scores"
    cm = m.get("confusion_matrix")
    if cm is not None and not (isinstance(cm, list) and len(cm) == N_CLASSES and all(
            isinstance(row, list) and len(row) == N_CLASSES and all(_is_number(v) for v in row) for row in cm)):
        return f"confusion_matrix is not {N_CLASSES} x {N_CLASSES} numbers"
    for key in ("seconds_per_epoch", "history"):
        if key in m and not isinstance(m[key], list):
            return f"{key} is not a list"
    if "history" in m and not all(isinstance(row, dict) for row in m["history"]):
        return "history rows are not mappings"
    model = config.get("model", {})
    if model and model.get("model") != m["model"]:
        return f"config.model describes a {model.get('model')!r}, the run a {m['model']}"
    if model.get("solver") is not None and model["solver"] not in SOLVERS:
        return f"config.model.solver {model['solver']!r} is not a torchdiffeq method"
    if "split" in config and config["split"] not in ("intra", "inter"):
        return f"config.split {config['split']!r} is neither intra nor inter"
    try:
        TrainConfig.from_dict(config.get("train", {}))
    except (InputError, TypeError) as exc:
        return f"config.train: {exc}"
    d = config.get("data", {})
    if d.get("source") is not None and d["source"] not in ("mitdb", "kaggle", "synthetic"):
        return f"config.data.source {d['source']!r} is not mitdb, kaggle or synthetic"
    if d.get("limit") is not None and (not isinstance(d["limit"], int) or isinstance(d["limit"], bool)
                                       or d["limit"] < 1):
        return f"config.data.limit {d['limit']!r} is not a number of beats"
    if "val_fraction" in d and not (_is_number(d["val_fraction"]) and 0 <= d["val_fraction"] < 1):
        return f"config.data.val_fraction {d['val_fraction']!r} is not in [0, 1)"
    if "synthetic_seconds" in d and not (_is_number(d["synthetic_seconds"]) and d["synthetic_seconds"] > 0):
        return f"config.data.synthetic_seconds {d['synthetic_seconds']!r} is not a positive number"
    for key in ("mitdb_dir", "kaggle_dir", "data"):
        if d.get(key) is not None and not isinstance(d[key], str):
            return f"config.data.{key} {d[key]!r} is not a path"
    return None


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
                    "val_fraction", "val_records", "beats")


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
    return first_line(exc, limit=120)
