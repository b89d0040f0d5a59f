"""The ``ecglib`` command: a thin face over the library (prepare, train, evaluate, study, annotate, score, sweep).

Known errors (bad input, a run that cannot go on) print one line ``ecglib: error: ...`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .config import BACKENDS, CLASS_WEIGHTS, KEEPS, MAX_BLOCKS, MAX_REGULARISATION, MAX_SYNTHETIC_SECONDS, \
    MAX_THREADS, MAX_WIDTH, RECIPES, SAMPLERS, SOLVERS, TORCHODE_SOLVERS, ODEConfig, TrainConfig, \
    model_size_problem, parse_step_size, recipe, recipe_default
from .errors import EcgError

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


def _load(args: argparse.Namespace, progress: bool = True, rhythm: bool = False):
    from .data import load_beats, load_npz, require_rhythm

    if getattr(args, "data", None) is not None:
        beats = load_npz(args.data)
        if rhythm:
            require_rhythm(beats, str(args.data))
        return beats
    # The records bar only on a terminal: in a log or a pipe it would run into the one-line error message.
    return load_beats(args.source or "synthetic", mitdb_dir=args.mitdb_dir, kaggle_dir=args.kaggle_dir,
                      synthetic_seconds=args.synthetic_seconds, cache=not args.no_cache,
                      download=not args.no_download, progress=progress and sys.stderr.isatty(), rhythm=rhythm)


def _data_name(args: argparse.Namespace) -> str:
    """The user's name for the beats of a command: the npz file, the records' folder or the synthetic source."""
    if getattr(args, "data", None) is not None:
        return str(args.data)
    if args.source == "mitdb" and args.mitdb_dir is not None:
        return str(args.mitdb_dir)
    if args.source == "kaggle" and args.kaggle_dir is not None:
        return str(args.kaggle_dir)
    return f"--source {args.source or 'synthetic'}"


def _split(args: argparse.Namespace, beats: Any, protocol: str, **kwargs: Any) -> Any:
    """split_beats, with a failure (too few beats, no record names) naming the data it was given."""
    from .data import split_beats
    from .errors import InputError

    try:
        return split_beats(beats, protocol, val_records=getattr(args, "val_records", None), **kwargs)
    except InputError as exc:
        raise InputError(f"{_data_name(args)}: {exc}") from None


def _data_config(args: argparse.Namespace) -> dict[str, Any]:
    from .data import data_config

    return data_config(args.source, args.mitdb_dir, args.kaggle_dir, args.split, args.limit, args.val_fraction,
                       args.synthetic_seconds, getattr(args, "data", None), getattr(args, "val_records", None))


# ---------------------------------------------------------------------------------------------------- commands
def cmd_prepare(args: argparse.Namespace) -> int:
    from .data import CLASSES, save_npz

    if args.out.suffix != ".npz":
        raise EcgError(f"{args.out}: the output file must end in .npz")
    beats = _load(args)
    save_npz(beats, args.out)
    counts = beats.class_counts()
    width = max(len(f"{v:,}") for v in counts.values())
    for c in CLASSES:
        print(f"{c}  {counts[c]:>{width},}  {100 * counts[c] / len(beats):5.1f}%")
    print(f"all {len(beats):,} beats -> {args.out}")
    notes = beats.meta.get("records_without_mlii")
    if notes:
        print("no MLII lead, first lead used: " + ", ".join(f"{r} ({lead})" for r, lead in notes.items()))
    return 0


def _model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.model == "resnet":
        return {"blocks": args.blocks, "width": args.width}
    ode = ODEConfig.from_dict({k: getattr(args, k) for k in ("solver", "step_size", "rtol", "atol", "adjoint",
                                                              "seminorm", "backend", "kinetic", "jacobian")})
    return {"width": args.width, "ode": ode}


def cmd_train(args: argparse.Namespace) -> int:
    from .compare import summary_line
    from .data import limit_beats, require_records
    from .train import pick_device, run_training

    if args.data is None and args.source is None:
        raise EcgError("give the beats: --data FILE.npz or --source {mitdb,kaggle,synthetic}")
    vars(args).update(recipe(args.features, **{k: getattr(args, k) for k in RECIPES[args.features]}))
    config = TrainConfig.from_dict(vars(args))
    model_kwargs = _model_kwargs(args)
    too_big = model_size_problem(args.model, args.width, args.blocks)
    if too_big is not None:  # refused before minutes of data loading, and before any memory is taken
        raise EcgError(f"--width {args.width} --blocks {args.blocks}: {too_big}")
    pick_device(config.device)  # an absent device is refused before minutes of data loading
    if args.out.exists() and not args.out.is_dir():
        raise EcgError(f"{args.out}: not a folder (--out names the run folder)")
    # Progress bars on a terminal only: in a log or a pipe they would run into the one-line error message.
    progress = not args.quiet and sys.stderr.isatty()
    beats = limit_beats(_load(args, progress=progress, rhythm=args.features == "beat+rhythm"), args.limit,
                        seed=config.seed)
    if args.template or args.context:  # the inputs made from a beat's record: refused before the split is drawn
        require_records(beats, _data_name(args), "record templates" if args.template else "neighbouring beats")
    split = _split(args, beats, args.split, val_fraction=args.val_fraction, seed=config.seed)
    m = run_training(args.model, beats, split, args.out, config, model_kwargs, progress=progress,
                     data_config=_data_config(args), fresh=args.fresh, features=args.features,
                     context=args.context, template=args.template)
    print(summary_line(m))
    print(f"run folder: {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import input_layout, model_inputs
    from .files import atomic_write_text
    from .metrics import beats_per_second, classification_metrics, count_parameters
    from .runs import RunFolder, beats_of_run, load_checkpoint
    from .train import predict_nfe

    if args.run.is_dir():
        run = RunFolder(args.run)
        model = run.load_model()
    else:  # a checkpoint file: its folder's metrics.json, when there, says what data it was trained on
        model, _ = load_checkpoint(args.run)
        run = RunFolder(args.run.parent)
    saved = run.metrics()["config"] if run.metrics_file.exists() else {}
    # The new solver settings are checked before any data is read.
    try:
        model.set_solver(solver=args.solver, rtol=args.rtol, atol=args.atol, step_size=args.step_size)
    except EcgError as exc:
        raise EcgError(f"--solver/--step-size/--rtol/--atol: {exc}") from None
    beats, split = beats_of_run(saved, download=not args.no_download, source=args.source, npz=args.data,
                                mitdb_dir=args.mitdb_dir, kaggle_dir=args.kaggle_dir, split=args.split,
                                limit=args.limit, seed=args.seed,
                                synthetic_seconds=args.synthetic_seconds if args.source else None)
    # The inputs the checkpoint's model takes: rhythm features and neighbouring beats when it was built for them.
    x, y, r = model_inputs(beats, model.config, name=_data_name(args)).part(split.test)
    # A long evaluation (an adaptive solver at a tight tolerance) shows how far it got, on a terminal only.
    pred, _, nfe = predict_nfe(model, x, batch_size=args.batch_size, progress=sys.stderr.isatty(), rhythm=r)
    m = classification_metrics(y.numpy(), pred, y_train=beats.y[split.train])
    m.update(model=model.name, params=count_parameters(model), nfe_forward=nfe,
             beats_per_second=beats_per_second(model, x, args.batch_size, rhythm=r), solver=model.config,
             features="beat+rhythm" if r is not None else "beat", **input_layout(x.shape[1]))
    print(f"{model.name} on {split.protocol} test ({len(y):,} beats): accuracy {m['accuracy']:.4f}, macro-F1 "
          f"{m['macro_f1']:.4f}, NFE {m['nfe_forward']:.1f}/batch, {m['beats_per_second']:.0f} beats/s")
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(m, indent=2))
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from .study import run_study

    return run_study(profile=args.profile, data=args.data, mitdb_dir=args.mitdb_dir, kaggle_dir=args.kaggle_dir,
                     out=args.out, epochs=args.epochs, limit=args.limit, download=not args.no_download,
                     threads=args.threads if args.threads else "auto", progress=sys.stderr.isatty())


def cmd_annotate(args: argparse.Namespace) -> int:
    from .annotate import annotate_records
    from .study import study_threads

    # On a busy machine more torch threads than free cores make classification several times slower.
    threads = args.threads or study_threads()
    if threads:
        import torch

        torch.set_num_threads(threads)
    results = annotate_records(args.run, args.records, detector=args.detector, out_dir=args.out,
                               annotator=args.annotator, lead=args.lead,
                               on_record=lambda r: print(r.summary_line(), flush=True))
    if len(results) > 1:
        seconds, elapsed = sum(r.seconds for r in results), sum(r.elapsed for r in results)
        print(f"{len(results)} records, {sum(len(r.sample) for r in results)} beats, {seconds:.0f} s of ECG in "
              f"{elapsed:.1f} s ({seconds / max(elapsed, 1e-9):.0f}x real time)")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from . import score

    comparisons, summary = score.score_records(args.record_dir, args.ref, args.test, args.records,
                                               learning_period=args.learning_period, test_dir=args.test_dir)
    if args.csv is not None:
        score.write_csv(args.csv, comparisons, summary)
    if args.matrix:
        for c in comparisons:
            print(score.format_matrix(c) + "\n")
    print(score.format_table(comparisons, summary))
    if args.csv is not None:
        print(f"csv: {args.csv}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import load_spec, run_sweep

    spec = load_spec(args.spec, mitdb_dir=args.mitdb_dir)  # every check before Ray starts or DIR is written
    table = run_sweep(spec, args.out, address=args.address, cpus_per_run=args.cpus_per_run,
                      max_retries=args.max_retries, progress=not args.quiet)
    failed = int((table["status"] != "ok").sum())
    if failed:
        print(f"{failed} of {len(table)} runs failed; their errors are in {args.out / 'results.csv'}")
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ecglib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="extract beats to an .npz file (x, y, record, sample, symbol)")
    _add_data_args(p)
    p.add_argument("--out", type=Path, required=True, help="output FILE.npz")
    p.set_defaults(func=cmd_prepare)

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
    t.add_argument("--momentum", type=_real(0.0, 1.0, high_open=True), help=f"SGD, default {_TRAIN.momentum:g}")
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
    t.add_argument("--keep", choices=KEEPS, help="the weights tested: the epoch of best validation accuracy, or the "
                   f"last (default: {recipe_default('keep')})")
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
    p.set_defaults(func=cmd_train)

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
    p.add_argument("--batch-size", type=_positive_int, default=512)
    p.add_argument("--out", type=Path, help="write the metrics to this JSON file")
    p.set_defaults(func=cmd_evaluate)

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
    p.set_defaults(func=cmd_study)

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
    p.set_defaults(func=cmd_annotate)

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
    p.set_defaults(func=cmd_score)

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
    p.set_defaults(func=cmd_sweep)
    return parser


def _close_progress_bars() -> None:
    """Close the progress bars still on screen, so that an error message starts on a line of its own."""
    tqdm_module = sys.modules.get("tqdm.std")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", [])):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close must not hide the error
            pass


def _fail(message: str, status: int = 2) -> int:
    _close_progress_bars()
    try:
        sys.stdout.flush()
    except OSError:  # a closed pipe must not turn the error into a traceback
        pass
    # One line, whatever the message holds.
    print(f"ecglib: {message}".replace("\r", " ").replace("\n", " "), file=sys.stderr, flush=True)
    return status


def _stdout_gone() -> int:
    """The reader of our output went away (``ecglib ... | head -1``): nothing to say, and nothing more to print.
    stdout goes to /dev/null so that Python's own flush at exit does not complain."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    try:
        with warnings.catch_warnings():
            # Warnings of numpy, scipy, wfdb, pandas or torch are not the user's errors and would break the promise
            # of one error line; -W or PYTHONWARNINGS still shows them.
            if not sys.warnoptions:
                warnings.simplefilter("ignore")
            args = build_parser().parse_args(argv)
            status = args.func(args)
            sys.stdout.flush()  # here, where a reader gone away (a closed pipe) is still ours to handle
            return status
    except EcgError as exc:
        return _fail(f"error: {exc}")
    except BrokenPipeError:
        return _stdout_gone()
    except OSError as exc:  # an output that cannot be written (a file in the way, no space): one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"error: {where}{exc.strerror or exc}")
    except MemoryError:
        return _fail("error: out of memory; use fewer beats (--limit), a smaller --batch-size or a smaller model")
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
