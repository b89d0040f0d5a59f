"""What each exact rewrite of the ODE block (``ecglib.models.REWRITES``) buys, row against row.

The ResNet and, for each ODE setting, the same ODE-Net (same weights) computed with the rewrites switched on one
after another: none (the plain formulation), + time_map, + norms, + direct_solve (all, the default). Every
model is timed in turns with bench_odenet.py's own functions: training batches (seconds per 100, the ratio to the
ResNet) and inference at batch 512 (beats per second). The rewrites change no result (tests/test_models.py), so
the models are not trained: a fixed-grid solve costs the same whatever its weights.

    python benchmarks/bench_ode_rewrites.py --mitdb-dir DIR --threads 1 --out runs/bench-rewrites-1t

Writes OUT/results.json and OUT/results.md and prints the markdown, with the 1-minute load average at the start
and the end (other jobs on the machine slow every row alike, since the rows take turns).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_odenet import BLOCK, INFERENCE_BATCH, fixed, interleaved_inference, interleaved_timing  # noqa: E402

from ecglib.config import ODEConfig  # noqa: E402
from ecglib.data.inputs import to_tensors  # noqa: E402
from ecglib.data.sources import load_beats  # noqa: E402
from ecglib.data.splits import limit_beats, split_beats  # noqa: E402
from ecglib.files import atomic_write_text  # noqa: E402
from ecglib.inference import machine_description  # noqa: E402
from ecglib.models import REWRITES, build_model  # noqa: E402
from ecglib.training.loop import seed_everything  # noqa: E402

SETTINGS: dict[str, ODEConfig] = {
    "midpoint-2steps": fixed("midpoint", 2),  # the project default (ODEConfig())
    "midpoint-3steps": fixed("midpoint", 3),
    "rk4-1step": fixed("rk4", 1),
    "rk4-3steps": fixed("rk4", 3),
    "euler-6steps": fixed("euler", 6),
}
# Cumulative: each variant adds one rewrite to the one before.
VARIANTS = {"plain": ()} | {"+" + name: REWRITES[:i + 1] for i, name in enumerate(REWRITES)}


def models_to_time(settings: list[str]) -> dict[str, Any]:
    models: dict[str, Any] = {}
    seed_everything(0)
    models["resnet"] = build_model("resnet")
    for setting in settings:
        seed_everything(0)
        base = build_model("odenet", ode=SETTINGS[setting])
        for variant, rewrites in VARIANTS.items():
            model = build_model("odenet", ode=SETTINGS[setting])
            model.load_state_dict(base.state_dict())
            model.ode.func.rewrites = set(rewrites)
            models[f"{setting} {variant}"] = model
    return models


def paired(row: list[float], resnet: list[float]) -> dict[str, float]:
    """Median and quartiles over the rounds of the row's block time over the ResNet's of the same round."""
    ratios = np.array(row) / np.array(resnet)
    return {"median": float(np.median(ratios)), "q1": float(np.quantile(ratios, 0.25)),
            "q3": float(np.quantile(ratios, 0.75))}


def _cell(p: dict[str, float]) -> str:
    return f"{p['median']:.3f} [{p['q1']:.3f}, {p['q3']:.3f}]"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mitdb-dir", type=Path, help="MIT-BIH WFDB folder (default: the synthetic records)")
    p.add_argument("--out", type=Path, default=Path("runs/bench-rewrites"))
    p.add_argument("--settings", default="midpoint-2steps,rk4-1step",
                   help="comma-separated subset of: " + ", ".join(SETTINGS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128, help="training batch (the benchmark's: 128)")
    p.add_argument("--rounds", type=int, default=10, help="rounds of the timing in turns, after one warm-up round")
    args = p.parse_args(argv)
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        print(f"bench_ode_rewrites: unknown setting {unknown[0]!r}; choose from {', '.join(SETTINGS)}",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    load_start, wall = os.getloadavg(), time.perf_counter()
    beats = load_beats("mitdb" if args.mitdb_dir else "synthetic", mitdb_dir=args.mitdb_dir, download=False)
    split = split_beats(beats, "intra", val_fraction=0.0, seed=0)
    x_tr, y_tr = to_tensors(limit_beats(beats.subset(split.train), 40_960, seed=0))
    x_te, _ = to_tensors(limit_beats(beats.subset(split.test), 5_000, seed=0))
    device = torch.device("cpu")

    models = models_to_time(settings)
    train_blocks: dict[str, dict[str, list[float]]] = {}
    infer_blocks: dict[str, dict[str, list[float]]] = {}
    train = interleaved_timing(models, x_tr, y_tr, args.batch_size, device, rounds=args.rounds, blocks=train_blocks)
    infer = interleaved_inference(models, x_te, device, rounds=args.rounds, blocks=infer_blocks)
    load_end = os.getloadavg()
    rows = []
    for name, model in models.items():
        setting, _, variant = name.partition(" ")
        row: dict[str, Any] = {"config": name, "setting": setting, "variant": variant or None,
                               "rewrites": sorted(model.ode.func.rewrites) if model.ode else None,
                               "seconds_per_100_batches": train[name], "ratio_vs_resnet": train[name] / train["resnet"],
                               "beats_per_second": infer[name],
                               "inference_ratio_vs_resnet": infer["resnet"] / infer[name]}
        for kind, blocks in (("train", train_blocks), ("inference", infer_blocks)):
            for clock in ("wall", "cpu"):
                row[f"{kind}_{clock}_paired"] = paired(blocks[clock][name], blocks[clock]["resnet"])
        row["cpu_seconds_per_100_batches"] = float(np.median(train_blocks["cpu"][name])) * 100 / BLOCK
        row["beats_per_cpu_second"] = BLOCK * INFERENCE_BATCH / float(np.median(infer_blocks["cpu"][name]))
        row["blocks"] = {"train": {c: train_blocks[c][name] for c in ("wall", "cpu")},
                         "inference": {c: infer_blocks[c][name] for c in ("wall", "cpu")}}
        rows.append(row)
    meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_description(device),
            "threads": args.threads, "batch_size": args.batch_size, "rounds": args.rounds,
            "load_start": [round(v, 2) for v in load_start], "load_end": [round(v, 2) for v in load_end],
            "wall_seconds": round(time.perf_counter() - wall, 1),
            "data": f"{'MIT-BIH' if args.mitdb_dir else 'synthetic'}: {len(x_tr):,} training, {len(x_te):,} test beats"}
    lines = [f"# ODE-block rewrites — {meta['date']}", "",
             f"**Machine:** {meta['machine']}; 1/5/15-minute load average "
             f"{' / '.join(map(str, meta['load_start']))} at the start, {' / '.join(map(str, meta['load_end']))} at "
             f"the end. **Data:** {meta['data']}. **Wall time:** {meta['wall_seconds'] / 60:.1f} min.", "",
             f"Training: batches of {args.batch_size} in turns, {args.rounds} rounds of {BLOCK} steps per model "
             f"(median, scaled to 100 batches). Inference: batch {INFERENCE_BATCH}, no gradients, in turns, "
             f"{args.rounds} rounds of {BLOCK} batches (median). Variants are cumulative. The first columns are "
             "the benchmark's (bench_odenet.py): each row's median round, and their ratio. Paired: the median over "
             "the rounds of the row's block over the ResNet's block of the same round [quartiles], which cancels "
             "load that changes from round to round; in elapsed (wall) and in this process's CPU seconds (not "
             "counting the time a block waited for a core that another job held).", "",
             "| config | s / 100 batches | time vs ResNet | paired wall | paired CPU | inference beats/s | "
             "inference time vs ResNet | paired wall | paired CPU |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['seconds_per_100_batches']:.2f} | {r['ratio_vs_resnet']:.3f} | "
                     f"{_cell(r['train_wall_paired'])} | {_cell(r['train_cpu_paired'])} | "
                     f"{r['beats_per_second']:.0f} | {r['inference_ratio_vs_resnet']:.3f} | "
                     f"{_cell(r['inference_wall_paired'])} | {_cell(r['inference_cpu_paired'])} |")
    md = "\n".join(lines) + "\n"
    atomic_write_text(args.out / "results.json", json.dumps([{**r, **meta} for r in rows], indent=2))
    atomic_write_text(args.out / "results.md", md)
    print(md, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
