"""Heartbeats for the study: one front door for every source (:func:`load_beats`, through a verified cache), the
intra- and inter-patient splits, and the tables that describe the data.

The beats table and the database's facts are :mod:`ecglib.beats`, reading records :mod:`ecglib.records`; their
public names are available from here too, so that ``from ecglib.data import Beats, CLASSES, load_mitdb`` works.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .beats import (AAMI, BEAT_LENGTH, CLASS_NAMES, CLASSES, DS1, DS2, EXTRACTION_VERSION, FEATURE_SETS,  # noqa: F401
                    MITDB_RECORDS, PACED_RECORDS, RHYTHM_FEATURES, RHYTHM_INPUTS, RHYTHM_NAMES, SOURCES, SPLITS,
                    TARGET_FS, Beats, BeatTensors, _first_line, beat_tensors, class_offsets, context_beats,
                    input_channels, input_layout, load_npz, make_loader, model_inputs, record_templates,
                    require_records, require_rhythm, rhythm_columns, save_npz, template_difference, to_tensors,
                    validate)
from .cache import cache_root  # noqa: F401
from .checks import read_record_list
from .errors import InputError
from .records import (KAGGLE_FILES, beats_from_peaks, ensure_mitdb, extract_beats, load_kaggle,  # noqa: F401
                      load_mitdb, read_lead, rhythm_features, rhythm_meta, synthetic_folder)

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
        records = read_record_list(listing) if listing.exists() else MITDB_RECORDS
    if source != "kaggle":
        ensure_mitdb(folder, records or MITDB_RECORDS, download=download)

    key = None
    if cache:
        from .cache import fingerprint, read_cache_entry, write_cache_entry

        names = (KAGGLE_FILES if source == "kaggle"
                 else [f"{r}.{e}" for r in (records or MITDB_RECORDS) for e in ("hea", "dat", "atr")])
        key_src = json.dumps({"v": EXTRACTION_VERSION, "key": 2, "source": source, "folder": str(folder.resolve()),
                              "records": list(records) if records else None,
                              "files": fingerprint(folder, names)}, sort_keys=True)
        key = cache_root(cache_dir) / "beats" / f"{source}-{hashlib.sha1(key_src.encode()).hexdigest()[:16]}.npz"
        cached = read_cache_entry(key, load_npz)
        if cached is not None:
            return cached
    if source == "kaggle":
        beats = load_kaggle(folder)
    else:
        beats = load_mitdb(folder, records=records, download=download, progress=progress)
        beats.meta["source"] = source
        if source == "synthetic":
            beats.meta.update(seed=seed, seconds=synthetic_seconds)
    if key is not None:
        write_cache_entry(beats, key, save_npz)
    return beats


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
                seed: int = 0, val_records: Sequence[str] | None = None) -> Split:
    """Train/validation/test indices.

    intra: stratified random beats, ``test_fraction`` to test (the original study's protocol; for the Kaggle
      source its own train/test files), and ``val_fraction`` of the training beats (stratified) held out.
    inter: de Chazal et al. (2004), DS1 records train and DS2 records test, paced records excluded; validation is
      a set of whole DS1 records (patient-wise, see :func:`patientwise_validation`), never beats of the training
      patients.
    val_records: inter only, these DS1 records are the validation (instead of a seeded draw of ``val_fraction``):
      folds of whole records, the same for every seed, so that model choices are compared on the same patients.
      InputError for a record that is not among the training records, or with the intra protocol.
    """
    idx = np.arange(len(beats))
    if val_records is not None:
        return _fixed_validation(beats, idx, protocol, list(val_records), test_fraction, seed)
    try:
        return _split_beats(beats, idx, protocol, test_fraction, val_fraction, seed)
    except ValueError as exc:  # scikit-learn's own check: too few beats for these fractions
        raise InputError(f"{len(beats)} beat(s) are too few to split into train, validation and test "
                         f"({_first_line(exc)})") from None


def _split_beats(beats: Beats, idx: np.ndarray, protocol: str, test_fraction: float, val_fraction: float,
                 seed: int) -> Split:
    from sklearn.model_selection import train_test_split

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


def _fixed_validation(beats: Beats, idx: np.ndarray, protocol: str, val_records: list[str], test_fraction: float,
                      seed: int) -> Split:
    """The inter split with the named training records as validation (split_beats' ``val_records``)."""
    if protocol != "inter":
        raise InputError("--val-records names whole records of the inter-patient split; the intra split draws "
                         "random beats (use --split inter)")
    split = _split_beats(beats, idx, protocol, test_fraction, 0.0, seed)
    present = set(beats.record[split.train].tolist())
    if len(set(val_records)) != len(val_records):
        raise InputError(f"--val-records: a record is named twice ({', '.join(val_records)})")
    unknown = [repr(r) if not r else r for r in val_records if r not in present]
    if unknown or not val_records:
        raise InputError(f"--val-records: {unknown[0] if unknown else 'no record'} is not among the training records "
                         f"({', '.join(sorted(present))})")
    if present <= set(val_records):
        raise InputError("--val-records: every training record is held out; leave some to train on")
    held = np.isin(beats.record[split.train], val_records)
    return Split(split.train[~held], split.train[held], split.test, protocol)


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
    record 208 of DS1, stays in training), and leaves at least one record for training. If no draw satisfies this (few records, as in small test
    sets), the draw whose S and V shares come closest to the band is kept. With fewer than two records there is no
    patient-wise validation: val is empty. Returns sorted index arrays.
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

    try:
        keep, _ = train_test_split(np.arange(len(beats)), train_size=limit, random_state=seed,
                                   stratify=_stratify(beats.y))
    except ValueError:  # fewer beats asked for than there are classes: a random subset, like _stratify's fallback
        keep, _ = train_test_split(np.arange(len(beats)), train_size=limit, random_state=seed)
    return beats.subset(np.sort(keep))


def load_split(source: str = "synthetic", mitdb_dir: str | os.PathLike | None = None,
               kaggle_dir: str | os.PathLike | None = None, split: str = "intra", limit: int | None = None,
               seed: int = 0, val_fraction: float = 0.1, synthetic_seconds: float = 60.0,
               download: bool = True, progress: bool = False, npz: str | os.PathLike | None = None,
               val_records: Sequence[str] | None = None) -> tuple[Beats, Split]:
    """Beats of ``source`` (a stratified subset of ``limit`` beats when given; 0 or None: all) and their split;
    ``npz``: read the beats from that file (``ecglib prepare``) instead of ``source``.

    The same call in the training notebook and the comparison notebook yields the same test beats, because the
    subset and the split depend on (source, limit, split, seed, val_fraction, val_records) alone.
    """
    if npz is not None:
        beats = load_npz(npz)
    else:
        beats = load_beats(source, mitdb_dir=mitdb_dir, kaggle_dir=kaggle_dir, synthetic_seconds=synthetic_seconds,
                           seed=0, download=download, progress=progress)
    beats = limit_beats(beats, limit or None, seed=seed)
    return beats, split_beats(beats, split, val_fraction=val_fraction, seed=seed, val_records=val_records)


def data_config(source: str, mitdb_dir: str | os.PathLike | None = None, kaggle_dir: str | os.PathLike | None = None,
                split: str = "intra", limit: int | None = None, val_fraction: float = 0.1,
                synthetic_seconds: float = 60.0, npz: str | os.PathLike | None = None,
                val_records: Sequence[str] | None = None) -> dict[str, Any]:
    """What a run folder records about its data (``metrics.json`` ``config.data``), folders made absolute so the
    comparison notebook finds them from wherever it runs. Same keys as ``ecglib train`` writes: ``npz`` (beats read
    from that file) replaces the source's keys by "data"; "val_records" is there only when records are named, so
    that the checkpoints of runs from before the option still resume."""
    def absolute(p: str | os.PathLike | None) -> str | None:
        return str(Path(p).expanduser().resolve()) if p else None

    named = {"val_records": list(val_records)} if val_records else {}
    if npz is not None:
        return {"data": absolute(npz), "limit": limit, "split": split, "val_fraction": val_fraction, **named}
    return {"source": source, "mitdb_dir": absolute(mitdb_dir), "kaggle_dir": absolute(kaggle_dir),
            "synthetic_seconds": synthetic_seconds, "limit": limit or None, "split": split,
            "val_fraction": val_fraction, **named}


def class_table(beats: Beats) -> Any:
    """One row per AAMI class: its description, beat count and share of all beats."""
    import pandas as pd

    counts = beats.class_counts()
    total = max(1, len(beats))
    return pd.DataFrame({"class": [CLASS_NAMES[c] for c in CLASSES],
                         "beats": [counts[c] for c in CLASSES],
                         "share (%)": [round(100 * counts[c] / total, 2) for c in CLASSES]},
                        index=pd.Index(list(CLASSES), name="AAMI"))


def majority_class(beats: Beats) -> tuple[str, float]:
    """The most frequent class and the accuracy of always predicting it (the majority baseline)."""
    counts = np.bincount(beats.y, minlength=len(CLASSES))
    top = int(counts.argmax())
    return CLASSES[top], float(counts[top] / max(1, counts.sum()))


def record_composition(beats: Beats) -> Any:
    """Beats per record (rows) and class (columns), with a total column; records in MIT-BIH order."""
    import pandas as pd

    frame = beats.to_frame()
    table = pd.crosstab(frame["record"], frame["cls"]).reindex(columns=list(CLASSES), fill_value=0)
    order = [r for r in MITDB_RECORDS if r in table.index] + sorted(r for r in table.index if r not in MITDB_RECORDS)
    table = table.loc[order]
    table.columns = pd.Index(list(CLASSES), name="class")
    table["total"] = table.sum(axis=1)
    return table


def has_record_names(beats: Beats) -> bool:
    """True when the beats carry MIT-BIH record names, so the inter-patient split is possible."""
    return beats.meta.get("source") != "kaggle" and bool(np.isin(beats.record, DS1).any()
                                                         and np.isin(beats.record, DS2).any())


def split_table(beats: Beats, seed: int = 0, val_fraction: float = 0.1,
                protocols: Sequence[str] | None = None) -> Any:
    """Beats per class in train/validation/test of each protocol (inter only with MIT-BIH record names)."""
    import pandas as pd

    if protocols is None:
        protocols = ("intra", "inter") if has_record_names(beats) else ("intra",)
    rows = []
    for protocol in protocols:
        split = split_beats(beats, protocol, val_fraction=val_fraction, seed=seed)
        for part in ("train", "val", "test"):
            idx = getattr(split, part)
            counts = np.bincount(beats.y[idx], minlength=len(CLASSES))
            rows.append({"protocol": protocol, "part": part, **dict(zip(CLASSES, counts.tolist())),
                         "beats": len(idx), "records": len(np.unique(beats.record[idx]))})
    return pd.DataFrame(rows).set_index(["protocol", "part"])


