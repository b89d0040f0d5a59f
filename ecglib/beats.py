"""The beats table and the facts of the MIT-BIH Arrhythmia Database it is built on.

:class:`Beats`: ``x`` (n, 187) float32 in [0, 1] at 125 Hz, ``y`` (n,) int64 AAMI class index, and for each beat
its ``record``, R-peak ``sample`` (at the record's own rate), original ``symbol`` and, for WFDB sources, its rhythm
features (``rhythm``, (n, 11)). Here also: the AAMI classes and symbol mapping, the record lists (the 48 records,
the paced ones, de Chazal's DS1 and DS2), the npz format, and the tensors a model takes. Torch is imported only by
the functions that make tensors.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .checks import check_npz_arrays
from .errors import InputError
from .errors import first_line as _first_line

if TYPE_CHECKING:
    import torch

CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")
CLASS_NAMES: dict[str, str] = {
    "N": "normal / bundle-branch block",
    "S": "supraventricular ectopic",
    "V": "ventricular ectopic",
    "F": "fusion",
    "Q": "paced / unclassifiable",
}
# AAMI EC57 grouping of the MIT-BIH beat symbols.
AAMI: dict[str, int] = {
    **dict.fromkeys("NLRej", 0),
    **dict.fromkeys("AaJS", 1),
    **dict.fromkeys("VE", 2),
    "F": 3,
    **dict.fromkeys("/fQ", 4),
}

BEAT_LENGTH = 187
TARGET_FS = 125
WINDOW_SECONDS = 10.0
BEAT_PERIODS = 1.2
# Bump when the extraction changes so that stale caches are never read.
# 2: WFDB sources carry rhythm features (Beats.rhythm). 3: the local irregularity feature.
EXTRACTION_VERSION = 3

# Rhythm features of every beat (see rhythm_features): name and unit, in column order. RR intervals in seconds,
# ratios unitless. "local" is the mean of the LOCAL_RR_INTERVALS RR intervals centred on the beat (the
# LOCAL_RR_INTERVALS // 2 before its R peak, its pre-RR included, and as many after, its post-RR included),
# fewer at a record's ends; "record" is the mean RR interval of the whole record. "local_irregularity" is the
# median absolute difference of successive RR intervals within that local window over the local mean RR: near 0 in
# sinus rhythm, even around an isolated ectopic beat (the median ignores its two jumps), and 0.1-0.3 in atrial
# fibrillation, where every beat comes "early" or "late" and prematurity alone does not mean an S beat.
RHYTHM_FEATURES: tuple[tuple[str, str], ...] = (
    ("pre_rr", "s"),
    ("post_rr", "s"),
    ("local_rr", "s"),
    ("record_rr", "s"),
    ("pre_over_local", "1"),
    ("post_over_local", "1"),
    ("post_over_pre", "1"),
    ("pre_over_record", "1"),
    ("post_over_record", "1"),
    ("local_over_record", "1"),
    ("local_irregularity", "1"),
)
RHYTHM_NAMES: tuple[str, ...] = tuple(name for name, _ in RHYTHM_FEATURES)
# The rhythm features a rhythm-aware model takes: the unitless ones. The four intervals in seconds are a patient's
# heart rate, which a network can learn per training patient and which does not carry over to new patients:
# without them the recipe's pooled score on the DS1 folds rose for every seed (README, "Rhythm inputs").
RHYTHM_INPUTS: tuple[str, ...] = tuple(name for name, unit in RHYTHM_FEATURES if unit == "1")
LOCAL_RR_INTERVALS = 10
FEATURE_SETS = ("beat", "beat+rhythm")

MITDB_RECORDS: tuple[str, ...] = (
    "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "111", "112", "113", "114", "115",
    "116", "117", "118", "119", "121", "122", "123", "124", "200", "201", "202", "203", "205", "207", "208",
    "209", "210", "212", "213", "214", "215", "217", "219", "220", "221", "222", "223", "228", "230", "231",
    "232", "233", "234",
)
PACED_RECORDS: tuple[str, ...] = ("102", "104", "107", "217")
# de Chazal, O'Dwyer & Reilly (2004), IEEE TBME 51(7): patient-wise split, paced records excluded.
DS1: tuple[str, ...] = (
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201", "203", "205",
    "207", "208", "209", "215", "220", "223", "230",
)
DS2: tuple[str, ...] = (
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212", "213", "214", "219",
    "221", "222", "228", "231", "232", "233", "234",
)
SOURCES = ("mitdb", "kaggle", "synthetic")
SPLITS = ("intra", "inter")


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
    """

    x: np.ndarray
    y: np.ndarray
    record: np.ndarray
    sample: np.ndarray
    symbol: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    rhythm: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> Beats:
        return Beats(self.x[index], self.y[index], self.record[index], self.sample[index], self.symbol[index],
                     dict(self.meta), None if self.rhythm is None else self.rhythm[index])

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

    from .files import atomic_path

    arrays = {"x": beats.x, "y": beats.y, "record": beats.record, "sample": beats.sample, "symbol": beats.symbol,
              "meta": np.array(json.dumps(beats.meta))}
    if beats.rhythm is not None:
        arrays["rhythm"] = beats.rhythm
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
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile, pickle and value errors all mean a corrupt file
        raise InputError(f"{path}: not a readable .npz file ({_first_line(exc)})") from None
    check_npz_arrays(path, x, y, record, sample, symbol, meta)
    validate(x, y, str(path))
    y = y.astype(np.int64)
    if symbol is None:
        symbol = np.asarray(CLASSES)[y]
    if rhythm is not None:
        _validate_rhythm(rhythm, len(y), meta, str(path))
        rhythm = rhythm.astype(np.float32)
    return Beats(x.astype(np.float32), y, record.astype(str), sample.astype(np.int64), symbol.astype(str), meta,
                 rhythm)


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


def context_beats(beats: Beats) -> np.ndarray:
    """Each beat with its neighbours in the same record: (n, 3, 187) float32, channels predecessor, beat, successor
    (neighbours in R-peak order among the table's beats of that record). The first and last beat of a record, with
    no neighbour on one side, repeat themselves there. Call it on the whole table, before subsets drop neighbours.
    Raises InputError for the Kaggle source, whose rows are beats of unknown records and positions."""
    require_records(beats, "beats", "neighbouring beats")
    order = np.lexsort((beats.sample, beats.record))
    x, rec = beats.x[order], beats.record[order]
    same = rec[1:] == rec[:-1]
    prev, nxt = x.copy(), x.copy()
    prev[1:][same] = x[:-1][same]
    nxt[:-1][same] = x[1:][same]
    out = np.empty((len(x), 3, x.shape[1]), dtype=np.float32)
    out[order] = np.stack([prev, x, nxt], axis=1)
    return out


def record_templates(beats: Beats, name: str = "beats") -> np.ndarray:
    """Each beat's record template: (n, 187) float32, the sample-wise median of all the table's beats of the same
    record (same units as ``x``: [0, 1], 125 Hz).

    The median over a record's beats is its dominant beat shape, the patient's normal beat in all but a few records
    (ectopic beats are a minority almost everywhere; the median ignores them). It uses the record's beats only and
    no labels, so a test record's template is as available at test time as its beats. Call it on the whole table,
    before subsets drop beats. InputError naming ``name`` for the Kaggle source (no records).
    """
    require_records(beats, name, "record templates")
    out = np.empty_like(beats.x, dtype=np.float32)
    # Grouped by record with one sort: a boolean mask per record would cost n x records comparisons.
    order = np.argsort(beats.record, kind="stable")
    _, starts = np.unique(beats.record[order], return_index=True)
    for rows in np.split(order, starts[1:]):
        out[rows] = np.median(beats.x[rows], axis=0)
    return out


def template_difference(beats: Beats, name: str = "beats") -> np.ndarray:
    """Each beat minus its record's template (:func:`record_templates`): (n, 187) float32 in [-1, 1].

    Why: a beat's shape compared with the same patient's usual beat generalises to new patients better than its
    shape alone, which differs more between patients than between N and S beats. A premature atrial (S) beat has
    the patient's normal QRS and leaves a difference near zero; a ventricular (V) beat differs strongly.
    """
    return beats.x - record_templates(beats, name)


def input_layout(in_channels: int) -> dict[str, bool]:
    """{"context": ..., "template": ...} of a model's input from its number of channels, the inverse of
    :func:`input_channels`: 1 the beat; 2 the beat and its difference to the record template; 3 predecessor, beat,
    successor; 4 those and the difference. ValueError for another number."""
    layouts = {input_channels(c, t): {"context": c, "template": t} for c in (False, True) for t in (False, True)}
    if in_channels not in layouts:
        raise ValueError(f"no beat input has {in_channels} channels; choose {', '.join(map(str, sorted(layouts)))}")
    return layouts[in_channels]


def input_channels(context: bool, template: bool) -> int:
    """Channels of the input with ``context`` (predecessor and successor) and ``template`` (beat minus record
    template): 1 + 2 context + 1 template."""
    return 1 + 2 * bool(context) + bool(template)


def class_offsets(s_offset: float) -> list[float] | None:
    """The models' per-class logit offsets (``build_model(logit_offsets=...)``) for a decision offset of S, in the
    order of CLASSES; None for 0 (the plain argmax)."""
    return [s_offset if c == "S" else 0.0 for c in CLASSES] if s_offset else None


def to_tensors(beats: Beats, index: np.ndarray | None = None):
    """(x, y) torch tensors, x shaped (n, 1, 187) float32 for Conv1d, y (n,) int64."""
    import torch

    b = beats if index is None else beats.subset(index)
    return torch.from_numpy(np.ascontiguousarray(b.x))[:, None, :], torch.from_numpy(b.y.astype(np.int64))


@dataclass
class BeatTensors:
    """A Beats table as tensors: x (n, C, 187) float32 (channels: the beat, or predecessor, beat and successor with
    context, then the beat minus its record template with template; see :func:`input_layout`), y (n,) int64,
    rhythm (n, k) float32 raw rhythm features or None."""

    x: torch.Tensor
    y: torch.Tensor
    rhythm: torch.Tensor | None

    def part(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        import torch

        i = torch.from_numpy(np.asarray(index, dtype=np.int64))
        return self.x[i], self.y[i], None if self.rhythm is None else self.rhythm[i]


def rhythm_columns(beats: Beats, names: Sequence[str], name: str = "beats") -> np.ndarray:
    """The beats' rhythm features ``names`` in that order, (n, len(names)). InputError naming ``name`` when the
    beats carry no rhythm features or not one of these (an npz prepared before that feature existed)."""
    rhythm = require_rhythm(beats, name)
    stored = (beats.meta.get("rhythm_features") or {}).get("names") or list(RHYTHM_NAMES[:rhythm.shape[1]])
    missing = [n for n in names if n not in stored]
    if missing:
        raise InputError(f"{name}: these beats carry no rhythm feature {missing[0]!r} (prepare them again from "
                         "WFDB records)")
    return rhythm[:, [stored.index(n) for n in names]]


def beat_tensors(beats: Any, features: str = "beat", context: bool = False, name: str = "beats",
                 template: bool = False, rhythm_inputs: Sequence[str] = RHYTHM_INPUTS) -> BeatTensors:
    """The inputs a model takes for ``features`` ("beat" or "beat+rhythm": the rhythm features ``rhythm_inputs``),
    ``context`` and ``template``, for the whole table (neighbours and record templates need the whole records, so
    build them before taking parts). InputError naming ``name`` when the beats lack rhythm features, neighbours or
    records (the Kaggle source)."""
    import torch

    x = context_beats(beats) if context else np.ascontiguousarray(beats.x)[:, None, :]
    if template:
        x = np.concatenate([x, template_difference(beats, name)[:, None, :]], axis=1)
    rhythm = (torch.from_numpy(np.ascontiguousarray(rhythm_columns(beats, rhythm_inputs, name), dtype=np.float32))
              if features == "beat+rhythm" else None)
    return BeatTensors(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                       torch.from_numpy(beats.y.astype(np.int64)), rhythm)


def model_inputs(beats: Beats, model_config: dict[str, Any], name: str = "beats") -> BeatTensors:
    """The tensors a model built with ``model_config`` (``Classifier.config``) takes: the rhythm features its
    ``rhythm_inputs`` name when it has a rhythm input (a model saved before they were named took the first k of
    RHYTHM_FEATURES), the neighbouring beats and the template difference as its channels say
    (:func:`input_layout`)."""
    k = int(model_config.get("rhythm_features") or 0)
    named = model_config.get("rhythm_inputs")
    names = named or RHYTHM_NAMES[:k]
    if len(names) != k:
        raise InputError(f"{name}: the model takes {k} rhythm features per beat, " +
                         (f"but names {len(names)}" if named else f"the beats carry {len(RHYTHM_NAMES)}"))
    try:
        layout = input_layout(model_config.get("in_channels", 1))
    except ValueError as exc:
        raise InputError(f"{name}: {exc}") from None
    return beat_tensors(beats, "beat+rhythm" if k else "beat", name=name, rhythm_inputs=names, **layout)


def make_loader(beats: Beats, index: np.ndarray | None = None, batch_size: int = 128, shuffle: bool = False,
                seed: int = 0):
    """A torch DataLoader over in-memory tensors, for users who want the standard interface. The training loop
    itself slices tensors directly, which is several times faster than per-item collation for 187-sample beats."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    x, y = to_tensors(beats, index)
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=gen)
