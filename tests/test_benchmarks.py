"""The benchmark scripts: the ODE-Net benchmark's required rows and seeds, and the S-offset selection's rule."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


BENCH = ROOT / "benchmarks" / "bench_odenet.py"


def _bench(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ECGLIB_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_bench_writes_the_required_rows_and_averages_seeds(tmp_path, cache_dir):
    out = tmp_path / "bench"
    proc = _bench("--train-beats", "256", "--test-beats", "100", "--time-batches", "2", "--threads", "1",
                  "--configs", "resnet,odenet-original,odenet-rk4-1step,odenet-rk4-3steps,odenet-rk4-adjoint",
                  "--seeds", "2", "--train-all", "--batch-size", "128",
                  "--out", str(out), cache=cache_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    everything = json.loads((out / "results.json").read_text())
    rows = [r for r in everything if "kind" not in r]
    memory = [r for r in everything if r.get("kind") == "memory_depth"]
    loose = [r for r in everything if r.get("kind") == "deploy_loose"]
    by = {r["config"]: r for r in rows}
    assert list(by) == ["resnet", "odenet-original", "odenet-rk4-1step", "odenet-rk4-3steps", "odenet-rk4-adjoint"]
    for row in rows:
        for key in ("seconds_per_100_batches", "nfe_forward", "nfe_backward", "activation_bytes",
                    "beats_per_second", "accuracy"):
            assert key in row, (row["config"], key)
        assert row["seconds_per_100_batches"] > 0 and row["activation_bytes"] > 0 and row["beats_per_second"] > 0
    # --train-all: every row trained with two seeds, their mean and standard error reported
    for row in by.values():
        seeds = row["accuracy_by_seed"]
        assert row["seeds"] == [0, 1] and list(seeds) == ["0", "1"] and all(0 <= a <= 1 for a in seeds.values())
        assert row["accuracy_mean"] == row["accuracy"] == pytest.approx(sum(seeds.values()) / 2)
        a, b = seeds.values()
        assert row["accuracy_se"] == pytest.approx(abs(a - b) / 2)  # sd / sqrt(2) of two values
    # deploy loose: every trained ODE-Net at the listed settings, evaluations per beat as each setting needs
    assert {r["config"] for r in loose} == {n for n in by if n != "resnet"}
    one_step = {r["setting"]: r for r in loose if r["config"] == "odenet-rk4-1step"}
    assert one_step["rk4 1 step (trained)"]["nfe_per_beat"] == 4 and one_step["rk4 12 steps"]["nfe_per_beat"] == 48
    assert all(0 <= r["accuracy"] <= 1 for r in loose)
    assert (out / "deploy_loose.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # what each setting is: the ResNet has no solver, 1 and 3 rk4 steps take 4 and 12 evaluations and no backward solve,
    # the adjoint re-solves backwards, the original adaptive solver needs more than three rk4 steps
    assert by["resnet"]["nfe_forward"] == 0
    assert (by["odenet-rk4-1step"]["nfe_forward"], by["odenet-rk4-1step"]["nfe_backward"]) == (4, 0)
    assert (by["odenet-rk4-3steps"]["nfe_forward"], by["odenet-rk4-3steps"]["nfe_backward"]) == (12, 0)
    assert by["odenet-rk4-adjoint"]["nfe_backward"] == 12
    assert by["odenet-original"]["nfe_forward"] > 12 and by["odenet-original"]["nfe_backward"] > 0
    # the adjoint keeps less for backward than direct backprop through the same steps
    assert by["odenet-rk4-adjoint"]["activation_bytes"] < by["odenet-rk4-3steps"]["activation_bytes"]
    assert by["resnet"]["speedup_vs_original"] > 1 and by["odenet-original"]["ratio_vs_resnet"] > 1
    # memory against depth, measured: the ResNet's grows with its blocks, the directly backpropagated ODE-Net's
    # with its steps, the adjoint's stays flat
    def series(model, backprop):
        return [r["activation_bytes"] for r in sorted(memory, key=lambda r: r["depth"])
                if r["model"] == model and r["backprop"] == backprop]

    resnet, direct, adjoint = series("resnet", "direct"), series("odenet", "direct"), series("odenet", "adjoint")
    assert {r["solver"] for r in memory if r["model"] == "odenet"} == {"rk4"}  # whatever the project default is
    assert len(resnet) == 6 and len(direct) == len(adjoint) == 6
    depths, steps = (1, 2, 6, 12, 24, 48), (1, 2, 3, 6, 12, 24)
    for values, xs in ((resnet, depths), (direct, steps)):
        assert all(b > a for a, b in zip(values, values[1:]))
        # linear in the depth: each further block (or step) keeps the same amount again
        slope_far, slope_near = ((values[-1] - values[-2]) / (xs[-1] - xs[-2]),
                                 (values[-2] - values[-3]) / (xs[-2] - xs[-3]))
        assert slope_far == pytest.approx(slope_near, rel=0.1)
    assert max(adjoint) == min(adjoint)
    assert (out / "memory_depth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "results.md").read_text()
    assert "Activation memory against depth" in md
    assert "| odenet-rk4-1step | yes |" in md and "seeds 0-1" in md and "Machine:" in md
    assert "Deploy loose" in md and " ± " in md
    assert md.strip() in proc.stdout


def test_bench_rejects_an_unknown_config(tmp_path, cache_dir):
    proc = _bench("--configs", "odenet-fast", "--out", str(tmp_path / "b"), cache=cache_dir)
    assert proc.returncode == 2 and "unknown config 'odenet-fast'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "b").exists()


def test_s_offset_selection_scores_and_rule():
    """benchmarks/select_s_offset.py: the offset moves S decisions as counted by hand, and the rule keeps the best
    mean F2 S among offsets that win every seed without costing more than a point of V F1."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("select_s_offset", ROOT / "benchmarks" / "select_s_offset.py")
    sel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sel)
    # Four S beats, two V, four N; the S logit trails N by 0.1, 0.3, 0.6 and 2.0 for the S beats.
    logits = np.zeros((10, 5))
    logits[:4, 0], logits[4:6, 2], logits[6:, 0] = [0.1, 0.3, 0.6, 2.0], 1.0, 1.0
    logits[6, 1] = 0.8  # an N beat 0.2 from being called S
    y = np.array([1, 1, 1, 1, 2, 2, 0, 0, 0, 0])
    at0, at05 = sel.class_scores(logits, y, 0.0), sel.class_scores(logits, y, 0.5)
    assert at0["s_se"] == 0 and at0["s_f2"] == 0 and at0["v_se"] == at0["v_ppv"] == 1
    assert (at05["s_se"], at05["s_ppv"]) == (0.5, 2 / 3)  # two S found, the N beat at 0.2 called S too
    assert at05["s_f2"] == pytest.approx(5 * 0.5 * (2 / 3) / (4 * 2 / 3 + 0.5))
    flat = {"s_f2": 0.1, "v_f1": 0.8}
    scores = {("m", s, b): dict(flat) for s in (0, 1) for b in sel.GRID}
    scores[("m", 0, 0.5)] = scores[("m", 1, 0.5)] = {"s_f2": 0.3, "v_f1": 0.8}
    scores[("m", 0, 1.0)] = scores[("m", 1, 1.0)] = {"s_f2": 0.4, "v_f1": 0.78}  # costs 2 points of V F1
    scores[("m", 0, 0.25)], scores[("m", 1, 0.25)] = {"s_f2": 0.5, "v_f1": 0.8}, {"s_f2": 0.1, "v_f1": 0.8}
    assert sel.choose(scores, "m", [0, 1]) == 0.5  # 0.25 loses seed 1, 1.0 costs V
    assert sel.choose({k: dict(flat) for k in scores}, "m", [0, 1]) == 0.0


def _benchmark_module(name: str):
    import importlib.util

    sys.path.insert(0, str(ROOT / "benchmarks"))  # lead_polarity imports select_leads as its folder's neighbour
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def _matrix(s_hit: int, v_hit: int):
    """A 5-class confusion matrix of 10 S and 10 V beats (rows true) of which s_hit and v_hit are found, the rest
    called N, and 40 N beats, 2 of them called S."""
    import numpy as np

    m = np.zeros((5, 5), dtype=np.int64)
    m[0, 0], m[0, 1] = 38, 2
    m[1, 1], m[1, 0] = s_hit, 10 - s_hit
    m[2, 2], m[2, 0] = v_hit, 10 - v_hit
    return m


def test_lead_selection_rules_pool_the_folds_and_ask_every_seed():
    """benchmarks/select_leads.py and lead_polarity.py: the folds' counts are pooled per seed, the score is
    (F1 S + F1 V) / 2, and the rule asks every seed's other-lead score to rise and MLII not to fall by more than a
    standard error."""
    sel, pol = _benchmark_module("select_leads"), _benchmark_module("lead_polarity")
    s = sel.pooled_score(_matrix(8, 6))
    assert s["S_se"] == 0.8 and s["S_ppv"] == 0.8 and s["V_se"] == 0.6 and s["V_ppv"] == 1.0
    assert s["score"] == pytest.approx((0.8 + 2 * 0.6 / 1.6) / 2)
    folds = {}
    for seed in (0, 1):
        for fold in ("a", "b"):
            folds[("m-rule", seed, "rule", fold)] = _matrix(8, 8)
            folds[("m-rule", seed, "other", fold)] = _matrix(8, 4)
            folds[("m-all", seed, "rule", fold)] = _matrix(8, 8)
            # all leads: better on the other lead in fold a, worse in fold b; pooled, better only for seed 0
            folds[("m-all", seed, "other", fold)] = _matrix(8, 7 if fold == "a" else (3 if seed == 0 else 0))
    text = sel.report(folds)
    assert "| m-all | other | 2 |" in text and "does not meet the rule (2 seeds)" in text
    assert "| a | m-all |" in text and "| b | m-rule |" in text  # the folds one by one
    pooled = {(seed, lead, rule): _matrix(8, 8 if lead == "rule" else (6 if rule else 4))
              for seed in (0, 1, 2) for lead in ("rule", "other") for rule in (False, True)}
    assert "meets the rule (3 seeds)" in pol.pooled_report(pooled)
    pooled[(1, "other", True)] = _matrix(8, 4)  # one seed no better on the other lead
    assert "does not meet the rule (3 seeds)" in pol.pooled_report(pooled)
    pooled[(1, "other", True)] = _matrix(8, 6)
    for seed, v in ((0, 7), (1, 6), (2, 5)):  # MLII falls on every seed, beyond its standard error
        pooled[(seed, "rule", True)] = _matrix(8, v)
    assert "does not meet the rule (3 seeds)" in pol.pooled_report(pooled)


@pytest.mark.slow
def test_bench_long_labels_a_joined_recording(tmp_path):
    """bench_long.py builds a recording of half-hour records joined end to end (synthetic here) and measures the
    annotate command on it: time, CPU time and peak memory (the figures themselves are not asserted)."""
    out = tmp_path / "long"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_long.py"), "--hours", "0.6", "--out",
                           str(out)], capture_output=True, text=True, timeout=900, env={**os.environ,
                                                                                        "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "results.json").read_text())
    row = result["rows"][0]
    assert row["format"] == "WFDB" and row["hours"] == pytest.approx(1.0, abs=0.01)
    for key in ("wall_s", "cpu_s", "peak_rss_mb", "wall_s_per_hour", "cpu_s_per_hour"):
        assert row[key] > 0
    assert row["summary"].startswith("holter: ") and "model odenet-ds1" in row["summary"]
    assert (out / "labels" / "holter.ecglib").exists() and (out / "results.md").exists()


def _bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_odenet", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_times_the_default_in_turns_at_each_thread_count():
    """The default (two midpoint steps) has its row; the timing in turns runs at every thread count asked, with each
    row's training and inference ratio to the ResNet at that count and the load around it, and tabulates them."""
    import torch

    bench = _bench_module()
    assert bench.default_config_name() == "odenet-midpoint-2steps"
    cpu = torch.device("cpu")
    assert bench.timing_thread_counts("auto", 1, 2, cpu) == [1, 2]
    assert bench.timing_thread_counts("2", 1, 2, cpu) == [1, 2]  # the main columns' count always joins
    assert bench.timing_thread_counts("auto", 2, 2, torch.device("meta")) == [2]
    models = {n: bench.make_model(n) for n in ("resnet", "odenet-midpoint-2steps")}
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, 1, 187, generator=g), torch.randint(0, 5, (32,), generator=g)
    before = torch.get_num_threads()
    try:
        timing = bench.timing_by_threads(models, x, y, x, 8, cpu, 1, [1, 2])
    finally:
        torch.set_num_threads(before)
    assert list(timing) == ["1", "2"]
    for count in timing.values():
        assert count["rows"]["resnet"]["ratio_vs_resnet"] == count["rows"]["resnet"]["inference_ratio_vs_resnet"] == 1
        row = count["rows"]["odenet-midpoint-2steps"]
        assert row["seconds_per_100_batches"] > 0 and row["beats_per_second"] > 0 and row["ratio_vs_resnet"] > 0
        assert len(count["load"]["before"]) == len(count["load"]["after"]) == 3
    rows = [{"config": n, "timing_by_threads": {c: {**t["rows"][n], "load": t["load"]} for c, t in timing.items()}}
            for n in models]
    md = "\n".join(bench.threads_markdown(rows))
    assert "| odenet-midpoint-2steps (default) |" in md and "2 thread(s): s / 100 batches" in md
    assert "Load average (1, 5, 15 min)" in md
