"""Labelling recordings as people have them: an EDF or CSV copy of a record is labelled exactly as the WFDB
original; the outputs (annotation file, beats CSV, the report hook); the pretrained models; bad input in one line;
long recordings in parts, with the same beats as in one piece."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from conftest import assert_one_line_error, run_args, run_main, write_csv_signal, write_edf

from ecglib.config import DEFAULT_PRETRAINED
from ecglib.data import extract
from ecglib.data.facts import CLASSES, DS2
from ecglib.data.recordings import read_recording
from ecglib.ec57 import annotate
from ecglib.ec57.annotate import annotate_record, annotate_recording, detect_peaks
from ecglib.ec57.score import score_records
from ecglib.ec57.trained import load_model
from ecglib.pretrained.catalog import available, gross, read_card


@pytest.fixture(scope="module")
def default_model():
    return load_model()


def labels_of(folder: Path, name: str) -> tuple[np.ndarray, list[str]]:
    ann = wfdb.rdann(str(folder / name), "ecglib")
    return ann.sample, list(ann.symbol)


# ---------------------------------------------------------------------------------------------- file formats
@pytest.mark.parametrize("fmt", ["edf", "csv"])
def test_a_copy_of_a_record_is_labelled_as_the_wfdb_original(fmt, synthetic_records, tmp_path, capsys):
    """The same peaks and the same classes from an EDF+ copy (edfio) and from a CSV copy (with --fs 360)."""
    copy = tmp_path / "copy"
    copy.mkdir()
    if fmt == "edf":
        path = write_edf(copy / "213.edf", synthetic_records / "213", annotations=True)
        extra = []
    else:
        path = write_csv_signal(copy / "213.csv", synthetic_records / "213")
        extra = ["--fs", "360"]
    r = run_main(capsys, "annotate", synthetic_records / "213", "--out", tmp_path / "wfdb", "--quiet")
    assert r.rc == 0, r.stderr
    r = run_main(capsys, "annotate", path, *extra, "--out", tmp_path / fmt, "--quiet")
    assert r.rc == 0, r.stderr
    assert "lead MLII (MLII by name)" in r.stdout
    sample, symbol = labels_of(tmp_path / "wfdb", "213")
    assert len(sample) > 20
    assert (labels_of(tmp_path / fmt, "213")[0] == sample).all() and labels_of(tmp_path / fmt, "213")[1] == symbol
    wfdb_csv, copy_csv = (pd.read_csv(tmp_path / d / "213.ecglib.csv") for d in ("wfdb", fmt))
    pd.testing.assert_frame_equal(wfdb_csv, copy_csv)


@pytest.mark.realdata
def test_record_100_as_edf_is_labelled_as_the_wfdb_record(MITDB, default_model, tmp_path):
    """Record 100, its first 1,805 s (EDF holds whole seconds), as WFDB (wrsamp, the same 212 samples) and as EDF:
    the same R peaks and the same classes."""
    rec = wfdb.rdrecord(str(MITDB / "100"), physical=False, sampto=1805 * 360)
    wfdb.wrsamp("100", fs=360, units=rec.units, sig_name=rec.sig_name, d_signal=rec.d_signal, fmt=rec.fmt,
                adc_gain=rec.adc_gain, baseline=rec.baseline, write_dir=str(tmp_path))
    (tmp_path / "edf").mkdir()
    edf = write_edf(tmp_path / "edf" / "100.edf", tmp_path / "100")
    a = annotate_record(default_model, tmp_path / "100", out_dir=tmp_path / "a")
    b = annotate_record(default_model, edf, out_dir=tmp_path / "b")
    assert len(a.sample) > 2000 and (a.format, b.format) == ("WFDB", "EDF")
    np.testing.assert_array_equal(a.sample, b.sample)
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_allclose(a.prob, b.prob, atol=1e-5)


@pytest.mark.parametrize("case", ["edf_without_ecg", "csv_of_text", "fs_zero", "csv_without_fs", "unknown_model",
                                  "resnet_solver"])
def test_bad_input_is_one_line(case, synthetic_records, tmp_path, capsys):
    import edfio

    sleep = tmp_path / "sleep.edf"
    edfio.Edf([edfio.EdfSignal(np.zeros(3000), 100.0, label=lab) for lab in ("EEG Fpz-Cz", "Resp")]).write(sleep)
    letter = tmp_path / "letter.csv"
    letter.write_text("Dear reader,\nthis is not an ECG.\n")
    signal = tmp_path / "signal.csv"
    signal.write_text("0.1\n0.2\n0.3\n")
    record = synthetic_records / "100"
    args, needles = {
        # An EDF without an ECG channel: every signal's label names another kind (EEG, EOG, Resp, ...).
        "edf_without_ecg": ([sleep], ["sleep.edf: no ECG lead", "0 EEG Fpz-Cz, 1 Resp", "--lead"]),
        "csv_of_text": ([letter, "--fs", "360"], ["letter.csv: line 2, column 1", "is not a number"]),
        "fs_zero": ([signal, "--fs", "0"], ["argument --fs: must be a number in [1, 100000], not 0"]),
        "csv_without_fs": ([signal], ["signal.csv: a CSV signal does not state its sampling rate"]),
        "unknown_model": ([record, "--model", "resnet-ds9"], ["--model resnet-ds9: no pretrained model"]),
        "resnet_solver": ([record, "--model", "resnet-ds1", "--step-size", "1"], ["resnet-ds1 is a ResNet"]),
    }[case]
    r = run_args(capsys, "annotate", *args, "--out", tmp_path / "out", "--quiet")
    assert_one_line_error(r, *needles)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------- outputs
def test_the_beats_csv(default_model, synthetic_records, tmp_path):
    result = annotate_record(default_model, synthetic_records / "208", out_dir=tmp_path)
    table = pd.read_csv(result.csv, keep_default_na=False)
    assert list(table.columns) == ["time_s", "sample", "class", "rr_before_s", "rr_after_s", "probability"]
    assert table["sample"].tolist() == result.sample.tolist()
    np.testing.assert_allclose(table["time_s"], result.sample / 360, atol=5e-5)
    rr = np.diff(result.sample) / 360
    np.testing.assert_allclose(pd.to_numeric(table["rr_before_s"][1:]), rr, atol=5e-5)
    np.testing.assert_allclose(pd.to_numeric(table["rr_after_s"][:-1]), rr, atol=5e-5)
    assert table["rr_before_s"][0] == "" and table["rr_after_s"].iloc[-1] == ""
    classified = result.label >= 0
    assert table["class"][classified].tolist() == [CLASSES[i] for i in result.label[classified]]
    assert (table["class"][~classified] == "").all() and (table["probability"][~classified] == "").all()
    chosen = result.prob[np.flatnonzero(classified), result.label[classified]]
    np.testing.assert_allclose(pd.to_numeric(table["probability"][classified]), chosen, atol=5e-5)
    # the probabilities are the decision's: its class is the most probable
    assert (result.prob[classified].argmax(1) == result.label[classified]).all()
    np.testing.assert_allclose(result.prob[classified].sum(1), 1, atol=1e-5)
    assert result.comparison is not None and result.comparison.stats()["Q Se"] > 95  # 208.atr beside it


def test_the_report_is_written_for_every_good_record_with_an_index(synthetic_records, tmp_path, capsys):
    """--report DIR: one self-contained page per labelled record (the EC57 section where the reference annotations
    are beside it), the index rewritten after each record so that a stopped run leaves an index of what it wrote,
    and a refused record in the middle stops none of it."""
    nowhere = tmp_path / "nowhere.edf"
    r = run_main(capsys, "annotate", synthetic_records / "100", nowhere, synthetic_records / "213", "--out",
                 tmp_path / "out", "--report", tmp_path / "report", "--quiet")
    assert r.rc == 2 and len(r.error_lines()) == 1 and "nowhere.edf: file not found" in r.stderr
    assert r.stdout.splitlines()[-1] == f"report: {tmp_path / 'report' / 'index.html'}"
    pages = sorted(p.name for p in (tmp_path / "report").glob("*.html"))
    assert pages == ["100.html", "213.html", "index.html"]
    index = (tmp_path / "report" / "index.html").read_text()
    assert 'href="100.html"' in index and 'href="213.html"' in index
    page = (tmp_path / "report" / "213.html").read_text()
    assert "data:image/png;base64," in page and "EC57" in page


# ------------------------------------------------------------------------------------------ pretrained models
def test_the_pretrained_models_are_shipped_with_their_cards():
    assert {"resnet-ds1", "odenet-ds1"} <= set(available()) and DEFAULT_PRETRAINED in available()
    for name in available():
        card = read_card(name)
        assert card["license"]["license"].startswith("Open Data Commons Attribution")
        assert card["data"]["test_records"] == list(DS2) and card["seed"] == 0 and card["commit"]
        assert (Path(annotate.__file__).parents[1] / "pretrained" / f"{name}.md").is_file()
        assert (Path(annotate.__file__).parents[1] / "pretrained" / f"{name}.pt").stat().st_size < 2_000_000


def test_models_lists_the_pretrained_models(capsys):
    r = run_main(capsys, "models")
    assert r.rc == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "network", "parameters"]
    for name in available():
        card = read_card(name)
        row = next(line for line in lines if line.split()[0] == name)
        g = gross(card)
        assert f"{card['parameters']:,}" in row and f"{g['V Se']:.2f} / {g['V +P']:.2f}" in row
        assert f"{g['S Se']:.2f} / {g['S +P']:.2f}" in row
        marked = row.split()[1] == "*"  # the default is marked
        assert marked == (name == DEFAULT_PRETRAINED) and row.split()[1 + marked] == card["network"]


def test_annotate_uses_the_default_pretrained_model(synthetic_records, tmp_path, capsys):
    r = run_main(capsys, "annotate", synthetic_records / "100", "--out", tmp_path, "--quiet")
    assert r.rc == 0, r.stderr
    assert f"model {DEFAULT_PRETRAINED}" in r.stdout and (tmp_path / "100.ecglib").exists()
    # the ODE-Net at its training solver (three midpoint steps), which its card compares with the deployed one
    r = run_main(capsys, "annotate", synthetic_records / "100", "--model", "odenet-ds1", "--step-size", "1/3",
                 "--out", tmp_path / "precise", "--quiet")
    assert r.rc == 0, r.stderr


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("name", ["odenet-ds1", "resnet-ds1"])
def test_the_shipped_weights_reproduce_their_card(name, MITDB, tmp_path, capsys):
    """DS2 labelled with the default detector and scored as EC57: the card's gross VEB and SVEB Se and +P within
    0.1 point."""
    r = run_main(capsys, "annotate", *[MITDB / rec for rec in DS2], "--model", name, "--out", tmp_path, "--quiet",
                 "--threads", "1")
    assert r.rc == 0, r.stderr
    _, summary = score_records(MITDB, "atr", "ecglib", list(DS2), test_dir=tmp_path)
    card = gross(read_card(name))
    for key in ("V Se", "V +P", "S Se", "S +P"):
        assert summary.gross[key] == pytest.approx(card[key], abs=0.1), key


# ----------------------------------------------------------------------------------------------- long records
def test_parts_give_the_same_beats_as_one_piece(default_model, tmp_path, monkeypatch):
    """Extraction a block of windows at a time and classification a part at a time: the same classes and
    probabilities as in one piece, at 360 Hz and at a Holter's 128 Hz."""
    from scipy.signal import resample_poly

    from ecglib.data.synthetic import write_synthetic_mitdb

    write_synthetic_mitdb(tmp_path, records=["208"], seconds=300, seed=11)
    rec = read_recording(tmp_path / "208")
    slow = rec.__class__(**{**rec.__dict__, "signal": resample_poly(rec.signal, 16, 45), "fs": 128.0,
                            "reference": None})
    for recording in (rec, slow):
        monkeypatch.setattr(extract, "BLOCK_WINDOWS", 10**6)
        monkeypatch.setattr(annotate, "CLASSIFY_BEATS", 10**6)
        whole = annotate_recording(default_model, recording, write=False)
        monkeypatch.setattr(extract, "BLOCK_WINDOWS", 2)
        monkeypatch.setattr(annotate, "CLASSIFY_BEATS", 37)
        parts = annotate_recording(default_model, recording, write=False)
        assert len(whole.sample) > 300
        np.testing.assert_array_equal(parts.sample, whole.sample)
        np.testing.assert_array_equal(parts.label, whole.label)
        np.testing.assert_array_equal(parts.prob, whole.prob)


def test_detection_in_chunks_finds_the_beats_of_one_piece(tmp_path, monkeypatch):
    """A lead longer than DETECT_SECONDS is detected in chunks, each with the detector's run-up (detect_overlap) of
    its neighbours: the same R peaks as in one piece (here, and on the 24-hour recording of benchmarks/bench_long.py;
    the detectors adapt, so this is measured, not guaranteed)."""
    from ecglib.data.synthetic import write_synthetic_mitdb

    write_synthetic_mitdb(tmp_path, records=["100"], seconds=600, seed=5)
    rec = read_recording(tmp_path / "100")
    whole = detect_peaks(rec.signal, rec.fs)
    monkeypatch.setattr(annotate, "DETECT_SECONDS", 120.0)
    steps = []
    chunked = detect_peaks(rec.signal, rec.fs, step=lambda: steps.append(1))
    assert len(steps) == 5 and len(whole) > 600
    np.testing.assert_array_equal(chunked, whole)


def test_the_summary_says_what_was_done(default_model, synthetic_records, tmp_path):
    result = annotate_record(default_model, synthetic_records / "114", out_dir=tmp_path)
    line = result.summary_line()
    assert line.startswith(f"114: {len(result.sample)} beats (N:")
    assert "lead MLII (MLII by name)" in line and f"model {DEFAULT_PRETRAINED}" in line
    assert "vs reference: QRS Se/+P" in line and line.endswith(f"-> {tmp_path / '114.ecglib'}")
    assert json.loads(json.dumps(result.timings)).keys() == {"read", "detect", "classify", "write"}


# ------------------------------------------------------------------------------------------------- polarity
def test_a_lead_turned_over_is_labelled_as_the_lead_upright(default_model, synthetic_records, tmp_path):
    """The models learnt from lead II, whose QRS complexes point up: a recording whose lead points down (its
    electrodes swapped, or V1) is classified turned over, so that the same beats get the same classes, and the
    summary line and the report say so."""
    rec = read_recording(synthetic_records / "208")
    flipped = rec.__class__(**{**rec.__dict__, "signal": -rec.signal})
    upright = annotate_recording(default_model, rec, write=False)
    down = annotate_recording(default_model, flipped, write=False)
    assert not upright.inverted and down.inverted
    assert "read turned over" in down.summary_line() and "turned over" not in upright.summary_line()
    # Detection is sign-blind (the feature is an absolute slope) and alignment takes the largest absolute value:
    # the same R peaks; the beats are cut from the lead turned back, so the same classes.
    np.testing.assert_array_equal(down.sample, upright.sample)
    assert len(set(upright.label.tolist())) >= 2  # the record's ventricular beats make it a real test
    np.testing.assert_array_equal(down.label, upright.label)
    np.testing.assert_allclose(down.prob, upright.prob, rtol=0, atol=1e-6)


@pytest.mark.parametrize("fs", [360.0, 250.0])
def test_extract_beats_turned_over_is_extract_beats_of_the_negated_lead(synthetic_records, fs):
    """polarity=-1 cuts, bit for bit, the beats of -signal (resampling is linear, IEEE negation exact), without
    a copy of the lead."""
    from scipy.signal import resample_poly

    rec = read_recording(synthetic_records / "208")
    signal = rec.signal if fs == 360.0 else resample_poly(rec.signal, 25, 36)
    peaks = detect_peaks(signal, fs)
    x, kept = extract.extract_beats(signal, fs, peaks, polarity=-1)
    y, kept_y = extract.extract_beats(-signal, fs, peaks)
    np.testing.assert_array_equal(kept, kept_y)
    np.testing.assert_array_equal(x, y)
    assert not np.array_equal(x, extract.extract_beats(signal, fs, peaks)[0])
