"""WFDB records read into beats: one lead by the lead rule (:mod:`ecglib.data.leads`), the reference beat
annotations, and the MIT-BIH folder (filled from PhysioNet when asked, refused in one line offline).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError, first_line
from .beats import Beats
from .checks import check_annotation_file, read_record_list
from .extract import beats_from_peaks
from .facts import AAMI, MITDB_RECORDS, TARGET_FS
from .recordings import choose_record_lead, read_record_channel, record_header
from .rhythm import rhythm_meta


def _missing_records(folder: Path, records: Sequence[str]) -> list[str]:
    return [r for r in records if not all((folder / f"{r}.{ext}").exists() for ext in ("hea", "dat", "atr"))]


def ensure_mitdb(folder: str | os.PathLike, records: Sequence[str] = MITDB_RECORDS, download: bool = True) -> Path:
    """Make sure ``folder`` holds the given MIT-BIH records, downloading the missing ones from PhysioNet.

    Offline, or with ``download=False``, a missing record raises InputError naming the folder and how to fill it.
    """
    folder = Path(folder)
    missing = _missing_records(folder, records)
    if not missing:
        return folder
    what = f"{len(missing)} of {len(records)} records missing (first: {missing[0]}.hea/.dat/.atr)"
    how = (f"download them on a networked machine with python -c \"import wfdb; wfdb.dl_database('mitdb', "
           f"'{folder}')\" or copy PhysioNet's mitdb files there")
    if not download:
        raise InputError(f"{folder}: {what}; {how}")
    try:
        import wfdb

        folder.mkdir(parents=True, exist_ok=True)
        wfdb.dl_database("mitdb", str(folder), records=list(missing))
    except Exception as exc:  # noqa: BLE001 - any network or server failure ends the same way
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(f"{folder}: {what} and the download from PhysioNet failed ({reason}); {how}") from None
    still = _missing_records(folder, records)
    if still:
        raise InputError(f"{folder}: PhysioNet download left {len(still)} records missing (first: {still[0]}); {how}")
    return folder


def read_lead(base: str | os.PathLike, lead: str | int | None = None) -> tuple[np.ndarray, float, str]:
    """One lead of the WFDB record ``base`` (a path without extension): signal (T,) float64 in the record's units
    (mV for MIT-BIH), its rate in Hz, and the lead's name.

    lead: the lead to read, by name (case- and space-insensitive) or 0-based position; None applies the lead rule
    (:mod:`ecglib.data.leads`: MLII, another name of lead II, else the first ECG lead), the rule training and
    ``ecglib annotate`` share. Raises InputError for a missing or unreadable header or signal file, a truncated
    signal file, a record without the named lead, or a lead without valid samples; invalid samples (NaN) are
    bridged linearly.
    """
    header = record_header(base)
    channel, _ = choose_record_lead(base, header, lead)
    return read_record_channel(base, header, channel), float(header.fs), header.sig_name[channel]


def _read_record(folder: Path, name: str) -> tuple[np.ndarray, float, str, np.ndarray, np.ndarray]:
    """One record's lead (the lead rule), its rate, the lead name, beat samples and symbols."""
    import wfdb

    base = folder / name
    signal, fs, lead = read_lead(base)
    if Path(f"{base}.atr").stat().st_size == 0:  # wfdb reads an empty file as a record without beats
        raise InputError(f"{base}.atr: empty annotation file")
    check_annotation_file(Path(f"{base}.atr"))
    try:
        ann = wfdb.rdann(str(base), "atr")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{base}.atr: unreadable annotations ({first_line(exc)})") from None
    samples = np.asarray(ann.sample, dtype=np.int64)
    symbols = np.asarray(ann.symbol)
    if len(samples) and (samples.min() < 0 or samples.max() >= len(signal)):
        raise InputError(f"{base}.atr: annotation at sample {int(samples.max())} outside the signal "
                         f"of {len(signal)} samples")
    keep = np.isin(symbols, list(AAMI))
    return signal, fs, lead, samples[keep], symbols[keep]


def load_mitdb(folder: str | os.PathLike, records: Sequence[str] | None = None, download: bool = True,
               progress: bool = False) -> Beats:
    """Beats of MIT-BIH (or MIT-BIH-formatted) WFDB records in ``folder``.

    records: names to read; None reads the names in the folder's RECORDS file, else the 48 MIT-BIH names.
    Missing records are downloaded from PhysioNet when ``download`` is true.
    """
    folder = Path(folder)
    if records is None:
        listing = folder / "RECORDS"
        records = read_record_list(listing) if listing.exists() else list(MITDB_RECORDS)
    ensure_mitdb(folder, records, download=download)
    from tqdm.auto import tqdm

    parts, leads = [], {}
    for name in tqdm(records, desc="records", unit="rec", disable=not progress, leave=False):
        signal, fs, lead, samples, symbols = _read_record(folder, name)
        try:
            part = beats_from_peaks(signal, fs, samples, name, symbols)
        except ValueError as exc:
            raise InputError(f"{folder / name}.atr: {exc}") from None
        leads[name] = lead
        parts.append((part.x, part.y, part.record, part.sample, part.symbol, part.rhythm))
    if not any(len(p[0]) for p in parts):
        raise InputError(f"{folder}: the records hold no beat annotations")
    x, y, rec, smp, sym, rhy = (np.concatenate([p[i] for p in parts]) for i in range(6))
    no_mlii = {r: lead for r, lead in leads.items() if lead != "MLII"}
    meta = {"source": "mitdb", "folder": str(folder.resolve()), "records": list(records), "leads": leads,
            "records_without_mlii": no_mlii, "fs": TARGET_FS, "rhythm_features": rhythm_meta()}
    return Beats(x, y, rec.astype(str), smp.astype(np.int64), sym.astype(str), meta, rhy.astype(np.float32))
