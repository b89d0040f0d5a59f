"""Shared fixtures: an isolated cache, a few synthetic WFDB records, the real MIT-BIH folder, and the CLI runner.

Everything here is sized for a busy 2-core machine: records of 25 s, a handful of them, and command-line runs that
can be started in parallel (``run_cli_many``) because each ``python -m ecglib`` pays a few seconds of imports.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from ecglib.cli import main
from ecglib.data.facts import MITDB_RECORDS
from ecglib.data.records import load_mitdb
from ecglib.data.synthetic import write_synthetic_mitdb

REPO = Path(__file__).resolve().parents[1]

# Record names from de Chazal's DS1 and DS2 and one paced record, so that both splits have something to work on.
# 114 stores MLII as its second lead; 102 (paced) has no MLII at all.
DS1_RECORDS = ("106", "114", "208", "209")
DS2_RECORDS = ("100", "213", "232")
PACED = ("102",)
SYNTHETIC_RECORDS = DS1_RECORDS + DS2_RECORDS + PACED
SYNTHETIC_SECONDS = 25
SYNTHETIC_SEED = 3


def pytest_configure(config):
    # One torch thread: on a small, busy machine, several threads spin against each other and against the
    # training jobs next door; results do not depend on it.
    import torch

    torch.set_num_threads(1)
    # wfdb 4.3 calls pandas with inplace=..., which pandas 3 deprecates: hundreds of warnings that are not ours
    config.addinivalue_line("filterwarnings", "ignore:The inplace keyword")


# ------------------------------------------------------------------------------------------------------- cache
@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    """Every test gets its own ECGLIB_CACHE, so no test reads or writes ~/.cache/ecglib or another test's cache."""
    folder = tmp_path / "ecglib-cache"
    monkeypatch.setenv("ECGLIB_CACHE", str(folder))
    return folder


# --------------------------------------------------------------------------------------------------- synthetic
@pytest.fixture(scope="session")
def synthetic_records(tmp_path_factory) -> Path:
    """A folder of a few seeded synthetic MIT-BIH-style records (NAME.hea/.dat/.atr) and a RECORDS file.

    Session-scoped and shared: tests that corrupt records must copy it first (``copy_records``).
    """

    folder = tmp_path_factory.mktemp("synthetic-mitdb")
    written = write_synthetic_mitdb(folder, records=list(SYNTHETIC_RECORDS), seconds=SYNTHETIC_SECONDS,
                                    seed=SYNTHETIC_SEED)
    assert written == list(SYNTHETIC_RECORDS)
    (folder / "RECORDS").write_text("\n".join(SYNTHETIC_RECORDS) + "\n")
    return folder


@pytest.fixture(scope="session")
def synthetic_beats(synthetic_records):
    """The beats of ``synthetic_records`` (read once per session, without the cache)."""

    return load_mitdb(synthetic_records, download=False)


def copy_records(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------------------- mitdb
def mitdb_dir() -> Path:
    env = os.environ.get("ECGLIB_MITDB_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared/data/mitdb"


@pytest.fixture(scope="session")
def MITDB() -> Path:  # noqa: N802 - the name the project's docs use
    """The real MIT-BIH Arrhythmia Database (../shared/data/mitdb from the repo, or $ECGLIB_MITDB_DIR); the test
    is skipped when the folder or any of its 48 records is absent."""

    folder = mitdb_dir()
    if not folder.is_dir():
        pytest.skip(f"real MIT-BIH records not found in {folder} (set ECGLIB_MITDB_DIR)")
    missing = [r for r in MITDB_RECORDS if not all((folder / f"{r}.{e}").exists() for e in ("hea", "dat", "atr"))]
    if missing:
        pytest.skip(f"{folder} lacks {len(missing)} MIT-BIH records (first {missing[0]})")
    return folder


# --------------------------------------------------------------------------------------------------------- CLI
@dataclass
class CliResult:
    rc: int
    stdout: str
    stderr: str
    args: tuple[str, ...] = ()

    def error_lines(self) -> list[str]:
        """stderr split the way a terminal, a log file and a human all split it (a carriage return, as progress
        bars write, counts as a break too)."""
        return self.stderr.splitlines()


def run_cli(*args: str | os.PathLike, env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None,
            timeout: float = 300, python_prelude: str | None = None) -> CliResult:
    """Run ``python -m ecglib ARGS`` in a subprocess; return exit status, stdout and stderr.

    python_prelude: Python code run first in the same interpreter (for instance to replace wfdb.dl_database),
    after which the package runs exactly as ``python -m ecglib`` would.
    """
    argv = [str(a) for a in args]
    if python_prelude is None:
        cmd = [sys.executable, "-m", "ecglib", *argv]
    else:
        code = (python_prelude + "\nimport runpy, sys\nsys.argv = ['ecglib'] + sys.argv[1:]\n"
                "runpy.run_module('ecglib', run_name='__main__', alter_sys=True)\n")
        cmd = [sys.executable, "-c", code, *argv]
    full_env = dict(os.environ)
    full_env.setdefault("PYTHONHASHSEED", "0")
    full_env.setdefault("OMP_NUM_THREADS", "1")
    if env:
        full_env.update(env)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd or REPO, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr, tuple(argv))


def run_cli_many(calls: Sequence[tuple[Sequence[str | os.PathLike], dict]], workers: int = 4) -> list[CliResult]:
    """Run several CLI calls concurrently: each is (args, run_cli keyword arguments). Results in call order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_cli, *args, **kwargs) for args, kwargs in calls]
        return [f.result() for f in futures]


def run_main(capsys, *args: str | os.PathLike) -> CliResult:
    """``ecglib ARGS`` in this process (through ecglib.cli.main, so the same error handling), for the cases
    that do not need a process of their own; stdout and stderr as captured by pytest's capsys."""

    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return CliResult(rc, out, err, tuple(str(a) for a in args))


def run_args(capsys, *args: str | os.PathLike) -> CliResult:
    """run_main for argument errors too: argparse ends with SystemExit, which this turns into the exit status."""
    try:
        return run_main(capsys, *args)
    except SystemExit as exc:
        out, err = capsys.readouterr()
        return CliResult(int(exc.code or 0), out, err, tuple(str(a) for a in args))


@pytest.fixture
def cli():
    """The CLI runner: cli("prepare", "--out", ...) -> CliResult(rc, stdout, stderr)."""
    return run_cli


def assert_one_line_error(result: CliResult, *needles: str) -> str:
    """Exit status 2, exactly one line on stderr, no traceback, and the line contains every needle."""
    assert result.rc == 2, f"exit status {result.rc}, stderr:\n{result.stderr}\nstdout:\n{result.stdout}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = result.error_lines()
    assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}: {result.stderr!r}"
    line = lines[0]
    assert line.startswith("ecglib: error: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def train_then_evaluate(capsys, tmp_path: Path, records: Path, *options) -> tuple[dict, dict]:
    """`prepare` the synthetic records into TMP/beats.npz, `train` a tiny inter-patient ResNet with ``options`` into
    TMP/cli, then `evaluate` the run: (metrics.json of the training, the evaluation's JSON)."""
    import json

    npz = tmp_path / "beats.npz"
    assert run_main(capsys, "prepare", "--source", "mitdb", "--mitdb-dir", records, "--no-download",
                    "--out", npz).rc == 0
    run = tmp_path / "cli"
    result = run_main(capsys, "train", "--model", "resnet", "--data", npz, "--split", "inter", *options,
                      "--width", "8", "--blocks", "1", "--epochs", "1", "--optimizer", "adam", "--lr", "3e-3",
                      "--quiet", "--out", run)
    assert result.rc == 0, result.stderr
    saved = json.loads((run / "metrics.json").read_text())
    result = run_main(capsys, "evaluate", run, "--out", tmp_path / "eval.json")
    assert result.rc == 0, result.stderr
    return saved, json.loads((tmp_path / "eval.json").read_text())
