"""A whole run: metrics.json, rhythm runs, recipes, and a run killed and resumed to the same numbers."""
from __future__ import annotations

import csv
import json
import signal

import numpy as np
import pytest
import torch
from conftest import (
    K,
    col,
    run_metrics,
)

from ecglib.checkpoints import load_checkpoint
from ecglib.config import TrainConfig
from ecglib.data.facts import BEAT_LENGTH, CLASSES, RHYTHM_INPUTS
from ecglib.data.inputs import model_inputs
from ecglib.data.splits import split_beats
from ecglib.errors import InputError
from ecglib.models import build_model
from ecglib.training.loop import fit
from ecglib.training.resume import check_resumable
from ecglib.training.run import run_training


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


def test_checkpoints_from_before_class_weighting_still_resume(tmp_path):
    from dataclasses import asdict

    model = build_model("resnet", width=8, blocks=1)
    old = {k: v for k, v in asdict(TrainConfig()).items() if k not in ("class_weight", "sampler")}
    state = {"model_config": model.config, "train_config": old}
    check_resumable(state, model, TrainConfig(), tmp_path / "checkpoint.pt")
    with pytest.raises(InputError, match="class_weight"):
        check_resumable(state, model, TrainConfig(class_weight="sqrt"), tmp_path / "checkpoint.pt")


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


def test_train_writes_metrics_json(cli_runs):
    result = cli_runs["straight"]
    assert result.rc == 0, result.stderr
    assert "resnet: test accuracy" in result.stdout and "182,853 parameters" in result.stdout
    run = cli_runs["root"] / "straight"
    m = run_metrics(run)
    for key in ("accuracy", "macro_f1", "baseline_accuracy", "per_class", "confusion_matrix", "params",
                "seconds_per_epoch", "nfe_forward", "nfe_backward", "activation_bytes", "config"):
        assert key in m, key
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (5, 5)
    assert cm.sum() == m["n_test"] == m["split_sizes"]["test"] == 120  # 20% of --limit 600
    assert m["split_sizes"] == {"train": 432, "val": 48, "test": 120}
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert [m["per_class"][c]["support"] for c in CLASSES] == cm.sum(axis=1).tolist()  # rows: true class
    assert m["params"] == 182_853
    assert len(m["seconds_per_epoch"]) == 3 and all(s > 0 for s in m["seconds_per_epoch"])
    assert m["nfe_forward"] == 0 and m["nfe_backward"] == 0
    assert m["activation_bytes"] > 0
    assert 0 < m["baseline_accuracy"] < 1 and 0 <= m["macro_f1"] <= 1
    assert m["config"]["model"]["model"] == "resnet" and m["config"]["train"]["epochs"] == 3
    assert m["config"]["data"]["limit"] == 600 and m["config"]["split"] == "intra"
    assert [h["epoch"] for h in m["history"]] == [1, 2, 3]
    with open(run / "history.csv") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2, 3]


def test_resume_after_sigkill_matches_an_uninterrupted_run(cli_runs):
    killed = cli_runs["killed"]
    assert killed["returncode"] == -signal.SIGKILL
    assert not killed["had_metrics"], "the run finished before it was killed: nothing was resumed"
    assert killed["epoch"] in (1, 2)
    resumed = killed["resumed"]
    assert resumed.rc == 0, resumed.stderr
    a, b = run_metrics(cli_runs["root"] / "straight"), run_metrics(cli_runs["root"] / "killed")
    assert b["accuracy"] == a["accuracy"]
    assert b["confusion_matrix"] == a["confusion_matrix"]
    assert b["macro_f1"] == a["macro_f1"] and b["best_epoch"] == a["best_epoch"]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
        assert [h[key] for h in b["history"]] == [h[key] for h in a["history"]], key
    best_a = torch.load(cli_runs["root"] / "straight" / "best.pt", weights_only=True)["model"]
    best_b = torch.load(cli_runs["root"] / "killed" / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)


def test_a_run_on_every_lead_tests_on_the_rule_lead_and_scores_the_others_apart(synthetic_records, tmp_path):
    """Trained on every lead, tested on the lead rule's: its test beats are the one-lead run's, and the other
    leads' test and validation beats are scored in their own entries."""
    from ecglib.data.records import load_mitdb

    beats = load_mitdb(synthetic_records, download=False, leads="all")
    split = split_beats(beats, "inter", seed=0)
    m = run_training("resnet", beats, split, tmp_path / "run",
                     TrainConfig(epochs=1, batch_size=64, optimizer="adam", lr=3e-3, threads=1),
                     {"width": 8, "blocks": 1}, progress=False, data_config={"source": "mitdb", "leads": "all"})
    rule = beats.rule_lead()
    assert m["n_test"] == int(rule[split.test].sum()) < len(split.test)
    assert m["test_other_leads"]["n_test"] == int((~rule[split.test]).sum())
    assert m["validation"]["n_test"] == int(rule[split.val].sum())
    assert m["config"]["data"]["leads"] == "all"
