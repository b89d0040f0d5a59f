"""The Kaggle "ECG Heartbeat Categorization" CSVs (Kachuee et al. 2018's MIT-BIH beats): 187 samples and a label per
row, no records and no R-peak positions (so no inter-patient split and no rhythm features).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError, first_line
from .beats import Beats, validate
from .facts import BEAT_LENGTH, CLASSES, TARGET_FS

KAGGLE_FILES = ("mitbih_train.csv", "mitbih_test.csv")


def _read_kaggle_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    if not path.exists():
        raise InputError(f"{path}: file not found (the Kaggle 'ECG Heartbeat Categorization' CSVs go here)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    try:
        frame = pd.read_csv(path, header=None, dtype=np.float64, engine="c")
    except ValueError as exc:
        raise InputError(f"{path}: not a table of numbers ({first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - pandas raises several parser error types
        raise InputError(f"{path}: unreadable CSV ({first_line(exc)})") from None
    if frame.shape[1] != BEAT_LENGTH + 1:
        raise InputError(f"{path}: {frame.shape[1]} columns, expected {BEAT_LENGTH + 1} "
                         f"({BEAT_LENGTH} samples and a label)")
    values = frame.to_numpy()
    x, y = values[:, :BEAT_LENGTH].astype(np.float32), values[:, BEAT_LENGTH]
    validate(x, y, str(path))
    return x, y.astype(np.int64)


def load_kaggle(folder: str | os.PathLike) -> Beats:
    """Beats of the Kaggle CSVs in ``folder``: mitbih_train.csv then mitbih_test.csv (no header, 187 floats
    and a label per row). ``record`` holds the file stem, so the intra split can keep the given train/test files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found (it should hold {' and '.join(KAGGLE_FILES)})")
    parts = []
    for fname in KAGGLE_FILES:
        x, y = _read_kaggle_csv(folder / fname)
        stem = fname.removesuffix(".csv")
        parts.append((x, y, np.full(len(y), stem), np.arange(len(y)), np.asarray(CLASSES)[y]))
    x, y, rec, smp, sym = (np.concatenate([p[i] for p in parts]) for i in range(5))
    meta = {"source": "kaggle", "folder": str(folder.resolve()), "fs": TARGET_FS}
    return Beats(x, y, rec.astype(str), smp.astype(np.int64), sym.astype(str), meta)
