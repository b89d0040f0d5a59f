"""The patient-normalised morphology input (--template): each beat minus its record's median beat."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, run_main, train_then_evaluate
from test_data import kaggle_rows, write_kaggle

from ecglib.config import RECIPES, TrainConfig, logit_offsets, recipe
from ecglib.data.beats import Beats
from ecglib.data.facts import BEAT_LENGTH, RHYTHM_INPUTS, RHYTHM_NAMES
from ecglib.data.inputs import (
    beat_tensors,
    context_beats,
    input_channels,
    input_layout,
    model_inputs,
    record_templates,
    template_difference,
)
from ecglib.data.splits import split_beats
from ecglib.errors import InputError
from ecglib.metrics import count_parameters
from ecglib.models import build_model
from ecglib.training.batches import add_noise
from ecglib.training.run import run_training


def _two_records() -> Beats:
    """Five constant beats of two records, interleaved in the table: record A 0.1, 0.2, 0.6 (median 0.2), record B
    0.3, 0.5 (median 0.4)."""
    level = np.array([0.1, 0.3, 0.2, 0.5, 0.6], np.float32)
    record = np.array(["A", "B", "A", "B", "A"])
    x = np.repeat(level[:, None], BEAT_LENGTH, axis=1)
    x[:, 0] = 0.0  # one sample equal in all beats: its difference is 0 everywhere
    y = np.array([0, 1, 0, 2, 2], np.int64)
    return Beats(x, y, record, np.array([10, 10, 20, 20, 30]), np.array(list("NANVV")), {"source": "toy"})


def test_record_templates_and_differences_by_hand():
    beats = _two_records()
    templates = record_templates(beats)
    assert templates.shape == (5, BEAT_LENGTH) and templates.dtype == np.float32
    np.testing.assert_allclose(templates[:, 1], [0.2, 0.4, 0.2, 0.4, 0.2], rtol=1e-6)
    diff = template_difference(beats)
    np.testing.assert_allclose(diff[:, 1], [-0.1, -0.1, 0.0, 0.1, 0.4], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(diff[:, 0], 0.0)
    # A record's template comes from its own beats only: a subset keeping record A alone changes nothing for A.
    a = np.flatnonzero(beats.record == "A")
    np.testing.assert_array_equal(record_templates(beats.subset(a)), templates[a])


def test_input_channels_and_layout_are_inverse():
    for context in (False, True):
        for template in (False, True):
            assert input_layout(input_channels(context, template)) == {"context": context,
                                                                                 "template": template}
    assert [input_channels(c, t) for c, t in ((0, 0), (0, 1), (1, 0), (1, 1))] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="no beat input has 5 channels"):
        input_layout(5)


def test_beat_tensors_with_template(synthetic_beats):
    n, length = len(synthetic_beats), BEAT_LENGTH
    plain = beat_tensors(synthetic_beats)
    both = beat_tensors(synthetic_beats, "beat+rhythm", context=True, template=True)
    one = beat_tensors(synthetic_beats, template=True)
    assert plain.x.shape == (n, 1, length) and one.x.shape == (n, 2, length) and both.x.shape == (n, 4, length)
    assert one.x.dtype == torch.float32 and both.rhythm.shape == (n, len(RHYTHM_INPUTS))
    torch.testing.assert_close(one.x[:, 0], plain.x[:, 0])
    torch.testing.assert_close(both.x[:, :3], torch.from_numpy(context_beats(synthetic_beats)))
    expected = torch.from_numpy(template_difference(synthetic_beats))
    torch.testing.assert_close(one.x[:, 1], expected)
    torch.testing.assert_close(both.x[:, 3], expected)
    # What a checkpoint's model config asks for.
    again = model_inputs(synthetic_beats, {"in_channels": 2})
    torch.testing.assert_close(again.x, one.x)
    with pytest.raises(InputError, match="run.json: no beat input has 7 channels"):
        model_inputs(synthetic_beats, {"in_channels": 7}, name="run.json")
    # A model trained when there were fewer rhythm features takes the leading columns; more than exist is refused.
    k = len(RHYTHM_NAMES)
    older = model_inputs(synthetic_beats, {"rhythm_features": k - 1})
    torch.testing.assert_close(older.rhythm, torch.from_numpy(synthetic_beats.rhythm[:, :k - 1]))
    with pytest.raises(InputError, match=f"run.json: the model takes {k + 1} rhythm features per beat, the beats "
                                         f"carry {k}"):
        model_inputs(synthetic_beats, {"rhythm_features": k + 1}, name="run.json")
    with pytest.raises(InputError, match="run.json: the model takes 3 rhythm features per beat, but names 2"):
        model_inputs(synthetic_beats, {"rhythm_features": 3, "rhythm_inputs": ["pre_rr", "post_rr"]},
                          name="run.json")


def test_template_model_parameters():
    x, r = torch.rand(4, 2, BEAT_LENGTH), torch.rand(4, 10)
    plain = build_model("resnet", rhythm_features=10)
    model = build_model("resnet", rhythm_features=10, in_channels=2)
    assert count_parameters(model) == count_parameters(plain) + 64 * 3  # the stem's first conv sees one more channel
    assert model.config["in_channels"] == 2 and model(x, r).shape == (4, 5)


def test_kaggle_has_no_record_templates(tmp_path, capsys):
    beats = _two_records()
    beats.meta["source"] = "kaggle"
    with pytest.raises(InputError, match="Kaggle CSVs carry no record positions, so no record templates"):
        record_templates(beats)
    folder = write_kaggle(tmp_path / "kaggle", kaggle_rows(40, 0), kaggle_rows(15, 1))
    result = run_main(capsys, "train", "--model", "resnet", "--source", "kaggle", "--kaggle-dir", folder,
                      "--template", "--epochs", "1", "--out", tmp_path / "run")
    assert_one_line_error(result, "Kaggle", "record templates")
    assert not (tmp_path / "run").exists()


def test_template_run_and_evaluate(tmp_path, capsys, synthetic_records, synthetic_beats):
    split = split_beats(synthetic_beats, "inter", seed=0)
    config = TrainConfig(epochs=1, batch_size=64, optimizer="adam", lr=3e-3)
    m = run_training("resnet", synthetic_beats, split, tmp_path / "run", config, {"width": 8, "blocks": 1},
                           progress=False, features="beat+rhythm", template=True)
    assert m["template"] is True and m["config"]["model"]["in_channels"] == 2
    saved, again = train_then_evaluate(capsys, tmp_path, synthetic_records, "--features", "beat+rhythm",
                                       "--template", "--no-context")
    assert again["template"] is True and again["context"] is False
    assert again["accuracy"] == pytest.approx(saved["accuracy"])


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


def test_noise_augmentation_shares_the_beats_noise_with_its_template_difference():
    x = torch.rand(64, 4, BEAT_LENGTH)
    layout = input_layout(4)  # predecessor, beat, successor, beat minus template
    assert add_noise(x, 0.0, layout, torch.Generator().manual_seed(0)) is x
    out = add_noise(x, 0.05, layout, torch.Generator().manual_seed(0))
    noise = out - x
    torch.testing.assert_close(noise[:, 3], noise[:, 1])  # the template has no noise of its own
    assert not torch.allclose(noise[:, 0], noise[:, 1]) and not torch.allclose(noise[:, 2], noise[:, 1])
    # A drift of at most the level at each end, white noise of at most the level's standard deviation.
    drift = noise.mean(dim=2)
    assert drift.abs().max() <= 0.05 + 4 * 0.05 / BEAT_LENGTH ** 0.5
    assert 0 < (noise - noise.mean(dim=2, keepdim=True)).std(dim=2).max() < 0.05 * 1.3
    torch.testing.assert_close(out, add_noise(x, 0.05, layout, torch.Generator().manual_seed(0)))
    plain = add_noise(x[:, 1:2], 0.05, input_layout(1), torch.Generator().manual_seed(1))
    assert plain.shape == (64, 1, BEAT_LENGTH) and not torch.equal(plain, x[:, 1:2])
    with pytest.raises(InputError, match=r"noise: must be a number in \[0, 1\), not 1.5"):
        TrainConfig(noise=1.5)


@pytest.mark.parametrize("option, value, bad, interval", [("noise", 0.05, "2", "a number in [0, 1)"),
                                                         ("ema", 0.99, "1", "a number in [0, 1)"),
                                                         ("morphology_dropout", 0.3, "1", "a number in [0, 1)"),
                                                         ("synthetic_s", 0.2, "1", "a number in [0, 1)"),
                                                         ("s_offset", -0.5, "inf", "a finite number")])
def test_training_options_record_their_setting(option, value, bad, interval, tmp_path, capsys, synthetic_records):
    """A run records the option; its evaluation (which drops, averages and perturbs nothing, and decides with the
    run's S offset) gives its accuracy."""
    flag = "--" + option.replace("_", "-")
    saved, again = train_then_evaluate(capsys, tmp_path, synthetic_records, "--features", "beat+rhythm",
                                       flag, str(value))
    assert saved["config"]["train"][option] == value
    assert again["accuracy"] == pytest.approx(saved["accuracy"])
    with pytest.raises(SystemExit) as exc:
        run_main(capsys, "train", "--model", "resnet", "--source", "synthetic", flag, bad, "--out",
                 tmp_path / "bad")
    assert exc.value.code == 2 and capsys.readouterr().err.strip() == (
        f"ecglib: error: train: argument {flag}: must be {interval}, not {bad}")
    assert not (tmp_path / "bad").exists()
