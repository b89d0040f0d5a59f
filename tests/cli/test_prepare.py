"""`ecglib prepare`: beats written from every source, and every bad input refused in one line."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    SYNTHETIC_RECORDS,
    assert_one_line_error,
    copy_records,
    kaggle_rows,
    run_cli_many,
    run_main,
    write_kaggle,
)

from ecglib.data.beats import load_npz
from ecglib.data.facts import BEAT_LENGTH, CLASSES


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
