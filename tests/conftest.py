"""Shared fixtures: an isolated cache, a few synthetic WFDB records, the real MIT-BIH folder, and the CLI runner.

Everything here is sized for a busy 2-core machine: records of 25 s, a handful of them, and command-line runs that
can be started in parallel (``run_cli_many``) because each ``python -m ecglib`` pays a few seconds of imports.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from ecglib.checkpoints import CHECKPOINT_FORMAT
from ecglib.cli import main
from ecglib.config import ODEConfig
from ecglib.data.beats import Beats
from ecglib.data.facts import (
    BEAT_LENGTH,
    CLASSES,
    MITDB_RECORDS,
    RHYTHM_NAMES,
)
from ecglib.data.records import load_mitdb
from ecglib.data.sources import load_beats
from ecglib.data.synthetic import write_synthetic_mitdb
from ecglib.models import build_model

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


# ---------------------------------------------------------------------------------- shared by several test files
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


# --------------------------------------------------------------------------------------------------------- kaggle
def kaggle_rows(n: int, seed: int) -> np.ndarray:
    """Rows like the Kaggle files: 187 samples in [0, 1] (zero-padded tail) and the label as a float."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, BEAT_LENGTH))
    x[:, 150:] = 0.0
    y = np.arange(n) % len(CLASSES)
    return np.column_stack([x, y.astype(float)])


@pytest.fixture(scope="session")
def real_beats(MITDB, tmp_path_factory):
    return load_beats("mitdb", mitdb_dir=MITDB, download=False,
                           cache_dir=tmp_path_factory.mktemp("real-cache"))


def write_kaggle(folder: Path, train: np.ndarray | None = None, test: np.ndarray | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("mitbih_train.csv", train), ("mitbih_test.csv", test)):
        if rows is not None:
            np.savetxt(folder / name, rows, delimiter=",", fmt="%.18e")  # the real files' number format
    return folder


def batch(n: int = 6):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 187, generator=g), torch.randint(0, 5, (n,), generator=g)


def odenet(**settings):
    return build_model("odenet", ode=ODEConfig(**settings))


K = len(RHYTHM_NAMES)


def col(name: str) -> int:
    return RHYTHM_NAMES.index(name)


# Two rk4 steps, direct backprop (the default has three): cheap enough for loops on a busy CPU.
FAST_ODE = {"ode": ODEConfig(solver="rk4", step_size=0.5, adjoint=False)}


SYNTHETIC_ARGS = ["--source", "synthetic", "--synthetic-seconds", "20"]


RESNET_RUN = ["train", "--model", "resnet", *SYNTHETIC_ARGS, "--limit", "600", "--epochs", "3",
              "--batch-size", "64", "--threads", "1", "--quiet"]



def bad_npz_files(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    x, y = rng.random((80, 187)).astype(np.float32), (np.arange(80) % 5).astype(np.int64)
    paths["shape"] = folder / "shape.npz"
    np.savez(paths["shape"], x=x[:, :180], y=y)
    paths["nan"] = folder / "nan.npz"
    x_nan = x.copy()
    x_nan[11, 40] = np.nan
    np.savez(paths["nan"], x=x_nan, y=y)
    paths["label7"] = folder / "label7.npz"
    y7 = y.copy()
    y7[23] = 7
    np.savez(paths["label7"], x=x, y=y7)
    paths["labels_short"] = folder / "labels_short.npz"
    np.savez(paths["labels_short"], x=x, y=y[:70])
    return paths


def kill_after_first_epoch(run: Path, env: dict[str, str]) -> dict:
    """Start the resnet run, SIGKILL it as soon as epoch 1's checkpoint exists, then rerun it to the end."""
    cmd = [sys.executable, "-m", "ecglib", *RESNET_RUN, "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env},
                            cwd=REPO, text=True)
    deadline = time.monotonic() + 240
    while not (run / "checkpoint.pt").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"run ended before its first checkpoint: {proc.returncode}\n{err}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    killed = {"returncode": proc.returncode, "had_metrics": (run / "metrics.json").exists(),
              "epoch": torch.load(run / "checkpoint.pt", weights_only=True)["epoch"]}
    killed["resumed"] = run_cli(*RESNET_RUN, "--out", run, env=env)
    return killed


def run_metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.fixture(scope="session")
def cli_runs(synthetic_cache, tmp_path_factory):
    """The command-line training runs several test files read, started together (each pays seconds of imports)."""
    root = tmp_path_factory.mktemp("cli-runs")
    env = {"ECGLIB_CACHE": str(synthetic_cache), "OMP_NUM_THREADS": "1"}
    bad = bad_npz_files(root / "bad")
    calls = {
        "straight": ([*RESNET_RUN, "--out", root / "straight"], {"env": env}),
        "odenet": (["train", "--model", "odenet", *SYNTHETIC_ARGS, "--solver", "dopri5", "--limit", "200",
                    "--epochs", "1", "--batch-size", "64", "--threads", "1", "--quiet", "--out", root / "odenet"],
                   {"env": env}),
        # one bad file in a process of its own; the others below go through cli.main in this process
        "npz_label7": (["train", "--model", "resnet", "--data", bad["label7"], "--epochs", "1", "--quiet",
                        "--out", root / "run_label7"], {"env": env}),
    }
    resumed = {}
    killer = threading.Thread(target=lambda: resumed.update(kill_after_first_epoch(root / "killed", env)))
    killer.start()
    results = dict(zip(calls, run_cli_many(list(calls.values()), workers=3)))
    killer.join()
    return {"root": root, "env": env, "bad": bad, "killed": resumed, **results}


@pytest.fixture
def evaluate(evaluations, monkeypatch, capsys):
    """`ecglib evaluate ARGS` through cli.main, with the runs' synthetic cache."""
    monkeypatch.setenv("ECGLIB_CACHE", evaluations["env"]["ECGLIB_CACHE"])
    return lambda *args: run_main(capsys, "evaluate", *args)


# --------------------------------------------------------------------------------------------------- evaluate
@pytest.fixture(scope="session")
def evaluations(cli_runs):
    """The finished runs, and copies of the resnet run with a foreign best.pt."""

    root, env = cli_runs["root"], cli_runs["env"]
    assert cli_runs["straight"].rc == 0 and cli_runs["odenet"].rc == 0, cli_runs["odenet"].stderr
    broken = {}
    for name in ("odenet_ckpt", "random_file", "width_mismatch", "narrow_resnet"):
        folder = root / f"wrong_{name}"
        shutil.copytree(root / "straight", folder)
        broken[name] = folder / "best.pt"
    save_best(build_model("odenet", **FAST_ODE), broken["odenet_ckpt"])
    broken["random_file"].write_bytes(os.urandom(4096))
    narrow = build_model("resnet", width=32)
    save_best(narrow, broken["width_mismatch"], config={**narrow.config, "width": 64})
    save_best(narrow, broken["narrow_resnet"])
    return {"root": root, "broken": broken, "env": env}


# ------------------------------------------------------------------------------------------------- checkpoints
def save_best(model, path: Path, config=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "model_config": config or model.config,
                "model": model.state_dict(), "epoch": 1, "val_accuracy": 0.5}, path)
    return path


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory):
    """A cache with the 48 synthetic records of 20 s and their beats, shared by the command-line runs."""
    folder = tmp_path_factory.mktemp("synthetic-cache")
    load_beats("synthetic", synthetic_seconds=20, cache_dir=folder)
    return folder


# ------------------------------------------------------------------------------------------ recordings as files
def write_edf(path: Path, record: Path, extra: Sequence[tuple[str, float, np.ndarray]] = (),
              annotations: bool = False, seconds: float | None = None) -> Path:
    """The WFDB record ``record`` written as an EDF(+) file at ``path`` through edfio: each lead with its 11-bit
    digital values and MIT-BIH's calibration (gain 200, baseline 1024: physical range -5.12 to 5.115 mV), then the
    ``extra`` signals (label, rate, physical values). annotations: an EDF+ file with an annotation. seconds: the
    first so many seconds (EDF holds whole data records of 1 s)."""
    import edfio
    import wfdb

    rec = wfdb.rdrecord(str(record), physical=False)
    n = rec.sig_len if seconds is None else int(seconds * rec.fs)
    signals = [edfio.EdfSignal((rec.d_signal[:n, i] - 1024) / 200.0, rec.fs, label=name, physical_dimension="mV",
                               physical_range=(-5.12, 5.115), digital_range=(-1024, 1023))
               for i, name in enumerate(rec.sig_name)]
    signals += [edfio.EdfSignal(np.asarray(x, dtype=float), fs, label=label) for label, fs, x in extra]
    notes = [edfio.EdfAnnotation(1.0, None, "recording starts")] if annotations else None
    edfio.Edf(signals, annotations=notes).write(path)
    return path


def write_csv_signal(path: Path, record: Path, header: bool = True) -> Path:
    """The WFDB record's leads as CSV in mV (three decimals: MIT-BIH's 0.005 mV steps are exact), with a header row
    of the lead names when ``header``."""
    import wfdb

    rec = wfdb.rdrecord(str(record))
    lines = [",".join(rec.sig_name)] if header else []
    lines += [",".join(f"{v:.3f}" for v in row) for row in rec.p_signal]
    path.write_text("\n".join(lines) + "\n")
    return path
