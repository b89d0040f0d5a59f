"""Heartbeats from ECG records: one pipeline for the real MIT-BIH database, the Kaggle CSVs and synthetic records.

Every source ends in a :class:`Beats` table: ``x`` (n, 187) float32 in [0, 1] at 125 Hz, ``y`` (n,) int64 AAMI
class index, and for each beat its ``record``, R-peak ``sample`` (at the record's own rate) and original ``symbol``.

Beat extraction follows Kachuee, Fazeli & Sarrafzadeh (2018), "ECG Heartbeat Classification: A Deep Transferable
Representation", the preparation behind the Kaggle "ECG Heartbeat Categorization" CSVs: resample to 125 Hz, scale
each 10-second window to [0, 1], cut each annotated beat from its R peak for 1.2 times the window's median RR
interval, and zero-pad to 187 samples.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

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
# 2: WFDB sources carry rhythm features (Beats.rhythm).
EXTRACTION_VERSION = 2

# Rhythm features of every beat (see rhythm_features): name and unit, in column order. RR intervals in seconds,
# ratios unitless. "local" is the mean of the LOCAL_RR_INTERVALS RR intervals centred on the beat (the
# LOCAL_RR_INTERVALS // 2 before its R peak, its pre-RR included, and as many after, its post-RR included),
# fewer at a record's ends; "record" is the mean RR interval of the whole record.
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
)
RHYTHM_NAMES: tuple[str, ...] = tuple(name for name, _ in RHYTHM_FEATURES)
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


# --------------------------------------------------------------------------------------------------- validation
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


# -------------------------------------------------------------------------------------------------------- mitdb
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


def _read_record(folder: Path, name: str) -> tuple[np.ndarray, float, str, np.ndarray, np.ndarray]:
    """One record's lead (MLII by name, else the first lead), its rate, the lead name, beat samples and symbols."""
    import wfdb

    base = folder / name
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # noqa: BLE001 - wfdb raises many types for a bad header
        raise InputError(f"{base}.hea: unreadable header ({_first_line(exc)})") from None
    _check_signal_files(header, folder)
    lead = "MLII" if "MLII" in header.sig_name else header.sig_name[0]
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
    if Path(f"{base}.atr").stat().st_size == 0:  # wfdb reads an empty file as a record without beats
        raise InputError(f"{base}.atr: empty annotation file")
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
    return signal, float(record.fs), lead, samples[keep], symbols[keep]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


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
    RR in seconds, then the ratios pre/local, post/local, post/pre, pre/record, post/record, local/record.

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
    csum = np.concatenate([[0.0], np.cumsum(rr)])
    local = (csum[hi] - csum[lo]) / (hi - lo)
    record = np.full(k, (t[-1] - t[0]) / fs / (k - 1))
    out = np.stack([pre, post, local, record, pre / local, post / local, post / pre, pre / record, post / record,
                    local / record], axis=1)
    return out.astype(np.float32)


def rhythm_meta() -> dict[str, Any]:
    """Names, units and the local window of the rhythm features, as stored in Beats.meta["rhythm_features"]."""
    return {"names": list(RHYTHM_NAMES), "units": [unit for _, unit in RHYTHM_FEATURES],
            "local_rr_intervals": LOCAL_RR_INTERVALS,
            "edges": "first beat: pre-RR = its post-RR; last beat: post-RR = its pre-RR"}


def load_mitdb(folder: str | os.PathLike, records: Sequence[str] | None = None, download: bool = True,
               progress: bool = False) -> Beats:
    """Beats of MIT-BIH (or MIT-BIH-formatted) WFDB records in ``folder``.

    records: names to read; None reads the names in the folder's RECORDS file, else the 48 MIT-BIH names.
    Missing records are downloaded from PhysioNet when ``download`` is true.
    """
    folder = Path(folder)
    if records is None:
        listing = folder / "RECORDS"
        records = listing.read_text().split() if listing.exists() else list(MITDB_RECORDS)
        if not records:
            raise InputError(f"{listing}: empty record list")
    ensure_mitdb(folder, records, download=download)
    from tqdm.auto import tqdm

    parts, leads = [], {}
    for name in tqdm(records, desc="records", unit="rec", disable=not progress, leave=False):
        signal, fs, lead, samples, symbols = _read_record(folder, name)
        x, kept = extract_beats(signal, fs, samples)
        # From every beat annotation, before extract_beats dropped the beats that run past the record's end.
        if len(samples) >= 2:
            try:
                rhythm = rhythm_features(samples, fs)[kept]
            except ValueError as exc:
                raise InputError(f"{folder / name}.atr: {exc}") from None
        elif len(kept):
            raise InputError(f"{folder / name}.atr: a single beat annotation, no RR interval for rhythm features")
        else:
            rhythm = np.zeros((0, len(RHYTHM_FEATURES)), dtype=np.float32)
        leads[name] = lead
        parts.append((x, np.array([AAMI[s] for s in symbols[kept]], dtype=np.int64),
                      np.full(len(kept), name), samples[kept], symbols[kept], rhythm))
    if not any(len(p[0]) for p in parts):
        raise InputError(f"{folder}: the records hold no beat annotations")
    x, y, rec, smp, sym, rhy = (np.concatenate([p[i] for p in parts]) for i in range(6))
    no_mlii = {r: lead for r, lead in leads.items() if lead != "MLII"}
    meta = {"source": "mitdb", "folder": str(folder.resolve()), "records": list(records), "leads": leads,
            "records_without_mlii": no_mlii, "fs": TARGET_FS, "rhythm_features": rhythm_meta()}
    return Beats(x, y, rec.astype(str), smp.astype(np.int64), sym.astype(str), meta, rhy.astype(np.float32))


# ------------------------------------------------------------------------------------------------------- kaggle
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


# ---------------------------------------------------------------------------------------------------- synthetic
def synthetic_folder(seed: int = 0, seconds: float = 60.0, cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the seeded synthetic WFDB records (written on first use): the offline default dataset."""
    from .synthetic import write_synthetic_mitdb

    folder = cache_root(cache_dir) / f"synthetic-mitdb-s{seed}-{seconds:g}s"
    if not _missing_records(folder, MITDB_RECORDS):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    write_synthetic_mitdb(tmp, MITDB_RECORDS, seconds=seconds, seed=seed)
    (tmp / "RECORDS").write_text("\n".join(MITDB_RECORDS) + "\n")
    try:
        os.replace(tmp, folder)
    except OSError:  # another process won the race, or a stale partial folder: keep theirs, drop ours
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        if _missing_records(folder, MITDB_RECORDS):
            shutil.rmtree(folder, ignore_errors=True)
            return synthetic_folder(seed, seconds, cache_dir)
    return folder


# -------------------------------------------------------------------------------------------------------- cache
def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where prepared beats and synthetic records live: ``cache_dir``, $ECGLIB_CACHE, or ~/.cache/ecglib."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("ECGLIB_CACHE", Path.home() / ".cache" / "ecglib"))


def _fingerprint(folder: Path, names: Iterable[str]) -> list[tuple[str, int, int]]:
    out = []
    for name in sorted(names):
        p = folder / name
        if p.exists():
            st = p.stat()
            out.append((name, st.st_size, int(st.st_mtime)))
    return out


def save_npz(beats: Beats, path: str | os.PathLike, compressed: bool = True) -> None:
    """Write beats atomically: a reader never sees a half-written file."""
    import zipfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    arrays = {"x": beats.x, "y": beats.y, "record": beats.record, "sample": beats.sample, "symbol": beats.symbol,
              "meta": np.array(json.dumps(beats.meta))}
    if beats.rhythm is not None:
        arrays["rhythm"] = beats.rhythm
    try:
        # np.savez_compressed at zlib's default level takes seconds on 80 MB of beats; level 1 is about three
        # times faster for a file only slightly larger, and np.load reads it the same way.
        mode = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
        with zipfile.ZipFile(tmp, "w", compression=mode, compresslevel=1 if compressed else None) as zf:
            for name, arr in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


# ---------------------------------------------------------------------------------------------------- front door
def load_beats(source: str = "synthetic", mitdb_dir: str | os.PathLike | None = None,
               kaggle_dir: str | os.PathLike | None = None, records: Sequence[str] | None = None,
               synthetic_seconds: float = 60.0, seed: int = 0, cache: bool = True,
               cache_dir: str | os.PathLike | None = None, download: bool = True, progress: bool = False,
               rhythm: bool = False) -> Beats:
    """Beats of one source, read through a compressed cache keyed by the source, its parameters and its files.

    source: "mitdb" (WFDB records in ``mitdb_dir``), "kaggle" (CSVs in ``kaggle_dir``) or "synthetic" (seeded
    MIT-BIH-like WFDB records written to the cache and read through the mitdb path). The WFDB sources always carry
    rhythm features (``Beats.rhythm``); ``rhythm=True`` asks for them, which the Kaggle source refuses at once.
    """
    if source not in SOURCES:
        raise InputError(f"unknown data source {source!r}; choose one of {', '.join(SOURCES)}")
    if rhythm and source == "kaggle":
        raise InputError(f"{kaggle_dir if kaggle_dir is not None else 'kaggle'}: the Kaggle CSVs carry no R-peak "
                         "positions, so no rhythm features: use --source mitdb or synthetic, or --features beat")
    if source == "mitdb":
        if mitdb_dir is None:
            raise InputError("the mitdb source needs a folder: --mitdb-dir DIR")
        folder = Path(mitdb_dir)
    elif source == "kaggle":
        if kaggle_dir is None:
            raise InputError("the kaggle source needs a folder: --kaggle-dir DIR")
        folder = Path(kaggle_dir)
    else:
        folder = synthetic_folder(seed=seed, seconds=synthetic_seconds, cache_dir=cache_dir)
        records = records if records is not None else MITDB_RECORDS
    if source == "mitdb" and records is None:
        # The folder's RECORDS file, as load_mitdb reads it, else the 48 MIT-BIH names.
        listing = folder / "RECORDS"
        records = listing.read_text().split() if listing.exists() else MITDB_RECORDS
        if not records:
            raise InputError(f"{listing}: empty record list")
    if source != "kaggle":
        ensure_mitdb(folder, records or MITDB_RECORDS, download=download)

    key = None
    if cache:
        names = (KAGGLE_FILES if source == "kaggle"
                 else [f"{r}.{e}" for r in (records or MITDB_RECORDS) for e in ("hea", "dat", "atr")])
        key_src = json.dumps({"v": EXTRACTION_VERSION, "source": source, "folder": str(folder.resolve()),
                              "records": list(records) if records else None,
                              "files": _fingerprint(folder, names)}, sort_keys=True)
        key = cache_root(cache_dir) / "beats" / f"{source}-{hashlib.sha1(key_src.encode()).hexdigest()[:16]}.npz"
        if key.exists():
            try:
                return load_npz(key)
            except InputError:
                key.unlink(missing_ok=True)  # a corrupt cache entry is rebuilt, not reported
    if source == "kaggle":
        beats = load_kaggle(folder)
    else:
        beats = load_mitdb(folder, records=records, download=download, progress=progress)
        beats.meta["source"] = source
        if source == "synthetic":
            beats.meta.update(seed=seed, seconds=synthetic_seconds)
    if key is not None:
        try:
            save_npz(beats, key)
        except OSError:
            pass  # a read-only cache only costs speed
    return beats


# ------------------------------------------------------------------------------------------------------- splits
@dataclass
class Split:
    """Indices into a Beats table; validation is always carved from the training part, never from test."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    protocol: str

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _stratify(y: np.ndarray) -> np.ndarray | None:
    # sklearn refuses to stratify a class with a single member; tiny debug subsets fall back to random.
    counts = np.bincount(y)
    return y if counts[counts > 0].min() >= 2 else None


def split_beats(beats: Beats, protocol: str = "intra", test_fraction: float = 0.2, val_fraction: float = 0.1,
                seed: int = 0) -> Split:
    """Train/validation/test indices.

    intra: stratified random beats, ``test_fraction`` to test (the original study's protocol; for the Kaggle
      source its own train/test files), and ``val_fraction`` of the training beats (stratified) held out.
    inter: de Chazal et al. (2004), DS1 records train and DS2 records test, paced records excluded; validation is
      a set of whole DS1 records (patient-wise, see :func:`patientwise_validation`), never beats of the training
      patients.
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(beats))
    if protocol == "intra":
        if beats.meta.get("source") == "kaggle" and set(np.unique(beats.record)) == {"mitbih_train", "mitbih_test"}:
            train, test = idx[beats.record == "mitbih_train"], idx[beats.record == "mitbih_test"]
        else:
            train, test = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                           stratify=_stratify(beats.y))
    elif protocol == "inter":
        if beats.meta.get("source") == "kaggle":
            raise InputError("the inter-patient split needs record names; the Kaggle CSVs have none: "
                             "use --source mitdb")
        train, test = idx[np.isin(beats.record, DS1)], idx[np.isin(beats.record, DS2)]
        if len(train) == 0 or len(test) == 0:
            raise InputError(f"the inter-patient split found {len(train)} DS1 and {len(test)} DS2 beats: "
                             "it needs the MIT-BIH record names")
    else:
        raise InputError(f"unknown split {protocol!r}; choose one of {', '.join(SPLITS)}")
    if val_fraction > 0 and protocol == "inter":
        train, val = patientwise_validation(beats, train, val_fraction, seed)
    elif val_fraction > 0:
        train, val = train_test_split(train, test_size=val_fraction, random_state=seed,
                                      stratify=_stratify(beats.y[train]))
    else:
        val = train[:0]
    return Split(np.sort(train), np.sort(val), np.sort(test), protocol)


# Patient-wise validation must hold some S and V beats to say anything about them, but not so many of DS1's that
# training is starved of them (a few records carry most S beats, record 208 nearly all F beats): S and V get between
# these shares of their beats, and no class with at least VAL_CLASS_MIN beats gets more than the upper share.
VAL_CLASS_SHARE = (0.05, 0.5)
VAL_CLASS_MIN = 50
VAL_DRAWS = 2000


def patientwise_validation(beats: Beats, index: np.ndarray, val_fraction: float = 0.1, seed: int = 0
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Split ``index`` (beats of the training records) into (train, val) by whole records.

    Seeded draws: each draw orders the records at random and takes records in that order until they hold
    ``val_fraction`` of the beats. The first draw (of at most VAL_DRAWS) is kept whose validation holds, for each
    of the classes S and V present in ``index``, between VAL_CLASS_SHARE[0] and VAL_CLASS_SHARE[1] of that class's
    beats, no more than VAL_CLASS_SHARE[1] of any class with at least VAL_CLASS_MIN beats (so that F, nearly all in
    record 208 of DS1, stays in training), and leaves at least one record for training. If no draw satisfies
    this (few records, as in small test sets), the draw whose shares come closest to the band is kept. With fewer
    than two records there is no patient-wise validation: val is empty. Returns sorted index arrays.
    """
    records = np.unique(beats.record[index])
    if len(records) < 2:
        return np.sort(index), index[:0]
    rng = np.random.default_rng(seed)
    per_record = {r: index[beats.record[index] == r] for r in records}
    class_total = np.bincount(beats.y[index], minlength=len(CLASSES))
    watched = [c for c in (CLASSES.index("S"), CLASSES.index("V")) if class_total[c] > 0]
    lo, hi = VAL_CLASS_SHARE
    best, best_miss = None, np.inf
    for _ in range(VAL_DRAWS):
        order = rng.permutation(records)
        chosen, n_val = [], 0
        for r in order[:-1]:  # at least one record stays in training
            chosen.append(r)
            n_val += len(per_record[r])
            if n_val >= val_fraction * len(index):
                break
        val = np.concatenate([per_record[r] for r in chosen])
        share = np.bincount(beats.y[val], minlength=len(CLASSES)) / np.maximum(class_total, 1)
        capped = (class_total >= VAL_CLASS_MIN) | np.isin(np.arange(len(CLASSES)), watched)
        miss = float(np.sum(np.maximum(lo - share[watched], 0)) + np.sum(np.maximum(share - hi, 0)[capped]))
        if miss < best_miss:
            best, best_miss = val, miss
        if miss == 0:
            break
    assert best is not None
    train = np.setdiff1d(index, best)
    return np.sort(train), np.sort(best)


def split_records(beats: Beats, split: Split) -> dict[str, list[str]]:
    """The record names in each part of a split: train_records, val_records, test_records (sorted)."""
    return {f"{part}_records": sorted(set(beats.record[getattr(split, part)].tolist()))
            for part in ("train", "val", "test")}


def limit_beats(beats: Beats, limit: int | None, seed: int = 0) -> Beats:
    """A stratified random subset of ``limit`` beats (all of them when limit is None or larger)."""
    if limit is None or limit >= len(beats):
        return beats
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(beats)), train_size=limit, random_state=seed,
                               stratify=_stratify(beats.y))
    return beats.subset(np.sort(keep))


def context_beats(beats: Beats) -> np.ndarray:
    """Each beat with its neighbours in the same record: (n, 3, 187) float32, channels predecessor, beat, successor
    (neighbours in R-peak order among the table's beats of that record). The first and last beat of a record, with
    no neighbour on one side, repeat themselves there. Call it on the whole table, before subsets drop neighbours.
    Raises InputError for the Kaggle source, whose rows are beats of unknown records and positions."""
    if beats.meta.get("source") == "kaggle":
        raise InputError("the Kaggle CSVs carry no record positions, so no neighbouring beats: use --source mitdb "
                         "or synthetic")
    order = np.lexsort((beats.sample, beats.record))
    x, rec = beats.x[order], beats.record[order]
    same = rec[1:] == rec[:-1]
    prev, nxt = x.copy(), x.copy()
    prev[1:][same] = x[:-1][same]
    nxt[:-1][same] = x[1:][same]
    out = np.empty((len(x), 3, x.shape[1]), dtype=np.float32)
    out[order] = np.stack([prev, x, nxt], axis=1)
    return out


# ------------------------------------------------------------------------------------------------------ torch
def to_tensors(beats: Beats, index: np.ndarray | None = None):
    """(x, y) torch tensors, x shaped (n, 1, 187) float32 for Conv1d, y (n,) int64."""
    import torch

    b = beats if index is None else beats.subset(index)
    return torch.from_numpy(np.ascontiguousarray(b.x))[:, None, :], torch.from_numpy(b.y.astype(np.int64))


def make_loader(beats: Beats, index: np.ndarray | None = None, batch_size: int = 128, shuffle: bool = False,
                seed: int = 0):
    """A torch DataLoader over in-memory tensors, for users who want the standard interface. The training loop
    itself slices tensors directly, which is several times faster than per-item collation for 187-sample beats."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    x, y = to_tensors(beats, index)
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=gen)
