"""Sweep specs: a small TOML file (the SPEC) checked completely and expanded into the trials of a grid.

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
"""
from __future__ import annotations

import itertools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..config import RECIPE_TRAIN_KEYS, SETTINGS, ODEConfig, TrainConfig, recipe
from ..errors import InputError

TOP_KEYS = ("description", "data", "train", "axes", "configs")
DATA_KEYS = ("source", "mitdb_dir", "kaggle_dir", "synthetic_seconds", "limit", "val_fraction", "download")
RESNET_KEYS = ("blocks",)
ODE_KEYS = tuple(f.name for f in fields(ODEConfig))
MODEL_KEYS = ("width",) + RESNET_KEYS + ODE_KEYS
# Every TrainConfig field but the thread count, which a sweep sets from --cpus-per-run.
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name != "threads")
# What a trial is made of; each may be fixed ([train]), swept ([axes]) or set by a named configuration.
INPUT_KEYS = ("context", "template")  # the beat's neighbours, its record template (ecglib.config.RECIPES)
# val_records: a validation fold of whole DS1 records (inter), as `ecglib train --val-records`; an axis of folds
# makes a selection sweep (ecglib.experiments.selection.fold_selection_scores pools each seed's folds).
# leads: which leads of each record become training beats (ecglib.config.DataConfig.leads), per trial so that a
# selection sweep can set "all" against "rule".
SETTING_KEYS = ("model", "split", "features", "seed") + INPUT_KEYS + MODEL_KEYS + \
    tuple(k for k in TRAIN_KEYS if k != "seed") + ("val_records", "leads")


def _checked(name: str, value: Any) -> Any:
    """``value`` checked by the setting's constraint (:data:`ecglib.config.SETTINGS`, the same as the command line's);
    a validation fold's records as their canonical comma-joined string, the name of its run folders."""
    value = SETTINGS[name].check(value)
    return ",".join(value) if name == "val_records" and value is not None else value


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
    features: str = "beat"  # "beat" or "beat+rhythm" (ecglib.train.run_training)
    context: bool = False  # with their defaults from ecglib.config.RECIPES for the features
    template: bool = False
    val_records: list[str] | None = None  # a fixed validation fold of DS1 records (inter); None: a seeded draw

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
        return _checked(name, value)
    except ValueError as exc:
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
    source = _check(path, "data.source", "source", raw.get("source", "synthetic"))
    data: dict[str, Any] = {"source": source, "mitdb_dir": None, "kaggle_dir": None, "synthetic_seconds": 60.0,
                            "limit": None, "val_fraction": 0.1, "download": False}
    if mitdb_dir is not None:
        raw["mitdb_dir"] = str(Path(mitdb_dir).resolve())
    for key in ("mitdb_dir", "kaggle_dir"):
        if key in raw:
            _check(path, "data." + key, key, raw[key])
            # Relative folders are read from the spec file's folder, so a spec works from any directory.
            data[key] = str((path.parent / Path(raw[key]).expanduser()).resolve())
    for key in ("synthetic_seconds", "limit", "val_fraction", "download"):
        if key in raw:
            data[key] = _check(path, "data." + key, key, raw[key])
    data["limit"] = data["limit"] or None  # limit 0: all beats
    needs = {"mitdb": "mitdb_dir", "kaggle": "kaggle_dir"}.get(source)
    if needs is not None:
        if data[needs] is None:
            raise InputError(f"{_where(path, 'data.' + needs)}: the {source} source needs a folder")
        if not Path(data[needs]).is_dir() and not (source == "mitdb" and data["download"]):
            raise InputError(f"{_where(path, 'data.' + needs)}: no such folder {data[needs]}")
    return data


def _settings(path: Path, section: str, raw: Mapping[str, Any], extra: Sequence[str] = ()) -> dict[str, Any]:
    _unknown(path, section, list(raw), SETTING_KEYS + tuple(extra))
    return {k: _check(path, section + k, k, v) for k, v in raw.items()}


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
    model = settings["model"]
    # Unset settings take build_model's and ODEConfig's defaults, the same as `ecglib train`'s.
    kwargs: dict[str, Any] = {k: settings[k] for k in ("width",) if k in settings}
    if model == "resnet":
        kwargs.update({k: settings[k] for k in RESNET_KEYS if k in settings})
    else:
        try:  # the project default (ecglib.config.ODEConfig) with the spec's settings
            kwargs["ode"] = ODEConfig.from_dict({k: settings[k] for k in ODE_KEYS if k in settings})
        except InputError as exc:
            raise InputError(f"{path}: {configuration}: {exc}") from None
    features = settings.get("features", "beat")
    # The same recipe as `ecglib train`: options not set take their defaults for the features.
    chosen = recipe(features, **{k: settings.get(k) for k in INPUT_KEYS + RECIPE_TRAIN_KEYS})
    train = {k: settings[k] for k in TRAIN_KEYS if k in settings}
    train.update(seed=seed, **{k: chosen[k] for k in RECIPE_TRAIN_KEYS})
    try:
        TrainConfig(**train)
    except (InputError, TypeError) as exc:
        raise InputError(f"{path}: [train]: {exc}") from None
    split = settings.get("split", "intra")
    val_records = settings.get("val_records")
    if val_records and split != "inter":
        raise InputError(f"{path}: {configuration}: val_records names a validation fold of DS1 records, which "
                         f"needs split = \"inter\" (this trial's split is {split})")
    if settings.get("leads", "rule") != "rule":
        data = {**data, "leads": settings["leads"]}
    return Trial(id=f"{configuration}_seed-{seed}", configuration=configuration, model=model, seed=seed,
                 split=split, model_kwargs=kwargs, train=train, data=data, settings=point, features=features,
                 context=chosen["context"], template=chosen["template"],
                 val_records=val_records.split(",") if val_records else None)


