"""What each ``ecglib`` subcommand does, as a thin face over the library.

The library's modules are imported inside each command: ``ecglib prepare`` and ``ecglib score`` never pay for
importing torch, and ``--help`` answers at once.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from ..config import RECIPES, ODEConfig, TrainConfig, model_size_problem, recipe
from ..errors import EcgError, InputError
from ..extras import require_extra


def _load(args: argparse.Namespace, progress: bool = True, rhythm: bool = False):
    from ..data.beats import load_npz, require_rhythm
    from ..data.sources import load_beats

    if getattr(args, "data", None) is not None:
        beats = load_npz(args.data)
        if rhythm:
            require_rhythm(beats, str(args.data))
        return beats
    # The records bar only on a terminal: in a log or a pipe it would run into the one-line error message.
    return load_beats(args.source or "synthetic", mitdb_dir=args.mitdb_dir, kaggle_dir=args.kaggle_dir,
                      synthetic_seconds=args.synthetic_seconds, cache=not args.no_cache,
                      download=not args.no_download, progress=progress and sys.stderr.isatty(), rhythm=rhythm,
                      leads=args.leads)


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
    from ..data.splits import split_beats

    try:
        return split_beats(beats, protocol, val_records=getattr(args, "val_records", None), **kwargs)
    except InputError as exc:
        raise InputError(f"{_data_name(args)}: {exc}") from None


def _data_config(args: argparse.Namespace) -> dict[str, Any]:
    from ..data.sources import data_config

    return data_config(args.source, args.mitdb_dir, args.kaggle_dir, args.split, args.limit, args.val_fraction,
                       args.synthetic_seconds, getattr(args, "data", None), getattr(args, "val_records", None),
                       args.leads)


def say_error(message: str) -> None:
    """One error line of a multi-record command, which goes on with its next record."""
    sys.stdout.flush()
    print(f"ecglib: error: {message}".replace("\r", " ").replace("\n", " "), file=sys.stderr, flush=True)


def refuse_each(messages: list[str]) -> int:
    """A multi-record command's refusals, after its good records' output: one line each on stderr, and exit status
    2 when there was any (0 otherwise), so that one broken record stops none of the others."""
    for message in messages:
        say_error(message)
    return 2 if messages else 0


# ---------------------------------------------------------------------------------------------------- commands
def cmd_prepare(args: argparse.Namespace) -> int:
    from ..data.beats import save_npz
    from ..data.facts import CLASSES

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
        print("no MLII lead, the lead rule read: " + ", ".join(f"{r} ({lead})" for r, lead in notes.items()))
    past_end = beats.meta.get("annotations_past_end")
    if past_end:
        print("annotations at or past the last sample, left out: "
              + ", ".join(f"{r} ({n})" for r, n in past_end.items()))
    return 0


def train_settings(args: argparse.Namespace) -> tuple[dict[str, Any], TrainConfig]:
    """What ``ecglib train ARGS`` trains with, checked before any data is read: the model's arguments
    (build_model's: width, blocks or the ODE settings) and the training recipe, the feature set's recipe filled in
    where an option is not given (ecglib.config.RECIPES). InputError for settings that make no model or recipe."""
    vars(args).update(recipe(args.features, **{k: getattr(args, k) for k in RECIPES[args.features]}))
    config = TrainConfig.from_dict(vars(args))
    if args.model == "resnet":
        model_kwargs: dict[str, Any] = {"blocks": args.blocks, "width": args.width}
    else:
        if args.backend == "torchode":
            require_extra("torchode", "--backend torchode")
        model_kwargs = {"width": args.width,
                        "ode": ODEConfig.from_dict({f.name: getattr(args, f.name) for f in fields(ODEConfig)})}
    too_big = model_size_problem(args.model, args.width, args.blocks)
    if too_big is not None:  # refused before minutes of data loading, and before any memory is taken
        raise InputError(f"--width {args.width} --blocks {args.blocks}: {too_big}")
    return model_kwargs, config


def cmd_train(args: argparse.Namespace) -> int:
    from ..data.beats import require_records
    from ..data.splits import limit_beats
    from ..inference import pick_device
    from ..report.tables import summary_line
    from ..training.run import run_training

    if args.data is None and args.source is None:
        raise EcgError("give the beats: --data FILE.npz or --source {mitdb,kaggle,synthetic}")
    model_kwargs, config = train_settings(args)
    pick_device(config.device)  # an absent device is refused before minutes of data loading
    if args.out.exists() and not args.out.is_dir():
        raise EcgError(f"{args.out}: not a folder (--out names the run folder)")
    # Progress bars on a terminal only: in a log or a pipe they would run into the one-line error message.
    progress = not args.quiet and sys.stderr.isatty()
    beats = limit_beats(_load(args, progress=progress, rhythm=args.features == "beat+rhythm"), args.limit or None,
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
    from ..checkpoints import load_checkpoint, load_run_model
    from ..config import logit_offsets
    from ..data.inputs import input_layout, model_inputs
    from ..data.sources import beats_of_run
    from ..files import atomic_write_text
    from ..inference import predict_nfe
    from ..metrics import beats_per_second, classification_metrics, count_parameters
    from ..runs import RunFolder

    if args.run.is_dir():
        run = RunFolder(args.run)
        model = load_run_model(run.path)
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
    if args.s_offset is not None:  # another operating point of the same weights
        model.set_logit_offsets(logit_offsets(args.s_offset))
    # The inputs the checkpoint's model takes: rhythm features and neighbouring beats when it was built for them.
    x, y, r = model_inputs(beats, model.config, name=_data_name(args)).part(split.test)
    # A long evaluation (an adaptive solver at a tight tolerance) shows how far it got, on a terminal only.
    pred, _, nfe = predict_nfe(model, x, batch_size=args.batch_size, progress=sys.stderr.isatty(), rhythm=r)
    m = classification_metrics(y.numpy(), pred, y_train=beats.y[split.train])
    m.update(model=model.name, params=count_parameters(model), test_nfe_forward=nfe,
             beats_per_second=beats_per_second(model, x, args.batch_size, rhythm=r), solver=model.config,
             features="beat+rhythm" if r is not None else "beat", **input_layout(x.shape[1]))
    print(f"{model.name} on {split.protocol} test ({len(y):,} beats): accuracy {m['accuracy']:.4f}, macro-F1 "
          f"{m['macro_f1']:.4f}, NFE {m['test_nfe_forward']:.1f}/batch, {m['beats_per_second']:.0f} beats/s")
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(m, indent=2))
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    require_extra("study", "ecglib study")
    from ..experiments.study import run_study

    return run_study(profile=args.profile, data=args.data, mitdb_dir=args.mitdb_dir, kaggle_dir=args.kaggle_dir,
                     out=args.out, epochs=args.epochs, limit=args.limit, download=not args.no_download,
                     threads=args.threads if args.threads else "auto", progress=sys.stderr.isatty())


def _annotate_model(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The model and the recordings of ``ecglib annotate``: --model, else a run folder given first (the older form
    ``ecglib annotate RUN_DIR RECORD...``), else the default pretrained model."""
    from pathlib import Path

    from ..ec57.trained import load_model

    records, name = list(args.records), args.annotate_model
    if Path(records[0]).is_dir():
        if name is not None:
            raise InputError(f"{records[0]}: a folder, not a recording (the model is given by --model)")
        name = records.pop(0)
        if not records:
            raise InputError(f"{name}: give the recordings to label after the run folder")
    trained = load_model(name)
    if args.solver is not None or args.step_size is not None:
        if trained.model.ode is None:
            raise InputError(f"--solver/--step-size: {trained.name} is a ResNet, which has no ODE solver")
        try:
            trained.model.set_solver(solver=args.solver, step_size=args.step_size)
        except EcgError as exc:
            raise InputError(f"--solver/--step-size: {exc}") from None
    return trained, records


def cmd_annotate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..ec57.annotate import annotate_records, reference_annotations
    from ..experiments.study import study_threads
    from ..report import record as report

    trained, records = _annotate_model(args)
    # On a busy machine more torch threads than free cores make classification several times slower.
    threads = args.threads or study_threads()
    if threads:
        import torch

        torch.set_num_threads(threads)
    entries: list[tuple[Any, Path]] = []
    failed: list[str] = []

    def done(result: Any, recording: Any) -> None:
        print(result.summary_line(), flush=True)
        if args.report is not None:
            reference = reference_annotations(recording) if result.comparison is not None else None
            noise = [(start / result.fs, end / result.fs) for start, end in result.noise]
            page = report.write_record_report(result, recording.signal, args.report, comparison=result.comparison,
                                              noise=noise, prob=result.prob, reference=reference)
            entries.append((result, Path(page)))
            # The index after every record, so that a long run stopped halfway leaves an index of what it wrote.
            report.write_report_index(entries, args.report)

    def refused(record: str, exc: EcgError) -> None:
        text = str(exc)
        failed.append(record)
        say_error(text if record in text or Path(record).name in text else f"{record}: {text}")

    results = annotate_records(trained, records, detector=args.detector, out_dir=args.out, annotator=args.annotator,
                               lead=args.lead, fs=args.fs, reference=args.reference, on_record=done,
                               on_error=refused, progress=not args.quiet and sys.stderr.isatty())
    if len(results) > 1:
        seconds, elapsed = sum(r.seconds for r in results), sum(r.elapsed for r in results)
        print(f"{len(results)} records, {sum(len(r.sample) for r in results)} beats, {seconds:.0f} s of ECG in "
              f"{elapsed:.1f} s ({seconds / max(elapsed, 1e-9):.0f}x real time)")
    if args.report is not None and entries:
        print(f"report: {Path(args.report) / 'index.html'}")
    return 2 if failed else 0


def cmd_models(args: argparse.Namespace) -> int:
    from ..pretrained.catalog import DEFAULT_MODEL, FOLDER, available, gross, read_card

    names = available()
    if not names:
        raise InputError(f"{FOLDER}: no pretrained models in this installation")
    rows = [("name", "network", "parameters", "DS2 VEB Se / +P", "DS2 SVEB Se / +P")]
    for name in names:
        card = read_card(name)
        g = gross(card)
        fmt = lambda v: "-" if v is None else f"{v:.2f}"
        rows.append((name + (" *" if name == DEFAULT_MODEL else ""), card["network"], f"{card['parameters']:,}",
                     f"{fmt(g['V Se'])} / {fmt(g['V +P'])}", f"{fmt(g['S Se'])} / {fmt(g['S +P'])}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    print(f"* the default of `ecglib annotate`. EC57 gross statistics on the 22 DS2 records (%), beats found by the "
          f"default detector; the cards ({FOLDER}/NAME.md) have the full tables.")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from ..ec57 import score

    refused: list[str] = []
    comparisons, summary = score.score_records(args.record_dir, args.ref, args.test, args.records,
                                               learning_period=args.learning_period, test_dir=args.test_dir,
                                               refused=refused)
    if args.csv is not None:
        score.write_csv(args.csv, comparisons, summary)
    if args.matrix:
        for c in comparisons:
            print(score.format_matrix(c) + "\n")
    print(score.format_table(comparisons, summary))
    if args.csv is not None:
        print(f"csv: {args.csv}")
    return refuse_each(refused)


def cmd_sweep(args: argparse.Namespace) -> int:
    require_extra("sweep", "ecglib sweep")
    from ..experiments.sweep import load_spec, run_sweep

    spec = load_spec(args.spec, mitdb_dir=args.mitdb_dir)  # every check before Ray starts or DIR is written
    table = run_sweep(spec, args.out, address=args.address, cpus_per_run=args.cpus_per_run,
                      max_retries=args.max_retries, progress=not args.quiet)
    failed = int((table["status"] != "ok").sum())
    if failed:
        print(f"{failed} of {len(table)} runs failed; their errors are in {args.out / 'results.csv'}")
    return 1 if failed else 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "prepare": cmd_prepare, "train": cmd_train, "evaluate": cmd_evaluate, "study": cmd_study,
    "annotate": cmd_annotate, "models": cmd_models, "score": cmd_score, "sweep": cmd_sweep}
