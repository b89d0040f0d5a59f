"""Which S decision offset (``--s-offset``) do the DS1 folds choose? (docs/rhythm-recipe.md, its selection log)

The offset moves decisions, not training, so no new run is needed: the fold models of the morphology-dropout sweep
(``benchmarks/sweeps/select-morphology-dropout.toml``, configurations "resnet" and "odenet": the rhythm recipe with
morphology dropout 0.5 and no offset) predict their own validation records once, and every offset of the grid is
scored on those logits. Per model and seed the validation counts are pooled over the three folds. The rule,
written before the scores: b*(model) is the offset of the grid with the highest mean-over-seeds F2 of S (recall
weighted twice precision, as the field's S target of Se 0.76 at +P 0.38 is) among those where every seed's F2 S
beats its own at 0 and the mean F1 of V falls by at most one point; the recipe takes the smaller of the two
models' b*. No DS2 beat is read.

    ecglib sweep benchmarks/sweeps/select-morphology-dropout.toml --out runs/select-mdrop --mitdb-dir DIR
    python benchmarks/select_s_offset.py runs/select-mdrop --mitdb-dir DIR

Writes OUT/s-offset.md and prints it. Measured on the 2-core machine of docs/performance.md: 2 min 22 s for the 18
fold models (one thread, beside a sweep).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ecglib.checkpoints import load_checkpoint
from ecglib.data.inputs import model_inputs
from ecglib.data.sources import load_beats
from ecglib.errors import EcgError
from ecglib.files import atomic_write_text
from ecglib.inference import predict
from ecglib.metrics import confusion, gross_statistics

GRID = tuple(np.round(np.arange(0.0, 2.01, 0.25), 2))
S = 1  # ecglib.data.CLASSES


def class_scores(logits: np.ndarray, y: np.ndarray, offset: float) -> dict[str, float]:
    """S Se, +P, F1, F2 and V Se, +P, F1 of the decisions with ``offset`` added to the S logit; logits (n, 5)."""

    shifted = logits.copy()
    shifted[:, S] += offset
    gross = gross_statistics(y, shifted.argmax(1))
    out: dict[str, float] = {}
    for name, c in (("s", "S"), ("v", "V")):
        se, ppv, found = gross[c]["se"], gross[c]["ppv"], gross[c]["tp"] > 0
        out.update({f"{name}_se": se, f"{name}_ppv": ppv, f"{name}_f1": 2 * se * ppv / (se + ppv) if found else 0.0})
    out["s_f2"] = 5 * out["s_se"] * out["s_ppv"] / (4 * out["s_ppv"] + out["s_se"]) if gross["S"]["tp"] else 0.0
    return out


def fold_logits(run_dirs: list[Path], beats) -> tuple[np.ndarray, np.ndarray]:
    """The runs' logits on their own validation records (offsets off), pooled; checks that they reproduce each
    run's recorded validation confusion matrix."""

    records = np.asarray(beats.record)
    logits, labels = [], []
    for run in run_dirs:
        metrics = json.loads((run / "metrics.json").read_text())
        rows = np.flatnonzero(np.isin(records, metrics["split"]["val_records"]))
        model, _ = load_checkpoint(run / "best.pt")
        model.set_logit_offsets(None)
        x, y, r = model_inputs(beats, model.config).part(rows)
        pred, lg = predict(model, x, rhythm=r)
        if "logit_offsets" not in metrics["config"]["model"] and \
                not np.array_equal(confusion(y.numpy(), pred), np.asarray(metrics["validation"]["confusion_matrix"])):
            raise EcgError(f"{run}: its validation predictions differ from its metrics.json")
        logits.append(np.asarray(lg))
        labels.append(y.numpy())
    return np.concatenate(logits), np.concatenate(labels)


def choose(scores: dict[tuple[str, int, float], dict[str, float]], model: str, seeds: list[int]) -> float:
    """The rule of the module docstring for one model."""
    base_v = np.mean([scores[(model, s, 0.0)]["v_f1"] for s in seeds])
    qualified = [(np.mean([scores[(model, s, b)]["s_f2"] for s in seeds]), b) for b in GRID if b > 0
                 and all(scores[(model, s, b)]["s_f2"] > scores[(model, s, 0.0)]["s_f2"] for s in seeds)
                 and np.mean([scores[(model, s, b)]["v_f1"] for s in seeds]) >= base_v - 0.01]
    return max(qualified)[1] if qualified else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path,
                        help="OUT folder of the morphology-dropout selection sweep (its runs/ folder)")
    parser.add_argument("--mitdb-dir", type=Path, required=True)
    parser.add_argument("--configs", default="resnet,odenet", help="the sweep's configurations to score")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        import torch


        torch.set_num_threads(args.threads)
        beats = load_beats("mitdb", mitdb_dir=args.mitdb_dir, download=False)
        scores: dict[tuple[str, int, float], dict[str, float]] = {}
        seeds_of: dict[str, list[int]] = {}
        for model in args.configs.split(","):
            runs = sorted(p for p in (args.sweep / "runs").glob(f"{model}_val_records-*_seed-*")
                          if (p / "metrics.json").exists())
            seeds = sorted({int(p.name.rsplit("seed-", 1)[1]) for p in runs})
            if not runs or any(sum(p.name.endswith(f"seed-{s}") for p in runs) != 3 for s in seeds):
                raise EcgError(f"{args.sweep / 'runs'}: configuration {model!r} needs three finished folds per seed")
            seeds_of[model] = seeds
            for seed in seeds:
                logits, y = fold_logits([p for p in runs if p.name.endswith(f"seed-{seed}")], beats)
                for b in GRID:
                    scores[(model, seed, b)] = class_scores(logits, y, b)
        lines = ["| model | S offset | F2 S by seed (%) | mean F2 S | S Se / +P | F1 V | V Se / +P |",
                 "|---|---|---|---|---|---|---|"]
        chosen = {}
        for model, seeds in seeds_of.items():
            chosen[model] = float(choose(scores, model, seeds))
            for b in GRID:
                rows = [scores[(model, s, b)] for s in seeds]
                mean = {k: np.mean([r[k] for r in rows]) for k in rows[0]}
                mark = " **(b*)**" if b == chosen[model] else ""
                by_seed = " / ".join(f"{100 * r['s_f2']:.2f}" for r in rows)
                lines.append(f"| {model} | {b:.2f}{mark} | {by_seed} | "
                             f"{100 * mean['s_f2']:.2f} | {mean['s_se']:.3f} / {mean['s_ppv']:.3f} | "
                             f"{100 * mean['v_f1']:.2f} | {mean['v_se']:.3f} / {mean['v_ppv']:.3f} |")
        text = "\n".join(lines) + f"\n\nb*: {chosen}; the recipe's offset: {min(chosen.values()):g}\n"
        atomic_write_text(args.sweep / "s-offset.md", text)
        print(text, end="")
        return 0
    except EcgError as exc:
        print(f"select_s_offset: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
