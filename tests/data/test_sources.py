"""The front door to the beats: each source through load_beats, the verified cache, and npz files."""
from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import (
    SYNTHETIC_RECORDS,
    check_beats,
    copy_records,
    kaggle_rows,
    write_kaggle,
)

import ecglib.data.extract
import ecglib.data.sources
from ecglib.data.beats import load_npz, save_npz
from ecglib.data.extract import extract_beats
from ecglib.data.facts import BEAT_LENGTH, CLASSES
from ecglib.data.sources import load_beats
from ecglib.data.splits import split_beats
from ecglib.errors import InputError


def test_load_beats_mitdb_source_reads_the_records_file(synthetic_records, synthetic_beats, cache_dir):
    beats = load_beats("mitdb", mitdb_dir=synthetic_records, download=False)
    check_beats(beats)
    np.testing.assert_array_equal(beats.x, synthetic_beats.x)
    np.testing.assert_array_equal(beats.y, synthetic_beats.y)
    np.testing.assert_array_equal(beats.record, synthetic_beats.record)
    assert beats.meta["records"] == list(SYNTHETIC_RECORDS)


def test_load_beats_needs_its_folder():
    with pytest.raises(InputError, match="--mitdb-dir"):
        load_beats("mitdb")
    with pytest.raises(InputError, match="--kaggle-dir"):
        load_beats("kaggle")
    with pytest.raises(InputError, match="unknown data source"):
        load_beats("physionet")


# ------------------------------------------------------------------------------------------------------ synthetic
def test_synthetic_source_through_load_beats(cache_dir):
    records = ["208", "100", "102"]
    beats = load_beats("synthetic", records=records, synthetic_seconds=20, seed=5)
    check_beats(beats)
    assert set(np.unique(beats.record)) == set(records)
    assert beats.meta["source"] == "synthetic" and beats.meta["seed"] == 5 and beats.meta["seconds"] == 20
    assert (cache_dir / "synthetic-mitdb-s5-20s" / "208.hea").exists()
    again = load_beats("synthetic", records=records, synthetic_seconds=20, seed=5, cache=False)
    np.testing.assert_array_equal(again.x, beats.x)
    other = load_beats("synthetic", records=records, synthetic_seconds=20, seed=6, cache=False)
    assert other.x.shape != beats.x.shape or not np.array_equal(other.x, beats.x)


def test_kaggle_source(tmp_path):
    train, test = kaggle_rows(60, 0), kaggle_rows(25, 1)
    folder = write_kaggle(tmp_path / "kaggle", train, test)
    assert (folder / "mitbih_train.csv").read_text().split("\n")[0].count(",") == BEAT_LENGTH
    beats = load_beats("kaggle", kaggle_dir=folder)
    check_beats(beats)
    assert len(beats) == 85
    np.testing.assert_allclose(beats.x, np.vstack([train, test])[:, :BEAT_LENGTH].astype(np.float32))
    np.testing.assert_array_equal(beats.y, np.concatenate([train, test])[:, -1].astype(np.int64))
    assert list(np.unique(beats.record)) == ["mitbih_test", "mitbih_train"]
    np.testing.assert_array_equal(beats.sample[:60], np.arange(60))
    np.testing.assert_array_equal(beats.symbol, np.asarray(CLASSES)[beats.y])
    # intra keeps the given files: test = the test file, train + val = the train file
    split = split_beats(beats, "intra", val_fraction=0.2, seed=0)
    np.testing.assert_array_equal(split.test, np.arange(60, 85))
    np.testing.assert_array_equal(np.sort(np.concatenate([split.train, split.val])), np.arange(60))
    assert len(split.val) == 12
    with pytest.raises(InputError, match="record names"):
        split_beats(beats, "inter")


# ---------------------------------------------------------------------------------------------------------- cache
def test_cache_serves_the_second_load(synthetic_records, tmp_path, cache_dir, monkeypatch):
    folder = copy_records(synthetic_records, tmp_path / "rec")
    first = load_beats("mitdb", mitdb_dir=folder, download=False)
    cached = sorted((cache_dir / "beats").glob("mitdb-*.npz"))
    assert len(cached) == 1
    # the entry and its checksum, nothing else
    assert sorted(p.name for p in (cache_dir / "beats").iterdir()) == [cached[0].name, cached[0].name + ".blake2b"]

    def no_extraction(*args, **kwargs):
        raise AssertionError("extraction ran although the cache holds these beats")

    with monkeypatch.context() as m:
        m.setattr(ecglib.data.sources, "load_mitdb", no_extraction)
        m.setattr(ecglib.data.extract, "extract_beats", no_extraction)
        second = load_beats("mitdb", mitdb_dir=folder, download=False)
    for field in ("x", "y", "record", "sample", "symbol"):
        np.testing.assert_array_equal(getattr(second, field), getattr(first, field))
    assert second.x.dtype == np.float32 and second.y.dtype == np.int64
    assert second.meta["records_without_mlii"] == {"102": "V5"}

    # cache=False, a changed record file and a corrupt cache entry all extract again
    calls = []
    real = extract_beats

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ecglib.data.extract, "extract_beats", counting)
    load_beats("mitdb", mitdb_dir=folder, download=False, cache=False)
    assert len(calls) == len(SYNTHETIC_RECORDS)
    calls.clear()
    # the key follows the content: a new modification time alone is served from the cache ...
    stat = (folder / "100.dat").stat()
    os.utime(folder / "100.dat", (stat.st_atime, stat.st_mtime + 100))
    same = load_beats("mitdb", mitdb_dir=folder, download=False)
    assert calls == []
    np.testing.assert_array_equal(same.x, first.x)
    # ... and bytes changed in place, size and modification time kept, are extracted again
    stat = (folder / "100.atr").stat()
    raw = bytearray((folder / "100.atr").read_bytes())
    raw[0] ^= 1  # the first annotation moves by one sample
    (folder / "100.atr").write_bytes(bytes(raw))
    os.utime(folder / "100.atr", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = load_beats("mitdb", mitdb_dir=folder, download=False)
    assert len(calls) == len(SYNTHETIC_RECORDS)
    assert not np.array_equal(changed.sample, first.sample)
    assert len(list((cache_dir / "beats").glob("mitdb-*.npz"))) == 2
    calls.clear()
    for entry in (cache_dir / "beats").glob("mitdb-*.npz"):
        entry.write_bytes(b"garbage")
    rebuilt = load_beats("mitdb", mitdb_dir=folder, download=False)
    assert len(calls) == len(SYNTHETIC_RECORDS)
    np.testing.assert_array_equal(rebuilt.x, changed.x)


def test_save_and_load_npz_roundtrip(synthetic_beats, tmp_path):
    path = tmp_path / "out" / "beats.npz"
    save_npz(synthetic_beats, path)
    assert os.listdir(path.parent) == ["beats.npz"]
    back = load_npz(path)
    for field in ("x", "y", "record", "sample", "symbol"):
        np.testing.assert_array_equal(getattr(back, field), getattr(synthetic_beats, field))
    assert back.meta["leads"] == synthetic_beats.meta["leads"]


def test_save_npz_leaves_no_temporary_file_when_it_fails(synthetic_beats, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()

    def disk_full(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(InputError, match="beats.npz: cannot write \\(no space left on the device\\)"):
        save_npz(synthetic_beats, out / "beats.npz")
    assert os.listdir(out) == []
