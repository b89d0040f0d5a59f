"""Every setting's range, stated once: the command line and a sweep spec accept and refuse the same values with the
same message, because both check them with the setting's constraint (ecglib.config, ecglib.params)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import train_then_evaluate

from ecglib.cli import build_parser
from ecglib.cli.commands import train_settings
from ecglib.config import (
    RECIPES,
    SETTINGS,
    AnnotateConfig,
    DataConfig,
    ModelConfig,
    ODEConfig,
    TrainConfig,
    logit_offsets,
    recipe,
)
from ecglib.data.inputs import (
    input_channels,
)
from ecglib.errors import InputError
from ecglib.experiments.spec import DATA_KEYS, MODEL_KEYS, ODE_KEYS, RESNET_KEYS, SETTING_KEYS, load_spec
from ecglib.params import Boolean, Folder, Interval, Options, Pattern, RecordList, StepSize

# Settings that both `ecglib train` and a spec take. Not here: threads (a sweep sets it from --cpus-per-run),
# download (--no-download on the command line), the data folders (a spec resolves them against its own folder).
COMMON = sorted((set(SETTING_KEYS) | set(DATA_KEYS)) - {"threads", "download", "mitdb_dir", "kaggle_dir"})


def samples(constraint) -> list:
    """Values inside, on and outside a constraint's range, and values of the wrong type."""
    if isinstance(constraint, Interval):
        low = constraint.low if constraint.low is not None else -3
        high = constraint.high if constraint.high is not None else low + 10
        step = 1 if constraint.kind is int else 0.25
        values = [low, high, low - step, high + step, (low + high) / 2, "abc", math.inf]
        return values + ([2.5] if constraint.kind is int else [])
    if isinstance(constraint, Options):
        return [*constraint.options, "nonsense", 3]
    if isinstance(constraint, Boolean):
        return [True, False]
    if isinstance(constraint, StepSize):
        return ["1/3", 0.25, 1, 0, 2, "abc", 0.0005, "1/0"]
    if isinstance(constraint, Pattern):
        return ["cpu", "cuda:1", "gpu", "auto"]
    if isinstance(constraint, RecordList):
        return ["101,106", "101,999", "101,101", "101"]
    raise AssertionError(f"no samples for {constraint!r}")


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return json.dumps(value)


def _model_for(name: str) -> str:
    return "resnet" if name in RESNET_KEYS else "odenet" if name in ODE_KEYS else "resnet"


def _folders(tmp_path: Path) -> dict[str, Path]:
    """An existing folder for each source that needs one: where the data is looked for is no setting's range."""
    folders = {"mitdb_dir": tmp_path / "mitdb", "kaggle_dir": tmp_path / "kaggle"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def through_the_command_line(name: str, value, tmp_path: Path, capsys) -> str | None:
    """None when `ecglib train ... --NAME VALUE` is accepted up to the data, else its message."""
    argv = ["train", "--model", _model_for(name), "--source", "synthetic", "--epochs", "1", "--out", str(tmp_path)]
    for key, folder in _folders(tmp_path.parent).items():
        argv += ["--" + key.replace("_", "-"), str(folder)]
    if name == "val_records":
        argv += ["--split", "inter"]
    if name == "model":
        argv.remove("--model")
        argv.remove(_model_for(name))
    flag = "--" + name.replace("_", "-")
    if isinstance(SETTINGS[name], Boolean):
        argv.append(flag if value else "--no-" + flag[2:])
    else:
        argv += [flag, str(value)]
    capsys.readouterr()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        return capsys.readouterr().err.strip().split(f"argument {flag}: ", 1)[-1]
    try:
        train_settings(args)
    except InputError as exc:
        return str(exc)
    return None


def through_a_spec(name: str, value, tmp_path: Path) -> str | None:
    """None when a sweep spec with NAME = VALUE loads, else its message without the file and key."""
    data = {"source": "synthetic", **{k: str(v) for k, v in _folders(tmp_path).items()}}
    train = {"model": _model_for(name), "epochs": 1}
    (data if name in DATA_KEYS else train)[name] = value
    if name == "val_records":
        train["split"] = "inter"
    spec = tmp_path / "spec.toml"
    spec.write_text("[data]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in data.items())
                    + "[train]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in train.items()))
    try:
        load_spec(spec)
    except InputError as exc:
        message = str(exc).removeprefix(f"{spec}: ")
        section = "data" if name in DATA_KEYS else "train"
        for prefix in (f"{section}.{name}: ", "[train]: ", "run: "):
            message = message.removeprefix(prefix)
        return message
    return None


CASES = [(name, value) for name in COMMON for value in samples(SETTINGS[name])]


@pytest.mark.parametrize("name, value", CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_the_command_line_and_a_spec_accept_and_refuse_the_same_values(name, value, tmp_path, capsys):
    cli = through_the_command_line(name, value, tmp_path / "run", capsys)
    spec = through_a_spec(name, value, tmp_path)
    assert cli == spec, (cli, spec)


def test_every_common_setting_is_covered():
    """A setting added to a config object without a constraint, or to one face only, fails here."""
    fields = {**{k: ModelConfig for k in ("model", "width", "blocks", "features", "context", "template")}}
    assert set(SETTINGS) == {f for cls in (ModelConfig, ODEConfig, TrainConfig, DataConfig, AnnotateConfig)
                             for f in cls.__dataclass_fields__}
    assert set(fields) <= set(SETTINGS)
    assert set(MODEL_KEYS) <= set(SETTINGS) and set(COMMON) <= set(SETTINGS)
    assert not isinstance(SETTINGS["mitdb_dir"], Interval) and isinstance(SETTINGS["mitdb_dir"], Folder)


@pytest.mark.parametrize("cls, name, value, message", [
    (TrainConfig, "epochs", 0, "epochs: must be a whole number >= 1, not 0"),
    (TrainConfig, "momentum", 1.0, "momentum: must be a number in [0, 1), not 1.0"),
    (TrainConfig, "lr", 0, "lr: must be a number > 0, not 0"),
    (TrainConfig, "device", "gpu", "device: must be a device: auto, cpu, cuda, cuda:N or mps, not 'gpu'"),
    (ODEConfig, "solver", "rk5", "solver: must be one of dopri5"),
    (ODEConfig, "rtol", 2.0, "rtol: must be a number in [1e-12, 1], not 2.0"),
    (ModelConfig, "width", 0, "width: must be a whole number in [1, 1024], not 0"),
    (DataConfig, "val_records", "101,999", "val_records: must be distinct DS1 record names"),
])
def test_a_config_object_refuses_a_value_out_of_range_in_one_line(cls, name, value, message):
    with pytest.raises(InputError) as exc:
        cls(**{name: value})
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


def test_values_are_normalised_once():
    assert ODEConfig(step_size="1/4").step_size == 0.25
    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)
    assert DataConfig(val_records=" 101, 106").val_records == ["101", "106"]


def test_recipes_of_the_feature_sets():

    assert recipe("beat") == {"context": False, "template": False, "class_weight": "none", "morphology_dropout": 0.0,
                              "synthetic_s": 0.0, "keep": "best", "s_offset": 0.0}
    assert RECIPES["beat+rhythm"]["morphology_dropout"] == 0.5 and RECIPES["beat+rhythm"]["s_offset"] == 0.25
    assert RECIPES["beat+rhythm"]["synthetic_s"] == 0.02
    assert recipe("beat+rhythm") == RECIPES["beat+rhythm"]
    assert recipe("beat+rhythm", template=False, context=None) == {**RECIPES["beat+rhythm"], "template": False}
    assert recipe("beat+rhythm", keep="best")["keep"] == "best" and recipe("beat", keep="last")["keep"] == "last"
    with pytest.raises(InputError, match="unknown features 'rhythm'"):
        recipe("rhythm")
    with pytest.raises(InputError, match="no recipe option 'sampler'"):
        recipe("beat", sampler="balanced")


def test_rhythm_runs_take_their_recipe_unless_told(tmp_path, capsys, synthetic_records):
    """`--features beat+rhythm` alone trains on the rhythm recipe (context, template, sqrt weights, what validation
    chose); `--features beat` keeps the original study's; an option given on the command line wins."""

    rhythm = RECIPES["beat+rhythm"]
    saved, again = train_then_evaluate(capsys, tmp_path, synthetic_records, "--features", "beat+rhythm")
    assert saved["context"] is rhythm["context"] and saved["template"] is rhythm["template"]
    assert saved["config"]["train"]["class_weight"] == rhythm["class_weight"]
    assert saved["config"]["train"]["keep"] == rhythm["keep"]
    assert saved["config"]["train"]["morphology_dropout"] == rhythm["morphology_dropout"] > 0
    assert saved["config"]["train"]["s_offset"] == rhythm["s_offset"] > 0
    assert saved["config"]["train"]["synthetic_s"] == rhythm["synthetic_s"] > 0
    assert saved["config"]["model"]["logit_offsets"] == logit_offsets(rhythm["s_offset"])
    assert saved["config"]["model"]["in_channels"] == input_channels(rhythm["context"], rhythm["template"])
    assert again["accuracy"] == pytest.approx(saved["accuracy"])
    saved, _ = train_then_evaluate(capsys, tmp_path / "plain", synthetic_records)
    assert saved["context"] is False and saved["template"] is False
    assert saved["config"]["train"]["class_weight"] == "none" and "in_channels" not in saved["config"]["model"]
    assert saved["config"]["train"]["keep"] == "best" and saved["config"]["train"]["morphology_dropout"] == 0
    assert saved["config"]["train"]["s_offset"] == 0 and "logit_offsets" not in saved["config"]["model"]
    assert saved["config"]["train"]["synthetic_s"] == 0
    other = "best" if rhythm["keep"] == "last" else "last"
    saved, _ = train_then_evaluate(capsys, tmp_path / "told", synthetic_records, "--features", "beat+rhythm",
                                   "--no-template", "--no-context", "--class-weight", "balanced", "--keep", other)
    assert saved["context"] is False and saved["template"] is False
    assert saved["config"]["train"]["class_weight"] == "balanced" and saved["config"]["train"]["keep"] == other
