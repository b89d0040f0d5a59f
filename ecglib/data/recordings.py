"""The files people have, through one front door: :func:`read_recording` reads one ECG lead of a WFDB record, an
EDF, EDF+ or BDF file, or a CSV or .npy signal, by the lead rule (:mod:`ecglib.data.leads`), at any sampling rate.

- **WFDB** (``NAME.hea`` + signal files; give ``dir/NAME`` or ``dir/NAME.hea``): read by :mod:`ecglib.data.records`,
  in spans, so that a 24-hour record costs its lead's memory and no more.
- **EDF, EDF+, BDF** (``.edf``, ``.bdf``): read by edfio (the optional extra ``edf``). Every file the EDF and EDF+
  specifications allow is read: annotation channels are skipped, each signal has its own rate, a discontinuous
  EDF+D file is read as its stored samples in order (the summary says so). Refused with one line: a file shorter
  than its header promises, and a signal whose physical or digital minimum is not below its maximum (the
  specification requires them to differ: such a signal has no physical values).
- **CSV** (``.csv``, ``.txt``, ``.tsv``): one column of samples, or several with a header row naming the leads;
  comma, semicolon, tab or space separated; an empty cell is an invalid sample, bridged linearly. Needs ``fs``.
- **npy** (``.npy``): an array (T,) or (T, leads) of numbers, samples in rows. Needs ``fs``.

A recording's reference annotations are a WFDB annotation file ``NAME.EXT`` beside it (``atr`` unless told),
for every format: an EDF with ``NAME.atr`` beside it is scored as the WFDB record would be.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, first_line
from ..extras import require_extra
from .checks import bridge_invalid, check_header_values, check_signal_files
from .facts import MAX_FS, MIN_FS
from .leads import choose_lead

EDF_SUFFIXES = (".edf", ".bdf")
CSV_SUFFIXES = (".csv", ".txt", ".tsv")
NPY_SUFFIXES = (".npy",)
WFDB_SUFFIXES = (".hea", ".dat", ".atr")
FORMATS = ("WFDB", "EDF", "CSV", "npy")
DEFAULT_REFERENCE = "atr"
# Data records read per edfio call (a data record is usually 1 s): bounded memory whatever the file's length.
EDF_CHUNK_RECORDS = 3600


@dataclass
class Recording:
    """One ECG lead of a recording: ``signal`` (T,) float64 in the file's physical units at ``fs`` Hz, the lead's
    name and why the lead rule chose it, the names of all the recording's signals, and its reference annotation
    file (``NAME.EXT`` beside it) when there is one. ``path``: the file (a WFDB record: its path without
    extension); ``name``: the record's name, which the outputs are named after."""

    path: Path
    name: str
    format: str
    signal: np.ndarray
    fs: float
    lead: str
    lead_reason: str
    leads: tuple[str, ...]
    reference: Path | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def seconds(self) -> float:
        return len(self.signal) / self.fs

    def lead_line(self) -> str:
        """'lead MLII (MLII by name)': which lead was read and why, for the summary line."""
        return f"lead {self.lead} ({self.lead_reason})" + "".join(f"; {n}" for n in self.notes)


def recording_format(path: str | os.PathLike) -> tuple[str, Path]:
    """The format of ``path`` and the path to read: ('WFDB', record path without extension) for ``dir/100`` or
    ``dir/100.hea``, ('EDF', file) for ``.edf``/``.bdf``, ('CSV', file), ('npy', file). InputError for a path
    that is none of them or does not exist."""
    path = Path(path)
    suffix = path.suffix.lower()
    if Path(f"{path}.hea").exists():
        return "WFDB", path
    if suffix in WFDB_SUFFIXES:
        return "WFDB", path.with_suffix("")
    for fmt, suffixes in (("EDF", EDF_SUFFIXES), ("CSV", CSV_SUFFIXES), ("npy", NPY_SUFFIXES)):
        if suffix in suffixes:
            if not path.is_file():
                raise InputError(f"{path}: file not found")
            return fmt, path
    if path.is_file():
        raise InputError(f"{path}: not a recording ecglib reads (a WFDB record, .edf, .bdf, .csv, .txt, .tsv or .npy)")
    raise InputError(f"{path}.hea: record header not found (give EDF, CSV and npy files with their extension)")


def read_recording(path: str | os.PathLike, lead: str | int | None = None, fs: float | None = None,
                   reference: str | None = None) -> Recording:
    """Read one ECG lead of the recording at ``path`` (any format of this module) by the lead rule.

    lead: a signal's name or 0-based position (``--lead``), None for the rule. fs: the sampling rate in Hz, which
    CSV and npy files need and WFDB and EDF files state (a different ``fs`` is refused). reference: the extension of
    the reference annotation file ``NAME.EXT`` beside the recording, which must exist; None takes ``NAME.atr``
    when it exists. Raises InputError "FILE: problem" for anything that cannot be read as an ECG lead.
    """
    fmt, where = recording_format(path)
    if fs is not None and not (np.isfinite(fs) and MIN_FS <= fs <= MAX_FS):
        raise InputError(f"{where}: sampling rate {fs!r} Hz out of range ({MIN_FS:g} to {MAX_FS:g} Hz)")
    reader = {"WFDB": _read_wfdb, "EDF": _read_edf, "CSV": _read_csv, "npy": _read_npy}[fmt]
    rec: Recording = reader(where, lead, fs)
    rec.reference = _reference_file(where if fmt == "WFDB" else where.with_suffix(""), reference)
    return rec


def _reference_file(base: Path, extension: str | None) -> Path | None:
    if extension is None:
        found = Path(f"{base}.{DEFAULT_REFERENCE}")
        return found if found.is_file() else None
    path = Path(f"{base}.{extension}")
    if not path.is_file():
        raise InputError(f"{path}: reference annotation file not found")
    return path


def _same_rate(where: Path, stated: float, given: float | None) -> None:
    if given is not None and abs(float(given) - float(stated)) > 1e-9 * float(stated):
        raise InputError(f"{where}: the file states {stated:g} Hz and --fs says {given:g} Hz; drop --fs")


# ---------------------------------------------------------------------------------------------------- WFDB
# Samples read per wfdb.rdrecord call: read at once, a 24-hour two-lead record at 360 Hz took twice its lead's
# 250 MB at the peak (wfdb decodes every channel of the span to integers, then the chosen one to float64); in spans
# of 2 M samples the peak is the lead and a few MB.
READ_CHUNK_SAMPLES = 1 << 21


def record_header(base: str | os.PathLike) -> Any:
    """The checked WFDB header of record ``base`` (a path without extension) and its signal files' sizes checked;
    InputError naming the file for a missing or unreadable header, nonsense values or a truncated signal file."""
    import wfdb

    base = Path(base)
    if not Path(f"{base}.hea").exists():
        raise InputError(f"{base}.hea: record header not found")
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # noqa: BLE001 - wfdb raises many types for a bad header
        raise InputError(f"{base}.hea: unreadable header ({first_line(exc)})") from None
    check_header_values(Path(f"{base}.hea"), header)
    check_signal_files(header, base.parent)
    return header


def choose_record_lead(base: str | os.PathLike, header: Any, lead: str | int | None = None) -> tuple[int, str]:
    """The channel of the lead rule (:func:`ecglib.data.leads.choose_lead`) in a record's header, and why."""
    try:
        return choose_lead(list(header.sig_name or []), lead)
    except ValueError as exc:
        raise InputError(f"{base}.hea: {exc}") from None


def read_record_channel(base: str | os.PathLike, header: Any, channel: int,
                        chunk: int = READ_CHUNK_SAMPLES) -> np.ndarray:
    """One channel of a checked record (:func:`record_header`) in the record's physical units, float64 (T,), read
    in spans of ``chunk`` samples (the same values as one read: wfdb converts each sample on its own)."""
    import wfdb

    base = Path(base)
    n = int(header.sig_len or 0)
    if n == 0:
        raise InputError(f"{base}.dat: empty signal")
    signal = np.empty(n, dtype=np.float64)
    try:
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            part = wfdb.rdrecord(str(base), sampfrom=a, sampto=b, channels=[channel])
            signal[a:b] = part.p_signal[:, 0]
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{base}.dat: unreadable signal ({first_line(exc)})") from None
    return bridge_invalid(signal, f"{base}.dat", header.sig_name[channel])


def _read_wfdb(base: Path, lead: str | int | None, fs: float | None) -> Recording:
    header = record_header(base)
    channel, why = choose_record_lead(base, header, lead)
    _same_rate(Path(f"{base}.hea"), float(header.fs), fs)
    signal = read_record_channel(base, header, channel)
    return Recording(base, base.name, "WFDB", signal, float(header.fs), header.sig_name[channel], why,
                     tuple(header.sig_name))


# ----------------------------------------------------------------------------------------------------- EDF
def _edf_header(path: Path) -> dict[str, Any]:
    """The EDF header fields that edfio does not check, read as the specification lays them out: 256 bytes, then
    16-byte labels, ... , 8-byte physical and digital minima and maxima, 8-byte samples per data record."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
            ns = int(head[252:256].decode("ascii").strip())
            rest = fh.read(ns * 256)
        size = path.stat().st_size
    except (OSError, ValueError, UnicodeDecodeError):
        raise InputError(f"{path}: not an EDF or BDF file (its header is unreadable)") from None

    def column(offset: int, width: int) -> list[str]:
        base = offset * ns
        return [rest[base + i * width: base + (i + 1) * width].decode("latin-1").strip() for i in range(ns)]

    try:
        labels = column(0, 16)
        pmin, pmax = [float(v) for v in column(104, 8)], [float(v) for v in column(112, 8)]
        dmin, dmax = [int(v) for v in column(120, 8)], [int(v) for v in column(128, 8)]
        spr = [int(v) for v in column(216, 8)]
        header_bytes = int(head[184:192].decode("ascii"))
        records = int(head[236:244].decode("ascii"))
    except ValueError as exc:
        raise InputError(f"{path}: not an EDF or BDF file ({first_line(exc)})") from None
    if len(rest) < ns * 256:
        raise InputError(f"{path}: not an EDF or BDF file (header of {ns} signals cut short)")
    return {"bdf": head[:1] == b"\xff", "labels": labels, "pmin": pmin, "pmax": pmax, "dmin": dmin, "dmax": dmax,
            "spr": spr, "header_bytes": header_bytes, "records": records, "size": size}


def _check_edf(path: Path, h: dict[str, Any]) -> None:
    width = 3 if h["bdf"] else 2
    need = h["header_bytes"] + h["records"] * sum(h["spr"]) * width
    if h["records"] >= 0 and h["size"] < need:
        raise InputError(f"{path}: truncated file, {h['size']} bytes where its header ({h['records']} data records) "
                         f"needs {need}")
    for label, pmin, pmax, dmin, dmax in zip(h["labels"], h["pmin"], h["pmax"], h["dmin"], h["dmax"]):
        if label == "EDF Annotations" or label == "BDF Annotations":
            continue
        if pmin == pmax:
            raise InputError(f"{path}: signal {label!r} has physical minimum = maximum ({pmin:g}): the EDF "
                             "specification requires them to differ, so its samples have no physical values")
        if dmin >= dmax:
            raise InputError(f"{path}: signal {label!r} has digital minimum {dmin} >= maximum {dmax}: the EDF "
                             "specification requires the minimum below the maximum")


def _read_edf(path: Path, lead: str | int | None, fs: float | None) -> Recording:
    require_extra("edf", f"{path}: reading EDF files")
    import edfio

    header = _edf_header(path)
    _check_edf(path, header)
    try:
        edf = edfio.read_bdf(path) if header["bdf"] else edfio.read_edf(path, lazy_load_data=True)
    except Exception as exc:  # noqa: BLE001 - edfio raises ValueError, UnicodeDecodeError, ... for a bad file
        raise InputError(f"{path}: not a readable EDF file ({first_line(exc)})") from None
    signals = list(edf.signals)  # annotation channels are not among them
    try:
        index, why = choose_lead([s.label for s in signals], lead)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    sig = signals[index]
    rate = float(sig.sampling_frequency)
    _same_rate(path, rate, fs)
    duration = float(edf.data_record_duration)
    spr = int(sig.samples_per_data_record)
    n_records = int(edf.num_data_records)
    signal = np.empty(n_records * spr, dtype=np.float64)
    try:
        for a in range(0, n_records, EDF_CHUNK_RECORDS):
            b = min(n_records, a + EDF_CHUNK_RECORDS)
            # edfio finds samples by seconds (round(seconds * rate)): whole data records give whole samples
            signal[a * spr:b * spr] = sig.get_data_slice(a * duration, b * duration)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}: unreadable signal {sig.label!r} ({first_line(exc)})") from None
    if len(signal) == 0:
        raise InputError(f"{path}: signal {sig.label!r} has no samples")
    notes = []
    kind = "BDF" if header["bdf"] else "EDF"
    if edf.reserved.startswith(("EDF+D", "BDF+D")):
        notes.append(f"{edf.reserved[:5]}: a discontinuous file, its stored samples read in order")
    return Recording(path, path.stem, kind, bridge_invalid(signal, str(path), sig.label), rate, sig.label, why,
                     tuple(s.label for s in signals), notes=tuple(notes))


# ----------------------------------------------------------------------------------------------------- CSV
def _needs_rate(path: Path, kind: str, fs: float | None) -> float:
    if fs is None:
        raise InputError(f"{path}: a {kind} signal does not state its sampling rate; give it with --fs HZ")
    return float(fs)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.strip() == ""
    return True


def _read_csv(path: Path, lead: str | int | None, fs: float | None) -> Recording:
    import pandas as pd

    rate = _needs_rate(path, "CSV", fs)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            first = fh.readline()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a CSV file of numbers (not UTF-8 text)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not first.strip():
        raise InputError(f"{path}: empty file (or an empty first line)")
    sep = next((s for s in (",", ";", "\t") if s in first), None)  # else whitespace-separated
    cells = next(csv.reader([first.strip()], delimiter=sep)) if sep else first.split()
    header = not all(_is_number(c) for c in cells)
    options: dict[str, Any] = {"sep": sep} if sep else {"sep": r"\s+"}
    try:
        table = pd.read_csv(path, header=0 if header else None, dtype=np.float64, skip_blank_lines=True,
                            encoding="utf-8", **options)
    except (ValueError, TypeError):
        raise InputError(_first_bad_cell(path, options, header)) from None
    except Exception as exc:  # noqa: BLE001 - pandas' parser errors (ragged rows, bad quoting)
        raise InputError(f"{path}: not a CSV table of numbers ({first_line(exc)})") from None
    names = [str(c).strip() for c in table.columns] if header else [str(i) for i in range(table.shape[1])]
    if table.shape[0] == 0:
        raise InputError(f"{path}: no samples (a header row only)")
    try:
        index, why = choose_lead(names, lead)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    signal = table.iloc[:, index].to_numpy(dtype=np.float64, copy=True)
    del table
    return Recording(path, path.stem, "CSV", bridge_invalid(signal, str(path), names[index]), rate, names[index],
                     why, tuple(names))


def _first_bad_cell(path: Path, options: dict[str, Any], header: bool) -> str:
    """The message for a CSV with a cell that is not a number: where the first one is."""
    import pandas as pd

    table = pd.read_csv(path, header=0 if header else None, dtype=str, keep_default_na=False, **options)
    for j, column in enumerate(table.columns):
        values = table[column].str.strip()
        bad = (pd.to_numeric(values, errors="coerce").isna() & (values != "")).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            return (f"{path}: line {i + 1 + header}, column {j + 1}: {values.iloc[i][:40]!r} is not a number "
                    "(a CSV signal holds numbers, with at most a header row naming the leads)")
    return f"{path}: not a CSV table of numbers"


# ----------------------------------------------------------------------------------------------------- npy
def _read_npy(path: Path, lead: str | int | None, fs: float | None) -> Recording:
    rate = _needs_rate(path, "npy", fs)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a corrupt file, pickled objects, another format
        raise InputError(f"{path}: not a readable .npy array ({first_line(exc)})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise InputError(f"{path}: an array of {getattr(array, 'dtype', type(array).__name__)}, not of numbers")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.size == 0:
        raise InputError(f"{path}: an array of shape {array.shape}; expected (samples,) or (samples, leads)")
    if array.shape[0] < array.shape[1]:
        raise InputError(f"{path}: an array of {array.shape[0]} rows and {array.shape[1]} columns; samples go in "
                         "rows, one column per lead (save its transpose)")
    names = [str(i) for i in range(array.shape[1])]
    try:
        index, why = choose_lead(names, lead)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    signal = np.array(array[:, index], dtype=np.float64)
    return Recording(path, path.stem, "npy", bridge_invalid(signal, str(path), names[index]), rate, names[index],
                     why, tuple(names))
