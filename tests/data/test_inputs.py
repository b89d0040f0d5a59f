"""Model inputs: neighbouring beats, record templates, rhythm columns and the tensors a model takes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DS1_RECORDS, assert_one_line_error, col, kaggle_rows, run_main, write_kaggle

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
from ecglib.errors import InputError
from ecglib.models import build_model


def _two_records() -> Beats:
    """Five constant beats of two records, interleaved in the table: record A 0.1, 0.2, 0.6 (median 0.2), record B
    0.3, 0.5 (median 0.4)."""
    level = np.array([0.1, 0.3, 0.2, 0.5, 0.6], np.float32)
    record = np.array(["A", "B", "A", "B", "A"])
    x = np.repeat(level[:, None], BEAT_LENGTH, axis=1)
    x[:, 0] = 0.0  # one sample equal in all beats: its difference is 0 everywhere
    y = np.array([0, 1, 0, 2, 2], np.int64)
    return Beats(x, y, record, np.array([10, 10, 20, 20, 30]), np.array(list("NANVV")), {"source": "toy"})


def test_context_beats_are_record_neighbours(synthetic_beats):
    ctx = context_beats(synthetic_beats)
    assert ctx.shape == (len(synthetic_beats), 3, BEAT_LENGTH)
    np.testing.assert_array_equal(ctx[:, 1], synthetic_beats.x)
    mine = np.flatnonzero(synthetic_beats.record == DS1_RECORDS[1])
    order = mine[np.argsort(synthetic_beats.sample[mine])]
    np.testing.assert_array_equal(ctx[order[1:], 0], synthetic_beats.x[order[:-1]])
    np.testing.assert_array_equal(ctx[order[:-1], 2], synthetic_beats.x[order[1:]])
    np.testing.assert_array_equal(ctx[order[0], 0], synthetic_beats.x[order[0]])  # no predecessor: itself


def test_models_saved_before_named_rhythm_inputs_take_the_leading_columns(synthetic_beats):
    beats = synthetic_beats.subset(np.arange(50))
    old = build_model("resnet", width=8, blocks=1, rhythm_features=10).config  # before the irregularity existed
    assert "rhythm_inputs" not in old
    torch.testing.assert_close(model_inputs(beats, old).rhythm, torch.from_numpy(beats.rhythm[:, :10]))
    named = build_model("resnet", width=8, blocks=1, rhythm_inputs=["post_over_pre", "pre_rr"]).config
    assert named["rhythm_features"] == 2
    torch.testing.assert_close(model_inputs(beats, named).rhythm,
                               torch.from_numpy(beats.rhythm[:, [col("post_over_pre"), col("pre_rr")]]))
    with pytest.raises(ValueError, match="feature names"):
        build_model("resnet", width=8, blocks=1, rhythm_features=3, rhythm_inputs=["pre_rr"])
    # beats prepared before a feature the model takes existed: one clear error naming the beats and the feature
    older = beats.subset(np.arange(50))
    older.rhythm = older.rhythm[:, :10]
    older.meta = {**older.meta, "rhythm_features": {"names": list(RHYTHM_NAMES[:10])}}
    with pytest.raises(InputError, match="old.npz: these beats carry no rhythm feature 'local_irregularity'"):
        model_inputs(older, {"model": "resnet", "rhythm_features": 1,
                                  "rhythm_inputs": ["local_irregularity"]}, "old.npz")


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


@pytest.mark.parametrize("in_channels, rhythm", [(1, 0), (2, 0), (3, 7), (4, 7)])
def test_record_inputs_by_parts_equal_the_whole_tables(in_channels, rhythm, synthetic_beats):
    """RecordInputs (labelling builds a long recording's inputs a part at a time) gives, row for row, the tensors
    model_inputs gives for the table of that one record: neighbours at the parts' edges and the whole record's
    template included."""
    from ecglib.data.inputs import RecordInputs, model_inputs

    beats = synthetic_beats.subset(np.flatnonzero(synthetic_beats.record == "208"))
    config = {"in_channels": in_channels, "rhythm_features": rhythm,
              **({"rhythm_inputs": list(RHYTHM_INPUTS)} if rhythm else {})}
    whole = model_inputs(beats, config).part(np.arange(len(beats)))
    parts = RecordInputs(beats, config)
    pieces = [parts.part(np.arange(a, min(len(beats), a + 7))) for a in range(0, len(beats), 7)]
    assert torch.equal(torch.cat([p[0] for p in pieces]), whole[0])
    assert (whole[2] is None) == (rhythm == 0)
    if rhythm:
        assert torch.equal(torch.cat([p[2] for p in pieces]), whole[2])
