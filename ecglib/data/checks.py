"""Checks of what enters ecglib from files: WFDB headers, annotation files, RECORDS lists and npz arrays.

Each check raises :class:`ecglib.errors.InputError` with "FILE: problem" where the libraries that read these
files (wfdb, numpy) accept nonsense without a word: wfdb reads a negative or NaN sampling frequency as its default
250 Hz and any bytes as annotations; numpy loads arrays of any type and length.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .facts import CLASSES

# Sampling frequencies outside this range are typing errors, not ECGs (MIT-BIH: 360 Hz; Holter: 125-1000 Hz).
MIN_FS, MAX_FS = 1.0, 100_000.0


def _header_fields(path: Path) -> tuple[str | None, list[str]]:
    """The sampling-frequency token of a WFDB header's record line and the ADC-gain token of each signal line, as
    written (wfdb's own parser falls back to its defaults, 250 Hz and gain 200, when a value does not match its
    pattern: a negative or NaN frequency would otherwise be read as 250 Hz without a word)."""
    try:
        lines = [ln for ln in path.read_text(encoding="ascii", errors="replace").splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError:
        return None, []
    if not lines:
        return None, []
    record = lines[0].split()
    fs = record[2].split("/")[0] if len(record) > 2 else None
    gains = []
    for line in lines[1:]:
        tokens = line.split()
        if len(tokens) > 2:
            gains.append(tokens[2].split("/")[0].split("(")[0])
    return fs, gains


def _number(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        return None


def check_header_values(path: Path, header: Any) -> None:
    """Refuse header values that wfdb parses but that make no sense: a sampling frequency that is not a number
    in [MIN_FS, MAX_FS] Hz, an ADC gain that is not a number or infinite.

    A gain of 0 is the WFDB header format's "uncalibrated" (wfdb reads it as its default 200 adu per unit): allowed,
    and harmless here, since every beat is scaled to [0, 1] within its window."""
    fs_token, gain_tokens = _header_fields(path)
    written = _number(fs_token) if fs_token is not None else None
    if fs_token is not None and (written is None or not np.isfinite(written) or written != float(header.fs)):
        raise InputError(f"{path}: sampling frequency {fs_token!r} is not a plain number of Hz (wfdb reads it as "
                         f"{header.fs!r})")
    fs = float(header.fs) if header.fs is not None else float("nan")
    if not (np.isfinite(fs) and MIN_FS <= fs <= MAX_FS):
        raise InputError(f"{path}: sampling frequency {header.fs!r} Hz is out of range "
                         f"({MIN_FS:g} to {MAX_FS:g} Hz)")
    names = list(header.sig_name or [])
    for i, gain in enumerate(header.adc_gain or []):
        token = gain_tokens[i] if i < len(gain_tokens) else None
        # wfdb reads an unparseable gain as its default 200 adu/mV too: the token as written tells them apart
        stated = _number(token) if token else gain
        name = names[i] if i < len(names) else str(i)
        if stated is None or not np.isfinite(stated) or not np.isfinite(gain):
            raise InputError(f"{path}: signal {name} has ADC gain {token or gain!r}: not a finite number of adu "
                             "per unit")


def inside_signal(sample: np.ndarray, sig_len: int, path: Path) -> np.ndarray:
    """The mask of annotations inside a signal of ``sig_len`` samples. Annotations at or past its last sample are
    left out, as the WFDB tools leave them (bxb compares up to the record's end): a file may hold one past the
    end. InputError naming ``path`` when most of them lie past it: annotations of another, longer record."""
    inside = sample < sig_len
    if len(sample) and inside.mean() < 0.5:
        raise InputError(f"{path}: {int((~inside).sum())} of {len(sample)} annotations lie at or past the signal's "
                         f"{sig_len} samples (annotations of another record?)")
    return inside


def check_annotation_file(path: Path) -> None:
    """A WFDB (MIT-format) annotation file is a sequence of 16-bit words ending in a zero word; wfdb.rdann reads
    any bytes, a text file included, as annotations, so check the format's frame before trusting its content."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.seek(max(0, size - 2))
            tail = fh.read(2)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the annotations ({exc.strerror or exc})") from None
    if size == 0:
        raise InputError(f"{path}: empty annotation file")
    if size % 2 or tail != b"\0\0":
        raise InputError(f"{path}: unreadable annotations, not a WFDB annotation file (MIT format: 16-bit words "
                         "ending in a zero word)")


def read_record_list(listing: Path) -> list[str]:
    """The record names of a WFDB RECORDS file (one per line), checked to be UTF-8 text of plain names."""
    try:
        text = listing.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{listing}: not a text file of record names (byte {exc.start} is not UTF-8)") from None
    except OSError as exc:
        raise InputError(f"{listing}: cannot read the record list ({exc.strerror or exc})") from None
    names = text.split()
    if not names:
        raise InputError(f"{listing}: empty record list")
    for name in names:
        # WFDB record names: letters, digits, underscores, dots and dashes, in subfolders at most
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*", name) \
                or ".." in name.split("/"):
            raise InputError(f"{listing}: {name[:40]!r} is not a WFDB record name")
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise InputError(f"{listing}: record {twice} is listed twice (its beats would count double)")
    return names


def check_npz_arrays(path: Path, x: np.ndarray, y: np.ndarray, record: np.ndarray, sample: np.ndarray,
                     symbol: np.ndarray | None, meta: Any, lead: np.ndarray | None = None) -> None:
    """Types and lengths of an npz's arrays, before any arithmetic on them: numbers for x and y, one record,
    sample, symbol and lead per beat, whole-number samples, a JSON mapping for meta."""
    if x.dtype.kind not in "fiu":
        raise InputError(f"{path}: beats x are of type {x.dtype}, expected numbers (float32)")
    if x.dtype.kind == "f" and x.size:
        with np.errstate(invalid="ignore"):
            peak = np.nanmax(np.abs(x)) if not np.isnan(x).all() else 0.0
        if np.isfinite(peak) and peak > np.finfo(np.float32).max:
            raise InputError(f"{path}: beats x hold values up to {peak:.3g}, beyond float32 (beats are scaled to "
                             "[0, 1])")
    if y.dtype.kind not in "fiu":
        raise InputError(f"{path}: labels y are of type {y.dtype}, expected whole numbers 0-{len(CLASSES) - 1}")
    if y.ndim != 1:
        raise InputError(f"{path}: labels y have shape {y.shape}, expected (n,)")
    n = len(y)
    for name, arr, kinds in (("record", record, "USiu"), ("sample", sample, "iu"), ("symbol", symbol, "US"),
                             ("lead", lead, "US")):
        if arr is None:
            continue
        if arr.ndim != 1 or len(arr) != n:
            raise InputError(f"{path}: array {name!r} has shape {arr.shape}, expected one entry per beat ({n},)")
        if arr.dtype.kind not in kinds:
            raise InputError(f"{path}: array {name!r} is of type {arr.dtype}, expected "
                             f"{'whole numbers' if name == 'sample' else 'text'}")
    if not isinstance(meta, dict):
        raise InputError(f"{path}: array 'meta' is not a JSON mapping")


_BITS_PER_SAMPLE = {"8": 8, "16": 16, "24": 24, "32": 32, "61": 16, "80": 8, "160": 16, "212": 12, "310": 32 / 3,
                    "311": 32 / 3}


def check_signal_files(header: Any, folder: Path) -> None:
    """Compare each .dat file's size with what its header promises: wfdb itself fails on a short file with a
    numpy broadcast error that names neither the file nor the cause."""
    if not header.sig_len:
        return
    per_file: dict[str, list[int]] = {}
    for i, fname in enumerate(header.file_name):
        per_file.setdefault(fname, []).append(i)
    for fname, channels in per_file.items():
        path = folder / fname
        if not path.exists():
            raise InputError(f"{path}: signal file named in {header.record_name}.hea is missing")
        fmt = header.fmt[channels[0]]
        bits = _BITS_PER_SAMPLE.get(str(fmt))
        if bits is None:
            continue
        offset = (header.byte_offset[channels[0]] or 0) if header.byte_offset else 0
        expected = int(np.ceil(header.sig_len * len(channels) * bits / 8)) + offset
        actual = path.stat().st_size
        if actual < expected:
            raise InputError(f"{path}: truncated signal file, {actual} bytes where the header "
                             f"({header.sig_len} samples x {len(channels)} channels, format {fmt}) needs {expected}")
        # A frame's worth of slack: some writers pad the last 212 byte group or add a trailing frame.
        if actual > expected + int(np.ceil(len(channels) * bits / 8)) + 1:
            raise InputError(f"{path}: {actual} bytes where the header ({header.sig_len} samples x "
                             f"{len(channels)} channels, format {fmt}) describes {expected}: header and data disagree")


def bridge_invalid(signal: np.ndarray, where: str, lead: str) -> np.ndarray:
    """Invalid samples (NaN: WFDB's "invalid sample" codes, a CSV's empty cells) bridged linearly in place, rather
    than poisoning a whole 10-second window; InputError when no sample is valid."""
    bad = ~np.isfinite(signal)
    if bad.any():
        if bad.all():
            raise InputError(f"{where}: no valid samples in lead {lead}")
        signal[bad] = np.interp(np.flatnonzero(bad), np.flatnonzero(~bad), signal[~bad])
    return signal
