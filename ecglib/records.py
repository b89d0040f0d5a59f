"""WFDB records, the Kaggle CSVs and the synthetic records, each read into a :class:`ecglib.beats.Beats` table.

Beat extraction follows Kachuee, Fazeli & Sarrafzadeh (2018), "ECG Heartbeat Classification: A Deep Transferable
Representation", the preparation behind the Kaggle "ECG Heartbeat Categorization" CSVs: resample to 125 Hz, scale
each 10-second window to [0, 1], cut each annotated beat from its R peak for 1.2 times the window's median RR
interval, and zero-pad to 187 samples. :func:`beats_from_peaks` is the one place beats are cut, for training
(:func:`load_mitdb`) and for annotating records (:mod:`ecglib.annotate`) alike, with their rhythm features.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .beats import AAMI, BEAT_LENGTH, BEAT_PERIODS, CLASSES, LOCAL_RR_INTERVALS, MITDB_RECORDS, RHYTHM_FEATURES, \
    RHYTHM_NAMES, TARGET_FS, WINDOW_SECONDS, Beats, _first_line, validate
from .cache import cache_root
from .checks import check_annotation_file, check_header_values, read_record_list
from .errors import InputError

_BITS_PER_SAMPLE = {"8": 8, "16": 16, "24": 24, "32": 32, "61": 16, "80": 8, "160": 16, "212": 12, "310": 32 / 3,
                    "311": 32 / 3}


def _check_signal_files(header: Any, folder: Path) -> None:
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


def read_lead(base: str | os.PathLike, lead: str | None = None) -> tuple[np.ndarray, float, str]:
    """One lead of the WFDB record ``base`` (a path without extension): signal (T,) float64 in the record's units
    (mV for MIT-BIH), its rate in Hz, and the lead's name.

    lead: the lead to read by name; None takes MLII when the record has it, else its first lead (the training
    rule). Raises InputError for a missing or unreadable header or signal file, a truncated signal file, a record
    without the named lead, or a lead without valid samples; invalid samples (NaN) are bridged linearly.
    """
    import wfdb

    base = Path(base)
    folder = base.parent
    if not Path(f"{base}.hea").exists():
        raise InputError(f"{base}.hea: record header not found")
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # noqa: BLE001 - wfdb raises many types for a bad header
        raise InputError(f"{base}.hea: unreadable header ({_first_line(exc)})") from None
    check_header_values(Path(f"{base}.hea"), header)
    _check_signal_files(header, folder)
    if lead is None:
        lead = "MLII" if "MLII" in header.sig_name else header.sig_name[0]
    elif lead not in (header.sig_name or []):
        raise InputError(f"{base}.hea: the record has no lead {lead} (it has {', '.join(header.sig_name or [])})")
    try:
        record = wfdb.rdrecord(str(base), channel_names=[lead])
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{base}.dat: unreadable signal ({_first_line(exc)})") from None
    signal = record.p_signal[:, 0].astype(np.float64)
    if len(signal) == 0:
        raise InputError(f"{base}.dat: empty signal")
    if not np.isfinite(signal).all():
        # 212-format "invalid sample" codes come back as NaN: bridge them rather than poison a whole window.
        bad = ~np.isfinite(signal)
        if bad.all():
            raise InputError(f"{base}.dat: no valid samples in lead {lead}")
        signal[bad] = np.interp(np.flatnonzero(bad), np.flatnonzero(~bad), signal[~bad])
    return signal, float(record.fs), lead


def _read_record(folder: Path, name: str) -> tuple[np.ndarray, float, str, np.ndarray, np.ndarray]:
    """One record's lead (MLII by name, else the first lead), its rate, the lead name, beat samples and symbols."""
    import wfdb

    base = folder / name
    signal, fs, lead = read_lead(base)
    if Path(f"{base}.atr").stat().st_size == 0:  # wfdb reads an empty file as a record without beats
        raise InputError(f"{base}.atr: empty annotation file")
    check_annotation_file(Path(f"{base}.atr"))
    try:
        ann = wfdb.rdann(str(base), "atr")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{base}.atr: unreadable annotations ({_first_line(exc)})") from None
    samples = np.asarray(ann.sample, dtype=np.int64)
    symbols = np.asarray(ann.symbol)
    if len(samples) and (samples.min() < 0 or samples.max() >= len(signal)):
        raise InputError(f"{base}.atr: annotation at sample {int(samples.max())} outside the signal "
                         f"of {len(signal)} samples")
    keep = np.isin(symbols, list(AAMI))
    return signal, fs, lead, samples[keep], symbols[keep]


def extract_beats(signal: np.ndarray, fs: float, r_peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut beats from one lead after Kachuee et al. (2018).

    signal: (T,) float, any unit, sampled at ``fs`` Hz. r_peaks: (k,) R-peak samples at ``fs``.
    Returns x (m, 187) float32 in [0, 1] at 125 Hz and the indices (m,) into ``r_peaks`` of the beats kept
    (a beat is dropped when its 1.2 RR segment would run past the end of the record).
    """
    from scipy.signal import resample_poly

    ratio = TARGET_FS / fs
    frac = np.gcd(int(round(fs)), TARGET_FS)
    sig = resample_poly(signal, TARGET_FS // frac, int(round(fs)) // frac) if fs != TARGET_FS else signal
    peaks = np.round(np.asarray(r_peaks) * ratio).astype(np.int64)
    n = len(sig)
    win = int(WINDOW_SECONDS * TARGET_FS)
    n_win = int(np.ceil(n / win))
    padded = np.concatenate([sig, np.full(n_win * win - n, np.nan)]).reshape(n_win, win)
    lo, hi = np.nanmin(padded, axis=1), np.nanmax(padded, axis=1)
    span = np.where(hi - lo > 0, hi - lo, 1.0)

    window_of = np.minimum(peaks // win, n_win - 1)
    record_rr = np.median(np.diff(peaks)) if len(peaks) > 1 else TARGET_FS
    period = np.full(n_win, record_rr, dtype=np.float64)
    for w in np.unique(window_of):
        in_w = peaks[window_of == w]
        if len(in_w) > 1:
            period[w] = np.median(np.diff(in_w))
    length = np.minimum(np.round(BEAT_PERIODS * period[window_of]).astype(np.int64), BEAT_LENGTH)

    kept = np.flatnonzero((peaks >= 0) & (peaks + length <= n))
    offsets = np.arange(BEAT_LENGTH)
    idx = np.minimum(peaks[kept, None] + offsets, n - 1)
    w = window_of[kept, None]
    beats = (sig[idx] - lo[w]) / span[w]
    # Each beat is scaled with the window that holds its R peak; a tail reaching into the next window may leave
    # [0, 1] slightly, so clip it back.
    beats = np.clip(beats, 0.0, 1.0)
    beats[offsets[None, :] >= length[kept, None]] = 0.0
    return beats.astype(np.float32), kept


def rhythm_features(r_samples: np.ndarray, fs: float, local_intervals: int = LOCAL_RR_INTERVALS) -> np.ndarray:
    """Rhythm features of every beat of one record, from all its beat annotations.

    r_samples: (k,) strictly increasing R-peak samples of ALL the record's beats (at its own rate), in time order;
      pass every beat, before beats are dropped at the record's end, so that the RR intervals are the true ones.
    fs: the record's sampling rate (Hz). local_intervals: how many RR intervals the local average spans, centred on
      the beat (half before its R peak, its pre-RR included, half after, its post-RR included; fewer at the ends).
    Returns (k, len(RHYTHM_FEATURES)) float32, columns as RHYTHM_FEATURES: pre-RR, post-RR, local and record average
    RR in seconds, then the ratios pre/local, post/local, post/pre, pre/record, post/record, local/record, then
    the local irregularity: the median of |RR[j + 1] - RR[j]| over the pairs of successive intervals both in the
    beat's local window, over the local mean RR (0 where the window holds a single interval).

    The first beat has no pre-RR and the last no post-RR: each copies its one RR interval (the first beat's pre-RR
    is its post-RR, the last beat's post-RR its pre-RR), so their post/pre ratio is 1. A premature beat has
    pre/local well below 1; a ventricular one with its compensatory pause also has post/pre well above 1.
    Raises ValueError for fewer than two beats, a non-positive rate or positions that do not strictly increase.
    """
    t = np.asarray(r_samples, dtype=np.float64)
    if t.ndim != 1 or len(t) < 2:
        raise ValueError(f"rhythm features need at least two beats, got {t.size}")
    if not (np.isfinite(fs) and fs > 0) or local_intervals < 1:
        raise ValueError(f"rhythm features need a positive rate and window, got fs {fs}, window {local_intervals}")
    if not np.isfinite(t).all():
        raise ValueError("non-finite beat position")
    rr = np.diff(t) / fs
    if (rr <= 0).any():
        i = int(np.flatnonzero(rr <= 0)[0])
        raise ValueError(f"beat positions do not increase (beat {i + 1} at sample {t[i + 1]:g} after {t[i]:g})")
    k = len(t)
    pre = np.concatenate([rr[:1], rr])
    post = np.concatenate([rr, rr[-1:]])
    # Interval j runs from beat j to beat j + 1; beat i's window holds intervals i - half .. i + half - 1
    # (its pre-RR is interval i - 1, its post-RR interval i), clipped to the record.
    half_before = local_intervals // 2
    half_after = local_intervals - half_before
    i = np.arange(k)
    lo = np.maximum(i - half_before, 0)
    hi = np.minimum(i + half_after, k - 1)
    lo = np.minimum(lo, hi - 1)  # a window of one interval ahead has none left at the last beat: take its pre-RR
    csum = np.concatenate([[0.0], np.cumsum(rr)])
    local = (csum[hi] - csum[lo]) / (hi - lo)
    record = np.full(k, (t[-1] - t[0]) / fs / (k - 1))
    # Successive differences d[j] = |RR[j + 1] - RR[j]|; beat i's pairs are d[lo .. hi - 2], a fixed-width window
    # once d is padded with NaN (half_before on the left, half_after on the right), so one nanmedian does all beats.
    irregular = np.zeros(k)
    if local_intervals >= 2 and k >= 3:
        d = np.concatenate([np.full(half_before, np.nan), np.abs(np.diff(rr)), np.full(half_after, np.nan)])
        windows = np.lib.stride_tricks.sliding_window_view(d, local_intervals - 1)[:k]
        has = ~np.isnan(windows).all(axis=1)
        irregular[has] = np.nanmedian(windows[has], axis=1) / local[has]
    out = np.stack([pre, post, local, record, pre / local, post / local, post / pre, pre / record, post / record,
                    local / record, irregular], axis=1)
    return out.astype(np.float32)


def rhythm_meta() -> dict[str, Any]:
    """Names, units and the local window of the rhythm features, as stored in Beats.meta["rhythm_features"]."""
    return {"names": list(RHYTHM_NAMES), "units": [unit for _, unit in RHYTHM_FEATURES],
            "local_rr_intervals": LOCAL_RR_INTERVALS,
            "edges": "first beat: pre-RR = its post-RR; last beat: post-RR = its pre-RR"}


def beats_from_peaks(signal: np.ndarray, fs: float, r_peaks: np.ndarray, record: str = "",
                     symbols: np.ndarray | None = None) -> Beats:
    """The model inputs of one record's beats given its R peaks: the one function that both training
    (:func:`load_mitdb`) and annotation (:mod:`ecglib.annotate`) call, so that per-beat features added later (for
    instance rhythm features from the R peaks) reach both alike.

    signal: (T,) one lead at ``fs`` Hz; r_peaks: (k,) R-peak samples at ``fs``, in time order, every beat of the
    record; symbols: (k,) their MIT symbols, all in AAMI (None for detected beats: y is then -1 and symbol "").
    Returns the Beats kept by :func:`extract_beats` (a beat whose segment runs past the record's end is dropped;
    ``sample`` tells which), with their rhythm features (:func:`rhythm_features`, from every R peak). Raises
    ValueError for R peaks that give no RR interval or do not increase; the caller names the file.
    """
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    x, kept = extract_beats(signal, fs, r_peaks)
    # From every R peak, before extract_beats dropped the beats that run past the record's end.
    if len(r_peaks) >= 2:
        rhythm = rhythm_features(r_peaks, fs)[kept]
    elif len(kept):
        raise ValueError("a single beat, so no RR interval for the rhythm features")
    else:
        rhythm = np.zeros((0, len(RHYTHM_FEATURES)), dtype=np.float32)
    if symbols is None:
        y, sym = np.full(len(kept), -1, dtype=np.int64), np.full(len(kept), "")
    else:
        sym = np.asarray(symbols)[kept]
        y = np.array([AAMI[s] for s in sym], dtype=np.int64)
    return Beats(x, y, np.full(len(kept), record), r_peaks[kept], sym.astype(str),
                 {"rhythm_features": rhythm_meta()}, rhythm)


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
        raise InputError(f"{path}: not a table of numbers ({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - pandas raises several parser error types
        raise InputError(f"{path}: unreadable CSV ({_first_line(exc)})") from None
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


def synthetic_folder(seed: int = 0, seconds: float = 60.0, cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the seeded synthetic WFDB records (written on first use): the offline default dataset.

    The folder holds a CHECKSUMS file (BLAKE2b of every record file); a folder whose files do not match it, a
    hand-edited or half-deleted one, is rebuilt with one line on stderr.
    """
    from .cache import discard, folder_problem, say, write_checksums
    from .files import atomic_dir

    folder = cache_root(cache_dir) / f"synthetic-mitdb-s{seed}-{seconds:g}s"
    problem = folder_problem(folder, MITDB_RECORDS)
    if problem is None:
        return folder
    if folder.exists():
        say(f"{folder}: {problem}; rebuilding the synthetic records")
        discard(folder)
    from .synthetic import write_synthetic_mitdb

    with atomic_dir(folder) as tmp:
        write_synthetic_mitdb(tmp, MITDB_RECORDS, seconds=seconds, seed=seed)
        (tmp / "RECORDS").write_text("\n".join(MITDB_RECORDS) + "\n")
        write_checksums(tmp)
    if folder_problem(folder, MITDB_RECORDS) is not None:  # a broken folder of another process was in the way
        raise InputError(f"{folder}: the synthetic records could not be written whole; remove this folder")
    return folder


