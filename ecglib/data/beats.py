"""The beats table: :class:`Beats`, the one in-memory form of heartbeats in ecglib, and its npz file format.

``x`` (n, 187) float32 in [0, 1] at 125 Hz, ``y`` (n,) int64 AAMI class index, and for each beat its ``record``,
R-peak ``sample`` (at the record's own rate), original ``symbol`` and, for WFDB sources, its rhythm features
(``rhythm``, (n, 11), columns :data:`ecglib.data.facts.RHYTHM_NAMES`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, first_line
from .checks import check_npz_arrays
from .facts import BEAT_LENGTH, CLASSES


@dataclass
class Beats:
    """A table of heartbeats.

    x: (n, 187) float32, amplitude scaled to [0, 1], 125 Hz.
    y: (n,) int64, AAMI class index into CLASSES.
    record: (n,) str, record name (Kaggle rows: the file stem).
    sample: (n,) int64, R-peak sample in the record at its original rate (Kaggle rows: the row number).
    symbol: (n,) str, the original annotation symbol (Kaggle rows: the class letter).
    meta: source, parameters and per-record notes (for instance which lead was used); with rhythm features, their
      names and units under "rhythm_features".
    rhythm: (n, k) float32 rhythm features (columns RHYTHM_NAMES, see rhythm_features), or None where the source
      has no R-peak positions (Kaggle).
    lead: (n,) str, the lead each beat was cut from (WFDB sources), or None (Kaggle; npz files written without it).
      A table read with every lead of its records (``leads="all"``) holds each beat once per lead; meta["leads"]
      names the lead the lead rule reads for each record, the one that is tested (:meth:`rule_lead`).
    """

    x: np.ndarray
    y: np.ndarray
    record: np.ndarray
    sample: np.ndarray
    symbol: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    rhythm: np.ndarray | None = None
    lead: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> Beats:
        return Beats(self.x[index], self.y[index], self.record[index], self.sample[index], self.symbol[index],
                     dict(self.meta), None if self.rhythm is None else self.rhythm[index],
                     None if self.lead is None else self.lead[index])

    def rule_lead(self) -> np.ndarray:
        """(n,) bool: the beats of the lead the lead rule reads for their record (all of them when the table holds
        one lead per record): what a model is tested on, whatever leads it trained on."""
        rule = self.meta.get("leads") or {}
        if self.lead is None or not rule:
            return np.ones(len(self), dtype=bool)
        return self.lead == np.array([rule.get(r, "") for r in self.record], dtype=self.lead.dtype)

    def group_key(self) -> np.ndarray:
        """(n,) str: what a beat's neighbours and its record template are taken within: its record, and its lead
        when the table holds several leads of a record."""
        if self.lead is None or self.rule_lead().all():
            return self.record
        return np.char.add(np.char.add(self.record.astype(str), "\x1f"), self.lead.astype(str))

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(CLASSES))
        return {c: int(n) for c, n in zip(CLASSES, counts)}

    def to_frame(self, signal: bool = False):
        """A pandas view: one row per beat with record, sample, symbol, label and class; the 187 samples as
        columns x0..x186 when ``signal`` is true."""
        import pandas as pd

        frame = pd.DataFrame({
            "record": self.record,
            "sample": self.sample,
            "symbol": self.symbol,
            "label": self.y,
            "cls": pd.Categorical(np.asarray(CLASSES)[self.y], categories=list(CLASSES)),
        })
        if signal:
            frame = pd.concat([frame, pd.DataFrame(self.x, columns=[f"x{i}" for i in range(self.x.shape[1])])],
                              axis=1)
        return frame


def validate(x: np.ndarray, y: np.ndarray, name: str) -> None:
    """Raise InputError naming ``name`` unless x is (n, 187) finite and y is (n,) integer labels in 0..4."""
    if x.ndim != 2 or x.shape[1] != BEAT_LENGTH:
        raise InputError(f"{name}: beats have shape {x.shape}, expected (n, {BEAT_LENGTH})")
    if len(x) == 0:
        raise InputError(f"{name}: no beats")
    if y.shape != (len(x),):
        raise InputError(f"{name}: {y.shape[0] if y.ndim else 0} labels for {len(x)} beats")
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise InputError(f"{name}: non-finite value (NaN or inf) in beat {row}")
    if not np.isfinite(y).all() or np.any(y != np.round(y)) or y.min() < 0 or y.max() >= len(CLASSES):
        bad = y[~np.isfinite(y) | (y != np.round(y)) | (y < 0) | (y >= len(CLASSES))]
        raise InputError(f"{name}: label {bad[0].item()!r} outside the classes 0-{len(CLASSES) - 1}")


def save_npz(beats: Beats, path: str | os.PathLike, compressed: bool = True) -> None:
    """Write beats atomically (:func:`ecglib.files.atomic_path`): a reader never sees a half-written file, and a
    failure leaves no temporary file and names ``path``."""
    import zipfile

    from ..files import atomic_path

    arrays = {"x": beats.x, "y": beats.y, "record": beats.record, "sample": beats.sample, "symbol": beats.symbol,
              "meta": np.array(json.dumps(beats.meta))}
    if beats.rhythm is not None:
        arrays["rhythm"] = beats.rhythm
    if beats.lead is not None:
        arrays["lead"] = beats.lead
    with atomic_path(path) as tmp:
        # np.savez_compressed at zlib's default level takes seconds on 80 MB of beats; level 1 is about three
        # times faster for a file only slightly larger, and np.load reads it the same way.
        mode = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
        with zipfile.ZipFile(tmp, "w", compression=mode, compresslevel=1 if compressed else None) as zf:
            for name, arr in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)


def load_npz(path: str | os.PathLike) -> Beats:
    """Read beats written by :func:`save_npz` or ``ecglib prepare``, validating shapes, values and labels."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x", "y") if k not in z.files]
            if missing:
                raise InputError(f"{path}: no array {missing[0]!r} (expected x (n, 187) and y (n,))")
            x, y = z["x"], z["y"]
            n = len(y)
            record = z["record"] if "record" in z.files else np.full(n, path.stem)
            sample = z["sample"] if "sample" in z.files else np.arange(n)
            symbol = z["symbol"] if "symbol" in z.files else None
            meta = json.loads(str(z["meta"])) if "meta" in z.files else {"source": str(path)}
            rhythm = z["rhythm"] if "rhythm" in z.files else None
            lead = z["lead"] if "lead" in z.files else None
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile, pickle and value errors all mean a corrupt file
        raise InputError(f"{path}: not a readable .npz file ({first_line(exc)})") from None
    check_npz_arrays(path, x, y, record, sample, symbol, meta, lead)
    validate(x, y, str(path))
    y = y.astype(np.int64)
    if symbol is None:
        symbol = np.asarray(CLASSES)[y]
    if rhythm is not None:
        _validate_rhythm(rhythm, len(y), meta, str(path))
        rhythm = rhythm.astype(np.float32)
    return Beats(x.astype(np.float32), y, record.astype(str), sample.astype(np.int64), symbol.astype(str), meta,
                 rhythm, None if lead is None else lead.astype(str))


def _validate_rhythm(rhythm: np.ndarray, n: int, meta: dict[str, Any], name: str) -> None:
    """Raise InputError naming ``name`` unless rhythm is (n, k) finite numbers with k the names in meta."""
    names = (meta.get("rhythm_features") or {}).get("names") if isinstance(meta, dict) else None
    k = len(names) if isinstance(names, list) else None
    if rhythm.ndim != 2 or rhythm.shape[0] != n or (k is not None and rhythm.shape[1] != k):
        raise InputError(f"{name}: rhythm features have shape {rhythm.shape}, expected ({n}, {k or 'k'})")
    if not np.issubdtype(rhythm.dtype, np.number) or not np.isfinite(rhythm).all():
        row = int(np.flatnonzero(~np.isfinite(rhythm.astype(np.float64)).all(axis=1))[0]) \
            if np.issubdtype(rhythm.dtype, np.number) else 0
        raise InputError(f"{name}: non-finite rhythm feature (NaN or inf) in beat {row}")


def require_rhythm(beats: Beats, name: str) -> np.ndarray:
    """The beats' rhythm features (n, k), or InputError naming ``name`` when they have none (Kaggle CSVs, an npz
    prepared before rhythm features existed)."""
    if beats.rhythm is None:
        if beats.meta.get("source") == "kaggle":
            raise InputError(f"{name}: the Kaggle CSVs carry no R-peak positions, so no rhythm features: "
                             "use --source mitdb or synthetic, or --features beat")
        raise InputError(f"{name}: these beats carry no rhythm features (prepare them again from WFDB records, "
                         "or use --features beat)")
    return beats.rhythm


def require_records(beats: Beats, name: str, what: str) -> None:
    """InputError naming ``name`` for the Kaggle source, whose rows are beats of unknown records and positions, so
    that inputs built from a beat's record (``what``: its neighbours, its record's template) cannot be made."""
    if beats.meta.get("source") == "kaggle":
        raise InputError(f"{name}: the Kaggle CSVs carry no record positions, so no {what}: use --source mitdb "
                         "or synthetic")
