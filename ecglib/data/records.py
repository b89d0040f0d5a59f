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
from .checks import check_annotation_file, inside_signal, read_record_list
from .extract import beats_from_peaks
from .facts import AAMI, LEAD_MODES, MITDB_RECORDS, TARGET_FS
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


def _read_record(folder: Path, name: str) -> tuple[np.ndarray, float, str, np.ndarray, np.ndarray, int]:
    """One record's lead (the lead rule), its rate, the lead name, beat samples and symbols, and how many
    annotations lay at or past the last sample (left out)."""
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
    if len(samples) and samples.min() < 0:
        raise InputError(f"{base}.atr: annotation at negative sample {int(samples.min())}")
    inside = inside_signal(samples, len(signal), Path(f"{base}.atr"))
    keep = inside & np.isin(symbols, list(AAMI))
    return signal, fs, lead, samples[keep], symbols[keep], int((~inside).sum())


def load_mitdb(folder: str | os.PathLike, records: Sequence[str] | None = None, download: bool = True,
               progress: bool = False, leads: str = "rule") -> Beats:
    """Beats of MIT-BIH (or MIT-BIH-formatted) WFDB records in ``folder``.

    records: names to read; None reads the names in the folder's RECORDS file, else the 48 MIT-BIH names.
    Missing records are downloaded from PhysioNet when ``download`` is true. leads: "rule", the lead the lead rule
    reads (MLII, else the first); "all", every lead of each record, each beat once per lead (the same R peaks,
    labels and rhythm; ``Beats.lead`` tells them apart): a model trained on them sees more than one lead.
    """
    folder = Path(folder)
    leads_mode = leads
    if leads_mode not in LEAD_MODES:
        raise InputError(f"unknown leads {leads_mode!r}; choose one of {', '.join(LEAD_MODES)}")
    if records is None:
        listing = folder / "RECORDS"
        records = read_record_list(listing) if listing.exists() else list(MITDB_RECORDS)
    ensure_mitdb(folder, records, download=download)
    from tqdm.auto import tqdm

    parts, leads, past_end = [], {}, {}
    for name in tqdm(records, desc="records", unit="rec", disable=not progress, leave=False):
        signal, fs, lead, samples, symbols, dropped = _read_record(folder, name)
        if dropped:
            past_end[name] = dropped
        try:
            part = beats_from_peaks(signal, fs, samples, name, symbols)
        except ValueError as exc:
            raise InputError(f"{folder / name}.atr: {exc}") from None
        leads[name] = lead
        parts.append((part.x, part.y, part.record, part.sample, part.symbol, part.rhythm, np.full(len(part), lead)))
        for other in _other_leads(folder / name, lead) if leads_mode == "all" else ():
            signal, fs, _ = read_lead(folder / name, other)
            part = beats_from_peaks(signal, fs, samples, name, symbols)
            parts.append((part.x, part.y, part.record, part.sample, part.symbol, part.rhythm,
                          np.full(len(part), other)))
    if not any(len(p[0]) for p in parts):
        raise InputError(f"{folder}: the records hold no beat annotations")
    x, y, rec, smp, sym, rhy, led = (np.concatenate([p[i] for p in parts]) for i in range(7))
    no_mlii = {r: lead for r, lead in leads.items() if lead != "MLII"}
    meta = {"source": "mitdb", "folder": str(folder.resolve()), "records": list(records), "leads": leads,
            "records_without_mlii": no_mlii, "annotations_past_end": past_end, "fs": TARGET_FS,
            "rhythm_features": rhythm_meta(), "lead_mode": leads_mode}
    return Beats(x, y, rec.astype(str), smp.astype(np.int64), sym.astype(str), meta, rhy.astype(np.float32),
                 led.astype(str))


def _other_leads(base: Path, read: str) -> list[str]:
    """The leads of a record other than ``read``, in header order."""
    import wfdb

    return [n for n in (wfdb.rdheader(str(base)).sig_name or []) if n != read]
