"""Whole records labelled with a trained model, written as WFDB annotations, and scored from the command line."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb
from conftest import REPO, assert_one_line_error, copy_records, run_cli, run_main

from ecglib.config import RECIPE_TRAIN_KEYS, RECIPES, TrainConfig
from ecglib.data.extract import beats_from_peaks
from ecglib.data.facts import DS1
from ecglib.data.inputs import model_inputs, to_tensors
from ecglib.data.records import read_lead
from ecglib.data.splits import split_beats
from ecglib.ec57.annotate import CLASS_CODE, UNCLASSIFIED_CODE, annotate_record, load_trained
from ecglib.ec57.annotations import read_annotations, write_annotations
from ecglib.ec57.bxb import BXB_CLASS, compare
from ecglib.ec57.detect import detect_r_peaks, find_local_peaks
from ecglib.ec57.score import score_record
from ecglib.experiments.study import execute_notebook
from ecglib.inference import predict
from ecglib.training.run import run_training


@pytest.fixture(scope="module")
def trained_run(synthetic_beats, tmp_path_factory) -> Path:
    """A run folder with a one-epoch ResNet of width 8 and one block, trained on the synthetic DS1 records."""

    run = tmp_path_factory.mktemp("run") / "tiny"
    split = split_beats(synthetic_beats, "inter", seed=0)
    run_training("resnet", synthetic_beats, split, run,
                 TrainConfig(epochs=1, batch_size=64, optimizer="adam", lr=3e-3, threads=1),
                 {"width": 8, "blocks": 1}, progress=False, data_config={"source": "synthetic"})
    assert (run / "best.pt").exists() and set(np.unique(synthetic_beats.record[split.train])) <= set(DS1)
    return run


@pytest.fixture(scope="module")
def trained(trained_run):
    return load_trained(trained_run)


# ------------------------------------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def bad_records(synthetic_records, tmp_path_factory) -> Path:
    folder = copy_records(synthetic_records, tmp_path_factory.mktemp("bad") / "records")
    dat = folder / "208.dat"
    dat.write_bytes(dat.read_bytes()[: dat.stat().st_size // 2])  # truncated signal
    sig_len = wfdb.rdheader(str(folder / "100")).sig_len
    wfdb.wrann("100", "far", sample=np.array([100, sig_len + 500, sig_len + 900]), symbol=["N", "N", "N"],
               write_dir=str(folder))
    (folder / "100.empty").write_bytes(b"")
    (folder / "100.junk").write_bytes(b"these are not WFDB annotations\n" * 4)
    shutil.copy(folder / "100.atr", folder / "100.same")
    return folder


def test_beats_from_peaks_is_the_training_path(synthetic_records, synthetic_beats):
    # load_mitdb cuts a record's beats through beats_from_peaks: the same call on the record's lead and its atr
    # beats gives the very rows that training read.
    signal, fs, lead = read_lead(synthetic_records / "213")
    ann = wfdb.rdann(str(synthetic_records / "213"), "atr")
    keep = np.isin(ann.symbol, list("NLRejAaJSVEF/fQ"))
    part = beats_from_peaks(signal, fs, ann.sample[keep], "213", np.asarray(ann.symbol)[keep])
    rows = synthetic_beats.record == "213"
    assert lead == "MLII"
    np.testing.assert_array_equal(part.x, synthetic_beats.x[rows])
    np.testing.assert_array_equal(part.y, synthetic_beats.y[rows])
    np.testing.assert_array_equal(part.sample, synthetic_beats.sample[rows])
    unlabelled = beats_from_peaks(signal, fs, ann.sample[keep])
    assert (unlabelled.y == -1).all() and np.array_equal(unlabelled.x, part.x)


def test_reference_detector_classifies_the_training_beats(trained, synthetic_records, synthetic_beats, tmp_path):

    result = annotate_record(trained, synthetic_records / "213", detector="reference", out_dir=tmp_path)
    rows = synthetic_beats.record == "213"
    ann = wfdb.rdann(str(synthetic_records / "213"), "atr")
    beats = np.isin(ann.symbol, list(BXB_CLASS))
    np.testing.assert_array_equal(result.sample, ann.sample[beats])
    # The predictions equal the model's on the beats that training extracted from the same R peaks.
    x, _ = to_tensors(synthetic_beats, np.flatnonzero(rows))
    expected, _ = predict(trained.model, x)
    kept = np.isin(result.sample, synthetic_beats.sample[rows])
    np.testing.assert_array_equal(result.label[kept], expected)
    assert (result.label[~kept] == -1).all() and (result.symbol[~kept] == UNCLASSIFIED_CODE).all()
    assert set(result.symbol) <= set(CLASS_CODE.values())
    assert result.path == tmp_path / "213.ecglib" and result.csv == tmp_path / "213.ecglib.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["213.ecglib", "213.ecglib.csv"]
    line = result.summary_line()
    assert line.startswith(f"213: {len(result.sample)} beats") and "x real time" in line


def test_wrann_rdann_round_trip(tmp_path):
    sample = np.array([10, 400, 790, 1180, 1500])
    symbol = np.array(["N", "A", "V", "F", "Q"])
    path = write_annotations(tmp_path / "rec", "test", sample, symbol, 360.0, tmp_path / "out")
    assert path == tmp_path / "out" / "rec.test"
    back = wfdb.rdann(str(tmp_path / "out" / "rec"), "test")
    np.testing.assert_array_equal(back.sample, sample)
    assert list(back.symbol) == list(symbol) and back.fs == 360
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["rec.test"]  # no temporary folder left
    # The classes written are the ones bxb reads back.
    assert [BXB_CLASS[s] for s in back.symbol] == ["N", "S", "V", "F", "Q"]


def test_find_local_peaks_equals_wfdb():
    from wfdb.processing.peaks import find_local_peaks as wfdb_find_local_peaks

    rng = np.random.default_rng(0)
    for trial in range(200):
        radius = int(rng.integers(1, 25))
        n = int(rng.integers(2 * radius + 2, 300))
        # Integer-valued signals have plateaus, where wfdb's scan order decides which sample is the peak.
        sig = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.normal(size=n)
        expected = np.asarray(wfdb_find_local_peaks(sig, radius), dtype=np.int64)
        np.testing.assert_array_equal(find_local_peaks(sig, radius), expected, err_msg=str(trial))
    assert find_local_peaks(np.ones(50), 5).size == 0


def test_xqrs_detector_matches_wfdb_and_finds_the_beats(synthetic_records):
    from wfdb.processing import xqrs_detect

    signal, fs, _ = read_lead(synthetic_records / "208")
    peaks = detect_r_peaks(signal, fs, "xqrs", align=False)
    np.testing.assert_array_equal(peaks, np.unique(xqrs_detect(signal, fs=fs, verbose=False)))
    ann = wfdb.rdann(str(synthetic_records / "208"), "atr")
    c = compare(ann.sample, ann.symbol, peaks, ["N"] * len(peaks), fs, learning_period=0, sig_len=len(signal))
    stats = c.stats()
    assert stats["Q Se"] > 95 and stats["Q +P"] > 95, stats


def test_annotate_and_score_commands(trained_run, synthetic_records, tmp_path, capsys):
    out = tmp_path / "ann"
    r = run_main(capsys, "annotate", trained_run, synthetic_records / "100", f"{synthetic_records / '213'}.hea",
                 "--detector", "reference", "--out", out)
    assert r.rc == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("100: ") and lines[1].startswith("213: ") and lines[2].startswith("2 records")
    assert sorted(p.name for p in out.iterdir()) == ["100.ecglib", "100.ecglib.csv", "213.ecglib", "213.ecglib.csv"]
    csv_path = tmp_path / "scores" / "ec57.csv"
    r = run_main(capsys, "score", "atr", "ecglib", synthetic_records, "100", "213", "--test-dir", out,
                 "--learning-period", "0", "--csv", csv_path)
    assert r.rc == 0, r.stderr
    table = r.stdout.splitlines()
    assert table[0].startswith("Record") and table[1].startswith("100 ") and table[2].startswith("213 ")
    gross = next(line for line in table if line.startswith("Gross")).split()
    assert gross[1:3] == ["100.00", "100.00"]  # reference R peaks: every beat is matched
    import csv

    rows = list(csv.DictReader(csv_path.open()))
    assert [row["record"] for row in rows] == ["100", "213", "gross", "average"]
    # The CSV's counts are the comparison's own.
    comp = score_record(synthetic_records / "213", "atr", "ecglib", learning_period=0, test_dir=out)
    assert int(rows[1]["Nn"]) == comp.count("N", "n") and int(rows[1]["Vv"]) == comp.count("V", "v")


def test_a_multi_record_command_labels_the_good_records(trained_run, bad_records, tmp_path, capsys):
    """Each refused recording is one line on stderr; the others are labelled and written; the exit status is 2."""
    out = tmp_path / "out"
    missing = tmp_path / "nowhere" / "100"
    r = run_main(capsys, "annotate", trained_run, bad_records / "100", missing, bad_records / "208",
                 bad_records / "213", "--out", out, "--quiet")
    assert r.rc == 2 and "Traceback" not in r.stderr
    lines = r.error_lines()
    assert len(lines) == 2, r.stderr
    assert lines[0] == f"ecglib: error: {missing}.hea: record header not found (give EDF, CSV and npy files with " \
                       "their extension)"
    assert lines[1].startswith(f"ecglib: error: {bad_records / '208.dat'}: truncated signal file")
    assert [line.split(":")[0] for line in r.stdout.splitlines()[:2]] == ["100", "213"]
    assert sorted(p.name for p in out.iterdir()) == ["100.ecglib", "100.ecglib.csv", "213.ecglib", "213.ecglib.csv"]


def test_a_record_without_mlii_is_read_from_its_first_lead_and_said(trained_run, bad_records, tmp_path, capsys):
    r = run_main(capsys, "annotate", trained_run, bad_records / "102", "--out", tmp_path, "--quiet")
    assert r.rc == 0, r.stderr
    assert "lead V5 (the first ECG lead, no lead II; the model learnt from MLII)" in r.stdout
    r = run_main(capsys, "annotate", trained_run, bad_records / "102", "--lead", "1", "--out", tmp_path, "--quiet")
    # The synthetic V2, like most people's, has its QRS complexes pointing down: the beats are read turned over.
    assert "lead V2 (--lead; the model learnt from MLII; read turned over: its QRS complexes point down)" in r.stdout


def test_annotate_bad_run_folders(trained_run, synthetic_records, tmp_path, capsys):
    record = synthetic_records / "100"
    r = run_main(capsys, "annotate", record, "--model", tmp_path / "no-such-run")
    assert_one_line_error(r, "no-such-run", "run folder not found")
    (tmp_path / "empty").mkdir()
    r = run_main(capsys, "annotate", tmp_path / "empty", record)  # a folder first is the run folder
    assert_one_line_error(r, "empty", "not a trained model")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "best.pt").write_bytes(b"not a checkpoint")
    r = run_main(capsys, "annotate", broken, record)
    assert_one_line_error(r, "best.pt", "not a readable checkpoint")
    r = run_main(capsys, "annotate", record, "--model", "no-such-model")
    assert_one_line_error(r, "--model no-such-model: no pretrained model of that name")
    r = run_main(capsys, "annotate", trained_run, record, "--model", trained_run)
    assert_one_line_error(r, f"{trained_run}: a folder, not a recording")
    assert not (synthetic_records / "100.ecglib").exists()


@pytest.mark.parametrize("test_ann, needles", [
    ("far", ["100.far", "2 of 3 annotations lie at or past the signal", "another record"]),
    ("empty", ["100.empty", "empty annotation file"]),
    ("junk", ["100.junk", "unreadable annotation file"]),
    ("none", ["100.none", "annotation file not found"]),
])
def test_score_bad_annotation_files(test_ann, needles, bad_records, tmp_path, capsys):
    csv_path = tmp_path / "s.csv"
    r = run_main(capsys, "score", "atr", test_ann, bad_records, "100", "--learning-period", "0", "--csv", csv_path)
    assert_one_line_error(r, *needles)
    assert not csv_path.exists()


def test_score_refuses_a_learning_period_longer_than_the_record(bad_records, capsys):
    r = run_main(capsys, "score", "atr", "same", bad_records, "100")  # 25 s records, default 300 s
    assert_one_line_error(r, "100", "shorter than the learning period")


@pytest.mark.parametrize("bad, shown", [("nan", "nan"), ("-5", "-5"), ("inf", "inf"), ("5 min", "'5 min'")])
def test_score_refuses_a_learning_period_that_is_not_seconds(bad, shown, bad_records, tmp_path, capsys):
    csv_path = tmp_path / "s.csv"
    with pytest.raises(SystemExit) as exc:
        run_main(capsys, "score", "atr", "same", bad_records, "100", "--learning-period", bad, "--csv", csv_path)
    assert exc.value.code == 2 and capsys.readouterr().err.strip() == (
        f"ecglib: error: score: argument --learning-period: must be a number >= 0, not {shown}")
    assert not csv_path.exists()


def test_cli_error_in_a_real_process(tmp_path):
    r = run_cli("annotate", tmp_path / "100", "--model", tmp_path / "no-run")
    assert_one_line_error(r, "run folder not found")


def test_annotate_notebook_runs_offline(trained_run, tmp_path):
    """04_annotate with its synthetic default, a short record and no learning period, through papermill."""
    import nbformat


    out = execute_notebook(REPO / "notebooks" / "04_annotate.ipynb",
                                  tmp_path / "04_annotate.ipynb",
                                  {"model": str(trained_run), "synthetic_seconds": 40, "learning_period": 0.0,
                                   "threads": 1}, cwd=tmp_path, progress=False)
    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert "Beat-by-beat comparison results for record" in text and "QRS sensitivity" in text
    assert len(images) == 1  # the strip
    assert (tmp_path / "annotate" / "213.ecglib").exists() and (tmp_path / "annotate" / "ec57.csv").exists()


@pytest.mark.realdata
def test_the_default_detector_on_real_records(MITDB):
    """On real MIT-BIH records (a clean one and the noisy 105), the default detector finds the beats as EC57
    scores them."""
    for name, floor in (("100", 99.9), ("105", 98.0)):
        signal, fs, _ = read_lead(MITDB / name, "MLII")
        peaks = detect_r_peaks(signal, fs)
        ref = read_annotations(MITDB / name, "atr", len(signal), fs=fs)
        c = compare(ref.sample, ref.symbol, peaks, ["N"] * len(peaks), fs, sig_len=len(signal),
                         ref_subtypes=ref.subtype, record=name)
        s = c.stats()
        assert s["Q Se"] >= floor and s["Q +P"] >= floor, (name, s)
        # The reference against itself: every scored beat on the diagonal.
        same = compare(ref.sample, ref.symbol, ref.sample, ref.symbol, fs, sig_len=len(signal), record=name)
        assert np.trace(same.matrix) == same.matrix.sum() == same.reference_beats() > 1500


def test_score_missing_record_or_folder(bad_records, tmp_path, capsys):
    r = run_main(capsys, "score", "atr", "same", bad_records, "999", "--learning-period", "0")
    assert_one_line_error(r, "999.hea", "record header not found")
    r = run_main(capsys, "score", "atr", "same", tmp_path / "nowhere")
    assert_one_line_error(r, "nowhere", "record folder not found")


def test_reference_detector_gives_a_rhythm_recipe_model_its_training_inputs(synthetic_beats, synthetic_records,
                                                                             tmp_path):
    """A model on the rhythm recipe (rhythm features, neighbours, template difference) labels a record from its R
    peaks exactly as it labels the training pipeline's beats of that record."""

    recipe = RECIPES["beat+rhythm"]
    split = split_beats(synthetic_beats, "inter", seed=0)
    run_training("resnet", synthetic_beats, split, tmp_path / "run",
                 TrainConfig(epochs=1, batch_size=64, optimizer="adam", lr=3e-3, threads=1,
                             **{k: recipe[k] for k in RECIPE_TRAIN_KEYS}),
                 {"width": 8, "blocks": 1}, progress=False, data_config={"source": "synthetic"},
                 features="beat+rhythm", context=recipe["context"], template=recipe["template"])
    trained = load_trained(tmp_path / "run")
    assert trained.model.rhythm_features and trained.model.config["in_channels"] == 4
    result = annotate_record(trained, synthetic_records / "213", detector="reference",
                                      out_dir=tmp_path / "ann")
    rows = np.flatnonzero(synthetic_beats.record == "213")
    x, _, r = model_inputs(synthetic_beats, trained.model.config).part(rows)
    expected, _ = predict(trained.model, x, rhythm=r)
    kept = np.isin(result.sample, synthetic_beats.sample[rows])
    assert kept.sum() == len(rows)
    np.testing.assert_array_equal(result.label[kept], expected)


def test_score_leaves_out_annotations_past_the_end_and_says_so(bad_records, tmp_path, capsys):
    """An annotation at the sample after the last is not scored (bxb compares up to the record's end) and the
    report says how many were left out; the record's statistics are those of the file without it."""
    ann = wfdb.rdann(str(bad_records / "100"), "atr")
    sig_len = wfdb.rdheader(str(bad_records / "100")).sig_len
    folder = copy_records(bad_records, tmp_path / "records")
    wfdb.wrann("100", "plus", sample=np.append(ann.sample, sig_len), symbol=[*ann.symbol, "N"],
               write_dir=str(folder))
    plus = run_main(capsys, "score", "atr", "plus", folder, "100", "--learning-period", "0")
    same = run_main(capsys, "score", "atr", "same", folder, "100", "--learning-period", "0")
    assert plus.rc == 0 == same.rc, plus.stderr
    assert "100: 1 plus annotation(s) at or past the last sample left out" in plus.stdout
    table = [line for line in plus.stdout.splitlines() if line.startswith("100 ")]
    assert table == [line for line in same.stdout.splitlines() if line.startswith("100 ")]


def test_score_of_several_records_scores_the_good_ones_and_refuses_the_broken_one(bad_records, tmp_path, capsys):
    """A record with a broken file stops none of the others: they are scored and summed, the broken one is one
    line on stderr, and the exit status says that something was refused."""
    folder = copy_records(bad_records, tmp_path / "records")
    shutil.copy(folder / "213.atr", folder / "213.same")
    (folder / "232.same").write_bytes(b"not WFDB annotations at all\n" * 3)
    result = run_main(capsys, "score", "atr", "same", folder, "100", "232", "213", "--learning-period", "0",
                      "--csv", tmp_path / "s.csv")
    assert result.rc == 2
    assert result.stderr.splitlines() == [next(line for line in result.stderr.splitlines() if "232.same" in line)]
    assert result.stderr.startswith("ecglib: error: ") and "unreadable annotation file" in result.stderr
    assert "Summary of results from 2 records" in result.stdout
    scored = [line.split()[0] for line in result.stdout.splitlines() if line[:3] in ("100", "213", "232")]
    assert scored == ["100", "213"]
    assert (tmp_path / "s.csv").exists()
