"""Benchmark: ResNet versus ODE-Net solver settings, in one run, on the same machine and the same beats.

For every configuration it measures the seconds per 100 training batches of 128 (median of 5-batch blocks, scaled
to 100), the dynamics evaluations (NFE) forward and backward per batch, the activation memory of one training
step (bytes autograd saves for backward), the inference throughput, the CUDA peak memory on a GPU, and the test
accuracy after one fixed training budget that is identical for every trained configuration.

    python benchmarks/bench_odenet.py [--mitdb-dir DIR] --out runs/bench      # or: make bench [MITDB_DIR=DIR]

Without --mitdb-dir it runs on the embedded synthetic records (a quick smoke run; its accuracies mean little).
Writes OUT/results.json (one row per configuration) and OUT/results.md (a table and a few computed sentences),
and prints the markdown. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ecglib.experiments.tolerance  # noqa: F401  (loaded now: edits to the package during a long run do not reach it)
import ecglib.report.figures  # noqa: F401
from ecglib.config import ODEConfig, TrainConfig
from ecglib.data.inputs import to_tensors
from ecglib.data.sources import load_beats
from ecglib.data.splits import limit_beats, split_beats
from ecglib.errors import EcgError
from ecglib.experiments.tolerance import tolerance_sweep
from ecglib.files import atomic_path, atomic_write_text
from ecglib.inference import machine_description, pick_device, predict
from ecglib.metrics import activation_bytes, beats_per_second, classification_metrics, count_parameters, cuda_peak_bytes
from ecglib.models import REWRITES, build_model
from ecglib.report.figures import plot_deploy_loose, plot_memory_depth
from ecglib.training.loop import fit, seed_everything

BLOCK = 5  # batches per timing block; seconds per 100 batches = median block time * 100 / BLOCK
REQUIRED = ("resnet", "odenet-original")
ORIGINAL = ODEConfig.original()
PREVIOUS = ODEConfig(solver="rk4", step_size=1 / 3)  # an earlier project default (docs/history.md): 3 rk4 steps


def fixed(solver: str, steps: int, **settings: Any) -> ODEConfig:
    """A fixed-grid setting of ``steps`` steps from t = 0 to 1, direct backpropagation unless settings say."""
    return ODEConfig(solver=solver, step_size=1 / steps, **settings)


# RNODE coefficients of the regularised rows: Finlay et al. (2020) used 0.01 for both terms; not tuned here.
RNODE = {"kinetic": 0.01, "jacobian": 0.01}

# name -> (model, ODE settings or None, trained by default, what it shows). The rows are named by their settings;
# the table marks the one that is the project default (ecglib.config.ODEConfig()), whatever it is.
CONFIGS: dict[str, tuple[str, ODEConfig | None, bool, str]] = {
    "resnet": ("resnet", None, True, "six residual blocks"),
    "odenet-original": ("odenet", ORIGINAL, True, "the original study: dopri5 1e-3, plain adjoint"),
    "odenet-rk4-1step": ("odenet", fixed("rk4", 1), True, "one rk4 step: 4 evaluations"),
    "odenet-rk4-2steps": ("odenet", fixed("rk4", 2), True, "two rk4 steps: 8 evaluations"),
    "odenet-midpoint-2steps": ("odenet", fixed("midpoint", 2), True, "two midpoint steps: 4 evaluations"),
    "odenet-midpoint-3steps": ("odenet", fixed("midpoint", 3), True,
                               "three midpoint steps: 6 evaluations (the default before two midpoint steps)"),
    "odenet-heun-3steps-torchode": ("odenet", fixed("heun2", 3, backend="torchode"), True,
                                    "three Heun steps solved by torchode: 6 evaluations"),
    "odenet-rnode-rk4-1step": ("odenet", fixed("rk4", 1, **RNODE), True,
                               "one rk4 step, RNODE kinetic + Jacobian regularisation 0.01"),
    "odenet-rk4-3steps": ("odenet", PREVIOUS, False, "three rk4 steps: the previous default, 12 evaluations"),
    "odenet-rk4-4steps": ("odenet", fixed("rk4", 4), False, "rk4, four steps, direct backprop"),
    "odenet-heun-3steps": ("odenet", fixed("heun2", 3), False, "three Heun steps by torchdiffeq (torchode's twin)"),
    "odenet-euler-6steps": ("odenet", fixed("euler", 6), False, "six Euler steps: a weight-tied six-block ResNet"),
    "odenet-kinetic-rk4-1step": ("odenet", fixed("rk4", 1, kinetic=0.01), False,
                                 "one rk4 step, kinetic regularisation only (no Jacobian term)"),
    "odenet-rk4-adjoint": ("odenet", replace(PREVIOUS, adjoint=True), False,
                           "three rk4 steps with the adjoint: constant memory"),
    "odenet-direct": ("odenet", replace(ORIGINAL, adjoint=False), False,
                      "dopri5 1e-3, direct backprop: memory grows with steps"),
    "odenet-dopri5-torchode": ("odenet", replace(ORIGINAL, adjoint=False, backend="torchode"), False,
                               "dopri5 1e-3 by torchode (each beat its own steps), direct backprop"),
    "odenet-seminorm": ("odenet", replace(ORIGINAL, seminorm=True), False, "dopri5 1e-3, adjoint with seminorm"),
    "odenet-dopri5-1e-2": ("odenet", replace(ORIGINAL, rtol=1e-2, atol=1e-2), False, "dopri5 1e-2, plain adjoint"),
}


def config_spec(name: str) -> tuple[str, ODEConfig | None, bool, str]:
    """CONFIGS[name], and the project default with torch.compile'd dynamics for "default+compile"."""
    if name == "default+compile":
        return "odenet", ODEConfig(), False, "the project default, its dynamics torch.compile'd"
    return CONFIGS[name]


def default_config_name() -> str | None:
    """The row whose settings are the project default (ecglib.config.ODEConfig()), if one is."""
    return next((n for n, (_, ode, _, _) in CONFIGS.items() if ode == ODEConfig()), None)


# Deploy loose: a trained ODE-Net evaluated at these other settings (accuracy against evaluations per beat).
DEPLOY_LOOSE: list[dict[str, Any]] = (
    [{"solver": "rk4", "step_size": 1 / n, "backend": "torchdiffeq"} for n in (1, 2, 3, 4, 6, 12)]
    + [{"solver": "midpoint", "step_size": 1 / n, "backend": "torchdiffeq"} for n in (1, 2, 3, 6)]
    + [{"solver": "dopri5", "rtol": tol, "atol": tol, "backend": "torchdiffeq"} for tol in (1e-1, 1e-2, 1e-3, 1e-4)])


def per_100(step_seconds: list[float]) -> float | None:
    """Median over blocks of BLOCK consecutive steps, scaled to 100 batches (single steps when fewer)."""
    if not step_seconds:
        return None
    blocks = [sum(step_seconds[i:i + BLOCK]) for i in range(0, len(step_seconds) - BLOCK + 1, BLOCK)]
    if not blocks:
        return float(np.median(step_seconds)) * 100
    return float(np.median(blocks)) * 100 / BLOCK


def make_model(name: str, use_compile: bool = False, rewrites: bool = True) -> torch.nn.Module:
    """The row's model; ``rewrites`` False switches the ODE block's exact rewrites off (models.REWRITES: the plain
    formulation of the same function with the same weights, for a before/after comparison on one commit)."""
    model_name, ode, _, _ = config_spec(name)
    model = build_model(model_name, ode=ode) if ode is not None else build_model(model_name)
    if not rewrites and model.ode is not None:
        model.ode.func.rewrites = set()
    if use_compile and model.ode is not None:
        # The dynamics without their evaluation counter: compiling the counting forward would recompile per call.
        model.ode.func.dynamics = torch.compile(model.ode.func.dynamics)
    return model


def timed_fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
              max_steps: int | None = None, on_epoch: Any = None) -> list[dict[str, Any]]:
    """Train with fit (no validation set) and return fit's per-step records: seconds, NFE forward and backward."""
    steps: list[dict[str, Any]] = []
    fit(model, x, y, x[:0], y[:0], config, progress=False, on_step=steps.append, max_steps=max_steps,
        on_epoch=on_epoch)
    return steps


def probe_threads(x: torch.Tensor, y: torch.Tensor, rounds: int = 4) -> tuple[int, dict[str, float]]:
    """Seconds per training batch of the default ODE-Net at 1 thread and at torch's default; returns the faster."""
    default = torch.get_num_threads()
    candidates = sorted({1, default})
    if len(candidates) == 1:
        return default, {str(default): float("nan")}
    times: dict[int, list[float]] = {n: [] for n in candidates}
    for r in range(rounds + 1):  # alternate the settings so that a change of machine load hits both alike
        for n in candidates:
            seed_everything(0)
            steps = timed_fit(build_model("odenet"), x[:256], y[:256],
                              TrainConfig(epochs=1, batch_size=128, optimizer="adam", lr=1e-3, threads=n))
            if r > 0:  # round 0 warms up
                times[n] += [s["seconds"] for s in steps]
    medians = {n: float(np.median(v)) for n, v in times.items()}
    best = min(medians, key=medians.get)
    torch.set_num_threads(best)
    return best, {str(n): round(s, 4) for n, s in medians.items()}


def run_config(name: str, trained: bool, data: dict[str, torch.Tensor], train_cfg: TrainConfig,
               device: torch.device, time_batches: int, use_compile: bool, rewrites: bool = True
               ) -> tuple[dict[str, Any], Any]:
    """Train (or only time) one configuration with one seed; returns its row and the model."""
    model_name = config_spec(name)[0]
    seed_everything(train_cfg.seed)
    model = make_model(name, use_compile, rewrites)
    model.to(device)
    started = time.perf_counter()
    steps = timed_fit(model, data["x_train"], data["y_train"], train_cfg,
                      max_steps=None if trained else time_batches)
    train_seconds = time.perf_counter() - started
    seconds = [s["seconds"] for s in steps]
    k = min(time_batches, len(seconds))
    nfe = np.array([[s["nfe_forward"], s["nfe_backward"]] for s in steps], dtype=float) if steps \
        else np.zeros((1, 2))

    row: dict[str, Any] = {
        "config": name,
        "model": model_name,
        "settings": dict(model.config),
        "params": count_parameters(model),
        "trained": trained,
        "timed_batches": len(seconds),
        "seconds_per_100_batches": per_100(seconds),
        "seconds_per_100_batches_first_k": per_100(seconds[:k]),
        "nfe_forward": float(nfe[:, 0].mean()),
        "nfe_backward": float(nfe[:, 1].mean()),
        "nfe_forward_first_k": float(nfe[:k, 0].mean()),
        "nfe_backward_first_k": float(nfe[:k, 1].mean()),
        "train_seconds": train_seconds,
    }
    # A copy, not a view: activation_bytes counts whole storages, and a view's storage is all the training beats.
    xb = data["x_train"][:train_cfg.batch_size].clone().to(device)
    yb = data["y_train"][:train_cfg.batch_size].clone().to(device)
    row["activation_bytes"] = activation_bytes(model, xb, yb)
    row["cuda_peak_bytes"] = cuda_peak_bytes(model, xb, yb)
    x_test = data["x_test"].to(device)
    row["beats_per_second"] = beats_per_second(model, x_test, batch_size=512, max_beats=2048)
    if trained:
        model.reset_nfe()
        pred, _ = predict(model, x_test, batch_size=512, device=device)
        m = classification_metrics(data["y_test"].numpy(), pred, y_train=data["y_train"].numpy())
        row.update(accuracy=m["accuracy"], macro_f1=m["macro_f1"],
                   recall={c: v["recall"] for c, v in m["per_class"].items()})
    else:
        row.update(accuracy=None, macro_f1=None, recall=None)
    return row, model


def run_seeds(name: str, trained: bool, data: dict[str, torch.Tensor], train_cfg: TrainConfig,
              device: torch.device, time_batches: int, use_compile: bool, seeds: list[int], rewrites: bool = True
              ) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    """run_config once per training seed. Returns one row, for a trained ODE-Net its deploy-loose rows, and the
    first seed's model (for the interleaved timing).

    The row: NFE and memory of the first seed (they do not depend on it); seconds per 100 batches the median over
    the seeds (each seed's in seconds_per_100_batches_by_seed); accuracy_mean (= accuracy), accuracy_sd and
    accuracy_se (sd / sqrt(n), None for one seed) and macro-F1 over the seeds, each seed's kept in
    accuracy_by_seed. Deploy loose: the first seed's model evaluated at the DEPLOY_LOOSE settings."""
    runs, model = [], None
    for seed in seeds:
        row_seed, trained_model = run_config(name, trained, data, replace(train_cfg, seed=seed), device,
                                             time_batches, use_compile, rewrites)
        runs.append(row_seed)
        model = model or trained_model
    row = dict(runs[0])
    row["seeds"] = list(seeds)
    if trained:
        accs = [r["accuracy"] for r in runs]
        n = len(accs)
        sd = float(np.std(accs, ddof=1)) if n > 1 else None
        row.update(accuracy=float(np.mean(accs)), accuracy_mean=float(np.mean(accs)), accuracy_sd=sd,
                   accuracy_se=None if sd is None else sd / math.sqrt(n),
                   macro_f1=float(np.mean([r["macro_f1"] for r in runs])),
                   accuracy_by_seed={str(seed): r["accuracy"] for seed, r in zip(seeds, runs)},
                   macro_f1_by_seed={str(seed): r["macro_f1"] for seed, r in zip(seeds, runs)},
                   seconds_per_100_batches=float(np.median([r["seconds_per_100_batches"] for r in runs])),
                   seconds_per_100_batches_by_seed={str(seed): r["seconds_per_100_batches"]
                                                    for seed, r in zip(seeds, runs)},
                   train_seconds=sum(r["train_seconds"] for r in runs))
    else:
        row.update(accuracy_mean=None, accuracy_sd=None, accuracy_se=None)
    loose = deploy_loose(name, model, data, device) if trained and model.ode is not None else []
    return row, loose, model


INTERLEAVE_ROUNDS = 5  # rounds of the interleaved timing, after one warm-up round


def interleaved_timing(models: dict[str, Any], x: torch.Tensor, y: torch.Tensor, batch_size: int,
                       device: torch.device, rounds: int = INTERLEAVE_ROUNDS,
                       blocks: dict[str, dict[str, list[float]]] | None = None) -> dict[str, float]:
    """Seconds per 100 training batches of every model, measured in turns.

    Each round gives every model BLOCK consecutive training steps (forward, loss with any RNODE penalty, backward,
    Adam step at a tiny learning rate, so that the trained dynamics, and an adaptive solver's NFE, stay as they
    are) on the same random batches; the median over the rounds of each model's block, scaled to 100 batches.
    Whatever else the machine does while the benchmark runs falls on every row alike, so the ratios between rows
    hold on a busy machine, where times measured one row after another would not. ``blocks``, when given,
    receives every round's block seconds per model, elapsed ("wall") and CPU seconds of this process, all its
    threads ("cpu": what a block cost, not counting the time it waited for a core held by another job)."""
    import copy

    g = torch.Generator().manual_seed(0)
    copies = {n: copy.deepcopy(m).to(device).train() for n, m in models.items()}
    optimizers = {n: torch.optim.Adam(m.parameters(), lr=1e-7) for n, m in copies.items()}
    times: dict[str, list[float]] = {n: [] for n in copies}
    cpu_times: dict[str, list[float]] = {n: [] for n in copies}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for r in range(rounds + 1):  # round 0 warms up
        batches = [torch.randint(len(x), (batch_size,), generator=g) for _ in range(BLOCK)]
        for name, model in copies.items():
            sync()
            started, cpu_started = time.perf_counter(), time.process_time()
            for idx in batches:
                xb, yb = x[idx].to(device), y[idx].to(device)
                loss = torch.nn.functional.cross_entropy(model(xb), yb)
                penalty = model.penalty()
                optimizers[name].zero_grad(set_to_none=True)
                (loss if penalty is None else loss + penalty).backward()
                optimizers[name].step()
            sync()
            if r > 0:
                times[name].append(time.perf_counter() - started)
                cpu_times[name].append(time.process_time() - cpu_started)
    if blocks is not None:
        blocks.update(wall=times, cpu=cpu_times)
    return {n: float(np.median(v)) * 100 / BLOCK for n, v in times.items()}


INFERENCE_BATCH = 512


def interleaved_inference(models: dict[str, Any], x: torch.Tensor, device: torch.device,
                          batch_size: int = INFERENCE_BATCH, rounds: int = INTERLEAVE_ROUNDS,
                          blocks: dict[str, dict[str, list[float]]] | None = None) -> dict[str, float]:
    """Inference beats per second of every model at batch ``batch_size``, measured in turns as the training time
    is: each round gives every model (evaluation mode, no gradients) the same BLOCK batches of beats of x; the
    median over the rounds (after a warm-up round). Throughput measured in one pass per row, one row after
    another, moves with whatever else the machine does; in turns, that falls on every row alike. ``blocks``: as
    interleaved_timing's (seconds of each round's BLOCK batches)."""
    import copy

    g = torch.Generator().manual_seed(1)
    copies = {n: copy.deepcopy(m).to(device).eval() for n, m in models.items()}
    times: dict[str, list[float]] = {n: [] for n in copies}
    cpu_times: dict[str, list[float]] = {n: [] for n in copies}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.no_grad():
        for r in range(rounds + 1):  # round 0 warms up
            batches = [x[torch.randint(len(x), (batch_size,), generator=g)].to(device) for _ in range(BLOCK)]
            for name, model in copies.items():
                sync()
                started, cpu_started = time.perf_counter(), time.process_time()
                for xb in batches:
                    model(xb)
                sync()
                if r > 0:
                    times[name].append(time.perf_counter() - started)
                    cpu_times[name].append(time.process_time() - cpu_started)
    if blocks is not None:
        blocks.update(wall=times, cpu=cpu_times)
    return {n: BLOCK * batch_size / float(np.median(v)) for n, v in times.items()}


def timing_thread_counts(spec: str, threads: int, default_threads: int, device: torch.device) -> list[int]:
    """The thread counts of the timing in turns: ``spec`` ("auto" or "1,2"), always with ``threads`` (the main
    columns'); on a GPU only ``threads`` (the CPU threads do not set its speed)."""
    if device.type != "cpu":
        return [threads]
    counts = {1, default_threads} if spec == "auto" else {int(n) for n in spec.split(",") if n.strip()}
    return sorted(counts | {threads})


def timing_by_threads(models: dict[str, Any], x_tr: torch.Tensor, y_tr: torch.Tensor, x_te: torch.Tensor,
                      batch_size: int, device: torch.device, rounds: int, counts: list[int]) -> dict[str, Any]:
    """interleaved_timing and interleaved_inference at each thread count, one after the other; per count (a
    string key, as in JSON): every row's seconds per 100 batches and beats per second with their ratios to the
    ResNet's at that count, and the load average (1, 5, 15 minutes) before and after. Within a count the rows run
    in turns, so each ratio holds on a busy machine; between counts the load may have changed (hence the loads)."""
    out: dict[str, Any] = {}
    for n in counts:
        torch.set_num_threads(n)
        load_before = [round(v, 2) for v in os.getloadavg()]
        train = interleaved_timing(models, x_tr, y_tr, batch_size, device, rounds=rounds)
        infer = interleaved_inference(models, x_te, device, rounds=rounds)
        rows = {}
        for name in models:
            rows[name] = {"seconds_per_100_batches": train[name], "beats_per_second": infer[name],
                          "ratio_vs_resnet": train[name] / train["resnet"] if "resnet" in train else None,
                          "inference_ratio_vs_resnet": infer["resnet"] / infer[name] if "resnet" in infer else None}
        out[str(n)] = {"rows": rows, "load": {"before": load_before, "after": [round(v, 2) for v in os.getloadavg()]}}
        print(f"bench: timing in turns at {n} thread(s): " + ", ".join(
            f"{k} {v['seconds_per_100_batches']:.2f} s/100 ({_fmt(v['ratio_vs_resnet'], '.3f')}x), "
            f"{v['beats_per_second']:.0f} beats/s" for k, v in rows.items())
            + f" [load {load_before} -> {out[str(n)]['load']['after']}]", flush=True)
    return out


def deploy_loose(name: str, model: Any, data: dict[str, torch.Tensor], device: torch.device,
                 max_beats: int = 2000) -> list[dict[str, Any]]:
    """Train precise (or cheap), deploy loose: the trained ODE-Net's test accuracy, evaluations of the dynamics per
    beat and inference beats/s at the DEPLOY_LOOSE settings (compare.tolerance_sweep), on up to ``max_beats`` test
    beats (the same random ones for every model). An adaptive solve that the trained dynamics make too stiff for its
    step limit is left out."""
    import pandas as pd


    # A seeded random part of the test beats: they are sorted by record, and the first ones are a few patients.
    keep = torch.randperm(len(data["x_test"]), generator=torch.Generator().manual_seed(0))[:max_beats]
    x, y = data["x_test"][keep].to(device), data["y_test"][keep].numpy()
    try:
        table = tolerance_sweep(model, x, y, DEPLOY_LOOSE, throughput_beats=512, skip_failed=True)
    except (EcgError, AssertionError, RuntimeError):  # not even the trained setting solved: no rows
        return []
    return [{"kind": "deploy_loose", "config": name, "setting": str(r["setting"]), "solver": r["solver"],
             "step_size": None if pd.isna(r["step size"]) else float(r["step size"]),
             "rtol": None if pd.isna(r["rtol"]) else float(r["rtol"]), "trained": bool(r["trained"]),
             "accuracy": float(r["accuracy"]), "nfe_per_beat": float(r["NFE/batch"]),
             "beats_per_second": float(r["beats/s"]), "test_beats": len(y)} for _, r in table.iterrows()]


# Memory against depth: a ResNet keeps every block's activations for backward, an ODE-Net with direct
# backpropagation every solver step's, and with the adjoint only the block's input and output.
DEPTHS = (1, 2, 6, 12, 24, 48)  # residual blocks
STEPS = (1, 2, 3, 6, 12, 24)  # RK4 steps from t = 0 to t = 1


def memory_against_depth(x: torch.Tensor, y: torch.Tensor, device: torch.device) -> list[dict[str, Any]]:
    """Activation memory of one training step on the batch (x, y), measured with metrics.activation_bytes: ResNets
    of DEPTHS blocks, and the ODE-Net with STEPS RK4 steps, backpropagated directly and with the adjoint."""
    rows: list[dict[str, Any]] = []
    x, y = x.to(device), y.to(device)
    settings = [("resnet", d, None) for d in DEPTHS] + [
        ("odenet", n, ODEConfig(solver="rk4", step_size=1 / n, adjoint=adjoint))
        for adjoint in (False, True) for n in STEPS]
    for model_name, depth, ode in settings:
        seed_everything(0)
        model = (build_model("resnet", blocks=depth) if ode is None else build_model("odenet", ode=ode)).to(device)
        backprop = "adjoint" if ode is not None and ode.adjoint else "direct"
        unit = "blocks" if ode is None else "rk4-steps"
        rows.append({"kind": "memory_depth", "config": f"{model_name}-{depth}-{unit}-{backprop}", "model": model_name,
                     "solver": None if ode is None else ode.solver,
                     "depth": depth, "depth_unit": unit, "backprop": backprop, "batch_size": len(x),
                     "params": count_parameters(model), "activation_bytes": activation_bytes(model, x, y),
                     "cuda_peak_bytes": cuda_peak_bytes(model, x, y)})
    return rows


def memory_markdown(memory: list[dict[str, Any]]) -> list[str]:
    """The memory-against-depth rows as a table: one line per depth, MB for each model."""
    cells = {(r["model"], r["backprop"], r["depth"]): r["activation_bytes"] / 2**20 for r in memory}
    lines = [f"## Activation memory against depth (one training step of {memory[0]['batch_size']} beats, MB)", "",
             "| depth | ResNet (blocks) | ODE-Net, direct backprop (RK4 steps) | ODE-Net, adjoint (RK4 steps) |",
             "|---:|---:|---:|---:|"]
    for depth in sorted({r["depth"] for r in memory}):
        row = [cells.get(key) for key in (("resnet", "direct", depth), ("odenet", "direct", depth),
                                          ("odenet", "adjoint", depth))]
        lines.append(f"| {depth} | " + " | ".join(_fmt(v, ".1f") for v in row) + " |")
    return lines + ["", "Measured (bytes autograd saves for backward), not computed; the figure is memory_depth.png.",
                    ""]


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """speedup_vs_original and ratio_vs_resnet per batch, from seconds_per_100_batches (interleaved at the end), and
    inference_ratio_vs_resnet, the row's inference time per beat over the ResNet's."""
    by = {r["config"]: r for r in rows if r.get("seconds_per_100_batches")}
    original, resnet = by.get("odenet-original"), by.get("resnet")
    for row in rows:
        t = row.get("seconds_per_100_batches")
        row["speedup_vs_original"] = original["seconds_per_100_batches"] / t if t and original else None
        row["ratio_vs_resnet"] = t / resnet["seconds_per_100_batches"] if t and resnet else None
        bps, resnet_bps = row.get("beats_per_second"), resnet.get("beats_per_second") if resnet else None
        row["inference_ratio_vs_resnet"] = resnet_bps / bps if bps and resnet_bps else None


# ------------------------------------------------------------------------------------------------------- report
def _fmt(v: Any, spec: str, none: str = "—") -> str:
    return none if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _accuracy_cell(r: dict[str, Any]) -> str:
    """'0.9466 ± 0.0012 (0.9450 / 0.9480 / 0.9468)': mean ± standard error over the seeds, then each seed."""
    by_seed = r.get("accuracy_by_seed")
    if not by_seed or len(by_seed) < 2:
        return _fmt(r.get("accuracy"), ".4f")
    return (f"{r['accuracy']:.4f} ± {r['accuracy_se']:.4f} "
            f"({' / '.join(f'{a:.4f}' for a in by_seed.values())})")


def _name_cell(r: dict[str, Any]) -> str:
    return r["config"] + (" (default)" if r["config"] == default_config_name() else "")


def threads_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The table of the timing in turns at each thread count (training time and inference beats/s, each with its
    ratio to the ResNet at the same count), with the load averages around each count's timing."""
    timed = [r for r in rows if r.get("timing_by_threads")]
    if not timed:
        return []
    counts = list(timed[0]["timing_by_threads"])
    head = " | ".join(f"{n} thread(s): s / 100 batches | time vs ResNet | inference beats/s | inference vs ResNet"
                      for n in counts)
    lines = ["Timing in turns at each thread count (each count timed separately; ratios within a count):", "",
             f"| config | {head} |", "|---|" + "---:|" * (4 * len(counts))]
    for r in timed:
        cells = []
        for n in counts:
            t = r["timing_by_threads"][n]
            cells += [f"{t['seconds_per_100_batches']:.2f}", _fmt(t["ratio_vs_resnet"], ".3f"),
                      f"{t['beats_per_second']:.0f}", _fmt(t["inference_ratio_vs_resnet"], ".3f")]
        lines.append(f"| {_name_cell(r)} | " + " | ".join(cells) + " |")
    loads = timed[0]["timing_by_threads"]
    lines += ["", "Load average (1, 5, 15 min) before and after each count's timing: " + "; ".join(
        f"{n} thread(s) {loads[n]['load']['before']} -> {loads[n]['load']['after']}" for n in counts) + ".", ""]
    return lines


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    b = meta["budget"]
    lines = [
        f"# ODE-Net benchmark — {meta['date']}",
        "",
        f"**Machine:** {meta['machine']} (device {meta['device']}; load average at start {meta['load_start']}, "
        f"at end {meta['load_end']}). **Data:** {meta['data']['description']}. **Budget:** {b['description']}. "
        f"**Wall time:** {meta['wall_seconds'] / 60:.1f} min.",
        "",
        "| config | trained | s / 100 batches | speed-up vs original | time vs ResNet | NFE fwd | NFE bwd | "
        "activation MB | CUDA peak MB | inference beats/s | inference time vs ResNet | "
        "test accuracy (mean ± se, each seed) | macro-F1 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['config']} | failed: {r['error'][:80]} |" + " |" * 11)
            continue
        mark = "" if r["trained"] else "*"
        first = not r["trained"]
        s100 = r["seconds_per_100_batches"]
        sp = _fmt(r.get("speedup_vs_original"), ".2f")
        rr = _fmt(r.get("ratio_vs_resnet"), ".2f")
        nf = r["nfe_forward_first_k" if first else "nfe_forward"]
        nb = r["nfe_backward_first_k" if first else "nfe_backward"]
        lines.append(
            f"| {_name_cell(r)} | {'yes' if r['trained'] else 'no (timed only)'} | {s100:.1f} | {sp} | {rr} | "
            f"{nf:.1f}{mark} | {nb:.1f}{mark} | {r['activation_bytes'] / 2**20:.1f} | "
            f"{_fmt(None if r['cuda_peak_bytes'] is None else r['cuda_peak_bytes'] / 2**20, '.0f', 'n/a')} | "
            f"{r['beats_per_second']:.0f} | {_fmt(r.get('inference_ratio_vs_resnet'), '.2f')} | "
            f"{_accuracy_cell(r)} | {_fmt(r['macro_f1'], '.3f')} |")
    k = b["time_batches"]
    rounds = meta.get("rounds", INTERLEAVE_ROUNDS)
    lines += [
        "",
        f"Time: training batches of {b['batch_size']} (forward, backward, optimizer step) timed in turns after "
        f"training: {rounds} rounds, each giving every row's trained model {BLOCK} steps on the same batches; the "
        "median block, scaled to 100 batches (during training: seconds_per_100_batches_training in results.json). "
        f"Rows marked * trained only their first {k} batches (NFE over those batches). NFE: dynamics evaluations per "
        "training batch (backward: those the backward pass makes itself). Activation MB: bytes autograd saves for "
        f"backward in one training step of {b['batch_size']} beats, after training. Inference: beats per second at "
        f"batch {INFERENCE_BATCH} without gradients, timed in turns after the training time: {rounds} rounds, each "
        f"giving every row's model the same {BLOCK} batches of random test beats; the median round (one pass while "
        "the row ran: beats_per_second_single_pass in results.json); its time vs ResNet is the ResNet's beats/s "
        f"over the row's. Majority-class baseline accuracy on this test set: {meta['baseline_accuracy']:.4f}.",
        "",
    ]
    lines += threads_markdown(rows)
    lines += summary_sentences(rows, meta)
    notes = list(meta.get("notes") or [])
    loads = [f"{r['config']} {r['load_average']:.1f}" for r in rows if r.get("load_average") is not None]
    if loads:
        notes.append(f"1-minute load average as each row finished ({os.cpu_count()} cores, {meta['threads']} torch "
                     f"thread(s)): " + ", ".join(loads) + ". The benchmark itself accounts for about "
                     f"{meta['threads'] if meta['device'] == 'cpu' else 1}; more means other jobs competed for the "
                     "cores and slowed the rows they overlapped.")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def summary_sentences(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    """What the table says about the speed question: which ODE-Net trains at no more than the ResNet's time per
    batch with a mean accuracy within 0.3 points of the original settings'."""
    by = {r["config"]: r for r in rows if not r.get("error")}
    out = []
    orig, res = by.get("odenet-original"), by.get("resnet")
    n_seeds = len(meta["budget"].get("seeds") or [0])
    if orig and orig.get("accuracy") is not None:
        for name, r in by.items():
            if not name.startswith("odenet") or name == "odenet-original" or r.get("accuracy") is None:
                continue
            gap = 100 * (r["accuracy"] - orig["accuracy"])
            se = (100 * math.sqrt(r["accuracy_se"] ** 2 + orig["accuracy_se"] ** 2)
                  if r.get("accuracy_se") is not None and orig.get("accuracy_se") is not None else None)
            ratio = r.get("ratio_vs_resnet")
            verdict = ("meets both" if ratio is not None and ratio <= 1.0 and gap >= -0.3 else
                       "within 0.3 points" if gap >= -0.3 else "more than 0.3 points below")
            spread = f"± {se:.2f} se over {n_seeds} seeds" if se is not None else "one seed"
            out.append(f"- {name}: {_fmt(ratio, '.2f')}x the ResNet's time per batch, accuracy {gap:+.2f} points "
                       f"against the original ({spread}); {verdict} (the goal: at most 1.0x the ResNet, at most 0.3 "
                       "points below the original).")
    if res and res.get("seconds_per_100_batches") and orig and orig.get("ratio_vs_resnet"):
        out.append(f"- The original settings cost {orig['ratio_vs_resnet']:.1f} ResNet-times per batch (ResNet "
                   f"{res['seconds_per_100_batches']:.1f} s per 100 batches, accuracy {_fmt(res['accuracy'], '.4f')}).")
    if all(n in by for n in ("odenet-direct", "odenet-original", "resnet")):
        mb = {n: by[n]["activation_bytes"] / 2**20 for n in ("odenet-direct", "odenet-original", "resnet")}
        out.append(f"- Activation memory per batch: dopri5 direct {mb['odenet-direct']:.1f} MB against "
                   f"{mb['odenet-original']:.1f} MB with the adjoint; ResNet {mb['resnet']:.1f} MB.")
    trained = [(r["seconds_per_100_batches"], n) for n, r in by.items() if r["trained"] and r.get("accuracy")]
    if trained and orig and orig.get("accuracy") is not None:
        good = sorted((t, n) for t, n in trained if by[n]["accuracy"] >= orig["accuracy"] - 0.003)
        if good:
            out.append(f"- Fastest trained configuration within 0.3 points of the original's mean accuracy "
                       f"({orig['accuracy']:.4f}): {good[0][1]} ({good[0][0]:.1f} s per 100 batches).")
    return [s for s in out if s]


def deploy_markdown(loose: list[dict[str, Any]]) -> list[str]:
    """Deploy loose as a table: per trained ODE-Net, accuracy (and evaluations per beat) at each setting."""
    configs = list(dict.fromkeys(r["config"] for r in loose))
    settings = list(dict.fromkeys(r["setting"].removesuffix(" (trained)") for r in loose))
    cell = {(r["config"], r["setting"].removesuffix(" (trained)")): r for r in loose}
    lines = [f"## Deploy loose: accuracy (evaluations per beat) of each trained ODE-Net, first seed, at other "
             f"solver settings ({loose[0]['test_beats']:,} test beats)", "",
             "| setting | " + " | ".join(configs) + " |", "|---|" + "---:|" * len(configs)]
    for setting in settings:
        values = []
        for c in configs:
            r = cell.get((c, setting))
            values.append("—" if r is None else
                          f"{'**' if r['trained'] else ''}{r['accuracy']:.4f} ({r['nfe_per_beat']:.0f})"
                          f"{'**' if r['trained'] else ''}")
        lines.append(f"| {setting} | " + " | ".join(values) + " |")
    return lines + ["", "Bold: the setting the model was trained with. A missing cell: the solve failed (too stiff "
                    "for the step limit). The figure is deploy_loose.png.", ""]


def save_figure(ax: Any, path: Path) -> None:
    import matplotlib.pyplot as plt


    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        ax.figure.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    plt.close(ax.figure)


# ------------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mitdb-dir", type=Path, help="MIT-BIH WFDB folder (default: the synthetic records)")
    p.add_argument("--out", type=Path, default=Path("runs/bench"))
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of: " + ", ".join(CONFIGS))
    p.add_argument("--train-all", action="store_true",
                   help="train every configuration to the full budget, not only the default-trained ones")
    p.add_argument("--train-beats", type=int, default=40_960,
                   help="train on a stratified subset of this many beats of the intra training split, no validation "
                        "hold-out (default 40,960: 640 batches of 64); 0: the whole split (87,552 MIT-BIH beats)")
    p.add_argument("--test-beats", type=int, default=5_000, help="stratified subset of the intra test split")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64,
                   help="training batch (default 64: twice the optimizer steps of batch 128 for the same time, so "
                        "that three seeds of every trained row fit the 30-minute budget)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="adam")
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--schedule", choices=("cosine", "onecycle", "none"), default="cosine")
    p.add_argument("--seed", type=int, default=0, help="training seed: initial weights and batch order (the data "
                   "split and subsets always use seed 0)")
    p.add_argument("--seeds", type=int, default=3, help="train every trained row with this many seeds (--seed, "
                   "--seed + 1, ...) and report the mean accuracy: one epoch leaves a seed-to-seed spread of about "
                   "half a point, so a 0.3-point comparison needs several (each seed adds the whole budget)")
    p.add_argument("--time-only", action="store_true",
                   help="train no configuration: every row is timed only (after --time-batches batches), for the "
                        "time and throughput columns without the accuracy budget")
    p.add_argument("--no-rewrites", action="store_true",
                   help="compute the ODE block without its exact rewrites (ecglib.models.REWRITES): the plain "
                        "formulation of the same function, for a before/after comparison")
    p.add_argument("--time-batches", type=int, default=20,
                   help="batches timed for configurations that are not trained (default 20)")
    p.add_argument("--rounds", type=int, default=INTERLEAVE_ROUNDS,
                   help=f"rounds of the timing in turns (training and inference), after a warm-up round (default "
                        f"{INTERLEAVE_ROUNDS}; more on a busy machine)")
    p.add_argument("--threads", default="auto", help="torch CPU threads, or auto: probe 1 and torch's default")
    p.add_argument("--timing-threads", default="auto",
                   help="torch CPU thread counts at which the timing in turns runs after the rows, comma-separated "
                        "(auto: 1 and torch's default, plus --threads); the main columns are at --threads, the "
                        "others in the table by threads")
    p.add_argument("--compile", action="store_true",
                   help="also time the default ODE-Net with torch.compile'd dynamics (no gain measured on CPU)")
    p.add_argument("--device", default="auto")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.time_only and args.train_all:
        print("bench: --time-only and --train-all exclude each other", file=sys.stderr)
        return 2
    if args.seeds < 1:
        print("bench: --seeds must be at least 1", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", category=UserWarning)
    wall = time.perf_counter()
    load_start = round(os.getloadavg()[0], 2)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        print(f"bench: unknown config {unknown[0]!r}; choose from {', '.join(CONFIGS)}", file=sys.stderr)
        return 2
    names = [n for n in CONFIGS if n in names]  # canonical order: the required rows first
    if args.compile:
        names.append("default+compile")
    device = pick_device(args.device)

    source = "mitdb" if args.mitdb_dir else "synthetic"
    try:
        beats = load_beats(source, mitdb_dir=args.mitdb_dir, download=False)
    except EcgError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    # No validation hold-out: nothing is selected on it here. The test part is the same as with one.
    # The data (split and subsets) stays fixed at seed 0 whatever --seed is: --seed moves only the training.
    split = split_beats(beats, "intra", val_fraction=0.0, seed=0)
    train = limit_beats(beats.subset(split.train), args.train_beats or None, seed=0)
    test = limit_beats(beats.subset(split.test), args.test_beats, seed=0)
    x_tr, y_tr = to_tensors(train)
    x_te, y_te = to_tensors(test)
    data = {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}

    threads_probe: dict[str, float] = {}
    default_threads = torch.get_num_threads()
    if device.type == "cpu" and args.threads == "auto":
        threads, threads_probe = probe_threads(x_tr, y_tr)
    else:
        threads = int(args.threads) if args.threads != "auto" else torch.get_num_threads()
        torch.set_num_threads(threads)
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                            momentum=0.9, schedule=args.schedule, warmup=0.05, seed=args.seed,
                            device=str(device), threads=threads if device.type == "cpu" else None)
    steps = math.ceil(len(x_tr) / train_cfg.batch_size) * train_cfg.epochs
    seeds = list(range(args.seed, args.seed + args.seeds))
    seed_text = f"seed {args.seed}" if args.seeds == 1 else f"seeds {seeds[0]}-{seeds[-1]} (accuracy: their mean)"
    time_batches = min(args.time_batches, steps)
    opt_name = "SGD" if args.optimizer == "sgd" else "Adam"
    momentum = ", momentum 0.9" if args.optimizer == "sgd" else ""
    recipe = (f"{opt_name} lr {args.lr:g}{momentum}, "
              + (f"{train_cfg.warmup:.0%} linear warm-up then {args.schedule}" if args.schedule != "none"
                 else "constant rate"))
    budget = {"train_beats": len(x_tr), "epochs": args.epochs, "seeds": seeds, "batch_size": train_cfg.batch_size,
              "batches": steps, "time_batches": time_batches, "recipe": recipe, "train_config": asdict(train_cfg),
              "description": f"{steps} batches of {train_cfg.batch_size} ({args.epochs} epoch(s) of "
                             f"{len(x_tr):,} training beats), {recipe}, {seed_text}; same for every trained "
                             f"row"}
    data_meta = {"source": source, "mitdb_dir": str(args.mitdb_dir) if args.mitdb_dir else None,
                 "split": "intra", "n_train": len(x_tr), "n_test": len(x_te),
                 "train_classes": train.class_counts(), "test_classes": test.class_counts(),
                 "description": (f"{'MIT-BIH (' + str(args.mitdb_dir) + ')' if args.mitdb_dir else 'synthetic records'}"
                                 f", {len(beats):,} beats, intra split; {len(x_tr):,} training and {len(x_te):,} "
                                 f"test beats (stratified subsets)")}
    machine = machine_description(device)
    notes = []
    if threads_probe:
        probed = ", ".join(f"{n} thread(s) {s:.3f} s/batch" for n, s in threads_probe.items())
        notes.append(f"Threads: probed the default ODE-Net at {probed}; "
                     f"used {threads}.")
    if not args.mitdb_dir:
        notes.append("Synthetic data: a smoke run. Its accuracies and timings say little about MIT-BIH; "
                     "run with --mitdb-dir (make bench MITDB_DIR=DIR).")
    if args.no_rewrites:
        notes.append("--no-rewrites: the ODE blocks computed in their plain formulation, without the exact rewrites.")
    if args.time_only:
        notes.append("--time-only: no row trained; each timed after its first --time-batches batches.")
    common = {"data": data_meta, "machine": machine, "device": str(device), "threads": threads, "budget": budget,
              "ode_rewrites": [] if args.no_rewrites else list(REWRITES)}

    trained_names = set() if args.time_only else {n for n in names if config_spec(n)[2] or args.train_all}
    print(f"bench: {machine} | {data_meta['description']} | {budget['description']} | "
          f"{len(names)} configs, {len(trained_names)} trained", flush=True)
    rows: list[dict[str, Any]] = []
    loose: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    out = args.out
    for name in names:
        trained = name in trained_names and name != "default+compile"
        t0 = time.perf_counter()
        try:
            row, row_loose, models[name] = run_seeds(name, trained, data, train_cfg, device, time_batches,
                                                     name == "default+compile", seeds if trained else seeds[:1],
                                                     rewrites=not args.no_rewrites)
            loose += row_loose
        except (EcgError, RuntimeError, AssertionError) as exc:
            row = {"config": name, "trained": trained, "error": f"{type(exc).__name__}: {str(exc).strip()[:300]}"}
        row.update(common)
        row["load_average"] = round(os.getloadavg()[0], 2)  # 1-minute load when the row finished
        rows.append(row)
        add_ratios(rows)
        atomic_write_text(out / "results.json", json.dumps(rows + loose, indent=2))
        if row.get("error"):
            print(f"{name:<22} FAILED after {time.perf_counter() - t0:.0f} s: {row['error']}", flush=True)
        else:
            s100 = row["seconds_per_100_batches"]
            print(f"{name:<22} {s100:7.1f} s/100 batches ({row['timed_batches']} timed)  NFE "
                  f"{row['nfe_forward']:5.1f}/{row['nfe_backward']:5.1f}  "
                  f"act {row['activation_bytes'] / 2**20:6.1f} MB  "
                  f"{row['beats_per_second']:7.0f} beats/s  acc {_fmt(row['accuracy'], '.4f')}  "
                  f"[{time.perf_counter() - t0:.0f} s, load {row['load_average']:.1f}]", flush=True)

    timed = {r["config"]: models[r["config"]] for r in rows if not r.get("error")}
    by_threads = timing_by_threads(timed, x_tr, y_tr, x_te, train_cfg.batch_size, device, args.rounds,
                                   timing_thread_counts(args.timing_threads, threads, default_threads, device))
    torch.set_num_threads(threads)
    main_timing = by_threads.get(str(threads)) or next(iter(by_threads.values()))
    for row in rows:
        if row["config"] in main_timing["rows"]:
            row["seconds_per_100_batches_training"] = row["seconds_per_100_batches"]
            row["seconds_per_100_batches"] = main_timing["rows"][row["config"]]["seconds_per_100_batches"]
            row["beats_per_second_single_pass"] = row["beats_per_second"]
            row["beats_per_second"] = main_timing["rows"][row["config"]]["beats_per_second"]
            row["timing_by_threads"] = {n: {**t["rows"][row["config"]], "load": t["load"]}
                                        for n, t in by_threads.items()}
    add_ratios(rows)
    meta = {**common, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "load_start": load_start,
            "load_end": round(os.getloadavg()[0], 2), "wall_seconds": time.perf_counter() - wall, "rounds": args.rounds,
            "baseline_accuracy": classification_metrics(y_te.numpy(), y_te.numpy(),
                                                        y_train=y_tr.numpy())["baseline_accuracy"],
            "notes": notes}
    for row in rows:
        row.update(date=meta["date"], wall_seconds=meta["wall_seconds"], load_start=load_start,
                   load_end=meta["load_end"])
    x_mem, y_mem = x_tr[:train_cfg.batch_size].clone(), y_tr[:train_cfg.batch_size].clone()
    memory = memory_against_depth(x_mem, y_mem, device)
    md = markdown(rows, meta) + "\n" + "\n".join(memory_markdown(memory))
    if loose:
        md += "\n" + "\n".join(deploy_markdown(loose))
    atomic_write_text(out / "results.json", json.dumps(rows + memory + loose, indent=2))
    atomic_write_text(out / "results.md", md)
    import matplotlib

    matplotlib.use("Agg")

    save_figure(plot_memory_depth(memory), out / "memory_depth.png")
    if loose:
        save_figure(plot_deploy_loose(loose), out / "deploy_loose.png")
    print()
    print(md, end="")
    missing = [n for n in REQUIRED if n in names and any(r["config"] == n and r.get("error") for r in rows)]
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
