"""Heartbeats for the study through one front door: :func:`load_beats` reads any source (WFDB records, the Kaggle
CSVs, the embedded synthetic records) through the verified cache, :func:`load_split` adds the split, and
:func:`beats_of_run` finds again the beats a run was trained and tested on.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..config import SOURCES
from ..errors import InputError
from ..files import atomic_dir
from .beats import Beats, load_npz, save_npz
from .cache import (
    cache_root,
    discard,
    fingerprint,
    folder_problem,
    read_cache_entry,
    say,
    write_cache_entry,
    write_checksums,
)
from .checks import read_record_list
from .facts import EXTRACTION_VERSION, MITDB_RECORDS
from .inputs import model_inputs
from .kaggle import KAGGLE_FILES, load_kaggle
from .records import ensure_mitdb, load_mitdb
from .splits import Split, limit_beats, split_beats


def load_beats(source: str = "synthetic", mitdb_dir: str | os.PathLike | None = None,
               kaggle_dir: str | os.PathLike | None = None, records: Sequence[str] | None = None,
               synthetic_seconds: float = 60.0, seed: int = 0, cache: bool = True,
               cache_dir: str | os.PathLike | None = None, download: bool = True, progress: bool = False,
               rhythm: bool = False, leads: str = "rule") -> Beats:
    """Beats of one source, read through a compressed cache keyed by the source, its parameters and its files.

    source: "mitdb" (WFDB records in ``mitdb_dir``), "kaggle" (CSVs in ``kaggle_dir``) or "synthetic" (seeded
    MIT-BIH-like WFDB records written to the cache and read through the mitdb path). The WFDB sources always carry
    rhythm features (``Beats.rhythm``); ``rhythm=True`` asks for them, which the Kaggle source refuses at once.
    leads: "rule" or "all" (:func:`ecglib.data.records.load_mitdb`); the Kaggle CSVs hold one lead.
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
        names = (KAGGLE_FILES if source == "kaggle"
                 else [f"{r}.{e}" for r in (records or MITDB_RECORDS) for e in ("hea", "dat", "atr")])
        key_src = json.dumps({"v": EXTRACTION_VERSION, "key": 2, "source": source, "folder": str(folder.resolve()),
                              "leads": leads,
                              "records": list(records) if records else None,
                              "files": fingerprint(folder, names)}, sort_keys=True)
        key = cache_root(cache_dir) / "beats" / f"{source}-{hashlib.sha1(key_src.encode()).hexdigest()[:16]}.npz"
        cached = read_cache_entry(key, load_npz)
        if cached is not None:
            return cached
    if source == "kaggle":
        beats = load_kaggle(folder)
    else:
        beats = load_mitdb(folder, records=records, download=download, progress=progress, leads=leads)
        beats.meta["source"] = source
        if source == "synthetic":
            beats.meta.update(seed=seed, seconds=synthetic_seconds)
    if key is not None:
        write_cache_entry(beats, key, save_npz)
    return beats


def synthetic_folder(seed: int = 0, seconds: float = 60.0, cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the seeded synthetic WFDB records (written on first use): the offline default dataset.

    The folder holds a CHECKSUMS file (BLAKE2b of every record file); a folder whose files do not match it, a
    hand-edited or half-deleted one, is rebuilt with one line on stderr.
    """
    folder = cache_root(cache_dir) / f"synthetic-mitdb-s{seed}-{seconds:g}s"
    problem = folder_problem(folder, MITDB_RECORDS)
    if problem is None:
        return folder
    if folder.exists():
        say(f"{folder}: {problem}; rebuilding the synthetic records")
        discard(folder)
    from .synthetic import write_synthetic_mitdb  # wfdb's writer, imported only to write the records

    with atomic_dir(folder) as tmp:
        write_synthetic_mitdb(tmp, MITDB_RECORDS, seconds=seconds, seed=seed)
        (tmp / "RECORDS").write_text("\n".join(MITDB_RECORDS) + "\n")
        write_checksums(tmp)
    if folder_problem(folder, MITDB_RECORDS) is not None:  # a broken folder of another process was in the way
        raise InputError(f"{folder}: the synthetic records could not be written whole; remove this folder")
    return folder


def load_split(source: str = "synthetic", mitdb_dir: str | os.PathLike | None = None,
               kaggle_dir: str | os.PathLike | None = None, split: str = "intra", limit: int | None = None,
               seed: int = 0, val_fraction: float = 0.1, synthetic_seconds: float = 60.0,
               download: bool = True, progress: bool = False, npz: str | os.PathLike | None = None,
               val_records: Sequence[str] | None = None, leads: str = "rule") -> tuple[Beats, Split]:
    """Beats of ``source`` (a stratified subset of ``limit`` beats when given; 0 or None: all) and their split;
    ``npz``: read the beats from that file (``ecglib prepare``) instead of ``source``.

    The same call in the training notebook and the comparison notebook yields the same test beats, because the
    subset and the split depend on (source, limit, split, seed, val_fraction, val_records, leads) alone.
    """
    if npz is not None:
        beats = load_npz(npz)
    else:
        beats = load_beats(source, mitdb_dir=mitdb_dir, kaggle_dir=kaggle_dir, synthetic_seconds=synthetic_seconds,
                           seed=0, download=download, progress=progress, leads=leads)
    beats = limit_beats(beats, limit or None, seed=seed)
    return beats, split_beats(beats, split, val_fraction=val_fraction, seed=seed, val_records=val_records)


def data_config(source: str, mitdb_dir: str | os.PathLike | None = None, kaggle_dir: str | os.PathLike | None = None,
                split: str = "intra", limit: int | None = None, val_fraction: float = 0.1,
                synthetic_seconds: float = 60.0, npz: str | os.PathLike | None = None,
                val_records: Sequence[str] | None = None, leads: str = "rule") -> dict[str, Any]:
    """What a run folder records about its data (``metrics.json`` ``config.data``), folders made absolute so the
    comparison notebook finds them from wherever it runs. Same keys as ``ecglib train`` writes: ``npz`` (beats read
    from that file) replaces the source's keys by "data"; "val_records" is there only when records are named, so
    that the checkpoints of runs from before the option still resume; "leads" likewise only when every lead is read."""
    def absolute(p: str | os.PathLike | None) -> str | None:
        return str(Path(p).expanduser().resolve()) if p else None

    named = {"val_records": list(val_records)} if val_records else {}
    if leads != "rule":
        named["leads"] = leads
    if npz is not None:
        return {"data": absolute(npz), "limit": limit, "split": split, "val_fraction": val_fraction, **named}
    return {"source": source, "mitdb_dir": absolute(mitdb_dir), "kaggle_dir": absolute(kaggle_dir),
            "synthetic_seconds": synthetic_seconds, "limit": limit or None, "split": split,
            "val_fraction": val_fraction, **named}


def beats_of_run(config: Mapping[str, Any], download: bool = False, **overrides: Any) -> tuple[Any, Any]:
    """The beats and split a run used, from its metrics.json ``config`` (empty: the synthetic defaults).

    overrides: arguments of :func:`ecglib.data.load_split` that replace the run's (source, mitdb_dir, kaggle_dir,
    npz, split, limit, seed); giving ``source`` or ``npz`` replaces the run's data altogether.
    """
    d = dict(config.get("data", {}))
    given = {k: v for k, v in overrides.items() if v is not None}
    if "source" in given or "npz" in given:
        d = {k: v for k, v in d.items() if k in ("val_fraction", "limit", "split")}
    settings = {"source": d.get("source") or "synthetic", "mitdb_dir": d.get("mitdb_dir"),
                "kaggle_dir": d.get("kaggle_dir"), "npz": d.get("data"),
                "split": config.get("split", d.get("split", "intra")), "limit": d.get("limit"),
                "seed": config.get("train", {}).get("seed", 0), "val_fraction": d.get("val_fraction", 0.1),
                "synthetic_seconds": d.get("synthetic_seconds", 60.0), "val_records": d.get("val_records"),
                "leads": d.get("leads", "rule"), **given}
    return load_split(download=download, **settings)


class RunTestSet(NamedTuple):
    """A run's test beats as its model takes them: x (n, C, 187), y (n,), rhythm (n, k) or None, and the Beats and
    Split they come from."""

    x: Any
    y: Any
    rhythm: Any
    beats: Beats
    split: Split


def run_test_set(config: Mapping[str, Any], download: bool = False, name: str = "run") -> RunTestSet:
    """The test beats of a run from its metrics.json ``config`` (:func:`beats_of_run`), as the run's model takes
    them (:func:`ecglib.data.inputs.model_inputs`); ``name`` names the run in errors."""
    beats, split = beats_of_run(config, download=download)
    x, y, rhythm = model_inputs(beats, config.get("model", {}), name).part(split.test)
    return RunTestSet(x, y, rhythm, beats, split)
