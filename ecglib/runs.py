"""Run folders: what one training leaves behind, and the one way to read it back.

A run folder holds ``checkpoint.pt`` (written after every epoch: model, optimizer, schedule, history), ``best.pt``
(the weights kept for testing), ``history.csv`` and, when the run ends, ``metrics.json`` (the test metrics and the
data, split, model and recipe the run used). :class:`RunFolder` locks one for a training, clears it for a fresh
start and reads its metrics (checked); :func:`ecglib.checkpoints.load_run_model` rebuilds its model.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

from .config import MODELS, SETTINGS, SOLVERS, SPLITS, TrainConfig
from .data.facts import CLASSES
from .errors import InputError, first_line
from .files import atomic_write_text, clear_stale_temporaries

RUN_FILES = ("checkpoint.pt", "best.pt", "history.csv", "metrics.json")


HISTORY_FIELDS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "nfe_forward",
                  "nfe_backward", "val_nfe", "seconds", "lr")


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
            raise InputError(f"{path}: unreadable run metrics, not valid JSON ({first_line(exc)})") from None
        if not isinstance(metrics, dict) or not isinstance(metrics.get("config"), dict) \
                or not isinstance(metrics.get("accuracy"), (int, float)) or metrics.get("model") not in MODELS:
            raise InputError(f"{path}: unreadable run metrics, not those of an ecglib run (no model, accuracy or "
                             "config)")
        config = metrics["config"]
        for key in ("model", "train", "data"):
            if not isinstance(config.get(key, {}), dict):
                raise InputError(f"{path}: config.{key} is not a mapping")
        problem = _metrics_problem(metrics)
        if problem is not None:
            raise InputError(f"{path}: unreadable run metrics ({problem})")
        return metrics


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metrics_problem(m: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of a run's metrics.json (what :func:`ecglib.train.run_training` writes and
    the notebooks and ``ecglib evaluate`` read), or None. Checks types and ranges, not the numbers' truth."""
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
    if cm is not None and not (isinstance(cm, list) and len(cm) == len(CLASSES) and all(
            isinstance(row, list) and len(row) == len(CLASSES) and all(_is_number(v) for v in row) for row in cm)):
        return f"confusion_matrix is not {len(CLASSES)} x {len(CLASSES)} numbers"
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
    if "split" in config and config["split"] not in SPLITS:
        return f"config.split {config['split']!r} is neither intra nor inter"
    try:
        TrainConfig.from_dict(config.get("train", {}))
    except (InputError, TypeError) as exc:
        return f"config.train: {exc}"
    d = config.get("data", {})
    for key in ("source", "limit", "val_fraction", "synthetic_seconds"):
        if d.get(key) is not None:
            try:
                SETTINGS[key].check(d[key])
            except ValueError as exc:
                return f"config.data.{key}: {exc}"
    for key in ("mitdb_dir", "kaggle_dir", "data"):
        if d.get(key) is not None and not isinstance(d[key], str):
            return f"config.data.{key} {d[key]!r} is not a path"
    return None
