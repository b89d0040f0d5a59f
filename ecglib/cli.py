"""The ``ecglib`` command: a thin face over the library (prepare, train, evaluate, study, sweep).

Known errors (bad input, a run that cannot go on) print one line ``ecglib: error: ...`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

from .errors import EcgError

# The project's ODE training default, here rather than in models so that `ecglib prepare` never imports torch.
DEFAULT_ODE = {"solver": "rk4", "step_size": 1 / 3, "adjoint": False}


def _step_size(text: str) -> float:
    """A fixed-grid step as a number or a fraction: "1/3" gives exactly three steps from t 0 to t 1, where 0.333
    would give a fourth, tiny one (torchdiffeq takes ceil(1 / step) steps)."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number or a fraction: {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], the integration time: {text!r}")
    return value


def _add_data_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--source", choices=("mitdb", "kaggle", "synthetic"), default=None if required else "synthetic",
                   help="where beats come from (default: the embedded synthetic records)")
    g.add_argument("--mitdb-dir", type=Path, help="folder of the MIT-BIH WFDB records (downloaded there if missing)")
    g.add_argument("--kaggle-dir", type=Path, help="folder with mitbih_train.csv and mitbih_test.csv")
    g.add_argument("--synthetic-seconds", type=float, default=60.0, help="length of each synthetic record (s)")
    g.add_argument("--no-download", action="store_true", help="never contact PhysioNet; fail if records are missing")
    g.add_argument("--no-cache", action="store_true", help="re-extract beats instead of reading the cache")


def _load(args: argparse.Namespace, progress: bool = True):
    from .data import load_beats, load_npz

    if getattr(args, "data", None) is not None:
        return load_npz(args.data)
    # The records bar only on a terminal: in a log or a pipe it would run into the one-line error message.
    return load_beats(args.source or "synthetic", mitdb_dir=args.mitdb_dir, kaggle_dir=args.kaggle_dir,
                      synthetic_seconds=args.synthetic_seconds, cache=not args.no_cache,
                      download=not args.no_download, progress=progress and sys.stderr.isatty())


def _data_config(args: argparse.Namespace) -> dict[str, Any]:
    if getattr(args, "data", None) is not None:
        return {"data": str(args.data)}
    return {"source": args.source, "mitdb_dir": str(args.mitdb_dir) if args.mitdb_dir else None,
            "kaggle_dir": str(args.kaggle_dir) if args.kaggle_dir else None,
            "synthetic_seconds": args.synthetic_seconds, "limit": getattr(args, "limit", None)}


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
    return {"width": args.width, "solver": args.solver, "rtol": args.rtol, "atol": args.atol,
            "adjoint": args.adjoint, "seminorm": args.seminorm, "step_size": args.step_size}


def cmd_train(args: argparse.Namespace) -> int:
    from .data import limit_beats, split_beats
    from .train import run_training, train_config_from

    if args.data is None and args.source is None:
        raise EcgError("give the beats: --data FILE.npz or --source {mitdb,kaggle,synthetic}")
    config = train_config_from(**vars(args))
    beats = limit_beats(_load(args, progress=not args.quiet), args.limit, seed=args.seed)
    split = split_beats(beats, args.split, val_fraction=args.val_fraction, seed=args.seed)
    if args.fresh and args.out.exists():
        for name in ("checkpoint.pt", "best.pt", "history.csv", "metrics.json"):
            (args.out / name).unlink(missing_ok=True)
    m = run_training(args.model, beats, split, args.out, config, _model_kwargs(args), progress=not args.quiet,
                     data_config={**_data_config(args), "split": args.split,
                                  "val_fraction": args.val_fraction})
    print(summary_line(m))
    print(f"run folder: {args.out}")
    return 0


def summary_line(m: dict[str, Any]) -> str:
    recall = " ".join(f"{c}:{v['recall']:.3f}" for c, v in m["per_class"].items())
    epoch_s = m["seconds_per_epoch"]
    return (f"{m['model']}: test accuracy {m['accuracy']:.4f} (majority baseline {m['baseline_accuracy']:.4f}), "
            f"macro-F1 {m['macro_f1']:.4f}, recall {recall}, {m['params']:,} parameters, "
            f"{sum(epoch_s) / max(1, len(epoch_s)):.1f} s/epoch")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import limit_beats, split_beats, to_tensors
    from .metrics import beats_per_second, classification_metrics, count_parameters
    from .train import atomic_write_text, load_checkpoint, predict

    run = args.run
    run_dir = run if run.is_dir() else run.parent
    saved = {}
    if (run_dir / "metrics.json").exists():
        try:
            saved = json.loads((run_dir / "metrics.json").read_text()).get("config", {})
        except (ValueError, AttributeError) as exc:
            raise EcgError(f"{run_dir / 'metrics.json'}: unreadable run metrics ({exc})") from None
    # The checkpoint must be the model that the run folder describes, not a best.pt copied from another run.
    expected = saved.get("model") or {}
    model, _ = load_checkpoint(run, expect_model=expected.get("model"))
    differ = [k for k in ("width", "blocks", "n_classes") if k in expected and expected[k] != model.config.get(k)]
    if differ:
        ckpt = run / "best.pt" if run.is_dir() else run
        raise EcgError(f"{ckpt}: checkpoint of a {model.name} with "
                       f"{', '.join(f'{k} {model.config.get(k)}' for k in differ)}, but the run's metrics.json "
                       f"describes {', '.join(f'{k} {expected[k]}' for k in differ)}")
    if args.data is None and args.source is None:
        data = saved.get("data", {})
        if "data" in data:
            args.data = Path(data["data"])
        else:
            args.source = data.get("source") or "synthetic"
            args.mitdb_dir = args.mitdb_dir or (Path(data["mitdb_dir"]) if data.get("mitdb_dir") else None)
            args.kaggle_dir = args.kaggle_dir or (Path(data["kaggle_dir"]) if data.get("kaggle_dir") else None)
            args.synthetic_seconds = data.get("synthetic_seconds", args.synthetic_seconds)
            args.limit = args.limit if args.limit is not None else data.get("limit")
    protocol = args.split or saved.get("split", "intra")
    seed = saved.get("train", {}).get("seed", 0) if args.seed is None else args.seed
    beats = limit_beats(_load(args), args.limit, seed=seed)
    split = split_beats(beats, protocol, val_fraction=saved.get("data", {}).get("val_fraction", 0.1), seed=seed)
    model.set_solver(solver=args.solver, rtol=args.rtol, atol=args.atol, step_size=args.step_size)
    x, y = to_tensors(beats, split.test)
    model.reset_nfe()
    pred, _ = predict(model, x, batch_size=args.batch_size)
    m = classification_metrics(y.numpy(), pred, y_train=beats.y[split.train])
    m.update(model=model.name, params=count_parameters(model),
             nfe_forward=model.nfe()[0] / max(1, -(-len(x) // args.batch_size)),
             beats_per_second=beats_per_second(model, x, args.batch_size), solver=model.config)
    print(f"{model.name} on {protocol} test ({len(y):,} beats): accuracy {m['accuracy']:.4f}, macro-F1 "
          f"{m['macro_f1']:.4f}, NFE {m['nfe_forward']:.1f}/batch, {m['beats_per_second']:.0f} beats/s")
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(m, indent=2))
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from .report import run_study

    return run_study(profile=args.profile, data=args.data, mitdb_dir=args.mitdb_dir, kaggle_dir=args.kaggle_dir,
                     out=args.out, epochs=args.epochs, limit=args.limit, download=not args.no_download,
                     threads=args.threads if args.threads else "auto")


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
    parser = argparse.ArgumentParser(prog="ecglib", description=__doc__.splitlines()[0])
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
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of the training beats held out")
    p.add_argument("--limit", type=int, help="use a stratified subset of this many beats (quick runs)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", choices=("cosine", "onecycle", "none"), default="cosine",
                   help="learning-rate schedule after a 5%% warm-up (none: the original constant rate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    m = p.add_argument_group("model")
    m.add_argument("--width", type=int, default=64)
    m.add_argument("--blocks", type=int, default=6, help="residual blocks of the ResNet")
    m.add_argument("--solver", default=DEFAULT_ODE["solver"],
                   help="any torchdiffeq method (default rk4; the original study: dopri5)")
    m.add_argument("--step-size", type=_step_size, default=DEFAULT_ODE["step_size"],
                   help="step of a fixed-grid solver, a number or a fraction (default 1/3: three RK4 steps)")
    m.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance of an adaptive solver")
    m.add_argument("--atol", type=float, default=1e-3, help="absolute tolerance of an adaptive solver")
    m.add_argument("--adjoint", action=argparse.BooleanOptionalAction, default=DEFAULT_ODE["adjoint"],
                   help="backpropagate with the adjoint method: constant memory, more evaluations (default: off)")
    m.add_argument("--seminorm", action="store_true", help="adjoint with the seminorm (Kidger et al. 2021)")
    p.add_argument("--fresh", action="store_true", help="start over even if RUN_DIR holds a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", type=Path, required=True, help="RUN_DIR")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="re-evaluate a run's best checkpoint, optionally at other ODE settings")
    p.add_argument("run", type=Path, help="RUN_DIR or a checkpoint file")
    p.add_argument("--data", type=Path, help="beats from `ecglib prepare` (default: the run's own data)")
    _add_data_args(p, required=True)
    p.add_argument("--split", choices=("intra", "inter"), help="default: the run's own split")
    p.add_argument("--limit", type=int)
    p.add_argument("--seed", type=int, help="split seed (default: the run's)")
    p.add_argument("--solver")
    p.add_argument("--step-size", type=_step_size, help="e.g. 1/4 or 0.25")
    p.add_argument("--rtol", type=float)
    p.add_argument("--atol", type=float)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--out", type=Path, help="write the metrics to this JSON file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("study", help="run the notebooks with papermill and write report.html")
    p.add_argument("--profile", choices=("quick", "full"), default="quick")
    p.add_argument("--data", choices=("synthetic", "mitdb", "kaggle"), default="synthetic")
    p.add_argument("--mitdb-dir", type=Path, default=Path("data/mitdb"))
    p.add_argument("--kaggle-dir", type=Path, default=Path("data/kaggle"))
    p.add_argument("--epochs", type=int, help="override the profile's epochs")
    p.add_argument("--limit", type=int, help="override the profile's beat limit (0: all beats)")
    p.add_argument("--no-download", action="store_true", help="never contact PhysioNet; fail if records are missing")
    p.add_argument("--threads", type=int, help="torch CPU threads of the notebooks (default: all cores on an idle "
                   "machine, the free ones on a busy one)")
    p.add_argument("--out", type=Path, default=Path("runs/study"),
                   help="folder for the executed notebooks, the two run folders and report.html")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("sweep", help="train a grid of runs (settings x seeds) on Ray and summarise it with "
                       "confidence intervals")
    p.add_argument("spec", type=Path, help="the sweep SPEC (TOML), e.g. benchmarks/sweeps/quick.toml")
    p.add_argument("--out", type=Path, required=True, help="DIR: run folders, results.csv, summary.md (on a "
                   "cluster: a folder every node sees at the same path)")
    p.add_argument("--address", help="join a Ray cluster (HEAD:PORT from `ray start --head`); default: start Ray "
                   "here on this machine's CPUs")
    p.add_argument("--cpus-per-run", type=int, default=1, help="Ray CPUs and torch threads of each run (default 1)")
    p.add_argument("--max-retries", type=int, default=3, help="restarts of a run whose worker or node died; it "
                   "resumes from its checkpoint (default 3)")
    p.add_argument("--mitdb-dir", type=Path, help="override the spec's data.mitdb_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar (one line per finished run remains)")
    p.set_defaults(func=cmd_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EcgError as exc:
        print(f"ecglib: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output that cannot be written (a file in the way, no space): one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ecglib: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ecglib: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
