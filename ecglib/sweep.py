"""Sweeps: many seeds and settings at once, on one machine or a Ray cluster, with confidence intervals.

A sweep is described by a small TOML file (the SPEC)::

    [data]                      # where beats come from (as `ecglib train`): source, mitdb_dir, limit, ...
    source = "synthetic"
    limit = 3000

    [train]                     # fixed settings of every trial: TrainConfig fields and model settings
    epochs = 2
    optimizer = "adam"
    lr = 3e-3

    [axes]                      # the grid: every combination of these lists (seed: the repetitions)
    split = ["intra", "inter"]
    seed = [0, 1, 2]

    [configs.resnet1]           # optional named configurations, each crossed with the axes
    model = "resnet"
    blocks = 1

    [configs.odenet-original]
    model = "odenet"
    solver = "dopri5"
    adjoint = true
    seeds = [0]                 # a configuration may run fewer seeds than the axis (its cost)

The spec is checked completely before anything starts: an unknown key, an unknown model or solver, an empty axis,
a value of the wrong type or range, or a missing data folder raise :class:`ecglib.errors.InputError` with one line
naming the spec file and the key.

Each trial is an ordinary ecglib run folder, ``DIR/runs/<id>`` (metrics.json, history.csv, best.pt,
checkpoint.pt), trained by :func:`ecglib.train.run_training` on the beats that
:func:`ecglib.report.load_split` gives, which is what ``ecglib train`` and the notebooks use; beside them the
sweep keeps ``trial.json`` (attempts, the epoch a retry resumed after, status, error). A trial is finished when
its metrics.json exists and describes the trial's settings: running a finished sweep again trains nothing, and an
interrupted trial resumes from its checkpoint (a resumed CPU run ends with the same numbers as an uninterrupted
one; see :mod:`ecglib.train`).

Execution: Ray core tasks, not Ray Tune. Each trial already is a resumable run folder, so all a sweep needs from
Ray is "run this function on a free CPU somewhere, and run it again if its worker dies": ``@ray.remote`` with
``num_cpus`` (the trial's CPU share, also its torch thread count) and ``max_retries`` (worker or node death
only: ``retry_exceptions`` stays off, so a trial that fails on bad input fails once). Tune would add its own
experiment folders, trial checkpoints and result syncing on top of the run folders, and the ``ray[tune]`` extra's
dependencies, for a grid that :func:`itertools.product` expands in one line. Without ``address`` a Ray instance is
started in this process on this machine's CPUs (no dashboard, worker logs not forwarded); with ``address`` the
sweep joins a cluster started with ``ray start`` (every node must see DIR and the data folder at the same path).

Outputs, rewritten atomically after every run: ``DIR/results.csv`` (one row per trial: every setting, the seed,
the metrics, the time, status and error) and ``DIR/summary.md`` (per configuration: n, mean, standard deviation
and a 95 % t confidence interval over seeds; paired differences between configurations over the same seeds).
For notebooks: :func:`load_sweep`, :func:`summary_table`, :func:`paired_differences`, :func:`plot_sweep`.
"""
from __future__ import annotations

import csv
import itertools
import json
import math
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from io import StringIO
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .errors import EcgError, InputError

# ------------------------------------------------------------------------------------------------------ schema
SOURCES = ("mitdb", "kaggle", "synthetic")
MODEL_NAMES = ("resnet", "odenet")
SPLITS = ("intra", "inter")
TOP_KEYS = ("description", "data", "train", "axes", "configs")
DATA_KEYS = ("source", "mitdb_dir", "kaggle_dir", "synthetic_seconds", "limit", "val_fraction", "download")
RESNET_KEYS = ("blocks",)
ODE_KEYS = ("solver", "step_size", "rtol", "atol", "adjoint", "seminorm")
MODEL_KEYS = ("width",) + RESNET_KEYS + ODE_KEYS
TRAIN_KEYS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup", "device")
# What a trial is made of; each may be fixed ([train]), swept ([axes]) or set by a named configuration.
SETTING_KEYS = ("model", "split", "seed") + MODEL_KEYS + TRAIN_KEYS
# The project's defaults (those of `ecglib train`): the model settings here, the recipe in TrainConfig.
MODEL_DEFAULTS: dict[str, Any] = {"width": 64, "blocks": 6, "rtol": 1e-3, "atol": 1e-3, "seminorm": False}
# Metrics that results.csv carries for every run (AAMI Se and +P of S and V beats among them).
METRIC_COLUMNS = ("accuracy", "macro_f1", "baseline_accuracy", "S_se", "S_ppv", "V_se", "V_ppv", "params",
                  "seconds", "seconds_per_epoch", "nfe_forward", "best_epoch")
STATE_COLUMNS = ("status", "error", "attempts", "resumed_from", "wall_seconds", "run_dir")
SUMMARY_METRICS = (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("S_se", "S Se"), ("V_se", "V Se"))


class _Bad(Exception):
    """A value that does not fit its key (turned into InputError naming the spec file and the key)."""


def _int(v: Any, low: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Bad(f"must be an integer, not {v!r}")
    if v < low:
        raise _Bad(f"must be at least {low}, not {v}")
    return v


def _pos(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise _Bad(f"must be a positive number, not {v!r}")
    return float(v)


def _nonneg(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise _Bad(f"must be a number >= 0, not {v!r}")
    return float(v)


def _fraction(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        raise _Bad(f"must be a number in [0, 1), not {v!r}")
    return float(v)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad(f"must be true or false, not {v!r}")
    return v


def _choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise _Bad(f"unknown value {v!r}; choose one of {', '.join(options)}")
        return v
    return check


def _solver(v: Any) -> str:
    from torchdiffeq._impl.odeint import SOLVERS

    if not isinstance(v, str) or v not in SOLVERS:
        raise _Bad(f"unknown ODE solver {v!r}; torchdiffeq has {', '.join(sorted(SOLVERS))}")
    return v


def _step_size(v: Any) -> float:
    """A number, or a fraction written as a string ("1/3": exactly three steps; 0.333 would give a fourth)."""
    if isinstance(v, str):
        try:
            v = float(Fraction(v.strip()))
        except (ValueError, ZeroDivisionError):
            raise _Bad(f"not a number or a fraction: {v!r}") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
        raise _Bad(f"must lie in (0, 1], the integration time, not {v!r}")
    return float(v)


def _device(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise _Bad(f"must be a device name such as auto, cpu or cuda, not {v!r}")
    return v


CHECKS: dict[str, Callable[[Any], Any]] = {
    "model": _choice(*MODEL_NAMES), "split": _choice(*SPLITS), "seed": _int,
    "width": lambda v: _int(v, 1), "blocks": lambda v: _int(v, 1), "solver": _solver, "step_size": _step_size,
    "rtol": _pos, "atol": _pos, "adjoint": _bool, "seminorm": _bool,
    "epochs": lambda v: _int(v, 1), "batch_size": lambda v: _int(v, 1), "optimizer": _choice("sgd", "adam"),
    "lr": _pos, "momentum": _nonneg, "weight_decay": _nonneg, "schedule": _choice("cosine", "onecycle", "none"),
    "warmup": _fraction, "device": lambda v: _device(v),
}


# -------------------------------------------------------------------------------------------------------- spec
@dataclass
class Trial:
    """One run of the sweep: a configuration (everything but the seed) and a seed."""

    id: str
    configuration: str
    model: str
    seed: int
    split: str
    model_kwargs: dict[str, Any]
    train: dict[str, Any]
    data: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)  # what varies in the sweep: config name and axes

    def run_dir(self, out: str | os.PathLike) -> Path:
        return Path(out) / "runs" / self.id


@dataclass
class SweepSpec:
    """A validated spec: its file, the data settings and the expanded trials (in a stable order)."""

    path: Path
    data: dict[str, Any]
    trials: list[Trial]
    axes: list[str]
    description: str = ""
    text: str = ""


def _where(path: Path, key: str) -> str:
    return f"{path}: {key}"


def _check(path: Path, key: str, name: str, value: Any) -> Any:
    try:
        return CHECKS[name](value)
    except _Bad as exc:
        raise InputError(f"{_where(path, key)}: {exc}") from None


def _unknown(path: Path, section: str, keys: Sequence[str], known: Sequence[str]) -> None:
    for k in keys:
        if k not in known:
            raise InputError(f"{_where(path, f'{section}{k}')}: unknown key (known: {', '.join(known)})")


def _table(path: Path, raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise InputError(f"{_where(path, name)}: must be a table [{name}]")
    return dict(value)


def _slug(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value).lower()
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text.replace("/", "over")).strip("-") or "x"


def _data_settings(path: Path, raw: dict[str, Any], mitdb_dir: str | os.PathLike | None) -> dict[str, Any]:
    _unknown(path, "data.", list(raw), DATA_KEYS)
    source = raw.get("source", "synthetic")
    if source not in SOURCES:
        raise InputError(f"{_where(path, 'data.source')}: unknown source {source!r}; choose one of "
                         f"{', '.join(SOURCES)}")
    data: dict[str, Any] = {"source": source, "mitdb_dir": None, "kaggle_dir": None, "synthetic_seconds": 60.0,
                            "limit": None, "val_fraction": 0.1, "download": False}
    if mitdb_dir is not None:
        raw["mitdb_dir"] = str(Path(mitdb_dir).resolve())
    for key in ("mitdb_dir", "kaggle_dir"):
        if key in raw:
            if not isinstance(raw[key], str) or not raw[key]:
                raise InputError(f"{_where(path, 'data.' + key)}: must be a folder name")
            # Relative folders are read from the spec file's folder, so a spec works from any directory.
            data[key] = str((path.parent / Path(raw[key]).expanduser()).resolve())
    checks = {"synthetic_seconds": _pos, "limit": lambda v: _int(v, 0) or None,  # limit 0: all beats
              "val_fraction": _fraction, "download": _bool}
    for key, check in checks.items():
        if key in raw:
            try:
                data[key] = check(raw[key])
            except _Bad as exc:
                raise InputError(f"{_where(path, 'data.' + key)}: {exc}") from None
    needs = {"mitdb": "mitdb_dir", "kaggle": "kaggle_dir"}.get(source)
    if needs is not None:
        if data[needs] is None:
            raise InputError(f"{_where(path, 'data.' + needs)}: the {source} source needs a folder")
        if not Path(data[needs]).is_dir() and not (source == "mitdb" and data["download"]):
            raise InputError(f"{_where(path, 'data.' + needs)}: no such folder {data[needs]}")
    return data


def _settings(path: Path, section: str, raw: Mapping[str, Any], extra: Sequence[str] = ()) -> dict[str, Any]:
    _unknown(path, section, list(raw), SETTING_KEYS + tuple(extra))
    return {k: (_check(path, section + k, k, v) if k in CHECKS else v) for k, v in raw.items()}


def load_spec(spec: str | os.PathLike, mitdb_dir: str | os.PathLike | None = None) -> SweepSpec:
    """Read and check a sweep SPEC (TOML) and expand it into trials; nothing is trained or written.

    mitdb_dir: overrides ``data.mitdb_dir`` (relative to the current directory). Raises InputError, one line
    "SPEC: key: problem", for anything that would make a trial fail for a reason known in advance.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    path = Path(spec)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the sweep spec ({exc.strerror or exc})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    _unknown(path, "", list(raw), TOP_KEYS)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise InputError(f"{_where(path, 'description')}: must be a string")
    data = _data_settings(path, _table(path, raw, "data"), mitdb_dir)
    fixed = _settings(path, "train.", _table(path, raw, "train"))

    axes_raw = _table(path, raw, "axes")
    _unknown(path, "axes.", list(axes_raw), SETTING_KEYS)
    axes: dict[str, list[Any]] = {}
    for key, values in axes_raw.items():
        if not isinstance(values, list):
            raise InputError(f"{_where(path, 'axes.' + key)}: must be a list of values")
        if not values:
            raise InputError(f"{_where(path, 'axes.' + key)}: empty axis (give at least one value)")
        checked = [_check(path, f"axes.{key}[{i}]", key, v) for i, v in enumerate(values)]
        if len(set(map(repr, checked))) != len(checked):
            raise InputError(f"{_where(path, 'axes.' + key)}: a value is repeated")
        axes[key] = checked
        if key in fixed:
            raise InputError(f"{_where(path, 'axes.' + key)}: also fixed in [train]; keep one")

    configs_raw = _table(path, raw, "configs")
    configs: dict[str, dict[str, Any]] = {}
    for name, body in configs_raw.items():
        if not isinstance(body, dict):
            raise InputError(f"{_where(path, 'configs.' + name)}: must be a table [configs.{name}]")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name):
            raise InputError(f"{_where(path, 'configs.' + name)}: a configuration name may hold letters, digits "
                             "and . _ + - only (it names run folders)")
        section = f"configs.{name}."
        settings = _settings(path, section, {k: v for k, v in body.items() if k != "seeds"}, extra=())
        if "seeds" in body:
            seeds = body["seeds"]
            if not isinstance(seeds, list) or not seeds:
                raise InputError(f"{_where(path, section + 'seeds')}: must be a non-empty list of seeds")
            settings["seeds"] = [_check(path, f"{section}seeds[{i}]", "seed", s) for i, s in enumerate(seeds)]
        for key in settings:
            if key in axes:
                raise InputError(f"{_where(path, section + key)}: also an axis; keep one")
        configs[name] = settings
    if not configs:
        configs = {"": {}}

    seeds_axis = axes.pop("seed", [fixed.pop("seed", 0)])
    axis_names = list(axes)
    trials: list[Trial] = []
    for name, cfg in configs.items():
        model = cfg.get("model", fixed.get("model"))
        if model is None and "model" not in axes:
            where = f"configs.{name}.model" if name else "train.model"
            raise InputError(f"{_where(path, where)}: no model given (resnet or odenet)")
        for combo in itertools.product(*(axes[k] for k in axis_names)):
            point = dict(zip(axis_names, combo))
            settings = {**fixed, **{k: v for k, v in cfg.items() if k != "seeds"}, **point}
            model = settings["model"]
            for key, origin in ([(k, "configs." + name + ".") for k in cfg] + [(k, "axes.") for k in point]):
                if (key in RESNET_KEYS and model != "resnet") or (key in ODE_KEYS and model != "odenet"):
                    owner = "resnet" if key in RESNET_KEYS else "odenet"
                    raise InputError(f"{_where(path, origin + key)}: applies to the {owner} only, but this "
                                     f"{'configuration' if origin.startswith('configs') else 'grid'} also trains "
                                     f"a {model}")
            label_parts = ([name] if name else []) + [f"{k}-{_slug(v)}" for k, v in point.items()]
            configuration = "_".join(label_parts) or "run"
            for seed in cfg.get("seeds", seeds_axis):
                trials.append(_make_trial(path, configuration, {"config": name, **point} if name else point,
                                          settings, seed, data))
    ids = [t.id for t in trials]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup is not None:
        raise InputError(f"{path}: two trials would share the run folder runs/{dup}; make the configuration "
                         "names or axis values distinct")
    return SweepSpec(path=path, data=data, trials=trials, axes=["config"] * bool(configs_raw) + axis_names,
                     description=description, text=text)


def _make_trial(path: Path, configuration: str, point: dict[str, Any], settings: dict[str, Any], seed: int,
                data: dict[str, Any]) -> Trial:
    from .cli import DEFAULT_ODE

    model = settings["model"]
    kwargs: dict[str, Any] = {"width": settings.get("width", MODEL_DEFAULTS["width"])}
    if model == "resnet":
        kwargs["blocks"] = settings.get("blocks", MODEL_DEFAULTS["blocks"])
    else:
        for key in ODE_KEYS:
            kwargs[key] = settings.get(key, DEFAULT_ODE.get(key, MODEL_DEFAULTS.get(key)))
    train = {k: settings[k] for k in TRAIN_KEYS if k in settings}
    train["seed"] = seed
    try:
        from .train import TrainConfig

        TrainConfig(**train)
    except (InputError, TypeError) as exc:
        raise InputError(f"{path}: [train]: {exc}") from None
    split = settings.get("split", "intra")
    return Trial(id=f"{configuration}_seed-{seed}", configuration=configuration, model=model, seed=seed,
                 split=split, model_kwargs=kwargs, train=train, data=data, settings=point)


# -------------------------------------------------------------------------------------------------- one trial
def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _data_config(trial: Trial) -> dict[str, Any]:
    from .report import data_config

    d = trial.data
    return data_config(d["source"], d["mitdb_dir"], d["kaggle_dir"], trial.split, d["limit"], d["val_fraction"],
                       d["synthetic_seconds"])


def _expected_config(trial: Trial) -> dict[str, Any]:
    """What metrics.json["config"] of the finished trial holds, but the device and thread count."""
    from .models import build_model
    from .train import RESUME_FREE, TrainConfig

    train = {k: v for k, v in asdict(TrainConfig(**trial.train)).items() if k not in RESUME_FREE or k == "epochs"}
    return {"model": build_model(trial.model, **trial.model_kwargs).config, "train": train,
            "data": _data_config(trial), "split": trial.split}


def is_finished(trial: Trial, out: str | os.PathLike) -> bool:
    """True when the trial's run folder holds a metrics.json written for exactly this trial's settings."""
    metrics = _read_json(trial.run_dir(out) / "metrics.json")
    if not metrics or not isinstance(metrics.get("config"), dict):
        return False
    from .train import RESUME_FREE

    got = dict(metrics["config"])
    got["train"] = {k: v for k, v in dict(got.get("train", {})).items() if k not in RESUME_FREE or k == "epochs"}
    return got == _expected_config(trial)


def _checkpoint_epoch(run_dir: Path) -> int:
    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.exists():
        return 0
    try:
        import torch

        return int(torch.load(ckpt, map_location="cpu", weights_only=True).get("epoch", 0))
    except Exception:  # noqa: BLE001 - an unreadable checkpoint is reported by fit itself
        return 0


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    from .train import atomic_write_text

    atomic_write_text(run_dir / "trial.json", json.dumps(state, indent=2))


def run_trial(trial: Trial, out: str | os.PathLike, threads: int | None = None, session: str = "") -> dict[str, Any]:
    """Train one trial into ``out/runs/<id>`` (resuming its checkpoint) and return its trial.json record.

    session: identifies one ``ecglib sweep`` invocation; ``attempts`` counts the starts within it (a retry after a
    worker died is attempt 2), ``resumed_from`` the epoch of the checkpoint this start found.

    Bad input (EcgError) ends the trial with status "failed" and its one-line error; it is not raised, so Ray
    does not retry it. Anything else propagates (Ray reports it; a dead worker is retried by Ray).
    """
    from .report import load_split
    from .train import TrainConfig, run_training

    run_dir = trial.run_dir(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = _read_json(run_dir / "trial.json") or {}
    state: dict[str, Any] = {
        "id": trial.id, "status": "running", "session": session,
        "attempts": int(previous.get("attempts", 0)) + 1 if session and previous.get("session") == session else 1,
        "resumed_from": _checkpoint_epoch(run_dir), "pid": os.getpid(), "host": os.uname().nodename,
        "node_id": _ray_node_id(), "threads": threads, "started": time.time(), "error": "",
    }
    _write_state(run_dir, state)
    started = time.perf_counter()
    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        d = trial.data
        beats, split = load_split(d["source"], d["mitdb_dir"], d["kaggle_dir"], split=trial.split, limit=d["limit"],
                                  seed=trial.seed, val_fraction=d["val_fraction"],
                                  synthetic_seconds=d["synthetic_seconds"], download=d["download"])
        config = TrainConfig(**trial.train, threads=threads)
        run_training(trial.model, beats, split, run_dir, config, trial.model_kwargs, progress=False,
                     data_config=_data_config(trial))
        state["status"] = "ok"
    except EcgError as exc:
        state.update(status="failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    state["wall_seconds"] = round(time.perf_counter() - started, 3)
    _write_state(run_dir, state)
    return state


def _ray_node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - only informative
        return None


def _ray_trial(trial: Trial, out: str, threads: int | None, session: str) -> dict[str, Any]:
    """The body of the Ray task (a module-level function, so workers import it from ecglib)."""
    return run_trial(trial, out, threads, session)


# ----------------------------------------------------------------------------------------------------- results
def _row(trial: Trial, out: Path, spec: SweepSpec) -> dict[str, Any]:
    run_dir = trial.run_dir(out)
    state = _read_json(run_dir / "trial.json") or {}
    # sweep_point: what tells this configuration from the others (named configuration, axis values), as JSON.
    row: dict[str, Any] = {"id": trial.id, "configuration": trial.configuration,
                           "sweep_point": json.dumps(trial.settings, sort_keys=True)}
    row.update(model=trial.model, seed=trial.seed, split=trial.split, source=trial.data["source"],
               limit=trial.data["limit"] or "")
    for key in MODEL_KEYS:
        row[key] = trial.model_kwargs.get(key, "")
    from .train import TrainConfig

    train = asdict(TrainConfig(**trial.train))
    for key in TRAIN_KEYS:
        row[key] = train[key]
    finished = is_finished(trial, out)
    metrics = _read_json(run_dir / "metrics.json") if finished else None
    if metrics:
        aami = metrics.get("aami", {})
        epochs = metrics.get("seconds_per_epoch") or []
        row.update(accuracy=metrics["accuracy"], macro_f1=metrics["macro_f1"],
                   baseline_accuracy=metrics["baseline_accuracy"],
                   S_se=aami.get("S", {}).get("sensitivity"), S_ppv=aami.get("S", {}).get("positive_predictivity"),
                   V_se=aami.get("V", {}).get("sensitivity"), V_ppv=aami.get("V", {}).get("positive_predictivity"),
                   params=metrics["params"], seconds=round(sum(epochs), 3),
                   seconds_per_epoch=round(sum(epochs) / max(1, len(epochs)), 3),
                   nfe_forward=metrics.get("nfe_forward"), best_epoch=metrics.get("best_epoch"))
        status = "ok"
    else:
        row.update({k: "" for k in METRIC_COLUMNS})
        status = state.get("status") if state.get("status") == "failed" else "not run"
    row.update(status=status, error=state.get("error", "") if status == "failed" else "",
               attempts=state.get("attempts", ""), resumed_from=state.get("resumed_from", ""),
               wall_seconds=state.get("wall_seconds", ""), run_dir=f"runs/{trial.id}")
    return row


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def write_results(spec: SweepSpec, out: str | os.PathLike) -> Any:
    """Write DIR/results.csv and DIR/summary.md from the run folders (atomically); return the results table."""
    from .train import atomic_write_text

    out = Path(out)
    rows = [_row(t, out, spec) for t in spec.trials]
    atomic_write_text(out / "results.csv", _csv_text(rows))
    table = load_sweep(out)
    atomic_write_text(out / "summary.md", summary_markdown(table, spec))
    return table


def load_sweep(out: str | os.PathLike) -> Any:
    """DIR/results.csv as a pandas DataFrame (one row per trial)."""
    import pandas as pd

    path = Path(out) / "results.csv"
    if not path.exists():
        raise InputError(f"{path}: not found; run `ecglib sweep SPEC --out {out}` first")
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: unreadable results ({exc})") from None


def _ci(values: Sequence[float]) -> tuple[float, float, float, float]:
    """mean, sample sd, and the 95 % t confidence interval of the mean (nan when n < 2)."""
    import numpy as np
    from scipy import stats

    v = np.asarray(values, dtype=float)
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def _ok(results: Any) -> Any:
    return results[results["status"] == "ok"]


def summary_table(results: Any, metrics: Sequence[str] = ("accuracy", "macro_f1")) -> Any:
    """Per configuration (every setting but the seed): n and, for each metric, mean, sd and the 95 % t CI over
    seeds. ``results``: :func:`load_sweep`'s table (only runs with status ok count)."""
    import pandas as pd

    ok = _ok(results)
    rows = []
    for configuration in dict.fromkeys(results["configuration"]):  # spec order
        part = ok[ok["configuration"] == configuration]
        row: dict[str, Any] = {"configuration": configuration, "n": len(part)}
        for m in metrics:
            mean, sd, low, high = _ci(part[m].astype(float).tolist())
            row.update({f"{m}_mean": mean, f"{m}_sd": sd, f"{m}_ci_low": low, f"{m}_ci_high": high})
        if len(part):
            row["params"] = int(part["params"].iloc[0])
            row["seconds_per_epoch"] = float(part["seconds_per_epoch"].astype(float).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def paired_differences(results: Any, metric: str = "accuracy") -> Any:
    """Differences A - B of ``metric`` between configurations that differ in one sweep dimension (a named
    configuration or one axis), paired over the seeds both finished: n, mean, sd, 95 % t CI."""
    import pandas as pd

    ok = _ok(results)
    configs = list(dict.fromkeys(results["configuration"]))
    points = {c: json.loads(results[results["configuration"] == c]["sweep_point"].iloc[0]) for c in configs}
    rows = []
    for a, b in itertools.combinations(configs, 2):
        pa, pb = points[a], points[b]
        if sum(pa.get(k) != pb.get(k) for k in set(pa) | set(pb)) != 1:
            continue
        va = ok[ok["configuration"] == a].set_index("seed")[metric].astype(float)
        vb = ok[ok["configuration"] == b].set_index("seed")[metric].astype(float)
        seeds = sorted(set(va.index) & set(vb.index))
        diff = [va[s] - vb[s] for s in seeds]
        mean, sd, low, high = _ci(diff)
        rows.append({"a": a, "b": b, "metric": metric, "n": len(seeds), "mean": mean, "sd": sd, "ci_low": low,
                     "ci_high": high})
    return pd.DataFrame(rows, columns=["a", "b", "metric", "n", "mean", "sd", "ci_low", "ci_high"])


def _fmt(v: float, pct: bool = True) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{100 * v:.2f}" if pct else f"{v:.3g}"


def summary_markdown(results: Any, spec: SweepSpec | None = None) -> str:
    """The text of summary.md: per-configuration table and paired differences (percentage points)."""
    lines = ["# Sweep summary", ""]
    if spec is not None:
        lines += [f"Spec: `{spec.path.name}`" + (f" ({spec.description})" if spec.description else "") + ".", ""]
    counts = results["status"].value_counts().to_dict()
    lines += [f"Runs: {len(results)} ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}). Metrics in "
              "percent of the test beats; mean ± sd over seeds and the 95 % confidence interval of the mean "
              "(t distribution, n - 1 degrees of freedom; n/a for a single seed).", ""]
    names = [m for m, _ in SUMMARY_METRICS]
    table = summary_table(results, names)
    head = "| configuration | n | " + " | ".join(f"{label} mean ± sd [95 % CI]" for _, label in SUMMARY_METRICS)
    lines += [head + " | majority baseline | parameters | s / epoch |",
              "|---|---:|" + "---|" * len(names) + "---:|---:|---:|"]
    for _, r in table.iterrows():
        cells = [f"{_fmt(r[f'{m}_mean'])} ± {_fmt(r[f'{m}_sd'])} [{_fmt(r[f'{m}_ci_low'])}, "
                 f"{_fmt(r[f'{m}_ci_high'])}]" for m in names]
        params = f"{int(r['params']):,}" if "params" in r and not _isnan(r.get("params")) else ""
        sec = f"{r['seconds_per_epoch']:.1f}" if "seconds_per_epoch" in r and not _isnan(
            r.get("seconds_per_epoch")) else ""
        ok = _ok(results)
        base = ok[ok["configuration"] == r["configuration"]]["baseline_accuracy"].astype(float)
        lines.append(f"| {r['configuration']} | {r['n']} | " + " | ".join(cells)
                     + f" | {_fmt(base.mean()) if len(base) else ''} | {params} | {sec} |")
    for metric, label in SUMMARY_METRICS[:2]:
        diffs = paired_differences(results, metric)
        diffs = diffs[diffs["n"] > 0]  # configurations with no common finished seed have nothing to compare
        if diffs.empty:
            continue
        lines += ["", f"## Paired differences of {label} (A - B, points, same seeds)", "",
                  "| A | B | n | mean | sd | 95 % CI |", "|---|---|---:|---:|---:|---|"]
        for _, d in diffs.iterrows():
            lines.append(f"| {d['a']} | {d['b']} | {d['n']} | {_fmt(d['mean'])} | {_fmt(d['sd'])} | "
                         f"[{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}] |")
    failed = results[results["status"] == "failed"]
    if len(failed):
        lines += ["", "## Failed runs", ""] + [f"- {r['id']}: {r['error']}" for _, r in failed.iterrows()]
    return "\n".join(lines) + "\n"


def _isnan(v: Any) -> bool:
    try:
        return v is None or math.isnan(float(v))
    except (TypeError, ValueError):
        return True


def plot_sweep(results: Any, metric: str = "accuracy", ax: Any = None) -> Any:
    """Mean ``metric`` per configuration with its 95 % confidence interval as error bars, and every seed as a
    dot. ``results``: :func:`load_sweep`'s table or a sweep folder."""
    import matplotlib.pyplot as plt
    import numpy as np

    if isinstance(results, (str, os.PathLike)):
        results = load_sweep(results)
    table = summary_table(results, (metric,))
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(table) + 2), 3.5))
    x = np.arange(len(table))
    mean = table[f"{metric}_mean"].to_numpy(float)
    low = table[f"{metric}_ci_low"].to_numpy(float)
    high = table[f"{metric}_ci_high"].to_numpy(float)
    err = np.vstack([np.where(np.isnan(low), 0, mean - low), np.where(np.isnan(high), 0, high - mean)])
    ax.errorbar(x, mean, yerr=err, fmt="o", capsize=5, color="black", label="mean, 95 % CI")
    ok = _ok(results)
    for i, c in enumerate(table["configuration"]):
        v = ok[ok["configuration"] == c][metric].astype(float)
        ax.scatter(np.full(len(v), i) + 0.12, v, s=14, alpha=0.6, color="tab:blue",
                   label="one seed" if i == 0 else None)
    ax.set_xticks(x, [f"{c}\n(n={n})" for c, n in zip(table["configuration"], table["n"])], rotation=0,
                  fontsize=8)
    ax.set_ylabel(metric.replace("_", "-"))
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return ax


# ------------------------------------------------------------------------------------------------------ driver
def _describe(state: Mapping[str, Any], trial: Trial, out: Path) -> str:
    if state.get("status") == "ok":
        m = _read_json(trial.run_dir(out) / "metrics.json") or {}
        extra = (f", attempt {state['attempts']}, resumed after epoch {state['resumed_from']}"
                 if state.get("attempts", 1) > 1 or state.get("resumed_from") else "")
        return (f"done   {trial.id}: accuracy {m.get('accuracy', math.nan):.4f}, macro-F1 "
                f"{m.get('macro_f1', math.nan):.4f}, {state.get('wall_seconds', 0):.0f} s{extra}")
    return f"FAILED {trial.id}: {state.get('error', '')}"


def _init_ray(address: str | None, cpus: int | None) -> bool:
    """Connect to ``address`` or start Ray in this process; True when this call started it."""
    import logging

    import ray

    # No usage statistics (they would try the network) unless the user asked for them.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return False
    # Ray 2.59+ says at every local start that it made an authentication token: not news for a sweep.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    common = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": True}
    try:
        if address:
            ray.init(address=address, **common)
        else:
            # address="local": a new instance even when another one runs on this machine (`ray start`).
            ray.init(address="local", num_cpus=cpus or os.cpu_count() or 1, include_dashboard=False,
                     object_store_memory=256 * 2**20, **common)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise EcgError(f"{address or 'local Ray'}: cannot start or join Ray ({str(exc).splitlines()[0][:200]})"
                       ) from None
    return True


def _stop_on_sigterm() -> None:
    """ray.init replaces the driver's SIGTERM handler with one that aborts the process (a C++ stack trace, no
    results written); a sweep stops as on Ctrl-C instead: results written, Ray stopped, runs resumable."""
    import signal
    import threading

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def _failure_text(exc: BaseException) -> str:
    """One line for a task that Ray gave up on: the last line of the remote traceback or Ray's own reason."""
    text = str(getattr(exc, "cause", None) or exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]


def run_sweep(spec: str | os.PathLike | SweepSpec, out: str | os.PathLike, address: str | None = None,
              cpus_per_run: int = 1, max_retries: int = 3, mitdb_dir: str | os.PathLike | None = None,
              progress: bool = True, say: Callable[[str], None] | None = None) -> Any:
    """Run every unfinished trial of ``spec`` on Ray and write DIR/results.csv and DIR/summary.md.

    address: a Ray cluster ("HOST:PORT", as printed by ``ray start --head``) or None for a Ray started here.
    cpus_per_run: Ray CPUs of each trial, and its torch thread count. max_retries: how often a trial whose
    worker or node died is started again (it resumes from its checkpoint). Returns the results table.
    """
    from tqdm.auto import tqdm

    sweep = spec if isinstance(spec, SweepSpec) else load_spec(spec, mitdb_dir=mitdb_dir)
    if cpus_per_run < 1:
        raise InputError(f"--cpus-per-run must be at least 1, not {cpus_per_run}")
    out = Path(out).resolve()
    say = say or (lambda line: tqdm.write(line, file=sys.stdout))
    todo = [t for t in sweep.trials if not is_finished(t, out)]
    from .train import atomic_write_text

    atomic_write_text(out / "spec.toml", sweep.text)
    if not todo:
        say(f"all {len(sweep.trials)} runs of {sweep.path.name} are finished in {out}; nothing to train")
        return write_results(sweep, out)
    # Load the beats once here: a data problem stops the sweep before Ray starts, and the local cache is warm.
    from .report import load_split

    for key in sorted({(t.split, t.seed) for t in todo})[:1]:
        d = sweep.data
        load_split(d["source"], d["mitdb_dir"], d["kaggle_dir"], split=key[0], limit=d["limit"], seed=key[1],
                   val_fraction=d["val_fraction"], synthetic_seconds=d["synthetic_seconds"], download=d["download"])

    import ray

    started_here = _init_ray(address, None)
    _stop_on_sigterm()
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < cpus_per_run:
            raise EcgError(f"{address or 'local Ray'}: {cpus} CPUs in the cluster, fewer than --cpus-per-run "
                           f"{cpus_per_run}")
        task = ray.remote(_ray_trial).options(num_cpus=cpus_per_run, max_retries=max_retries,
                                              retry_exceptions=False)
        say(f"sweep {sweep.path.name}: {len(todo)} of {len(sweep.trials)} runs to train on "
            f"{'Ray at ' + address if address else 'a local Ray'} ({cpus} CPUs, {cpus_per_run} per run, "
            f"up to {max(1, cpus // cpus_per_run)} at once) -> {out}")
        session = f"{time.time():.3f}-{os.getpid()}"
        pending = {task.remote(t, str(out), cpus_per_run, session): t for t in todo}
        failed = 0
        bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress, dynamic_ncols=True,
                   file=sys.stderr)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
                for ref in ready:
                    trial = pending.pop(ref)
                    try:
                        state = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        run_dir = trial.run_dir(out)
                        state = {**(_read_json(run_dir / "trial.json") or {}), "status": "failed",
                                 "error": _failure_text(exc)}
                        _write_state(run_dir, state)
                    failed += state.get("status") != "ok"
                    say(_describe(state, trial, out))
                    bar.update(1)
                    write_results(sweep, out)
                running = sum((_read_json(t.run_dir(out) / "trial.json") or {}).get("status") == "running"
                              for t in pending.values())
                bar.set_postfix(running=running, failed=failed, refresh=True)
        except KeyboardInterrupt:
            bar.close()
            write_results(sweep, out)
            say(f"interrupted: {len(pending)} runs unfinished; the same command resumes them")
            raise
        finally:
            bar.close()
    finally:
        if started_here:
            ray.shutdown()
    table = write_results(sweep, out)
    say(f"results: {out / 'results.csv'}, summary: {out / 'summary.md'}")
    return table
