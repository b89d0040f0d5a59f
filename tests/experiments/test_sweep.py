"""Sweep specs checked up front, expanded into trials, trained on Ray, summarised with confidence intervals."""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli, run_main

from ecglib.config import RECIPES, ODEConfig
from ecglib.config import logit_offsets as class_offsets
from ecglib.errors import InputError
from ecglib.experiments.selection import fold_selection_markdown, fold_selection_scores
from ecglib.experiments.spec import load_spec
from ecglib.experiments.stats import paired_differences
from ecglib.experiments.stats import sweep_summary_table as summary_table
from ecglib.experiments.sweep import _expected_config, _row, is_finished, load_sweep, run_trial, write_results
from ecglib.report.figures import plot_sweep_results as plot_sweep

RAY = Path(sys.executable).with_name("ray")


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


TINY = """
description = "tiny"
[data]
source = "synthetic"
synthetic_seconds = 12
limit = {limit}
[train]
epochs = {epochs}
batch_size = 32
optimizer = "adam"
lr = 3e-3
width = {width}
[axes]
seed = [0, 1]
"""


# --------------------------------------------------------------------------------------------- spec validation
BAD_SPECS = {
    "unknown key": ("[train]\nepochz = 2\n[configs.a]\nmodel = 'resnet'\n", "train.epochz", "unknown key"),
    "unknown top-level key": ("[grid]\nseed = [0]\n[configs.a]\nmodel = 'resnet'\n", "grid", "unknown key"),
    "unknown model": ("[configs.a]\nmodel = 'transformer'\n", "configs.a.model",
                      "must be one of resnet, odenet, not 'transformer'"),
    "unknown model on an axis": ("[axes]\nmodel = ['resnet', 'lstm']\n", "axes.model[1]", "'lstm'"),
    "empty axis": ("[axes]\nseed = []\n[configs.a]\nmodel = 'resnet'\n", "axes.seed", "empty axis"),
    "missing data folder": ("[data]\nsource = 'mitdb'\nmitdb_dir = 'no-such-folder'\n[configs.a]\nmodel = 'resnet'\n",
                            "data.mitdb_dir", "no such folder"),
    "bad value": ("[train]\nlr = -1.0\n[configs.a]\nmodel = 'resnet'\n", "train.lr", "must be a number > 0, not -1.0"),
    "unknown solver": ("[configs.a]\nmodel = 'odenet'\nsolver = 'rk5'\n", "configs.a.solver",
                       "must be one of dopri5"),
    "setting of the other model": ("[axes]\nblocks = [1, 2]\n[configs.a]\nmodel = 'odenet'\n", "axes.blocks",
                                   "resnet only"),
    "no model": ("[axes]\nseed = [0]\n", "train.model", "no model"),
    "not TOML": ("[train\nlr = 1\n", "not valid TOML", ""),
    "fold of a test record": ("[train]\nsplit = 'inter'\nval_records = '101,100'\n[configs.a]\nmodel = 'resnet'\n",
                              "train.val_records", "must be distinct DS1 record names"),
    "fold with the intra protocol": ("[axes]\nval_records = ['101', '106,108']\n[configs.a]\nmodel = 'resnet'\n",
                                     "val_records", 'needs split = "inter"'),
    "fold with an empty name": ("[train]\nsplit = 'inter'\nval_records = '101,,112'\n[configs.a]\nmodel = 'resnet'\n",
                                "train.val_records", "not '101,,112'"),
    "fold repeating a record": ("[axes]\nval_records = [['101', '101']]\n[configs.a]\nmodel = 'resnet'\n",
                                "axes.val_records[0]", "not ['101', '101']"),
}


def _fold_row(config: str, fold: str, seed: int, s: tuple[int, int, int], v: tuple[int, int, int],
              status: str = "ok") -> dict:
    point = {"config": config, "val_records": fold}
    return {"configuration": f"{config}_val_records-{fold.replace(',', '-')}", "sweep_point": json.dumps(point),
            "seed": seed, "status": status, "val_records": fold, "params": 100, "seconds_per_epoch": 2.0,
            **{f"val_S_{k}": n for k, n in zip(("tp", "fn", "fp"), s)},
            **{f"val_V_{k}": n for k, n in zip(("tp", "fn", "fp"), v)}}


# ------------------------------------------------------------------------------------------------ local sweep
def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path) as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


# ------------------------------------------------------------------------------------- the two-node cluster
# 127.0.0.1 is what Ray rewrites to the machine's network address for multi-node clusters; any other loopback
# address (Linux routes all of 127.0.0.0/8 to lo) keeps every node and connection on this machine.
LOOPBACK = "127.0.0.2"


MARKER = "ECGLIB_TEST_RAY_CLUSTER"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _marked(marker: str) -> list[int]:
    """Processes whose environment carries this test cluster's marker: the nodes, their workers, the driver.
    (Ray workers rename themselves and leave the node's process group; their environment they keep.)"""
    import psutil

    found = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get(MARKER) == marker:
                found.append(p.pid)
        except (psutil.Error, OSError):
            continue
    return found


def _kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_started(log: Path, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if "Ray runtime started" in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"ray start did not come up:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_exits_2_with_one_line_before_anything_starts(case, tmp_path, capsys, monkeypatch):
    text, key, problem = BAD_SPECS[case]
    spec = write_spec(tmp_path / "bad.toml", text)
    out = tmp_path / "out"
    import ray

    started = []
    monkeypatch.setattr(ray, "init", lambda *a, **k: started.append(1))  # must not be reached
    result = run_main(capsys, "sweep", spec, "--out", out)
    assert_one_line_error(result, str(spec), key, problem)
    assert not started and not out.exists()


def test_spec_expands_configs_axes_and_per_config_seeds(tmp_path):

    spec = write_spec(tmp_path / "s.toml", """
[data]
source = "synthetic"
[train]
epochs = 1
[axes]
split = ["intra", "inter"]
seed = [0, 1, 2]
[configs.resnet1]
model = "resnet"
blocks = 1
[configs.slow]
model = "odenet"
solver = "dopri5"
adjoint = true
seeds = [0]
""")
    s = load_spec(spec)
    ids = [t.id for t in s.trials]
    assert ids == [f"resnet1_split-{sp}_seed-{k}" for sp in ("intra", "inter") for k in range(3)] + [
        "slow_split-intra_seed-0", "slow_split-inter_seed-0"]
    slow = s.trials[-1]
    assert (slow.model, slow.split, slow.seed) == ("odenet", "inter", 0)
    assert slow.model_kwargs["ode"].solver == "dopri5" and slow.model_kwargs["ode"].adjoint is True
    # unset ODE settings take the project default (two midpoint steps) like `ecglib train`

    default = load_spec(write_spec(tmp_path / "d.toml", "[configs.o]\nmodel = 'odenet'\n")).trials[0]
    assert default.model_kwargs["ode"] == ODEConfig()
    assert s.trials[0].model_kwargs == {"blocks": 1}


def test_spec_trials_take_the_recipe_of_their_features(tmp_path):
    """A sweep trains what `ecglib train` trains for the same features: the rhythm recipe's inputs and weights
    unless the spec sets them."""

    s = load_spec(write_spec(tmp_path / "r.toml", """
[data]
source = "synthetic"
[configs.plain]
model = "resnet"
[configs.rhythm]
model = "resnet"
features = "beat+rhythm"
[configs.told]
model = "resnet"
features = "beat+rhythm"
template = false
class_weight = "none"
morphology_dropout = 0.0
keep = "best"
s_offset = 0.0
"""))
    plain, rhythm, told = s.trials
    assert (plain.context, plain.template, plain.train["class_weight"]) == (False, False, "none")
    r = RECIPES["beat+rhythm"]
    assert (rhythm.context, rhythm.template, rhythm.train["class_weight"]) == (r["context"], r["template"],
                                                                              r["class_weight"])
    assert (told.context, told.template, told.train["class_weight"]) == (r["context"], False, "none")
    assert (plain.train["keep"], rhythm.train["keep"], told.train["keep"]) == ("best", r["keep"], "best")
    assert [t.train["morphology_dropout"] for t in (plain, rhythm, told)] == [0.0, r["morphology_dropout"], 0.0]
    assert [t.train["s_offset"] for t in (plain, rhythm, told)] == [0.0, r["s_offset"], 0.0]
    expected = _expected_config(rhythm)
    assert expected["model"].get("logit_offsets") == class_offsets(r["s_offset"])
    assert "logit_offsets" not in _expected_config(told)["model"]
    assert expected["context"] is r["context"] and expected.get("template", False) is r["template"]
    assert expected["model"]["in_channels"] == 1 + 2 * r["context"] + r["template"]
    with pytest.raises(InputError, match="template"):
        load_spec(write_spec(tmp_path / "bad.toml", "[configs.x]\nmodel = 'resnet'\ntemplate = 'yes'\n"))


def test_spec_folds_name_validation_records_of_ds1(tmp_path):

    s = load_spec(write_spec(tmp_path / "folds.toml", """
[data]
source = "synthetic"
[train]
model = "resnet"
split = "inter"
[axes]
val_records = ["101, 112", ["106", 108]]
seed = [0, 1]
"""))
    assert [t.id for t in s.trials] == [f"val_records-{f}_seed-{k}" for f in ("101-112", "106-108") for k in (0, 1)]
    assert [t.val_records for t in s.trials] == [["101", "112"]] * 2 + [["106", "108"]] * 2
    assert json.loads(json.dumps(s.trials[2].settings)) == {"val_records": "106,108"}
    assert _expected_config(s.trials[0])["data"]["val_records"] == ["101", "112"]
    plain = load_spec(write_spec(tmp_path / "plain.toml", "[configs.a]\nmodel = 'resnet'\n")).trials[0]
    assert plain.val_records is None and "val_records" not in _expected_config(plain)["data"]


def test_fold_selection_pools_each_seeds_folds():
    import pandas as pd


    rows = [_fold_row("a", "101,112", 0, (3, 1, 2), (8, 2, 0)), _fold_row("a", "106", 0, (1, 3, 0), (2, 0, 2)),
            _fold_row("a", "101,112", 1, (4, 0, 4), (9, 1, 1)), _fold_row("a", "106", 1, (0, 4, 0), (2, 0, 0)),
            _fold_row("b", "101,112", 0, (2, 2, 0), (5, 5, 0)), _fold_row("b", "106", 0, (2, 2, 2), (1, 1, 1)),
            _fold_row("b", "101,112", 1, (1, 3, 0), (6, 4, 0)),
            _fold_row("b", "106", 1, (9, 9, 9), (9, 9, 9), status="failed")]
    table = pd.DataFrame(rows)
    scores = fold_selection_scores(table)
    # b's seed 1 lacks a finished fold: it does not count
    assert [(r.configuration, r.seed, r.folds) for r in scores.itertuples()] == [("a", 0, 2), ("a", 1, 2),
                                                                                ("b", 0, 2)]
    a0 = scores.iloc[0]
    # S pooled: tp 4, fn 4, fp 2; V: tp 10, fn 2, fp 2
    assert (a0["S_se"], a0["S_ppv"], a0["V_se"], a0["V_ppv"]) == pytest.approx((0.5, 4 / 6, 10 / 12, 10 / 12))
    assert a0["f1_S"] == pytest.approx(8 / 14) and a0["f1_V"] == pytest.approx(20 / 24)
    assert a0["score"] == pytest.approx((8 / 14 + 20 / 24) / 2)
    text = fold_selection_markdown(table)
    assert "## Selection on the validation folds" in text and "| a | 2 | 2 |" in text and "| b | 2 | 1 |" in text
    assert "| a | b | 1 |" in text  # paired over the one seed both finished
    assert fold_selection_markdown(table.drop(columns="val_records")) == ""


def test_a_fold_trial_trains_on_the_other_records_and_reports_its_validation_counts(tmp_path):

    spec = load_spec(write_spec(tmp_path / "f.toml", """
[data]
source = "synthetic"
synthetic_seconds = 12
[train]
model = "resnet"
blocks = 1
width = 8
split = "inter"
epochs = 1
optimizer = "adam"
lr = 3e-3
[axes]
val_records = ["101,112", "106"]
"""))
    out = tmp_path / "sweep"
    for trial in spec.trials:
        assert run_trial(trial, out, threads=1)["status"] == "ok"
        m = json.loads((trial.run_dir(out) / "metrics.json").read_text())
        assert m["split"]["val_records"] == trial.val_records
        assert not set(m["split"]["val_records"]) & set(m["split"]["train_records"])
        assert is_finished(trial, out)
        row = _row(trial, out, spec)
        assert row["val_records"] == ",".join(trial.val_records)
        assert [row[f"val_V_{k}"] for k in ("tp", "fn", "fp")] == [m["validation"]["gross"]["V"][k]
                                                                   for k in ("tp", "fn", "fp")]
    write_results(spec, out)
    summary = (out / "summary.md").read_text()
    assert "## Selection on the validation folds" in summary and "| run | 2 | 1 |" in summary


def test_statistics_are_t_intervals_and_pairs_share_seeds():
    import pandas as pd
    from scipy import stats


    rows = []
    for seed, (a, b) in enumerate([(0.90, 0.88), (0.92, 0.89), (0.94, 0.93)]):
        rows += [{"configuration": "a", "sweep_point": '{"config": "a"}', "seed": seed, "status": "ok",
                  "accuracy": a, "params": 10, "seconds_per_epoch": 1.0},
                 {"configuration": "b", "sweep_point": '{"config": "b"}', "seed": seed, "status": "ok",
                  "accuracy": b, "params": 10, "seconds_per_epoch": 1.0}]
    rows.append({"configuration": "b", "sweep_point": '{"config": "b"}', "seed": 3, "status": "failed",
                 "accuracy": float("nan"), "params": 10, "seconds_per_epoch": 1.0})
    table = pd.DataFrame(rows)
    s = summary_table(table, ("accuracy",)).set_index("configuration")
    assert s.loc["a", "n"] == 3 and s.loc["b", "n"] == 3
    half = stats.t.ppf(0.975, 2) * 0.02 / 3 ** 0.5
    assert s.loc["a", "accuracy_mean"] == pytest.approx(0.92)
    assert s.loc["a", "accuracy_ci_low"] == pytest.approx(0.92 - half)
    d = paired_differences(table, "accuracy").iloc[0]
    diffs = [0.02, 0.03, 0.01]
    assert (d["a"], d["b"], d["n"]) == ("a", "b", 3)
    assert d["mean"] == pytest.approx(0.02)
    assert d["ci_high"] - d["mean"] == pytest.approx(stats.t.ppf(0.975, 2) * pd.Series(diffs).std() / 3 ** 0.5)


@pytest.mark.slow
def test_local_sweep_failing_trial_and_rerun_trains_nothing(tmp_path):
    spec_text = TINY.format(limit=400, epochs=1, width=8) + """
[configs.resnet1]
model = "resnet"
blocks = 1
[configs.odenet]
model = "odenet"
"""
    diverging = """
[configs.diverges]
model = "resnet"
blocks = 1
optimizer = "sgd"
lr = 1e12
seeds = [0]
"""
    spec = write_spec(tmp_path / "tiny.toml", spec_text + diverging)
    out = tmp_path / "sweep"
    first = run_cli("sweep", spec, "--out", out, "--cpus-per-run", "1", "--quiet", timeout=400)
    assert first.rc == 1, first.stderr[-3000:]
    rows = read_rows(out / "results.csv")
    assert sorted(rows) == sorted(["resnet1_seed-0", "resnet1_seed-1", "odenet_seed-0", "odenet_seed-1",
                                   "diverges_seed-0"])
    bad = rows.pop("diverges_seed-0")
    assert bad["status"] == "failed" and "training loss" in bad["error"] and bad["attempts"] == "1"
    assert "\n" not in bad["error"] and bad["accuracy"] == ""
    for row in rows.values():
        assert row["status"] == "ok" and 0 <= float(row["accuracy"]) <= 1 and row["attempts"] == "1"
        assert (out / row["run_dir"] / "metrics.json").exists() and (out / row["run_dir"] / "best.pt").exists()
        assert row["S_se"] != "" and int(row["params"]) > 0
    # one line per finished trial on stdout
    assert sum(line.startswith(("done", "FAILED")) for line in first.stdout.splitlines()) == 5
    summary = (out / "summary.md").read_text()
    assert "| resnet1 | 2 |" in summary and "Paired differences of accuracy" in summary
    assert "diverges_seed-0: the training loss became" in summary

    # The same sweep without the diverging configuration is finished: a rerun trains nothing (no Ray even) and
    # leaves the same results, byte for byte, twice.
    spec.write_text(spec_text)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.json")}
    second = run_cli("sweep", spec, "--out", out, "--quiet", timeout=200)
    assert second.rc == 0, second.stderr[-2000:]
    assert "nothing to train" in second.stdout
    again = read_rows(out / "results.csv")
    assert again == rows
    text = (out / "results.csv").read_text()
    third = run_cli("sweep", spec, "--out", out, "--quiet", timeout=200)
    assert third.rc == 0 and (out / "results.csv").read_text() == text
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.json")} == stamps


    table = load_sweep(out)
    s = summary_table(table).set_index("configuration")
    assert list(s["n"]) == [2, 2]
    ax = plot_sweep(table)
    assert len(ax.get_xticklabels()) == 2


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_two_node_cluster_survives_losing_its_worker_node(tmp_path, cache_dir):
    import psutil


    spec = write_spec(tmp_path / "cluster.toml", TINY.format(limit=1500, epochs=6, width=16) + """
[configs.resnet1]
model = "resnet"
blocks = 1
[configs.resnet2]
model = "resnet"
blocks = 2
""")
    out = tmp_path / "sweep"
    # A short private temp dir: Ray's unix sockets live there (path length limit), and it names this cluster.
    ray_tmp = tempfile.mkdtemp(prefix="ecgr", dir="/tmp")
    port = _free_port()
    import secrets

    env = {**os.environ, MARKER: ray_tmp, "ECGLIB_CACHE": str(cache_dir), "RAY_USAGE_STATS_ENABLED": "0",
           # Ray 2.59+ turns token authentication on for `ray start --head` when ~/.ray/auth_token exists but not
           # for the nodes and drivers that join it: say it explicitly, with a token of this cluster's own.
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
           # A killed node refuses the health checks at once: declare it dead after 5 checks 1 s apart instead of
           # Ray's default 15-30 s, while a node that is only slow (a busy machine) still has 5 s per check.
           "RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "1000",
           "RAY_health_check_timeout_ms": "5000", "RAY_health_check_failure_threshold": "5"}
    node_args = [f"--node-ip-address={LOOPBACK}", "--num-cpus=1", f"--temp-dir={ray_tmp}", "--disable-usage-stats",
                 "--include-dashboard=false", "--block"]
    procs: list[subprocess.Popen] = []
    sweep = None
    try:
        head_log, worker_log = tmp_path / "head.log", tmp_path / "worker.log"
        head = subprocess.Popen([str(RAY), "start", "--head", f"--port={port}", *node_args], env=env,
                                stdout=open(head_log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(head)
        _wait_started(head_log, head, 120)
        worker = subprocess.Popen([str(RAY), "start", f"--address={LOOPBACK}:{port}",
                                   *[a for a in node_args if a != "--include-dashboard=false"]], env=env,
                                  stdout=open(worker_log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(worker)
        _wait_started(worker_log, worker, 120)

        sweep_log = tmp_path / "sweep.log"
        sweep = subprocess.Popen([sys.executable, "-m", "ecglib", "sweep", str(spec), "--out", str(out),
                                  "--address", f"{LOOPBACK}:{port}", "--cpus-per-run", "1", "--quiet"],
                                 env=env, stdout=open(sweep_log, "w"), stderr=subprocess.STDOUT)

        # Wait for a trial that runs on the worker node (its worker process is a child of that node's raylet,
        # which is in the worker `ray start`'s process group) and has finished an epoch; then kill the node.
        victim = None
        end = time.monotonic() + 240
        while victim is None and time.monotonic() < end and sweep.poll() is None:
            for state_file in out.glob("runs/*/trial.json"):
                try:
                    state = json.loads(state_file.read_text())
                    raylet = psutil.Process(state["pid"]).ppid()
                    on_worker = os.getpgid(raylet) == worker.pid
                except (ValueError, KeyError, psutil.Error, ProcessLookupError):
                    continue
                if (on_worker and state["status"] == "running"
                        and (state_file.parent / "checkpoint.pt").exists()
                        and not (state_file.parent / "metrics.json").exists()):
                    victim = state_file.parent.name
                    os.killpg(worker.pid, signal.SIGKILL)  # ray start, raylet and the node's agents
                    _kill([state["pid"]])                  # the trial's worker process (its own group)
                    break
            time.sleep(0.1)
        assert victim is not None, "no trial was caught running on the worker node:\n" + sweep_log.read_text()
        worker.wait(timeout=30)

        rc = sweep.wait(timeout=300)
        log = sweep_log.read_text()
        assert rc == 0, log[-4000:]
        rows = read_rows(out / "results.csv")
        assert len(rows) == 4 and all(r["status"] == "ok" for r in rows.values()), rows
        resumed = rows[victim]
        assert int(resumed["attempts"]) >= 2 and int(resumed["resumed_from"]) >= 1, resumed
        assert f"done   {victim}" in log and "resumed after epoch" in log

        # The resumed trial ends with the numbers of the same trial trained without interruption.
        trial = next(t for t in load_spec(spec).trials if t.id == victim)
        reference = run_trial(trial, tmp_path / "reference", threads=1)
        assert reference["status"] == "ok" and reference["attempts"] == 1
        got = json.loads((out / "runs" / victim / "metrics.json").read_text())
        want = json.loads((tmp_path / "reference" / "runs" / victim / "metrics.json").read_text())
        for key in ("accuracy", "macro_f1", "confusion_matrix", "per_class", "best_epoch", "params", "aami"):
            assert got[key] == want[key], key
        strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
        assert strip(got["history"]) == strip(want["history"])  # every epoch's losses, to the last bit
        import torch

        a = torch.load(out / "runs" / victim / "best.pt", weights_only=True)["model"]
        b = torch.load(tmp_path / "reference" / "runs" / victim / "best.pt", weights_only=True)["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    finally:
        if sweep is not None and sweep.poll() is None:
            sweep.kill()
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # `ray stop --force` would stop every Ray on this machine (other users' too): kill only what carries
        # this cluster's marker, until nothing does.
        for _ in range(20):
            left = _marked(ray_tmp)
            if not left:
                break
            _kill(left)
            time.sleep(0.5)
        for p in procs:
            p.wait(timeout=10)
        import shutil

        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert _marked(ray_tmp) == []
    assert not [p for p in psutil.process_iter(["name", "cmdline"])
                if p.info["name"] in ("gcs_server", "raylet") and ray_tmp in " ".join(p.info["cmdline"] or [])]
