"""Beats in their rhythm: RR-interval features, the models' rhythm input, patient-wise inter validation, class
weighting and the gross statistics."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import DS1_RECORDS, assert_one_line_error, run_main, train_then_evaluate
from test_data import kaggle_rows, write_kaggle

from ecglib.checkpoints import load_checkpoint
from ecglib.config import ODEConfig, TrainConfig, logit_offsets
from ecglib.data.beats import Beats, load_npz, save_npz
from ecglib.data.facts import AAMI, BEAT_LENGTH, CLASSES, DS1, RHYTHM_INPUTS, RHYTHM_NAMES
from ecglib.data.inputs import context_beats, model_inputs
from ecglib.data.rhythm import rhythm_features
from ecglib.data.splits import split_beats, split_records
from ecglib.errors import InputError
from ecglib.inference import predict
from ecglib.metrics import cohen_kappa, count_parameters, gross_statistics
from ecglib.models import build_model, model_from_config
from ecglib.report.anchors import anchors_table, rr_ratio_table, runs_table
from ecglib.report.figures import plot_rr_ratios
from ecglib.training.batches import class_weights, epoch_order, synthetic_s
from ecglib.training.loop import fit
from ecglib.training.resume import check_resumable
from ecglib.training.run import run_training

FAST_ODE = {"ode": ODEConfig(solver="rk4", step_size=0.5, adjoint=False)}
K = len(RHYTHM_NAMES)


def col(name: str) -> int:
    return RHYTHM_NAMES.index(name)


# ----------------------------------------------------------------------------------------------- rhythm features
# 13 beats at 250 Hz. RR intervals (s): 2 at both ends, a premature beat (beat 6: pre-RR 0.5) followed by a
# compensatory pause (post-RR 1.5), 1 elsewhere.
RR = [2.0, 1.0, 1.0, 1.0, 1.0, 0.5, 1.5, 1.0, 1.0, 1.0, 1.0, 2.0]
SAMPLES = np.concatenate([[100], 100 + np.cumsum(np.array(RR) * 250)]).astype(np.int64)


def test_rhythm_features_of_a_hand_made_record():
    f = rhythm_features(SAMPLES, 250.0)
    assert f.shape == (13, K) and f.dtype == np.float32
    record = 14.0 / 12
    # The premature beat: its window of 10 intervals (5 before, 5 after) is RR[1:11], mean 1.0.
    expected6 = {"pre_rr": 0.5, "post_rr": 1.5, "local_rr": 1.0, "record_rr": record, "pre_over_local": 0.5,
                 "post_over_local": 1.5, "post_over_pre": 3.0, "pre_over_record": 0.5 / record,
                 "post_over_record": 1.5 / record, "local_over_record": 1.0 / record}
    # The beat after it: pre 1.5, post 1.0, window RR[2:12] = (7 * 1 + 0.5 + 1.5 + 2) / 10 = 1.1.
    expected7 = {"pre_rr": 1.5, "post_rr": 1.0, "local_rr": 1.1, "post_over_pre": 1.0 / 1.5}
    # First beat: no pre-RR, it copies its post-RR (2.0); window RR[0:5] = 6 / 5.
    expected0 = {"pre_rr": 2.0, "post_rr": 2.0, "local_rr": 1.2, "post_over_pre": 1.0, "pre_over_local": 2.0 / 1.2}
    # Last beat: no post-RR, it copies its pre-RR (2.0); window RR[7:12] = 6 / 5.
    expected12 = {"pre_rr": 2.0, "post_rr": 2.0, "local_rr": 1.2, "post_over_pre": 1.0,
                  "post_over_record": 2.0 / record}
    for beat, expected in ((6, expected6), (7, expected7), (0, expected0), (12, expected12)):
        for name, value in expected.items():
            assert f[beat, col(name)] == pytest.approx(value, rel=1e-6), (beat, name)
    assert np.all(f[:, col("record_rr")] == np.float32(record))


def test_local_irregularity_ignores_one_ectopic_beat_and_measures_an_irregular_rhythm():
    f = rhythm_features(SAMPLES, 250.0)[:, col("local_irregularity")]
    # The premature beat's window RR[1:11]: successive differences 0, 0, 0, 0.5, 1, 0.5, 0, 0, 0, median 0.
    assert f[6] == 0 and f[5] == 0 and f[7] == 0
    # Beat 3's window RR[0:8] (clipped at the start): differences 1, 0, 0, 0, 0.5, 1, 0.5, median 0.5; mean 9 / 8.
    assert f[3] == pytest.approx(0.5 / 1.125, rel=1e-6)
    # An irregular rhythm (atrial fibrillation-like): beat 4's window holds all 9 intervals, mean 8 / 9 s;
    # differences 0.4, 0.6, 0.4, 0.2, 0.5, 0.4, 0.4, 0.6, median 0.4.
    rr = [1.0, 0.6, 1.2, 0.8, 1.0, 0.5, 0.9, 1.3, 0.7]
    af = rhythm_features(np.concatenate([[0], np.cumsum(np.array(rr) * 250)]).astype(np.int64), 250.0)
    assert af[4, col("local_irregularity")] == pytest.approx(0.4 / (8.0 / 9), rel=1e-6)
    assert (af[:, col("local_irregularity")] > 0.3).all()
    # Two beats: one interval, no pair of successive ones.
    assert rhythm_features(np.array([0, 100]), 250.0)[:, col("local_irregularity")].tolist() == [0, 0]


def test_rhythm_features_window_and_errors():
    # A window of 2 intervals: the mean of the beat's own pre- and post-RR.
    f = rhythm_features(np.array([0, 360, 720, 936, 1440]), 360.0, local_intervals=2)
    np.testing.assert_allclose(f[:, col("local_rr")], [1.0, 1.0, 0.8, 1.0, 1.4], rtol=1e-6)
    # A window of one interval: the post-RR, and at the last beat (none after it) its pre-RR.
    f = rhythm_features(np.array([0, 360, 720, 936, 1440]), 360.0, local_intervals=1)
    np.testing.assert_allclose(f[:, col("local_rr")], [1.0, 1.0, 0.6, 1.4, 1.4], rtol=1e-6)
    with pytest.raises(ValueError, match="at least two beats"):
        rhythm_features(np.array([5]), 360.0)
    with pytest.raises(ValueError, match="do not increase"):
        rhythm_features(np.array([0, 360, 360, 720]), 360.0)


def test_records_carry_rhythm_from_all_annotations(synthetic_records, synthetic_beats):
    import wfdb

    beats = synthetic_beats
    assert beats.rhythm is not None and beats.rhythm.shape == (len(beats), K)
    assert beats.meta["rhythm_features"]["names"] == list(RHYTHM_NAMES)
    assert beats.meta["rhythm_features"]["units"][:4] == ["s"] * 4
    name = DS1_RECORDS[0]
    ann = wfdb.rdann(str(synthetic_records / name), "atr")
    keep = np.isin(ann.symbol, list(AAMI))
    all_samples = np.asarray(ann.sample)[keep]
    mine = beats.record == name
    expected = rhythm_features(all_samples, ann.fs)[np.searchsorted(all_samples, beats.sample[mine])]
    np.testing.assert_array_equal(beats.rhythm[mine], expected)
    # Beats running past the record's end are dropped, but the last kept beat's post-RR is still its true one.
    last = beats.sample[mine].max()
    after = all_samples[all_samples > last]
    if len(after):
        got = beats.rhythm[mine][beats.sample[mine] == last][0, col("post_rr")]
        assert got == pytest.approx((after[0] - last) / ann.fs, rel=1e-6)


def test_synthetic_rhythm_is_realistic(synthetic_beats):
    """Premature S beats with a shortened RR; V beats premature with a compensatory pause (pre + post ~ 2 RR)."""
    r, y = synthetic_beats.rhythm, synthetic_beats.y
    med = {c: np.median(r[y == CLASSES.index(c)], axis=0) for c in ("N", "S", "V")}
    assert 0.95 < med["N"][col("pre_over_local")] < 1.05
    assert med["S"][col("pre_over_local")] < 0.85
    assert med["V"][col("pre_over_local")] < 0.8 and med["V"][col("post_over_pre")] > 1.5
    v = r[y == CLASSES.index("V")]
    pair = (v[:, col("pre_rr")] + v[:, col("post_rr")]) / v[:, col("local_rr")]
    assert 1.8 < np.median(pair) < 2.2


def test_npz_round_trip_with_rhythm(tmp_path, synthetic_beats):
    path = tmp_path / "beats.npz"
    save_npz(synthetic_beats, path)
    back = load_npz(path)
    np.testing.assert_array_equal(back.rhythm, synthetic_beats.rhythm)
    assert back.meta["rhythm_features"] == synthetic_beats.meta["rhythm_features"]
    sub = back.subset(np.arange(5))
    np.testing.assert_array_equal(sub.rhythm, synthetic_beats.rhythm[:5])
    for bad, match in ((np.full((len(back), K), np.nan, np.float32), "non-finite rhythm"),
                       (np.zeros((len(back), K - 1), np.float32), "rhythm features have shape")):
        broken = Beats(back.x, back.y, back.record, back.sample, back.symbol, back.meta, bad)
        save_npz(broken, tmp_path / "bad.npz")
        with pytest.raises(InputError, match=match):
            load_npz(tmp_path / "bad.npz")


def test_context_beats_are_record_neighbours(synthetic_beats):
    ctx = context_beats(synthetic_beats)
    assert ctx.shape == (len(synthetic_beats), 3, BEAT_LENGTH)
    np.testing.assert_array_equal(ctx[:, 1], synthetic_beats.x)
    mine = np.flatnonzero(synthetic_beats.record == DS1_RECORDS[1])
    order = mine[np.argsort(synthetic_beats.sample[mine])]
    np.testing.assert_array_equal(ctx[order[1:], 0], synthetic_beats.x[order[:-1]])
    np.testing.assert_array_equal(ctx[order[:-1], 2], synthetic_beats.x[order[1:]])
    np.testing.assert_array_equal(ctx[order[0], 0], synthetic_beats.x[order[0]])  # no predecessor: itself


# ------------------------------------------------------------------------------------------------------- splits
def test_inter_validation_is_patient_wise(synthetic_beats):
    for seed in (0, 1):
        split = split_beats(synthetic_beats, "inter", seed=seed)
        parts = split_records(synthetic_beats, split)
        train_r, val_r, test_r = (set(parts[f"{p}_records"]) for p in ("train", "val", "test"))
        assert val_r and train_r and test_r
        assert not (train_r & val_r) and not (train_r & test_r) and not (val_r & test_r)
        assert train_r | val_r == set(DS1_RECORDS)


def _records_beats(spec: dict[str, dict[int, int]]) -> Beats:
    y = np.concatenate([np.full(n, c) for counts in spec.values() for c, n in counts.items()]).astype(np.int64)
    rec = np.concatenate([np.full(sum(counts.values()), r) for r, counts in spec.items()])
    n = len(y)
    return Beats(np.zeros((n, BEAT_LENGTH), np.float32), y, rec.astype(str), np.arange(n),
                      np.asarray(CLASSES)[y], {"source": "toy"})


def test_inter_validation_holds_s_and_v_without_starving_training():
    # Ten DS1 records of 100 beats: S beats only in 101 and 106, V only in 108 and 109; 208 holds all F beats.
    ds1 = DS1[:10]
    spec = {r: {0: 100} for r in ds1}
    spec["101"], spec["106"] = {0: 80, 1: 20}, {0: 70, 1: 30}
    spec["108"], spec["109"] = {0: 60, 2: 40}, {0: 50, 2: 50}
    spec["208"] = {0: 40, 3: 60}
    spec["100"] = {0: 100}  # DS2
    beats = _records_beats(spec)
    for seed in range(3):
        split = split_beats(beats, "inter", val_fraction=0.2, seed=seed)
        val_records = set(beats.record[split.val])
        assert val_records & {"101", "106"} and val_records & {"108", "109"}, val_records
        assert "208" not in val_records
        for c in (1, 2):  # each of S and V also stays in training
            assert (beats.y[split.train] == c).any()
        assert set(beats.record[split.test]) == {"100"}


# -------------------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize("name, kwargs, plain", [("resnet", {}, 182_853), ("odenet", FAST_ODE, 59_333)])
def test_parameters_and_shapes_with_and_without_rhythm(name, kwargs, plain):
    x, r = torch.rand(4, 1, BEAT_LENGTH), torch.rand(4, K)
    model = build_model(name, **kwargs)
    assert count_parameters(model) == plain
    assert "rhythm_features" not in model.config and "in_channels" not in model.config
    assert model(x).shape == (4, 5)
    with pytest.raises(ValueError, match="no rhythm"):
        model(x, r)
    rhythmic = build_model(name, rhythm_features=K, **kwargs)
    assert count_parameters(rhythmic) == plain + (K * 16 + 16) + 16 * 5
    assert rhythmic(x, r).shape == (4, 5)
    with pytest.raises(ValueError, match="needs rhythm"):
        rhythmic(x)
    ctx = build_model(name, rhythm_features=K, in_channels=3, **kwargs)
    assert count_parameters(ctx) == count_parameters(rhythmic) + 2 * 64 * 3
    assert ctx(torch.rand(4, 3, BEAT_LENGTH), r).shape == (4, 5)


def test_rhythm_standardisation_travels_with_the_weights(tmp_path):
    model = build_model("resnet", width=8, blocks=1, rhythm_features=3)
    r = torch.tensor([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0]])
    model.set_rhythm_stats(r)
    torch.testing.assert_close(model.rhythm_mean, torch.tensor([2.0, 5.0, 3.0]))
    torch.testing.assert_close(model.rhythm_std, torch.tensor([1.0, 1.0, 1.0]))  # the constant one keeps std 1
    again = build_model("resnet", width=8, blocks=1, rhythm_features=3)
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again.rhythm_mean, model.rhythm_mean)


# ------------------------------------------------------------------------------------------------------ training
def test_class_weights():
    y = np.array([0] * 6 + [1] * 2 + [2] * 4)
    assert class_weights(y, "none") is None
    torch.testing.assert_close(class_weights(y, "balanced"),
                               torch.tensor([12 / 18, 12 / 6, 12 / 12, 1.0, 1.0]))
    torch.testing.assert_close(class_weights(y, "sqrt"),
                               torch.tensor([12 / 18, 12 / 6, 12 / 12, 1.0, 1.0]).sqrt())
    # A class of a handful of beats: its count is floored at 1 % of the beats (Q: 8 of 45,000 in DS1).
    many = np.array([0] * 9990 + [4] * 10)
    torch.testing.assert_close(class_weights(many, "balanced")[[0, 4]],
                               torch.tensor([10000 / (2 * 9990), 10000 / (2 * 100)]))
    with pytest.raises(InputError, match="class_weight: must be one of none, balanced, sqrt"):
        TrainConfig(class_weight="inverse")


def test_balanced_sampler_draws_classes_evenly():
    y = torch.tensor([0] * 900 + [1] * 100)
    config = TrainConfig(sampler="balanced", seed=0)
    order = epoch_order(y, config, epoch=0)
    assert len(order) == 1000
    assert 0.4 < (y[order] == 1).float().mean() < 0.6
    torch.testing.assert_close(order, epoch_order(y, config, epoch=0))


def test_rhythm_run_records_split_and_gross_statistics(tmp_path, synthetic_beats):
    split = split_beats(synthetic_beats, "inter", seed=0)
    config = TrainConfig(epochs=1, batch_size=64, optimizer="adam", lr=3e-3, class_weight="sqrt")
    m = run_training("resnet", synthetic_beats, split, tmp_path / "run", config,
                           {"width": 8, "blocks": 1}, progress=False, features="beat+rhythm")
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["config"]["features"] == "beat+rhythm" and saved["config"]["train"]["class_weight"] == "sqrt"
    assert saved["config"]["model"]["rhythm_features"] == len(RHYTHM_INPUTS) < K
    assert saved["config"]["model"]["rhythm_inputs"] == list(RHYTHM_INPUTS)
    recs = [set(saved["split"][f"{p}_records"]) for p in ("train", "val", "test")]
    assert recs[1] and not (recs[0] & recs[1]) and not (recs[0] & recs[2]) and not (recs[1] & recs[2])
    assert set(saved["gross"]) == set(CLASSES) and -1 <= saved["kappa"] <= 1
    assert "validation" in saved and saved["validation"]["n_test"] == len(split.val)
    best, _ = load_checkpoint(tmp_path / "run")
    # The checkpoint carries the training split's standardisation.
    columns = [col(name) for name in RHYTHM_INPUTS]
    expected = torch.from_numpy(synthetic_beats.rhythm[split.train][:, columns]).double().mean(0).float()
    torch.testing.assert_close(best.rhythm_mean, expected)
    assert m["accuracy"] == saved["accuracy"]
    # What the model is given when it is evaluated: its named columns only, so a beat's RR intervals in seconds
    # (its patient's heart rate) change nothing, and a ratio does.
    beats = synthetic_beats.subset(np.arange(200))
    base = model_inputs(beats, best.config).rhythm
    assert base.shape == (200, len(RHYTHM_INPUTS))
    seconds = beats.subset(np.arange(200))
    seconds.rhythm = seconds.rhythm.copy()
    seconds.rhythm[:, [col(n) for n in ("pre_rr", "post_rr", "local_rr", "record_rr")]] *= 1.7
    torch.testing.assert_close(model_inputs(seconds, best.config).rhythm, base)
    seconds.rhythm[:, col("pre_over_local")] *= 0.5
    assert not torch.equal(model_inputs(seconds, best.config).rhythm, base)


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


def test_kaggle_with_rhythm_is_one_clear_error(tmp_path, capsys):
    folder = write_kaggle(tmp_path / "kaggle", kaggle_rows(40, 0), kaggle_rows(15, 1))
    result = run_main(capsys, "train", "--model", "resnet", "--source", "kaggle", "--kaggle-dir", folder,
                      "--features", "beat+rhythm", "--epochs", "1", "--out", tmp_path / "run")
    assert_one_line_error(result, "Kaggle", "rhythm", str(folder))
    assert not (tmp_path / "run").exists()


def test_cli_train_and_evaluate_with_rhythm(tmp_path, capsys, synthetic_records):
    saved, again = train_then_evaluate(capsys, tmp_path, synthetic_records, "--features", "beat+rhythm",
                                       "--class-weight", "balanced")
    npz = tmp_path / "beats.npz"
    assert again["features"] == "beat+rhythm"
    assert again["accuracy"] == pytest.approx(saved["accuracy"])
    # An npz without rhythm features cannot feed a rhythm model.
    plain = load_npz(npz)
    plain.rhythm = None
    save_npz(plain, tmp_path / "plain.npz")
    result = run_main(capsys, "train", "--model", "resnet", "--data", tmp_path / "plain.npz", "--features",
                      "beat+rhythm", "--epochs", "1", "--out", tmp_path / "run2")
    assert_one_line_error(result, "plain.npz", "no rhythm features")


# ------------------------------------------------------------------------------------------------------- metrics
def test_gross_statistics_and_kappa():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 2, 1, 0, 2, 2])
    g = gross_statistics(y_true, y_pred)
    assert g["N"] == {"se": 0.5, "ppv": 2 / 3, "fpr": 1 / 4, "tp": 2, "fn": 2, "fp": 1}
    assert g["S"]["se"] == 0.5 and g["S"]["ppv"] == 0.5 and g["S"]["fpr"] == 1 / 6
    assert g["V"]["se"] == 1.0 and g["V"]["ppv"] == 2 / 3 and g["V"]["fpr"] == 1 / 6
    assert g["F"] == {"se": 0.0, "ppv": 0.0, "fpr": 0.0, "tp": 0, "fn": 0, "fp": 0}
    # observed agreement 5/8, chance agreement (4*3 + 2*2 + 2*3) / 64
    pe = (4 * 3 + 2 * 2 + 2 * 3) / 64
    assert cohen_kappa(y_true, y_pred) == pytest.approx((5 / 8 - pe) / (1 - pe))


# ------------------------------------------------------------------------------------------------ notebook helpers
def test_rhythm_plot_helpers(tmp_path, synthetic_beats):
    import matplotlib

    matplotlib.use("Agg")

    table = rr_ratio_table(synthetic_beats)
    assert table.loc["S", "pre_over_local median"] < table.loc["N", "pre_over_local median"]
    axes = plot_rr_ratios(synthetic_beats)
    assert len(axes) == 2 and axes[0].get_legend() is not None
    assert list(anchors_table().columns) == ["inputs", "S Se", "S +P", "V Se", "V +P"]
    m = {"accuracy": 0.9, "baseline_accuracy": 0.8, "macro_f1": 0.5, "kappa": 0.4,
         "gross": {c: {"se": 0.5, "ppv": 0.25} for c in CLASSES}}
    rows = runs_table({"resnet": [m, {**m, "accuracy": 0.8}]})
    assert rows.loc["resnet", "accuracy"] == pytest.approx(0.85) and rows.loc["resnet", "S Se"] == 50.0


def test_checkpoints_from_before_class_weighting_still_resume(tmp_path):
    from dataclasses import asdict

    model = build_model("resnet", width=8, blocks=1)
    old = {k: v for k, v in asdict(TrainConfig()).items() if k not in ("class_weight", "sampler")}
    state = {"model_config": model.config, "train_config": old}
    check_resumable(state, model, TrainConfig(), tmp_path / "checkpoint.pt")
    with pytest.raises(InputError, match="class_weight"):
        check_resumable(state, model, TrainConfig(class_weight="sqrt"), tmp_path / "checkpoint.pt")


# ------------------------------------------------------------------------------------------- morphology dropout
@pytest.mark.parametrize("name", ["resnet", "odenet"])
def test_morphology_dropout_leaves_a_dropped_beat_its_rhythm_alone(name):
    kwargs = {"width": 8, "blocks": 1, **(FAST_ODE if name == "odenet" else {})}
    model = build_model(name, rhythm_inputs=RHYTHM_INPUTS, in_channels=4, **kwargs).eval()
    x, r = torch.rand(6, 4, BEAT_LENGTH), torch.rand(6, len(RHYTHM_INPUTS))
    other = torch.rand(6, 4, BEAT_LENGTH)
    keep = torch.tensor([True, False, True, False, False, True])
    with torch.no_grad():
        plain, dropped = model(x, r), model(x, r, keep)
        torch.testing.assert_close(model(x, r, torch.ones(6, dtype=torch.bool)), plain)
        torch.testing.assert_close(dropped[keep], plain[keep])
        # A dropped beat's logits do not depend on its shape: they are the head's bias plus its rhythm's share.
        torch.testing.assert_close(model(other, r, keep)[~keep], dropped[~keep])
        rhythm_part = model.rhythm((r - model.rhythm_mean) / model.rhythm_std)
        alone = model.head[-1](torch.cat([torch.zeros(6, 8), rhythm_part], dim=1))
        torch.testing.assert_close(dropped[~keep], alone[~keep])
        assert not torch.allclose(dropped[~keep], plain[~keep])
    with pytest.raises(ValueError, match="keep_morphology must be shaped"):
        model(x, r, keep[:3])
    with pytest.raises(ValueError, match="needs a model with a rhythm input"):
        build_model(name, **kwargs)(x[:, :1], None, keep)


def _fit_with_dropout(p: float, rhythm: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("resnet", width=8, blocks=1, rhythm_features=3 if rhythm else 0)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(96, 1, BEAT_LENGTH, generator=gen), torch.randint(0, 3, (96,), generator=gen)
    r = torch.rand(96, 3, generator=gen) if rhythm else None
    if rhythm:
        model.set_rhythm_stats(r)
    config = TrainConfig(epochs=2, batch_size=32, optimizer="adam", lr=1e-2, morphology_dropout=p, threads=1)
    fit(model, x, y, x[:16], y[:16], config, progress=False, r_train=r, r_val=r[:16] if rhythm else None)
    return model


def test_morphology_dropout_trains_reproducibly_and_needs_the_rhythm_input():
    state = _fit_with_dropout(0.5).state_dict()
    again, off = _fit_with_dropout(0.5).state_dict(), _fit_with_dropout(0.0).state_dict()
    assert all(torch.equal(state[k], again[k]) for k in state)
    assert not all(torch.equal(state[k], off[k]) for k in state)
    with pytest.raises(InputError, match="morphology dropout 0.5 needs the rhythm input"):
        _fit_with_dropout(0.5, rhythm=False)
    for bad in (1.0, -0.1):
        with pytest.raises(InputError, match=r"morphology_dropout: must be a number in \[0, 1\)"):
            TrainConfig(morphology_dropout=bad)


@pytest.mark.parametrize("flag, value, message", [
    ("--morphology-dropout", "0.3", "morphology dropout 0.3 needs the rhythm input"),
    ("--synthetic-s", "0.02", "synthetic S beats (0.02) need the rhythm input")])
def test_cli_rhythm_options_without_the_rhythm_input(flag, value, message, tmp_path, capsys, synthetic_records):
    """Recorded and refused out of range with the other training options (test_template); here: without the
    rhythm input each is one line, and no run folder."""
    result = run_main(capsys, "train", "--model", "resnet", "--source", "mitdb", "--mitdb-dir", synthetic_records,
                      "--no-download", flag, value, "--out", tmp_path / "plain")
    assert_one_line_error(result, message, "--features beat+rhythm")
    assert not (tmp_path / "plain").exists()


# ------------------------------------------------------------------------------------------- S decision offset
@pytest.mark.parametrize("name", ["resnet", "odenet"])
def test_logit_offsets_move_decisions_not_training(name):
    kwargs = {"width": 8, "blocks": 1, **(FAST_ODE if name == "odenet" else {})}
    torch.manual_seed(0)
    plain = build_model(name, rhythm_inputs=RHYTHM_INPUTS, **kwargs)
    offsets = logit_offsets(0.7)
    assert offsets == [0.0, 0.7, 0.0, 0.0, 0.0] and logit_offsets(0.0) is None
    shifted = build_model(name, rhythm_inputs=RHYTHM_INPUTS, logit_offsets=offsets, **kwargs)
    shifted.load_state_dict(plain.state_dict())  # the offsets are no weights: the same state_dict fits both
    assert shifted.config["logit_offsets"] == offsets and "logit_offsets" not in plain.config
    assert count_parameters(shifted) == count_parameters(plain)
    x, r = torch.rand(5, 1, BEAT_LENGTH), torch.rand(5, len(RHYTHM_INPUTS))
    with torch.no_grad():
        torch.testing.assert_close(shifted.train()(x, r), plain.train()(x, r))  # the loss never sees them
        torch.testing.assert_close(shifted.eval()(x, r), plain.eval()(x, r) + torch.tensor(offsets))
        rebuilt = model_from_config(shifted.config)
        rebuilt.load_state_dict(plain.state_dict())
        torch.testing.assert_close(rebuilt.eval()(x, r), shifted(x, r))
        shifted.set_logit_offsets([0.0] * 5)
        torch.testing.assert_close(shifted(x, r), plain(x, r))
        assert "logit_offsets" not in shifted.config
    # A large enough offset calls every beat S; the plain model did not.
    huge = build_model(name, rhythm_inputs=RHYTHM_INPUTS, logit_offsets=logit_offsets(1e3), **kwargs)
    huge.load_state_dict(plain.state_dict())
    assert (predict(huge, x, rhythm=r)[0] == CLASSES.index("S")).all()
    assert not (predict(plain, x, rhythm=r)[0] == CLASSES.index("S")).all()
    for bad in ([0.0, 1.0], [0.0, float("nan"), 0.0, 0.0, 0.0]):
        with pytest.raises(ValueError, match="are not 5 finite numbers"):
            build_model(name, logit_offsets=bad, **kwargs)
    with pytest.raises(InputError, match="s_offset: must be a finite number, not inf"):
        TrainConfig(s_offset=float("inf"))


def test_s_offset_trains_the_same_weights_and_moves_the_test_decisions(tmp_path, capsys, synthetic_records):
    """The offset changes what the run's model calls S, never what it learns: the same seed gives the same
    weights and training losses, and the offset run's test finds at least as many S beats."""
    runs_ = {}
    for b in ("0", "2"):
        saved, again = train_then_evaluate(capsys, tmp_path / b, synthetic_records, "--features", "beat+rhythm",
                                           "--s-offset", b)
        assert again["accuracy"] == pytest.approx(saved["accuracy"])  # evaluate decides with the saved offset
        runs_[b] = saved
    assert runs_["0"]["config"]["train"]["s_offset"] == 0 and "logit_offsets" not in runs_["0"]["config"]["model"]
    assert runs_["2"]["config"]["model"]["logit_offsets"] == [0.0, 2.0, 0.0, 0.0, 0.0]
    w0, w2 = (torch.load(tmp_path / b / "cli" / "best.pt", weights_only=False)["model"] for b in ("0", "2"))
    assert w0.keys() == w2.keys() and all(torch.equal(w0[k], w2[k]) for k in w0)
    h0, h2 = (np.genfromtxt(tmp_path / b / "cli" / "history.csv", delimiter=",", names=True) for b in ("0", "2"))
    np.testing.assert_array_equal(h0["train_loss"], h2["train_loss"])
    called_s = [np.asarray(runs_[b]["confusion_matrix"])[:, CLASSES.index("S")].sum() for b in ("0", "2")]
    assert called_s[1] > called_s[0]
    # `evaluate --s-offset` decides with another offset: the offset run's weights at 0 are the plain run.
    assert run_main(capsys, "evaluate", tmp_path / "2" / "cli", "--s-offset", "0", "--out", tmp_path / "e.json").rc == 0
    again = json.loads((tmp_path / "e.json").read_text())
    assert again["accuracy"] == pytest.approx(runs_["0"]["accuracy"]) and "logit_offsets" not in again["solver"]


# ---------------------------------------------------------------------------------------------- synthetic S beats
def test_synthetic_s_gives_n_beats_an_s_rhythm_and_label():

    n, s = CLASSES.index("N"), CLASSES.index("S")
    y = torch.tensor([n, CLASSES.index("V"), n, s, n, CLASSES.index("F")] * 50)
    r = torch.rand(len(y), 3)
    s_rhythm = torch.tensor([[0.7, 1.0, 1.4], [0.6, 1.1, 1.8]])
    assert synthetic_s(y, r, s_rhythm, 0.0, torch.Generator().manual_seed(0)) == (y, r)
    every_y, every_r = synthetic_s(y, r, s_rhythm, 0.99999, torch.Generator().manual_seed(0))
    assert (every_y[y == n] == s).all() and torch.equal(every_y[y != n], y[y != n])
    assert torch.equal(every_r[y != n], r[y != n])  # V, F and real S beats keep their own rhythm
    assert all(any(torch.equal(row, t) for t in s_rhythm) for row in every_r[y == n])
    some_y, some_r = synthetic_s(y, r, s_rhythm, 0.3, torch.Generator().manual_seed(1))
    turned = (some_y != y)
    assert 0.15 < turned.sum().item() / (y == n).sum().item() < 0.45 and (y[turned] == n).all()
    again = synthetic_s(y, r, s_rhythm, 0.3, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], some_y) and torch.equal(again[1], some_r)
    assert torch.equal(y, torch.tensor([n, CLASSES.index("V"), n, s, n, CLASSES.index("F")] * 50))  # not in place


def test_synthetic_s_needs_s_beats_in_training():
    torch.manual_seed(0)
    model = build_model("resnet", width=8, blocks=1, rhythm_features=3)
    gen = torch.Generator().manual_seed(1)
    x, r = torch.rand(64, 1, BEAT_LENGTH, generator=gen), torch.rand(64, 3, generator=gen)
    no_s = torch.tensor([0, 2] * 32)
    model.set_rhythm_stats(r)
    config = TrainConfig(epochs=1, batch_size=32, optimizer="adam", lr=1e-2, synthetic_s=0.1, threads=1)
    with pytest.raises(InputError, match="need S beats in the training split"):
        fit(model, x, no_s, x[:8], no_s[:8], config, progress=False, r_train=r, r_val=r[:8])
    with_s = no_s.clone()
    with_s[:4] = CLASSES.index("S")
    history = fit(model, x, with_s, x[:8], with_s[:8], config, progress=False, r_train=r, r_val=r[:8])
    assert len(history) == 1
