"""WFDB annotation files: read and checked against their record, and written atomically.

wfdb reads any bytes as annotations and writes through its own file names; here a file is checked to be an
annotation file that fits its record (in time order, inside the signal), and a new one is written through
:func:`ecglib.files.atomic_path`, so a reader sees the old file or the whole new one and a killed writer leaves
no temporary behind that the next writer does not clear.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.checks import inside_signal
from ..errors import InputError, first_line
from ..files import atomic_path, temporary_name
from .bxb import BXB_CLASS


# ----------------------------------------------------------------------------------------------------- files
@dataclass
class Annotations:
    """One WFDB annotation file: sample (k,) int64 at the record's rate, symbol (k,) str, subtype (k,) int, and how
    many annotations lay at or past the record's last sample (left out)."""

    sample: np.ndarray
    symbol: np.ndarray
    subtype: np.ndarray
    past_end: int = 0


def read_header(record: str | os.PathLike):
    """The record's WFDB header (wfdb.rdheader), or InputError naming the .hea file."""
    import wfdb

    base = Path(record)
    hea = Path(f"{base}.hea")
    if not hea.exists():
        raise InputError(f"{hea}: record header not found")
    try:
        return wfdb.rdheader(str(base))
    except Exception as exc:  # noqa: BLE001 - wfdb raises many types for a bad header
        raise InputError(f"{hea}: unreadable header ({first_line(exc)})") from None


def read_annotations(record: str | os.PathLike, extension: str, sig_len: int | None = None,
                     folder: str | os.PathLike | None = None, fs: float | None = None) -> Annotations:
    """Read RECORD.EXTENSION (from ``folder`` if given, else beside the record) and check that it fits the record:
    not empty, readable, in time order. Annotations at or past the signal's ``sig_len`` samples are left out and
    counted (``past_end``), as the WFDB tools compare up to the record's end; most of them past it is refused.

    fs: the record's sampling rate; a file that declares another time resolution ("## time resolution") has its
    times converted to the record's samples, rounded, as the WFDB library's getann() does."""
    import wfdb

    base = Path(record)
    where = Path(folder) / base.name if folder is not None else base
    path = Path(f"{where}.{extension}")
    if not path.exists():
        raise InputError(f"{path}: annotation file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty annotation file")
    try:
        ann = wfdb.rdann(str(where), extension)
    except Exception as exc:  # noqa: BLE001 - a corrupt file raises anything from IndexError to ValueError
        raise InputError(f"{path}: unreadable annotation file ({first_line(exc)})") from None
    if ann.symbol is not None and any(not isinstance(sym, str) for sym in ann.symbol):
        # wfdb decodes codes outside the WFDB table as NaN: the file is not an annotation file (or is corrupt).
        i = next(i for i, sym in enumerate(ann.symbol) if not isinstance(sym, str))
        raise InputError(f"{path}: unreadable annotation file (annotation {i} has no valid WFDB code)")
    sample = np.asarray(ann.sample, dtype=np.int64)
    if fs and ann.fs and float(ann.fs) != float(fs):
        sample = np.floor(sample * (float(fs) / float(ann.fs)) + 0.5).astype(np.int64)
    symbol = np.asarray(ann.symbol if ann.symbol is not None else [], dtype=str)
    subtype = np.asarray(ann.subtype if ann.subtype is not None else np.zeros(len(sample)), dtype=np.int64)
    if len(sample) == 0:
        raise InputError(f"{path}: no annotations")
    if len(symbol) != len(sample) or len(subtype) != len(sample):
        raise InputError(f"{path}: unreadable annotation file (inconsistent fields)")
    if sample.min() < 0:
        raise InputError(f"{path}: annotation at negative sample {int(sample.min())}")
    past_end = 0
    if sig_len is not None and sig_len > 0:
        inside = inside_signal(sample, sig_len, path)
        past_end = int((~inside).sum())
        sample, symbol, subtype = sample[inside], symbol[inside], subtype[inside]
    if len(sample) > 1 and np.any(np.diff(sample) < 0):
        i = int(np.flatnonzero(np.diff(sample) < 0)[0])
        raise InputError(f"{path}: annotations out of time order (sample {int(sample[i + 1])} after "
                         f"{int(sample[i])})")
    if not np.isin(symbol, list(BXB_CLASS)).any():
        raise InputError(f"{path}: no beat annotations")
    return Annotations(sample, symbol, subtype, past_end)


def write_annotations(base: str | os.PathLike, annotator: str, sample: np.ndarray, symbol: Sequence[str], fs: float,
                      out_dir: str | os.PathLike, subtype: Sequence[int] | None = None,
                      aux_note: Sequence[str] | None = None) -> Path:
    """Write OUT_DIR/NAME.ANNOTATOR (wfdb.wrann's encoding) through :func:`ecglib.files.atomic_path`.

    wrann writes a file named after the record into a folder it is given: that folder is a temporary of this
    process inside OUT_DIR (named as files.py names its temporaries, so a killed run's leftover is cleared by the
    next writer there), and the file is moved onto the target in one rename."""
    import wfdb

    out = Path(out_dir)
    name = Path(base).name
    target = out / f"{name}.{annotator}"
    with atomic_path(target) as tmp:
        scratch = temporary_name(out)
        scratch.mkdir()
        try:
            wfdb.wrann(name, annotator, sample=np.asarray(sample, dtype=np.int64), symbol=list(symbol), fs=fs,
                       subtype=None if subtype is None else np.asarray(subtype, dtype=np.int64),
                       aux_note=None if aux_note is None else list(aux_note), write_dir=str(scratch))
            os.replace(scratch / f"{name}.{annotator}", tmp)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target
