"""The ``ecglib`` command's arguments: the parser of every subcommand.

A setting's option is made from its field in :mod:`ecglib.config` (:func:`_setting`): its argparse type is the
setting's constraint (:func:`ecglib.params.arg_type`), so the command line accepts and refuses exactly what a
config object and a sweep spec do, with the same message; its help and default come from the field too.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..config import (
    DEFAULT_PRETRAINED,
    PROFILES,
    RECIPES,
    SETTINGS,
    THREADS,
    recipe_default,
    setting_default,
    setting_doc,
)
from ..params import Boolean, Interval, Options, arg_type, metavar

# Settings whose default depends on the feature set (the recipe): --help says both, the parser leaves None.
_RECIPE_KEYS = set(RECIPES["beat"])


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error of the command."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # "ecglib: error: " like every other error; the subcommand, when there is one, after it
        command = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(2, f"ecglib: error: {command}{message}\n".replace("\r", " "))


# What an unset (None) setting means, for --help.
_UNSET = {"threads": "torch's choice", "limit": "all beats", "val_records": "a seeded draw of whole DS1 records"}


def _shown(name: str, value: Any) -> str:
    if value is None:
        return _UNSET.get(name, "none")
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _setting(group: Any, name: str, default: Any = None, help: str | None = None, shown: str | None = None,
             flag: str | None = None, **kwargs: Any) -> None:
    """Add --NAME for the setting ``name``: its constraint as the type, its doc and default as the help (``help`` and
    ``shown`` replace them). The parsed value is None when the option is not given (the config object's default
    applies), unless ``default`` is set."""
    constraint = SETTINGS[name]
    text = help if help is not None else setting_doc(name)
    if shown is None:
        shown = recipe_default(name) if name in _RECIPE_KEYS else \
            _shown(name, default if default is not None else setting_default(name))
    flag = flag or "--" + name.replace("_", "-")
    if flag != "--" + name.replace("_", "-"):
        kwargs.setdefault("dest", name)
    if isinstance(constraint, Boolean):
        group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                           help=f"{text} (default: {shown})", **kwargs)
        return
    kwargs.setdefault("metavar", metavar(constraint, name))
    group.add_argument(flag, type=arg_type(constraint), default=default, help=f"{text} (default: {shown})", **kwargs)


def _add_data_args(p: argparse.ArgumentParser, given: str | None = None) -> None:
    """The data options; ``given``: what an absent --source means (None: the synthetic records)."""
    g = p.add_argument_group("data")
    _setting(g, "source", default=None if given else "synthetic", shown=given)
    g.add_argument("--mitdb-dir", type=Path, help="folder of the MIT-BIH WFDB records (downloaded there if missing)")
    g.add_argument("--kaggle-dir", type=Path, help="folder with mitbih_train.csv and mitbih_test.csv")
    _setting(g, "synthetic_seconds", default=setting_default("synthetic_seconds"))
    _setting(g, "leads", default=setting_default("leads"))
    g.add_argument("--no-download", action="store_true", help="never contact PhysioNet; fail if records are missing")
    g.add_argument("--no-cache", action="store_true", help="re-extract beats instead of reading the cache")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    """The options of ``ecglib train``: data split and inputs, the training recipe, the model and its solver."""
    _setting(p, "split", default="intra")
    _setting(p, "val_fraction", default=setting_default("val_fraction"))
    _setting(p, "val_records", help="inter: validate on these whole DS1 records, R1,R2,...")
    _setting(p, "features", default="beat")
    _setting(p, "context")
    _setting(p, "template")
    _setting(p, "limit")
    t = p.add_argument_group("training recipe (defaults: ecglib.config.TrainConfig)")
    for name in ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup",
                 "class_weight", "sampler", "noise", "ema", "morphology_dropout", "synthetic_s", "keep", "s_offset",
                 "seed", "device", "threads"):
        _setting(t, name)
    m = p.add_argument_group("model (ODE defaults: ecglib.config.ODEConfig)")
    _setting(m, "width", default=setting_default("width"))
    _setting(m, "blocks", default=setting_default("blocks"))
    for name in ("solver", "step_size", "rtol", "atol", "adjoint", "seminorm", "backend", "kinetic", "jacobian"):
        _setting(m, name)


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """The parser of every subcommand; ``args.command`` names the one given (the command line maps it to its
    function)."""
    parser = _Parser(prog="ecglib", description=description)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="extract beats to an .npz file (x, y, record, sample, symbol)")
    _add_data_args(p)
    p.add_argument("--out", type=Path, required=True, help="output FILE.npz")

    p = sub.add_parser("train", help="train a ResNet or an ODE-Net and write RUN_DIR/metrics.json")
    _setting(p, "model", required=True)
    p.add_argument("--data", type=Path, help="beats from `ecglib prepare` (instead of --source)")
    _add_data_args(p, given="give --data or --source")
    _add_train_args(p)
    p.add_argument("--fresh", action="store_true", help="start over even if RUN_DIR holds a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", type=Path, required=True, help="RUN_DIR")

    p = sub.add_parser("evaluate", help="re-evaluate a run's best checkpoint, optionally at other ODE settings")
    p.add_argument("run", type=Path, help="RUN_DIR or a checkpoint file")
    p.add_argument("--data", type=Path, help="beats from `ecglib prepare` (default: the run's own data)")
    _add_data_args(p, given="the run's own data")
    own = "the run's own"
    _setting(p, "split", help="the split to test on", shown=own)
    _setting(p, "limit", help="use a stratified subset of this many beats", shown=own)
    _setting(p, "seed", help="split seed", shown=own)
    for name in ("solver", "step_size", "rtol", "atol"):
        _setting(p, name, shown=own)
    _setting(p, "s_offset", help="decide with this S logit offset (ecglib train --s-offset)", shown=own)
    _setting(p, "batch_size", default=512, help="beats per inference batch")
    p.add_argument("--out", type=Path, help="write the metrics to this JSON file")

    p = sub.add_parser("study", help="run the notebooks with papermill and write report.html")
    p.add_argument("--profile", type=arg_type(Options(tuple(PROFILES))), metavar="{" + ",".join(PROFILES) + "}",
                   default="quick", help="quick: minutes on a laptop CPU; full: the original protocol")
    p.add_argument("--data", type=arg_type(SETTINGS["source"]), metavar=metavar(SETTINGS["source"], "source"),
                   default="synthetic", help="where beats come from (default: the embedded synthetic records)")
    p.add_argument("--mitdb-dir", type=Path, default=Path("data/mitdb"))
    p.add_argument("--kaggle-dir", type=Path, default=Path("data/kaggle"))
    _setting(p, "epochs", shown="the profile's")
    _setting(p, "limit", shown="the profile's")
    p.add_argument("--no-download", action="store_true", help="never contact PhysioNet; fail if records are missing")
    p.add_argument("--threads", type=arg_type(THREADS), metavar="THREADS", help="torch CPU threads of the notebooks "
                   "(default: all cores on an idle machine, the free ones on a busy one)")
    p.add_argument("--out", type=Path, default=Path("runs/study"),
                   help="folder for the executed notebooks, the run folders and report.html")

    from ..ec57.detect import DEFAULT_DETECTOR, DETECTOR_CHOICES

    p = sub.add_parser("annotate", help="label every beat of ECG recordings (WFDB, EDF, CSV, npy): annotation "
                       "file, beats CSV, optional HTML report")
    p.add_argument("records", nargs="+", metavar="RECORD",
                   help="a WFDB record (path without extension, e.g. data/mitdb/100; 100.hea is accepted too), an "
                   ".edf/.bdf file, or a .csv/.npy signal (with --fs). A run folder first is the model: the older "
                   "form `ecglib annotate RUN_DIR RECORD...`")
    _setting(p, "annotate_model", flag="--model", metavar="NAME_OR_RUN_DIR", shown=f"the pretrained "
             f"{DEFAULT_PRETRAINED}")
    _setting(p, "fs", shown="the file's; CSV and npy need it", metavar="HZ")
    _setting(p, "lead", metavar="NAME_OR_INDEX", shown="the lead rule: MLII, another name of lead II, else the first "
             "ECG lead; a lead whose QRS complexes point down is classified turned over")
    _setting(p, "reference", metavar="EXT", shown="atr, when NAME.atr is there")
    p.add_argument("--detector", type=arg_type(Options(DETECTOR_CHOICES)), metavar="NAME", default=DEFAULT_DETECTOR,
                   help=f"R-peak detector (default {DEFAULT_DETECTOR}): ecglib, adaptive, xqrs, gqrs, neurokit or "
                   "nk-METHOD (neurokit2's methods, the 'detectors' extra), or reference: the reference annotations' "
                   "beats. Where the lead read is unreadable, or is not lead II and misses beats, the recording's "
                   "other ECG lead gives them (docs/detection.md)")
    _setting(p, "quality", default=setting_default("quality"), shown="on; never with --detector reference")
    p.add_argument("--out", type=Path, metavar="DIR", help="folder for the annotation files and beats CSVs "
                   "(default: beside each recording)")
    _setting(p, "annotator", default=setting_default("annotator"), metavar="NAME")
    p.add_argument("--report", type=Path, metavar="DIR", help="also write an HTML report per recording and an "
                   "index page linking them into DIR")
    g = p.add_argument_group("the ODE-Net's solver when labelling (train precise, deploy loose)")
    for name in ("solver", "step_size"):
        _setting(g, name, shown="the model's")
    p.add_argument("--threads", type=arg_type(THREADS), metavar="THREADS", help="torch CPU threads (default: all "
                   "cores on an idle machine, the free ones on a busy one)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is one on a terminal only)")

    p = sub.add_parser("models", help="list the pretrained models (name, network, parameters, DS2 EC57 figures)")

    p = sub.add_parser("score", help="EC57 beat-by-beat comparison of two annotators, as WFDB's bxb does it")
    p.add_argument("ref", help="reference annotator, e.g. atr")
    p.add_argument("test", help="test annotator, e.g. ecglib")
    p.add_argument("record_dir", type=Path, help="folder of the WFDB records")
    p.add_argument("records", nargs="*", metavar="RECORD",
                   help="record names in RECORD_DIR (default: its RECORDS file, else every record with REF)")
    p.add_argument("--learning-period", type=arg_type(Interval(float, 0.0)), default=300.0, metavar="SECONDS",
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
    p.add_argument("--cpus-per-run", type=arg_type(Interval(int, 1, THREADS.high)), default=1, metavar="CPUS",
                   help="Ray CPUs and torch threads of each run (default 1)")
    p.add_argument("--max-retries", type=arg_type(Interval(int, 0)), default=3, metavar="N",
                   help="restarts of a run whose worker or node died; it resumes from its checkpoint (default 3)")
    p.add_argument("--mitdb-dir", type=Path, help="override the spec's data.mitdb_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar (one line per finished run remains)")
    return parser

