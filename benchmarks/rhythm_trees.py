"""Which rhythm features carry over to new patients? Gradient-boosted trees on the rhythm features alone, DS1 folds.

A quick screen, seconds per fit, that needs no network: scikit-learn's HistGradientBoostingClassifier is trained on
the rhythm features of two of the three folds of whole DS1 records (benchmarks/sweeps/select-ds1.toml) and predicts
the third; the three folds' predictions are pooled and scored as the recipe is chosen, (F1 S + F1 V) / 2. Rows: all
eleven features, the seven unitless ones (ecglib.data.facts.RHYTHM_INPUTS), and those seven with one left out, with
square-root and balanced class weights (as the training loop computes them). No DS2 beat is read.


    python benchmarks/rhythm_trees.py --mitdb-dir DIR [--out runs/rhythm-trees]

Writes OUT/results.md and prints it. Measured on the 2-core machine of docs/performance.md (6 min, beside a CI run):
S Se 0.03-0.08 from all eleven (pooled score 0.21), 0.38-0.66 from the seven unitless ones (0.44-0.47).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tomllib

from ecglib.data.facts import DS1, RHYTHM_INPUTS, RHYTHM_NAMES
from ecglib.data.inputs import rhythm_columns
from ecglib.data.sources import load_beats
from ecglib.errors import EcgError
from ecglib.files import atomic_write_text
from ecglib.training.batches import class_weights

# The folds A, B, C of docs/rhythm-recipe.md, defined once: the selection sweep's axis.
with open(Path(__file__).parent / "sweeps" / "select-ds1.toml", "rb") as f:
    FOLDS: tuple[str, ...] = tuple(tomllib.load(f)["axes"]["val_records"])


def pooled_scores(rhythm: np.ndarray, y: np.ndarray, record: np.ndarray, weighting: str, seed: int = 0
                  ) -> tuple[float, tuple[float, float], tuple[float, float]]:
    """Score, (S Se, +P) and (V Se, +P) of trees trained fold by fold; rhythm (n, k), y (n,), record (n,)."""
    import torch
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import precision_recall_fscore_support


    predicted, truth = [], []
    for fold in FOLDS:
        val = np.isin(record, fold.split(","))
        train = np.isin(record, DS1) & ~val
        weights = class_weights(y[train], weighting)
        w = np.ones(train.sum()) if weights is None else weights.to(torch.float64).numpy()[y[train]]
        trees = HistGradientBoostingClassifier(max_iter=200, max_leaf_nodes=15, random_state=seed)
        trees.fit(rhythm[train], y[train], sample_weight=w)
        predicted.append(trees.predict(rhythm[val]))
        truth.append(y[val])
    ppv, se, f1, _ = precision_recall_fscore_support(np.concatenate(truth), np.concatenate(predicted),
                                                     labels=[1, 2], zero_division=0)  # S, V
    return float(f1.mean()), (float(se[0]), float(ppv[0])), (float(se[1]), float(ppv[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mitdb-dir", required=True, help="folder with the MIT-BIH records")
    parser.add_argument("--out", default="runs/rhythm-trees")
    args = parser.parse_args(argv)
    try:
        beats = load_beats("mitdb", mitdb_dir=args.mitdb_dir, rhythm=True, download=False)
        sets = {"all eleven": list(RHYTHM_NAMES), "the seven unitless (RHYTHM_INPUTS)": list(RHYTHM_INPUTS)}
        sets.update({f"the seven without {n}": [m for m in RHYTHM_INPUTS if m != n] for n in RHYTHM_INPUTS})
        lines = ["| rhythm features | class weights | (F1 S + F1 V) / 2 | S Se / +P | V Se / +P |",
                 "|---|---|---|---|---|"]
        for label, names in sets.items():
            columns = rhythm_columns(beats, names)
            for weighting in ("sqrt", "balanced"):
                score, s, v = pooled_scores(columns, beats.y, beats.record, weighting)
                lines.append(f"| {label} | {weighting} | {score:.3f} | {s[0]:.3f} / {s[1]:.3f} | "
                             f"{v[0]:.3f} / {v[1]:.3f} |")
                print(lines[-1], flush=True)
    except EcgError as exc:
        print(f"rhythm_trees: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    print(f"written: {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
