"""The benchmark script end to end on a tiny synthetic budget: the rows, columns and files the README promises."""
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
                  "--configs", "resnet,odenet-original,odenet-default,odenet-rk4-adjoint", "--seeds", "2",
                  "--out", str(out), cache=cache_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    everything = json.loads((out / "results.json").read_text())
    rows = [r for r in everything if r.get("kind") != "memory_depth"]
    memory = [r for r in everything if r.get("kind") == "memory_depth"]
    by = {r["config"]: r for r in rows}
    assert list(by) == ["resnet", "odenet-original", "odenet-default", "odenet-rk4-adjoint"]
    for row in rows:
        for key in ("seconds_per_100_batches", "nfe_forward", "nfe_backward", "activation_bytes",
                    "beats_per_second", "accuracy"):
            assert key in row, (row["config"], key)
        assert row["seconds_per_100_batches"] > 0 and row["activation_bytes"] > 0 and row["beats_per_second"] > 0
    # trained rows: two seeds, their mean reported; the timed-only row is not trained
    for name in ("resnet", "odenet-original", "odenet-default"):
        seeds = by[name]["accuracy_by_seed"]
        assert list(seeds) == ["0", "1"] and all(0 <= a <= 1 for a in seeds.values())
        assert by[name]["accuracy"] == pytest.approx(sum(seeds.values()) / 2)
    assert by["odenet-rk4-adjoint"]["trained"] is False and by["odenet-rk4-adjoint"]["accuracy"] is None
    # what each setting is: the ResNet has no solver, the default takes 3 rk4 steps without a backward solve,
    # the adjoint re-solves backwards, the original adaptive solver needs more than the default
    assert by["resnet"]["nfe_forward"] == 0
    assert (by["odenet-default"]["nfe_forward"], by["odenet-default"]["nfe_backward"]) == (12, 0)
    assert by["odenet-rk4-adjoint"]["nfe_backward"] == 12
    assert by["odenet-original"]["nfe_forward"] > 12 and by["odenet-original"]["nfe_backward"] > 0
    # the adjoint keeps less for backward than direct backprop through the same steps
    assert by["odenet-rk4-adjoint"]["activation_bytes"] < by["odenet-default"]["activation_bytes"]
    assert by["resnet"]["speedup_vs_original"] > 1 and by["odenet-original"]["ratio_vs_resnet"] > 1
    # memory against depth, measured: the ResNet's grows with its blocks, the directly backpropagated ODE-Net's
    # with its steps, the adjoint's stays flat
    def series(model, backprop):
        return [r["activation_bytes"] for r in sorted(memory, key=lambda r: r["depth"])
                if r["model"] == model and r["backprop"] == backprop]

    resnet, direct, adjoint = series("resnet", "direct"), series("odenet", "direct"), series("odenet", "adjoint")
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
    assert "| odenet-default | yes |" in md and "seeds 0-1" in md and "Machine:" in md
    assert md.strip() in proc.stdout


def test_bench_rejects_an_unknown_config(tmp_path, cache_dir):
    proc = _bench("--configs", "odenet-fast", "--out", str(tmp_path / "b"), cache=cache_dir)
    assert proc.returncode == 2 and "unknown config 'odenet-fast'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "b").exists()
