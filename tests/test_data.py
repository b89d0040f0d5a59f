"""Beats from every source, the AAMI mapping, lead choice, splits, the cache, `ecglib prepare` and its bad inputs."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb
from conftest import (
    DS1_RECORDS,
    DS2_RECORDS,
    PACED,
    SYNTHETIC_RECORDS,
    assert_one_line_error,
    copy_records,
    run_cli_many,
    run_main,
)

import ecglib.data.extract
import ecglib.data.sources
from ecglib.data.beats import Beats, load_npz, save_npz
from ecglib.data.extract import extract_beats
from ecglib.data.facts import AAMI, BEAT_LENGTH, CLASSES, DS1, DS2, MITDB_RECORDS, PACED_RECORDS
from ecglib.data.records import ensure_mitdb, load_mitdb
from ecglib.data.sources import load_beats
from ecglib.data.splits import limit_beats, split_beats
from ecglib.data.synthetic import write_synthetic_mitdb
from ecglib.errors import InputError


def check_beats(beats: Beats) -> None:
    """The Beats contract: shapes, dtypes, range and labels that agree with the symbols."""
    n = len(beats)
    assert n > 0
    assert beats.x.shape == (n, BEAT_LENGTH) and beats.x.dtype == np.float32
    assert np.isfinite(beats.x).all()
    assert beats.x.min() >= 0.0 and beats.x.max() <= 1.0
    assert beats.y.shape == (n,) and beats.y.dtype == np.int64
    assert set(np.unique(beats.y)) <= set(range(len(CLASSES)))
    assert beats.record.shape == beats.sample.shape == beats.symbol.shape == (n,)
    assert beats.sample.dtype == np.int64


def beat_annotations(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ann = wfdb.rdann(str(folder / name), "atr")
    samples, symbols = np.asarray(ann.sample), np.asarray(ann.symbol)
    is_beat = np.isin(symbols, list(AAMI))
    return samples[is_beat], symbols[is_beat], samples[~is_beat], symbols[~is_beat]


# ---------------------------------------------------------------------------------------------------- mitdb path
def test_mitdb_beats_contract(synthetic_beats, synthetic_records):
    beats = synthetic_beats
    check_beats(beats)
    assert set(np.unique(beats.record)) == set(SYNTHETIC_RECORDS)
    # every label is the AAMI class of the beat's own symbol
    assert np.array_equal(beats.y, np.array([AAMI[s] for s in beats.symbol]))
    assert beats.meta["source"] == "mitdb" and beats.meta["records"] == list(SYNTHETIC_RECORDS)
    # every beat sits on a beat annotation of its record, and each record loses at most its last beats
    for name in SYNTHETIC_RECORDS:
        ann_samples, ann_symbols, _, _ = beat_annotations(synthetic_records, name)
        mine = beats.record == name
        pos = np.searchsorted(ann_samples, beats.sample[mine])
        assert np.array_equal(ann_samples[pos], beats.sample[mine])
        assert np.array_equal(ann_symbols[pos], beats.symbol[mine])
        assert len(ann_samples) - 3 <= mine.sum() <= len(ann_samples)
    # the synthetic mix has normal, ventricular and paced beats in these records
    counts = beats.class_counts()
    assert counts["N"] > 0 and counts["V"] > 0 and counts["Q"] > 0
    assert sum(counts.values()) == len(beats)


def test_aami_mapping_of_symbols():
    expected = {"N": "NLRej", "S": "AaJS", "V": "VE", "F": "F", "Q": "/fQ"}
    for cls, symbols in expected.items():
        for s in symbols:
            assert AAMI[s] == CLASSES.index(cls), s
    assert set(AAMI) == set("".join(expected.values()))
    for non_beat in "+~|x!\"[]":
        assert non_beat not in AAMI


def test_non_beat_annotations_are_skipped(synthetic_records, tmp_path):
    folder = copy_records(synthetic_records, tmp_path / "rec")
    name = "208"
    beats_before = load_mitdb(folder, records=[name], download=False)
    ann = wfdb.rdann(str(folder / name), "atr")
    assert {"+", "~"} <= set(ann.symbol)  # the generator writes rhythm and noise annotations
    # add more non-beat annotations: a non-conducted P wave, an isolated QRS-like artefact and a comment
    beat_samples = set(ann.sample.tolist())
    extra_samples = [s for s in range(500, 8000, 397) if s not in beat_samples][:6]
    extra_symbols = ["x", "|", '"', "x", "|", '"'][: len(extra_samples)]
    samples = np.concatenate([ann.sample, extra_samples])
    symbols = list(ann.symbol) + extra_symbols
    aux = list(ann.aux_note) + ["" if s != '"' else "comment" for s in extra_symbols]
    order = np.argsort(samples, kind="stable")
    wfdb.wrann(name, "atr", sample=samples[order], symbol=[symbols[i] for i in order],
               aux_note=[aux[i] for i in order], write_dir=str(folder))
    beats_after = load_mitdb(folder, records=[name], download=False)
    np.testing.assert_array_equal(beats_after.sample, beats_before.sample)
    np.testing.assert_array_equal(beats_after.x, beats_before.x)
    np.testing.assert_array_equal(beats_after.symbol, beats_before.symbol)
    assert not np.isin(beats_after.sample, extra_samples).any()
    assert set(beats_after.symbol) <= set(AAMI)


def _lead_beats(folder: Path, name: str, channel: str) -> np.ndarray:
    record = wfdb.rdrecord(str(folder / name), channel_names=[channel])
    samples, _, _, _ = beat_annotations(folder, name)
    x, _ = extract_beats(record.p_signal[:, 0], record.fs, samples)
    return x


def test_mlii_is_chosen_by_name(synthetic_beats, synthetic_records):
    header = wfdb.rdheader(str(synthetic_records / "114"))
    assert header.sig_name == ["V5", "MLII"]  # MLII second, as in the real record 114
    assert synthetic_beats.meta["leads"]["114"] == "MLII"
    mine = synthetic_beats.x[synthetic_beats.record == "114"]
    np.testing.assert_array_equal(mine, _lead_beats(synthetic_records, "114", "MLII"))
    assert not np.array_equal(mine, _lead_beats(synthetic_records, "114", "V5"))
    for name in ("106", "100"):
        assert synthetic_beats.meta["leads"][name] == "MLII"


def test_record_without_mlii_falls_back_to_first_lead(synthetic_beats, synthetic_records):
    header = wfdb.rdheader(str(synthetic_records / "102"))
    assert "MLII" not in header.sig_name and header.sig_name[0] == "V5"
    assert synthetic_beats.meta["leads"]["102"] == "V5"
    assert synthetic_beats.meta["records_without_mlii"] == {"102": "V5"}
    mine = synthetic_beats.x[synthetic_beats.record == "102"]
    np.testing.assert_array_equal(mine, _lead_beats(synthetic_records, "102", "V5"))


def test_extract_beats_geometry():
    """A beat starts at its R peak, lasts 1.2 median RR and is zero-padded to 187 samples."""
    fs = 125
    rr = 100  # samples at 125 Hz: 1.2 * 100 = 120 samples of signal per beat
    signal = np.zeros(20 * fs)
    peaks = np.arange(50, len(signal) - 200, rr)
    signal[peaks] = 1.0
    x, kept = extract_beats(signal, fs, peaks)
    assert x.shape == (len(peaks), BEAT_LENGTH) and np.array_equal(kept, np.arange(len(peaks)))
    assert np.all(x[:, 0] == 1.0)  # the R peak is the first sample and the window maximum
    assert np.all(x[:-1, 100] == 1.0)  # the next R peak, one RR later, is inside the 1.2 RR segment
    assert np.all(x[:, 120:] == 0.0)  # zero padding after 1.2 RR
    # a beat whose segment would run past the end is dropped
    x2, kept2 = extract_beats(signal, fs, np.append(peaks, len(signal) - 10))
    assert len(x2) == len(peaks) and len(peaks) not in kept2


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


def test_synthetic_generator_is_deterministic(tmp_path):
    names = ["100", "208"]
    a = write_synthetic_mitdb(tmp_path / "a", names, seconds=20, seed=11)
    write_synthetic_mitdb(tmp_path / "b", names, seconds=20, seed=11)
    write_synthetic_mitdb(tmp_path / "c", ["208"], seconds=20, seed=11)  # alone: same content
    write_synthetic_mitdb(tmp_path / "d", names, seconds=20, seed=12)
    assert a == names
    for name in names:
        for ext in ("hea", "dat", "atr"):
            assert (tmp_path / "a" / f"{name}.{ext}").read_bytes() == (tmp_path / "b" / f"{name}.{ext}").read_bytes()
    for ext in ("hea", "dat", "atr"):
        assert (tmp_path / "a" / f"208.{ext}").read_bytes() == (tmp_path / "c" / f"208.{ext}").read_bytes()
    assert (tmp_path / "a" / "100.dat").read_bytes() != (tmp_path / "d" / "100.dat").read_bytes()
    record = wfdb.rdrecord(str(tmp_path / "a" / "100"))
    assert record.fs == 360 and record.sig_len == 20 * 360 and record.fmt == ["212", "212"]


@pytest.mark.parametrize("kwargs, match", [({"seconds": 0}, "seconds"), ({"seconds": float("nan")}, "seconds"),
                                           ({"fs": 10}, "fs"), ({"records": ["1 00"]}, "record name")])
def test_synthetic_generator_rejects_bad_arguments(tmp_path, kwargs, match):
    kwargs = {"records": ["100"], **kwargs}
    with pytest.raises(InputError, match=match):
        write_synthetic_mitdb(tmp_path, **kwargs)


# --------------------------------------------------------------------------------------------------------- kaggle
def kaggle_rows(n: int, seed: int) -> np.ndarray:
    """Rows like the Kaggle files: 187 samples in [0, 1] (zero-padded tail) and the label as a float."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, BEAT_LENGTH))
    x[:, 150:] = 0.0
    y = np.arange(n) % len(CLASSES)
    return np.column_stack([x, y.astype(float)])


def write_kaggle(folder: Path, train: np.ndarray | None = None, test: np.ndarray | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("mitbih_train.csv", train), ("mitbih_test.csv", test)):
        if rows is not None:
            np.savetxt(folder / name, rows, delimiter=",", fmt="%.18e")  # the real files' number format
    return folder


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


# --------------------------------------------------------------------------------------------------------- splits
def _toy_beats(counts: dict[int, int], records: np.ndarray | None = None) -> Beats:
    y = np.concatenate([np.full(n, c) for c, n in counts.items()]).astype(np.int64)
    n = len(y)
    rng = np.random.default_rng(0)
    y = y[rng.permutation(n)]
    record = records if records is not None else np.full(n, "toy")
    return Beats(rng.random((n, BEAT_LENGTH)).astype(np.float32), y, record.astype(str), np.arange(n),
                 np.asarray(CLASSES)[y], {"source": "toy"})


def test_intra_split_is_stratified_80_20_with_val_from_train():
    counts = {0: 700, 1: 100, 2: 100, 3: 50, 4: 50}
    beats = _toy_beats(counts)
    split = split_beats(beats, "intra", test_fraction=0.2, val_fraction=0.1, seed=0)
    assert split.protocol == "intra"
    assert split.sizes() == {"train": 720, "val": 80, "test": 200}
    parts = [set(split.train), set(split.val), set(split.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == set(range(len(beats)))
    # stratified: each class keeps its share in test, in val and in train
    for c, n in counts.items():
        assert (beats.y[split.test] == c).sum() == n // 5
        assert (beats.y[split.val] == c).sum() == n * 4 // 5 // 10
    # deterministic for a seed, different for another
    again = split_beats(beats, "intra", seed=0)
    np.testing.assert_array_equal(again.test, split.test)
    assert not np.array_equal(split_beats(beats, "intra", seed=1).test, split.test)
    # no validation part when asked for none
    assert len(split_beats(beats, "intra", val_fraction=0.0).val) == 0


def test_intra_split_on_records(synthetic_beats):
    split = split_beats(synthetic_beats, "intra")
    n = len(synthetic_beats)
    assert len(set(split.train) | set(split.val) | set(split.test)) == n
    assert len(split.train) + len(split.val) + len(split.test) == n
    assert abs(len(split.test) - 0.2 * n) <= 1


def test_inter_split_follows_de_chazal(synthetic_beats):
    split = split_beats(synthetic_beats, "inter")
    rec = synthetic_beats.record
    train_records = set(rec[split.train]) | set(rec[split.val])
    assert train_records <= set(DS1) and train_records == set(DS1_RECORDS)
    assert set(rec[split.test]) <= set(DS2) and set(rec[split.test]) == set(DS2_RECORDS)
    used = np.concatenate([split.train, split.val, split.test])
    assert not np.isin(rec[used], PACED).any()
    assert len(used) == len(set(used.tolist())) == int(np.isin(rec, DS1 + DS2).sum())
    # validation comes from DS1 beats only
    assert set(rec[split.val]) <= set(DS1)


def test_split_errors(synthetic_beats):
    with pytest.raises(InputError, match="unknown split"):
        split_beats(synthetic_beats, "kfold")
    toy = _toy_beats({0: 30, 1: 30})
    with pytest.raises(InputError, match="DS1"):
        split_beats(toy, "inter")


def test_limit_beats_is_stratified(synthetic_beats):
    small = limit_beats(synthetic_beats, 100, seed=0)
    assert len(small) == 100
    assert limit_beats(synthetic_beats, None) is synthetic_beats
    assert limit_beats(synthetic_beats, 10**6) is synthetic_beats
    full = synthetic_beats.class_counts()
    for c, n in small.class_counts().items():
        assert abs(n - 100 * full[c] / len(synthetic_beats)) <= 1.5


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


# ------------------------------------------------------------------------------------------------ ensure_mitdb
def test_download_failure_names_the_folder(tmp_path, monkeypatch):
    calls = []

    def offline(db, folder, records=None, **kwargs):
        calls.append((db, folder, list(records or [])))
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(wfdb, "dl_database", offline)
    target = tmp_path / "mitdb"
    with pytest.raises(InputError) as err:
        ensure_mitdb(target, records=["100", "101"])
    message = str(err.value)
    assert str(target) in message and "download" in message and "Name or service not known" in message
    assert "\n" not in message
    assert calls == [("mitdb", str(target), ["100", "101"])]
    # with download=False nothing is attempted
    calls.clear()
    with pytest.raises(InputError, match="2 of 2 records missing"):
        ensure_mitdb(tmp_path / "other", records=["100", "101"], download=False)
    assert calls == []


def test_download_that_leaves_records_missing(tmp_path, monkeypatch, synthetic_records):
    def partial(db, folder, records=None, **kwargs):  # "downloads" only the first record
        for ext in ("hea", "dat", "atr"):
            shutil.copy(synthetic_records / f"100.{ext}", Path(folder) / f"100.{ext}")

    monkeypatch.setattr(wfdb, "dl_database", partial)
    with pytest.raises(InputError, match="left 1 records missing .first: 213"):
        ensure_mitdb(tmp_path / "mitdb", records=["100", "213"])
    assert ensure_mitdb(tmp_path / "mitdb", records=["100"], download=False) == tmp_path / "mitdb"


# ----------------------------------------------------------------------------------------------- ecglib prepare
def test_prepare_cli_writes_beats(cli, synthetic_records, synthetic_beats, tmp_path):
    out = tmp_path / "prepared" / "beats.npz"
    result = cli("prepare", "--source", "mitdb", "--mitdb-dir", synthetic_records, "--no-download",
                     "--out", out)
    assert result.rc == 0, result.stderr
    assert "Traceback" not in result.stderr
    with np.load(out, allow_pickle=False) as z:
        assert z["x"].shape == (len(synthetic_beats), BEAT_LENGTH) and z["x"].dtype == np.float32
        assert z["y"].dtype == np.int64
        np.testing.assert_array_equal(z["x"], synthetic_beats.x)
        np.testing.assert_array_equal(z["y"], synthetic_beats.y)
        np.testing.assert_array_equal(z["record"], synthetic_beats.record)
        np.testing.assert_array_equal(z["sample"], synthetic_beats.sample)
    assert os.listdir(out.parent) == ["beats.npz"]
    # per-class counts as printed
    lines = result.stdout.splitlines()
    counts = synthetic_beats.class_counts()
    for c in CLASSES:
        row = next(line for line in lines if line.split()[0] == c)
        assert int(row.split()[1].replace(",", "")) == counts[c]
    assert f"all {len(synthetic_beats):,} beats" in result.stdout
    assert "102 (V5)" in result.stdout
    # the file is what `ecglib train --data` reads
    back = load_npz(out)
    np.testing.assert_array_equal(back.symbol, synthetic_beats.symbol)


# ------------------------------------------------------------------------------------------ prepare: bad inputs
def _edit_header(path: Path, fn) -> None:
    lines = path.read_text().splitlines()
    fn(lines)
    path.write_text("\n".join(lines) + "\n")


def _siglen_up(lines):
    parts = lines[0].split()
    parts[3] = str(int(parts[3]) * 2)
    lines[0] = " ".join(parts)


def _three_signals(lines):
    parts = lines[0].split()
    parts[1] = "3"
    lines[0] = " ".join(parts)
    lines.insert(3, lines[2].replace(" V1", " V2"))


def _three_signals_no_line(lines):
    parts = lines[0].split()
    parts[1] = "3"
    lines[0] = " ".join(parts)


BAD = "213"  # the record the mitdb cases break (DS2, with ventricular and fusion beats)

MITDB_CASES = {
    # name: (how to break a copy of the records, extra CLI args, text expected in the error line)
    "missing_record_hea": (lambda d: (d / f"{BAD}.hea").unlink(), ["--no-download"], [f"{BAD}.hea", "missing"]),
    "missing_record_dat": (lambda d: (d / f"{BAD}.dat").unlink(), ["--no-download"], [f"{BAD}.hea/.dat", "missing"]),
    "missing_record_atr": (lambda d: (d / f"{BAD}.atr").unlink(), ["--no-download"], ["missing", BAD]),
    "truncated_dat": (lambda d: os.truncate(d / f"{BAD}.dat", 4000), [], [f"{BAD}.dat", "truncated"]),
    "header_sig_len_too_long": (lambda d: _edit_header(d / f"{BAD}.hea", _siglen_up), [], [f"{BAD}.dat", "header"]),
    "header_more_signals": (lambda d: _edit_header(d / f"{BAD}.hea", _three_signals), [], [f"{BAD}.dat", "3 channels"]),
    "header_signal_count_without_lines": (lambda d: _edit_header(d / f"{BAD}.hea", _three_signals_no_line), [],
                                          [f"{BAD}."]),
    "empty_hea": (lambda d: os.truncate(d / f"{BAD}.hea", 0), [], [f"{BAD}.hea", "header"]),
    "garbage_hea": (lambda d: (d / f"{BAD}.hea").write_text("this is not a header\n"), [], [f"{BAD}.hea", "header"]),
    "empty_dat": (lambda d: os.truncate(d / f"{BAD}.dat", 0), [], [f"{BAD}.dat", "0 bytes"]),
    "empty_atr": (lambda d: os.truncate(d / f"{BAD}.atr", 0), [], [f"{BAD}.atr", "empty"]),
    "garbage_atr": (lambda d: (d / f"{BAD}.atr").write_bytes(b"\x01\x02\x03"), [], [f"{BAD}.atr", "annotations"]),
    "empty_records_list": (lambda d: (d / "RECORDS").write_text(""), [], ["RECORDS", "empty"]),
}


def _kaggle_with(train_fn=None, test_fn=None):
    def make(folder: Path):
        write_kaggle(folder, kaggle_rows(40, 0), kaggle_rows(15, 1))
        if train_fn:
            train_fn(folder / "mitbih_train.csv")
        if test_fn:
            test_fn(folder / "mitbih_test.csv")
    return make


def _set_cell(row: int, col: int, value: float):
    def fn(path: Path):
        rows = np.loadtxt(path, delimiter=",")
        rows[row, col] = value
        np.savetxt(path, rows, delimiter=",", fmt="%.18e")
    return fn


KAGGLE_CASES = {
    "csv_wrong_columns": (_kaggle_with(lambda p: np.savetxt(p, kaggle_rows(40, 0)[:, 1:], delimiter=",")),
                          ["mitbih_train.csv", "187 columns, expected 188"]),
    "csv_nan": (_kaggle_with(_set_cell(7, 30, np.nan)), ["mitbih_train.csv", "non-finite", "beat 7"]),
    "csv_inf": (_kaggle_with(test_fn=_set_cell(3, 100, np.inf)), ["mitbih_test.csv", "non-finite", "beat 3"]),
    "csv_label_7": (_kaggle_with(_set_cell(5, BEAT_LENGTH, 7.0)), ["mitbih_train.csv", "label 7", "0-4"]),
    "csv_label_negative": (_kaggle_with(_set_cell(5, BEAT_LENGTH, -1.0)), ["mitbih_train.csv", "label -1", "0-4"]),
    "csv_label_fraction": (_kaggle_with(_set_cell(5, BEAT_LENGTH, 2.5)), ["mitbih_train.csv", "label 2.5"]),
    "csv_empty": (_kaggle_with(lambda p: p.write_text("")), ["mitbih_train.csv", "empty"]),
    "csv_text": (_kaggle_with(test_fn=lambda p: p.write_text("a,b,c\n1,2,3\n")), ["mitbih_test.csv", "numbers"]),
    "csv_missing_test_file": (_kaggle_with(test_fn=lambda p: p.unlink()), ["mitbih_test.csv", "not found"]),
}


# The cases the brief of the command names run as real processes (in parallel); the rest go through
# ecglib.cli.main in this process, which is the same code and the same error handling without the start-up cost.
SUBPROCESS_CASES = {
    "missing_folder_no_download", "missing_folder_download_fails", "missing_record_hea", "truncated_dat",
    "header_sig_len_too_long", "header_more_signals", "empty_hea", "empty_dat", "csv_wrong_columns", "csv_nan",
    "csv_inf", "csv_label_7", "csv_empty",
}
OTHER_CASES = {
    # name: (needles in the error line; {case} is the case folder)
    "missing_folder_no_download": ["{case}/mitdb", "48 of 48 records missing", "dl_database"],
    "missing_folder_download_fails": ["{case}/mitdb", "download from PhysioNet failed", "no route to physionet.org"],
    "missing_kaggle_folder": ["{case}/nowhere", "folder not found"],
    "output_not_npz": ["beats.csv", ".npz"],
}
OFFLINE_PRELUDE = ("import wfdb\ndef _offline(*a, **k):\n    raise ConnectionError('no route to physionet.org')\n"
                   "wfdb.dl_database = _offline\n")


def build_case(name: str, root: Path, synthetic_records: Path) -> tuple[list, Path, str | None]:
    """Make the broken input of one case under root/name; return the CLI arguments, the (empty) output folder
    and the Python prelude a subprocess needs (None: plain `python -m ecglib`)."""
    case = root / name
    out = case / "out"
    out.mkdir(parents=True)
    target = out / "beats.npz"
    if name in MITDB_CASES:
        breaker, extra, _ = MITDB_CASES[name]
        folder = copy_records(synthetic_records, case / "mitdb")
        # the broken record first: the run fails before it reads (and imports) anything it does not need
        (folder / "RECORDS").write_text("\n".join([BAD] + [r for r in SYNTHETIC_RECORDS if r != BAD]) + "\n")
        breaker(folder)
        return ["prepare", "--source", "mitdb", "--mitdb-dir", folder, *extra, "--out", target], out, None
    if name in KAGGLE_CASES:
        KAGGLE_CASES[name][0](case / "kaggle")
        return ["prepare", "--source", "kaggle", "--kaggle-dir", case / "kaggle", "--out", target], out, None
    if name == "missing_folder_no_download":
        return ["prepare", "--source", "mitdb", "--mitdb-dir", case / "mitdb", "--no-download", "--out", target], \
            out, None
    if name == "missing_folder_download_fails":  # wfdb's download replaced in the child: fails like offline
        return ["prepare", "--source", "mitdb", "--mitdb-dir", case / "mitdb", "--out", target], out, OFFLINE_PRELUDE
    if name == "missing_kaggle_folder":
        return ["prepare", "--source", "kaggle", "--kaggle-dir", case / "nowhere", "--out", target], out, None
    if name == "output_not_npz":
        return ["prepare", "--source", "mitdb", "--mitdb-dir", synthetic_records, "--out", out / "beats.csv"], \
            out, None
    raise KeyError(name)


@pytest.fixture(scope="module")
def prepare_failures(synthetic_records, tmp_path_factory):
    """The subprocess cases, each broken in its own folder, run through `ecglib prepare` in parallel."""
    root = tmp_path_factory.mktemp("prepare-failures")
    env = {"ECGLIB_CACHE": str(root / "cache")}
    names = sorted(SUBPROCESS_CASES)
    built = [build_case(name, root, synthetic_records) for name in names]
    results = run_cli_many([(args, {"env": env, "python_prelude": prelude}) for args, _, prelude in built])
    return {name: (result, out, root / name) for name, (_, out, _), result in zip(names, built, results)}


@pytest.fixture
def failure(prepare_failures, synthetic_records, tmp_path, capsys):
    """failure(name) -> (CliResult, output folder, case folder), from a subprocess or from cli.main here."""
    def get(name):
        if name in prepare_failures:
            return prepare_failures[name]
        args, out, prelude = build_case(name, tmp_path, synthetic_records)
        assert prelude is None
        return run_main(capsys, *args), out, tmp_path / name
    return get


def _check_failure(failure, name, needles):
    result, out, case_dir = failure(name)
    needles = [n.replace("{case}", str(case_dir)) for n in needles]
    line = assert_one_line_error(result, *needles)
    assert result.stdout == ""
    assert os.listdir(out) == [], f"left behind in the output folder: {os.listdir(out)}"
    return line, case_dir


def test_the_required_cases_run_in_subprocesses(prepare_failures):
    """Each case the command's brief names ran as its own `python -m ecglib prepare` process and failed there
    with exit status 2 (the per-case tests then check its one line)."""
    assert set(prepare_failures) == SUBPROCESS_CASES
    for name, (result, _, _) in prepare_failures.items():
        assert result.args[0] == "prepare" and result.rc == 2, (name, result.rc, result.stderr[-300:])


@pytest.mark.parametrize("name", list(MITDB_CASES))
def test_prepare_rejects_bad_mitdb_input(failure, name):
    line, case_dir = _check_failure(failure, name, MITDB_CASES[name][2])
    assert str(case_dir / "mitdb") in line  # the error names the file or folder in full


@pytest.mark.parametrize("name", list(KAGGLE_CASES))
def test_prepare_rejects_bad_kaggle_input(failure, name):
    line, case_dir = _check_failure(failure, name, KAGGLE_CASES[name][1])
    assert str(case_dir / "kaggle") in line
    assert "np.float64" not in line


@pytest.mark.parametrize("name", list(OTHER_CASES))
def test_prepare_rejects_missing_folders_and_bad_output(failure, name):
    _check_failure(failure, name, OTHER_CASES[name])


def test_prepare_output_that_cannot_be_written(synthetic_records, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    result = run_main(capsys, "prepare", "--source", "mitdb", "--mitdb-dir", synthetic_records, "--no-download",
                      "--out", blocker / "beats.npz")
    assert_one_line_error(result, str(blocker))
    assert blocker.read_text() == "in the way"


def test_save_npz_leaves_no_temporary_file_when_it_fails(synthetic_beats, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()

    def disk_full(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(InputError, match="beats.npz: cannot write \\(no space left on the device\\)"):
        save_npz(synthetic_beats, out / "beats.npz")
    assert os.listdir(out) == []


# ------------------------------------------------------------------------------------------------------ real data
KAGGLE_TOTALS = {"N": 90_589, "S": 2_779, "V": 7_236, "F": 803, "Q": 8_039}


@pytest.fixture(scope="session")
def real_beats(MITDB, tmp_path_factory):
    return load_beats("mitdb", mitdb_dir=MITDB, download=False,
                           cache_dir=tmp_path_factory.mktemp("real-cache"))


@pytest.mark.realdata
def test_real_mitdb_class_counts(real_beats):
    check_beats(real_beats)
    assert set(np.unique(real_beats.record)) == set(MITDB_RECORDS)
    counts = real_beats.class_counts()
    for c, expected in KAGGLE_TOTALS.items():
        assert abs(counts[c] - expected) <= 0.005 * expected, (c, counts[c], expected)
    assert abs(len(real_beats) - 109_446) <= 0.005 * 109_446


@pytest.mark.realdata
def test_real_mitdb_leads(real_beats):
    assert real_beats.meta["records_without_mlii"] == {"102": "V5", "104": "V5"}
    assert real_beats.meta["leads"]["114"] == "MLII"


@pytest.mark.realdata
def test_real_mitdb_splits(real_beats):
    intra = split_beats(real_beats, "intra")
    assert abs(len(intra.train) + len(intra.val) - 87_554) <= 0.01 * 87_554
    assert abs(len(intra.test) - 21_892) <= 0.01 * 21_892
    inter = split_beats(real_beats, "inter")
    rec = real_beats.record
    assert set(rec[inter.train]) | set(rec[inter.val]) == set(DS1)
    assert set(rec[inter.test]) == set(DS2)
    used = np.concatenate([inter.train, inter.val, inter.test])
    assert not np.isin(rec[used], PACED_RECORDS).any()
    assert len(used) + int(np.isin(rec, PACED_RECORDS).sum()) == len(real_beats)
