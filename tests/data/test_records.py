"""WFDB records read into beats: the lead, the AAMI classes, beat geometry, and the MIT-BIH folder filled or
refused."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb
from conftest import (
    SYNTHETIC_RECORDS,
    check_beats,
    copy_records,
    run_cli,
)

from ecglib.data.extract import extract_beats
from ecglib.data.facts import AAMI, BEAT_LENGTH, CLASSES, MITDB_RECORDS
from ecglib.data.records import ensure_mitdb, load_mitdb
from ecglib.errors import InputError


def beat_annotations(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ann = wfdb.rdann(str(folder / name), "atr")
    samples, symbols = np.asarray(ann.sample), np.asarray(ann.symbol)
    is_beat = np.isin(symbols, list(AAMI))
    return samples[is_beat], symbols[is_beat], samples[~is_beat], symbols[~is_beat]


def _lead_beats(folder: Path, name: str, channel: str) -> np.ndarray:
    record = wfdb.rdrecord(str(folder / name), channel_names=[channel])
    samples, _, _, _ = beat_annotations(folder, name)
    x, _ = extract_beats(record.p_signal[:, 0], record.fs, samples)
    return x


# ------------------------------------------------------------------------------------------------------ real data
KAGGLE_TOTALS = {"N": 90_589, "S": 2_779, "V": 7_236, "F": 803, "Q": 8_039}


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


def _set_gain(folder: Path, record: str, lead: str, gain: str) -> None:
    """Write ``gain`` as the ADC gain of ``lead`` in RECORD.hea (the third field of its signal line)."""
    hea = folder / f"{record}.hea"
    lines = hea.read_text().splitlines()
    for i, line in enumerate(lines[1:], 1):
        tokens = line.split()
        if tokens and tokens[-1] == lead:
            tokens[2] = gain + tokens[2][len(tokens[2].split("(")[0].split("/")[0]):]
            lines[i] = " ".join(tokens)
    hea.write_text("\n".join(lines) + "\n")


def test_a_gain_of_zero_is_uncalibrated_and_read(synthetic_records, synthetic_beats, tmp_path):
    """The WFDB header format reads an ADC gain of 0 as 'uncalibrated'; beats are scaled to [0, 1] per window, so
    the record gives the very beats it gives with its calibration."""
    folder = copy_records(synthetic_records, tmp_path / "records")
    _set_gain(folder, "213", "MLII", "0")
    assert " 0 " in f" {(folder / '213.hea').read_text()} " or "0(" in (folder / "213.hea").read_text()
    beats = load_mitdb(folder, records=["213"], download=False)
    rows = synthetic_beats.record == "213"
    np.testing.assert_allclose(beats.x, synthetic_beats.x[rows], atol=1e-6)
    np.testing.assert_array_equal(beats.y, synthetic_beats.y[rows])


def test_annotations_at_or_past_the_end_are_left_out_and_counted(synthetic_records, synthetic_beats, tmp_path):
    """A reference file may hold an annotation at the sample after the last: it is left out and counted, the
    record's beats are the same, and `ecglib prepare` says so in its summary."""
    folder = copy_records(synthetic_records, tmp_path / "records")
    ann = wfdb.rdann(str(folder / "232"), "atr")
    sig_len = wfdb.rdheader(str(folder / "232")).sig_len
    wfdb.wrann("232", "atr", sample=np.append(ann.sample, sig_len), symbol=[*ann.symbol, "N"],
               write_dir=str(folder))
    beats = load_mitdb(folder, download=False)
    assert beats.meta["annotations_past_end"] == {"232": 1}
    np.testing.assert_array_equal(beats.sample, synthetic_beats.sample)
    np.testing.assert_array_equal(beats.y, synthetic_beats.y)
    result = run_cli("prepare", "--source", "mitdb", "--mitdb-dir", folder, "--no-download", "--no-cache",
                     "--out", tmp_path / "b.npz")
    assert result.rc == 0, result.stderr
    assert "annotations at or past the last sample, left out: 232 (1)" in result.stdout


def test_every_lead_of_a_record_gives_the_same_beats_once_per_lead(synthetic_records, synthetic_beats):
    """leads="all": each beat once per lead, with the same R peak, label and rhythm; the rule's lead's rows are the
    one-lead table's rows; neighbours and templates stay within a record's lead."""
    from ecglib.data.inputs import context_beats, record_templates

    beats = load_mitdb(synthetic_records, download=False, leads="all")
    assert {"MLII", "V1"} <= set(np.unique(beats.lead)) and len(beats) > len(synthetic_beats)
    rule = beats.rule_lead()
    one = synthetic_beats
    order = np.lexsort((beats.sample[rule], beats.record[rule]))
    order_one = np.lexsort((one.sample, one.record))
    np.testing.assert_array_equal(beats.x[rule][order], one.x[order_one])
    np.testing.assert_array_equal(beats.y[rule][order], one.y[order_one])
    for lead in np.unique(beats.lead[~rule]):
        rows = beats.lead == lead
        other = np.flatnonzero(rows)
        twin = {(r, s): i for i, (r, s) in enumerate(zip(beats.record[rule], beats.sample[rule]))}
        idx = np.array([twin[(r, s)] for r, s in zip(beats.record[other], beats.sample[other])])
        np.testing.assert_array_equal(beats.y[other], beats.y[rule][idx])
        np.testing.assert_array_equal(beats.rhythm[other], beats.rhythm[rule][idx])
        assert not np.array_equal(beats.x[other], beats.x[rule][idx])  # another lead, another shape
    context, templates = context_beats(beats), record_templates(beats)
    one_context, one_templates = context_beats(one), record_templates(one)
    np.testing.assert_array_equal(context[rule][order], one_context[order_one])
    np.testing.assert_array_equal(templates[rule][order], one_templates[order_one])
    with pytest.raises(InputError, match="unknown leads 'some'"):
        load_mitdb(synthetic_records, download=False, leads="some")
