"""Choosing a recipe option on DS1 alone: a selection sweep trains each option on folds of whole DS1 records, and
each seed's folds are pooled (validation counts of S and V beats summed, no test beat enters) into one score,
(F1 S + F1 V) / 2, compared over seeds (docs/rhythm-recipe.md keeps the rounds chosen this way).
"""
from __future__ import annotations

import json
import re
from typing import Any

from .stats import ci_cells, paired_differences, paired_markdown, sweep_summary_table

# Validation counts of S and V beats (true positives, missed, false positives), so that a selection sweep can pool a
# seed's folds (fold_selection_scores).
COUNTS = ("tp", "fn", "fp")
VAL_COUNT_COLUMNS = tuple(f"val_{c}_{k}" for c in "SV" for k in COUNTS)
# A selection sweep's score: the mean of the S and V F1 of the pooled validation folds (docs/rhythm-recipe.md).
SELECTION_METRICS = (("score", "(F1 S + F1 V) / 2"), ("f1_S", "F1 S"), ("f1_V", "F1 V"))


# ------------------------------------------------------------------------------ choosing options on DS1 folds
def fold_selection_scores(results: Any) -> Any:
    """Each seed of each configuration of a selection sweep, with its validation folds pooled.

    results: :func:`load_sweep`'s table of a sweep whose trials name their validation fold (the
    ``val_records`` setting, usually an axis of folds of whole DS1 records). A configuration is every setting but
    the fold and the seed. For each seed that finished every fold of its configuration, the validation counts of S
    and V beats are summed over the folds (no DS2 beat enters), giving the pooled S and V sensitivity (se),
    positive predictivity (ppv), F1, and ``score`` = (F1 S + F1 V) / 2.

    Returns a DataFrame, one row per (configuration, seed), with the columns that
    :func:`ecglib.experiments.stats.sweep_summary_table` and :func:`ecglib.experiments.stats.paired_differences`
    read (configuration,
    sweep_point, seed, status, params, seconds_per_epoch) and ``folds``; empty when no trial names a fold.
    """
    import pandas as pd

    columns = ["configuration", "sweep_point", "seed", "status", "folds", "score", "f1_S", "f1_V", "S_se", "S_ppv",
               "V_se", "V_ppv", "params", "seconds_per_epoch"]
    if "val_records" not in results:
        return pd.DataFrame(columns=columns)
    named = results[results["val_records"].fillna("").astype(str) != ""].copy()
    # The fold's part of the configuration's name and point ("..._val_records-101-112-..."), removed to group.
    named["group"] = [re.sub(r"(^|_)val_records-[A-Za-z0-9.+-]*", "", c).strip("_") or "run"
                      for c in named["configuration"]]
    named["point"] = [json.dumps({k: v for k, v in json.loads(p).items() if k != "val_records"}, sort_keys=True)
                      for p in named["sweep_point"]]
    rows = []
    for (group, point), part in named.groupby(["group", "point"], sort=False):
        folds = set(part["val_records"])
        for seed, runs in part[part["status"] == "ok"].groupby("seed"):
            if set(runs["val_records"]) != folds:
                continue  # a seed counts once every fold of its configuration has finished
            row: dict[str, Any] = {"configuration": group, "sweep_point": point, "seed": seed, "status": "ok",
                                   "folds": len(folds)}
            for c in "SV":
                tp, fn, fp = (float(runs[f"val_{c}_{k}"].astype(float).sum()) for k in COUNTS)
                row[f"{c}_se"] = tp / (tp + fn) if tp + fn else float("nan")
                row[f"{c}_ppv"] = tp / (tp + fp) if tp + fp else float("nan")
                row[f"f1_{c}"] = 2 * tp / (2 * tp + fn + fp) if tp else 0.0
            row["score"] = (row["f1_S"] + row["f1_V"]) / 2
            row["params"] = int(runs["params"].iloc[0])
            row["seconds_per_epoch"] = float(runs["seconds_per_epoch"].astype(float).mean())
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def fold_selection_markdown(results: Any) -> str:
    """The selection section of a sweep's summary.md: per configuration, the pooled-fold score, F1 S and F1 V as
    mean ± sd [95 % CI] over seeds (percent), and the paired differences of the score between configurations that
    differ in one setting, over the seeds both finished. "" when no trial names a validation fold."""
    scores = fold_selection_scores(results)
    if scores.empty:
        return ""
    names = [m for m, _ in SELECTION_METRICS]
    table = sweep_summary_table(scores, names)
    folds = scores.groupby("configuration")["folds"].max()
    lines = ["", "## Selection on the validation folds", "",
             "Each seed's validation folds (whole DS1 records, `val_records`) pooled: S and V counts summed over the "
             "folds, then F1 per class; percent, mean ± sd over the seeds that finished every fold [95 % CI]. "
             "No test (DS2) beat enters.", "",
             "| configuration | folds | seeds | " + " | ".join(label for _, label in SELECTION_METRICS) + " |",
             "|---|---:|---:|" + "---|" * len(names)]
    for _, r in table.iterrows():
        lines.append(f"| {r['configuration']} | {folds[r['configuration']]} | {r['n']} | "
                     + " | ".join(ci_cells(r, names)) + " |")
    pairs = paired_markdown(paired_differences(scores, "score"))
    if pairs:
        lines += ["", "Paired differences of the score (A - B, points, same seeds):", ""] + pairs
    return "\n".join(lines) + "\n"
