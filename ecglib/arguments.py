"""The ``ecglib`` command's arguments: the parser of every subcommand, the value types that check options as they
are read, and the --help defaults, read off the configuration objects.

Only :mod:`ecglib.cli` imports this module; it holds no command, so that the interface reads in one place.
"""
from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Callable

from .config import BACKENDS, CLASS_WEIGHTS, KEEPS, MAX_BLOCKS, MAX_REGULARISATION, MAX_SYNTHETIC_SECONDS, \
    MAX_THREADS, MAX_WIDTH, SAMPLERS, SOLVERS, TORCHODE_SOLVERS, ODEConfig, TrainConfig, parse_step_size, \
    recipe_default

# Defaults shown in --help come from the configuration objects, never retyped here.
_TRAIN, _ODE = TrainConfig(), ODEConfig()


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error of the command."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # "ecglib: error: " like every other error; the subcommand, when there is one, after it
        command = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(2, f"ecglib: error: {command}{message}\n".replace("\r", " "))


def _int(low: int, high: int | None = None) -> Callable[[str], int]:
    """A whole number from ``low`` (to ``high``: a model wider or deeper than that fits no machine's memory)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {'at least 1' if low == 1 else 'zero or more'}: {text!r}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"at most {high}: {text!r}")
        return value
    return parse


_positive_int, _nonnegative_int = _int(1), _int(0)


def _real(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """A finite number in the interval from ``low`` to ``high`` (open ends as told)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low) \
                or (high_open and value == high):
            raise argparse.ArgumentTypeError(f"must lie in {'(' if low_open else '['}{low:g}, "
                                             f"{'inf' if high == math.inf else f'{high:g}'}"
                                             f"{')' if high_open or high == math.inf else ']'}: {text!r}")
        return value
    return parse


_tolerance, _fraction = _real(1e-12, 1.0), _real(0.0, 1.0, high_open=True)


def _device(text: str) -> str:
    """auto, cpu, mps, cuda or cuda:N; whether that device is present is checked when training starts."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose auto, cpu, cuda, cuda:N or mps")
    return text


def _step_size(text: str) -> float:
    """A fixed-grid step as a number or a fraction (config.parse_step_size), in (0, 1]."""
    try:
        value = parse_step_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], the integration time: {text!r}")
    return value


def _add_data_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--source", choices=("mitdb", "kaggle", "synthetic"), default=None if required else "synthetic",
                   help="where beats come from (default: the embedded synthetic records)")
    g.add_argument("--mitdb-dir", type=Path, help="folder of the MIT-BIH WFDB records (downloaded there if missing)")
    g.add_argument("--kaggle-dir", type=Path, help="folder with mitbih_train.csv and mitbih_test.csv")
    g.add_argument("--synthetic-seconds", type=_real(10.0, MAX_SYNTHETIC_SECONDS), default=60.0,
                   help=f"length of each synthetic record, 10 to {MAX_SYNTHETIC_SECONDS:g} s (default 60)")
    g.add_argument("--no-download", action="store_true", help="never contact PhysioNet; fail if records are missing")
    g.add_argument("--no-cache", action="store_true", help="re-extract beats instead of reading the cache")



def build_parser(description: str = "") -> argparse.ArgumentParser:
    """The parser of every subcommand; ``args.command`` names the one given (the command line maps it to its
    function)."""
    parser = _Parser(prog="ecglib", description=description)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="extract beats to an .npz file (x, y, record, sample, symbol)")
    _add_data_args(p)
    p.add_argument("--out", type=Path, required=True, help="output FILE.npz")

    p = sub.add_parser("train", help="train a ResNet or an ODE-Net and write RUN_DIR/metrics.json")
    p.add_argument("--model", choices=("resnet", "odenet"), required=True)
    p.add_argument("--data", type=Path, help="beats from `ecglib prepare` (instead of --source)")
    _add_data_args(p, required=True)
    p.add_argument("--split", choices=("intra", "inter"), default="intra",
                   help="intra: stratified random beats 80/20; inter: de Chazal DS1 -> DS2 (default: intra)")
    p.add_argument("--val-fraction", type=_fraction, default=0.1,
                   help="share of the training beats held out (inter: as whole DS1 records)")
    p.add_argument("--val-records", type=lambda t: t.split(","), help="inter: validate on DS1 records R1,R2,...")
    p.add_argument("--features", choices=("beat", "beat+rhythm"), default="beat",
                   help="beat: the beat's samples only (the original study); beat+rhythm: also its RR-interval "
                   "features (WFDB sources only)")
    p.add_argument("--context", action=argparse.BooleanOptionalAction, help="feed each beat with its neighbours "
                   f"(3 input channels; default: {recipe_default('context')}, see ecglib.config.RECIPES)")
    p.add_argument("--template", action=argparse.BooleanOptionalAction, help="one more input channel: the beat "
                   f"minus its record's median beat (WFDB sources only; default: {recipe_default('template')})")
    p.add_argument("--limit", type=_positive_int, help="use a stratified subset of this many beats (quick runs)")
    t = p.add_argument_group("training recipe (defaults: ecglib.config.TrainConfig)")
    t.add_argument("--epochs", type=_positive_int, help=f"default {_TRAIN.epochs}")
    t.add_argument("--batch-size", type=_positive_int, help=f"default {_TRAIN.batch_size}")
    t.add_argument("--optimizer", choices=("sgd", "adam"), help=f"default {_TRAIN.optimizer}")
    t.add_argument("--lr", type=_real(0.0, math.inf, low_open=True), help=f"default {_TRAIN.lr:g}")
    t.add_argument("--momentum", type=_real(0.0, 1.0, high_open=True),
                   help=f"SGD momentum, default {_TRAIN.momentum:g}")
    t.add_argument("--weight-decay", type=_real(0.0, math.inf), help=f"default {_TRAIN.weight_decay:g}")
    t.add_argument("--schedule", choices=("cosine", "onecycle", "none"),
                   help=f"learning-rate schedule after a warm-up (none: the original constant rate), "
                        f"default {_TRAIN.schedule}")
    t.add_argument("--class-weight", choices=CLASS_WEIGHTS, help="loss weights against class imbalance: none, "
                   f"balanced (n / (K n_c)) or sqrt of that (default: {recipe_default('class_weight')})")
    t.add_argument("--sampler", choices=SAMPLERS, help="batches: every beat once per epoch (shuffle), or drawn "
                   f"class-balanced with replacement (default {_TRAIN.sampler})")
    t.add_argument("--noise", type=_fraction, help="augment training beats with white noise and baseline drift of "
                   f"up to this level, in the beats' [0, 1] units (default {_TRAIN.noise:g}: off)")
    t.add_argument("--ema", type=_fraction, help="validate, keep and test a moving average of the weights with this "
                   f"decay per step (default {_TRAIN.ema:g}: off)")
    t.add_argument("--morphology-dropout", type=_fraction, metavar="P", help="with the rhythm input: zero the "
                   "pooled morphology features of this fraction of each training batch's beats, so that the rhythm "
                   f"alone must name them (default: {recipe_default('morphology_dropout')})")
    t.add_argument("--synthetic-s", type=_fraction, metavar="P", help="with the rhythm input: each training N beat "
                   "is, with this probability per batch, an S beat with the rhythm of a training S beat (default: "
                   f"{recipe_default('synthetic_s')})")
    t.add_argument("--keep", choices=KEEPS, help="the weights tested: the epoch of best validation accuracy, or the "
                   f"last (default: {recipe_default('keep')})")
    t.add_argument("--s-offset", type=_real(-math.inf, math.inf, low_open=True), metavar="B",
                   help="add B to the S logit whenever the model decides (validation, test, evaluate, annotate; not "
                   f"the loss): B > 0 finds more S beats at a lower S precision (default: {recipe_default('s_offset')})")
    t.add_argument("--seed", type=_nonnegative_int, help=f"default {_TRAIN.seed}")
    t.add_argument("--device", type=_device, help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps (default auto)")
    t.add_argument("--threads", type=_int(1, MAX_THREADS), help="torch CPU threads (default: torch's choice)")
    m = p.add_argument_group("model (ODE defaults: ecglib.config.ODEConfig)")
    m.add_argument("--width", type=_int(1, MAX_WIDTH), default=64)
    m.add_argument("--blocks", type=_int(1, MAX_BLOCKS), default=6, help="residual blocks of the ResNet")
    m.add_argument("--solver", choices=SOLVERS, metavar="SOLVER",
                   help=f"a torchdiffeq method (default {_ODE.solver}; the original study: dopri5)")
    m.add_argument("--step-size", type=_step_size,
                   help=f"step of a fixed-grid solver, a number or a fraction (default 1/{_ODE.steps}: "
                        f"{_ODE.steps} step{'s' if _ODE.steps != 1 else ''})")
    m.add_argument("--rtol", type=_tolerance, help=f"relative tolerance of an adaptive solver (default {_ODE.rtol:g})")
    m.add_argument("--atol", type=_tolerance, help=f"absolute tolerance of an adaptive solver (default {_ODE.atol:g})")
    m.add_argument("--adjoint", action=argparse.BooleanOptionalAction, default=None, help="backpropagate with the "
                   f"adjoint method: constant memory, more evaluations (default {'on' if _ODE.adjoint else 'off'})")
    m.add_argument("--seminorm", action="store_true", default=None, help="adjoint with the seminorm (Kidger et al. 2021)")
    m.add_argument("--backend", choices=BACKENDS,
                   help=f"ODE solver library (default {_ODE.backend}; torchode: {', '.join(TORCHODE_SOLVERS)}, "
                        "direct backpropagation)")
    m.add_argument("--kinetic", type=_real(0.0, MAX_REGULARISATION),
                   help="RNODE kinetic-energy regularisation weight (Finlay et al. 2020; default 0: off)")
    m.add_argument("--jacobian", type=_real(0.0, MAX_REGULARISATION),
                   help="RNODE Jacobian Frobenius-norm regularisation weight (default 0: off)")
    p.add_argument("--fresh", action="store_true", help="start over even if RUN_DIR holds a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", type=Path, required=True, help="RUN_DIR")

    p = sub.add_parser("evaluate", help="re-evaluate a run's best checkpoint, optionally at other ODE settings")
    p.add_argument("run", type=Path, help="RUN_DIR or a checkpoint file")
    p.add_argument("--data", type=Path, help="beats from `ecglib prepare` (default: the run's own data)")
    _add_data_args(p, required=True)
    p.add_argument("--split", choices=("intra", "inter"), help="default: the run's own split")
    p.add_argument("--limit", type=_positive_int)
    p.add_argument("--seed", type=_nonnegative_int, help="split seed (default: the run's)")
    p.add_argument("--solver", choices=SOLVERS, metavar="SOLVER")
    p.add_argument("--step-size", type=_step_size, help="e.g. 1/4 or 0.25")
    p.add_argument("--rtol", type=_tolerance)
    p.add_argument("--atol", type=_tolerance)
    p.add_argument("--s-offset", type=_real(-math.inf, math.inf, low_open=True), metavar="B",
                   help="decide with this S logit offset instead of the run's own (ecglib train --s-offset)")
    p.add_argument("--batch-size", type=_positive_int, default=512)
    p.add_argument("--out", type=Path, help="write the metrics to this JSON file")

    p = sub.add_parser("study", help="run the notebooks with papermill and write report.html")
    p.add_argument("--profile", choices=("quick", "full"), default="quick")
    p.add_argument("--data", choices=("synthetic", "mitdb", "kaggle"), default="synthetic")
    p.add_argument("--mitdb-dir", type=Path, default=Path("data/mitdb"))
    p.add_argument("--kaggle-dir", type=Path, default=Path("data/kaggle"))
    p.add_argument("--epochs", type=_positive_int, help="override the profile's epochs")
    p.add_argument("--limit", type=_nonnegative_int, help="override the profile's beat limit (0: all beats)")
    p.add_argument("--no-download", action="store_true", help="never contact PhysioNet; fail if records are missing")
    p.add_argument("--threads", type=_int(1, MAX_THREADS), help="torch CPU threads of the notebooks (default: "
                   "all cores on an idle machine, the free ones on a busy one)")
    p.add_argument("--out", type=Path, default=Path("runs/study"),
                   help="folder for the executed notebooks, the two run folders and report.html")

    from .annotate import DEFAULT_ANNOTATOR, DEFAULT_DETECTOR, DETECTOR_CHOICES

    p = sub.add_parser("annotate", help="label every beat of WFDB records with a trained model (writes NAME.ANN)")
    p.add_argument("run", type=Path, help="RUN_DIR written by `ecglib train`")
    p.add_argument("records", nargs="+", metavar="RECORD",
                   help="record path without extension, e.g. data/mitdb/100 (100.hea is accepted too)")
    p.add_argument("--detector", choices=DETECTOR_CHOICES, default=DEFAULT_DETECTOR,
                   help=f"R-peak detector (default {DEFAULT_DETECTOR}); reference: the record's atr beats")
    p.add_argument("--out", type=Path, help="folder for the annotation files (default: beside each record)")
    p.add_argument("--annotator", default=DEFAULT_ANNOTATOR,
                   help=f"annotator name, the file extension (default {DEFAULT_ANNOTATOR})")
    p.add_argument("--lead", help="lead to read (default: the one the model was trained on, MLII)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: all cores on an idle machine, the free "
                   "ones on a busy one)")

    p = sub.add_parser("score", help="EC57 beat-by-beat comparison of two annotators, as WFDB's bxb does it")
    p.add_argument("ref", help="reference annotator, e.g. atr")
    p.add_argument("test", help="test annotator, e.g. ecglib")
    p.add_argument("record_dir", type=Path, help="folder of the WFDB records")
    p.add_argument("records", nargs="*", metavar="RECORD",
                   help="record names in RECORD_DIR (default: its RECORDS file, else every record with REF)")
    p.add_argument("--learning-period", type=_real(0.0, math.inf), default=300.0,
                   help="seconds at the start of each record that are not scored (default 300, as bxb)")
    p.add_argument("--test-dir", type=Path, help="folder of the TEST annotation files (default: RECORD_DIR)")
    p.add_argument("--csv", type=Path, help="also write the table (per record, gross, average) to this CSV file")
    p.add_argument("--matrix", action="store_true", help="print each record's bxb matrix too")

    p = sub.add_parser("sweep", help="train a grid of runs (settings x seeds) on Ray and summarise it with "
                       "confidence intervals")
    p.add_argument("spec", type=Path, help="the sweep SPEC (TOML), e.g. benchmarks/sweeps/quick.toml")
    p.add_argument("--out", type=Path, required=True, help="DIR: run folders, results.csv, summary.md (on a "
                   "cluster: a folder every node sees at the same path)")
    p.add_argument("--address", help="join a Ray cluster (HEAD:PORT from `ray start --head`); default: start Ray "
                   "here on this machine's CPUs")
    p.add_argument("--cpus-per-run", type=_int(1, MAX_THREADS), default=1,
                   help="Ray CPUs and torch threads of each run (default 1)")
    p.add_argument("--max-retries", type=_nonnegative_int, default=3, help="restarts of a run whose worker or node died; it "
                   "resumes from its checkpoint (default 3)")
    p.add_argument("--mitdb-dir", type=Path, help="override the spec's data.mitdb_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar (one line per finished run remains)")
    return parser
