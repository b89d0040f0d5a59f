"""Not tied to one lead: do the DS1 folds choose training on every lead (``--leads all``)? (docs/rhythm-recipe.md)

Each fold model of ``benchmarks/sweeps/select-leads.toml`` labels its own validation records twice: on the lead
the lead rule reads (MLII) and on the records' other lead (V1, V2, V4 or V5), a stand-in for a lead no model has
seen. Per model, configuration and seed the validation counts of S and V beats are pooled over the three folds and
scored as the recipe is chosen: (F1 S + F1 V) / 2. The rule, written in the spec before the runs: "all" is adopted
if, for each model, every seed's other-lead score is higher than with "rule", and the mean paired difference of the
MLII score is not below minus one standard error of that difference. No DS2 beat is read.

    ecglib sweep benchmarks/sweeps/select-leads.toml --out runs/select-leads --mitdb-dir DIR
    python benchmarks/select_leads.py runs/select-leads --mitdb-dir DIR

Writes SWEEP/leads.md and prints it.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from ecglib.checkpoints import load_checkpoint
from ecglib.data.inputs import model_inputs
from ecglib.data.sources import load_beats
from ecglib.errors import EcgError
from ecglib.files import atomic_write_text
from ecglib.inference import predict
from ecglib.metrics import confusion

LEADS = ("rule", "other")
CLASS_INDEX = {"S": 1, "V": 2}  # ecglib.data.facts.CLASSES


def pooled_score(matrix: np.ndarray) -> dict[str, float]:
    """S and V Se, +P and F1 of a pooled confusion matrix (rows true class), and their mean F1: the score."""
    out: dict[str, float] = {}
    for name, c in CLASS_INDEX.items():
        tp, fn, fp = matrix[c, c], matrix[c].sum() - matrix[c, c], matrix[:, c].sum() - matrix[c, c]
        out[f"{name}_se"] = tp / (tp + fn) if tp + fn else math.nan
        out[f"{name}_ppv"] = tp / (tp + fp) if tp + fp else math.nan
        out[f"{name}_f1"] = 2 * tp / (2 * tp + fn + fp) if tp else 0.0
    out["score"] = (out["S_f1"] + out["V_f1"]) / 2
    return out


def fold_matrices(sweep: Path, beats) -> dict[tuple[str, int, str, str], np.ndarray]:
    """(configuration, seed, lead, fold) -> the confusion matrix of the fold model on its validation records (the
    fold named by them, joined by commas). A run's rule-lead predictions must reproduce its own metrics.json."""
    rule = beats.rule_lead()
    records = np.asarray(beats.record)
    sums: dict[tuple[str, int, str, str], np.ndarray] = defaultdict(lambda: np.zeros((5, 5), dtype=np.int64))
    for run in sorted((sweep / "runs").iterdir()):
        metrics_file = run / "metrics.json"
        if not metrics_file.is_file():
            continue
        metrics = json.loads(metrics_file.read_text())
        config = run.name.split("_val_records-")[0]
        seed = int(metrics["config"]["train"]["seed"])
        model, _ = load_checkpoint(run / "best.pt")
        inputs = model_inputs(beats, model.config)
        fold = ",".join(metrics["split"]["val_records"])
        val = np.isin(records, metrics["split"]["val_records"])
        for lead, rows in (("rule", np.flatnonzero(val & rule)), ("other", np.flatnonzero(val & ~rule))):
            x, y, r = inputs.part(rows)
            pred, _ = predict(model, x, rhythm=r)
            matrix = confusion(y.numpy(), pred)
            if lead == "rule" and not np.array_equal(matrix, np.asarray(metrics["validation"]["confusion_matrix"])):
                raise EcgError(f"{run}: its MLII validation predictions differ from its metrics.json")
            sums[(config, seed, lead, fold)] += matrix
    return sums


def rule_verdict(other: list[float], mlii: list[float], difference: str = "") -> str:
    """The selection rule on paired score differences per seed (candidate - today): every seed's other-lead
    difference positive, and the mean MLII difference not below minus one standard error; said in one line."""
    m = np.asarray(mlii, dtype=np.float64)
    se = float(m.std(ddof=1) / math.sqrt(len(m))) if len(m) > 1 else math.nan
    met = all(d > 0 for d in other) and m.mean() >= -se
    return (f"other lead {' / '.join(f'{100 * d:+.2f}' for d in other)} points{difference}; "
            f"MLII {100 * m.mean():+.2f} ± {100 * se:.2f} (mean ± se) -> "
            f"{'meets the rule' if met else 'does not meet the rule'} ({len(m)} seeds)")


def report(folds: dict[tuple[str, int, str, str], np.ndarray]) -> str:
    sums: dict[tuple[str, int, str], np.ndarray] = defaultdict(lambda: np.zeros((5, 5), dtype=np.int64))
    for (config, seed, lead, _), matrix in folds.items():
        sums[(config, seed, lead)] += matrix
    scores = {key: pooled_score(m) for key, m in sums.items()}
    configs = sorted({c for c, _, _ in scores})
    seeds = sorted({s for _, s, _ in scores})
    lines = ["# Training on every lead: the DS1 folds", "",
             "Pooled over the three folds per seed; score = (F1 S + F1 V) / 2 in percent, on the validation records' "
             "MLII (rule) and their other lead.", "",
             "| configuration | lead | seeds | score per seed | mean | S Se / +P | V Se / +P |",
             "|---|---|---|---|---|---|---|"]
    for c in configs:
        for lead in LEADS:
            got = [scores[(c, s, lead)] for s in seeds if (c, s, lead) in scores]
            if not got:
                continue
            per_seed = " / ".join(f"{100 * g['score']:.2f}" for g in got)
            mean = {k: float(np.mean([g[k] for g in got])) for k in got[0]}
            lines.append(f"| {c} | {lead} | {len(got)} | {per_seed} | {100 * mean['score']:.2f} | "
                         f"{100 * mean['S_se']:.1f} / {100 * mean['S_ppv']:.1f} | "
                         f"{100 * mean['V_se']:.1f} / {100 * mean['V_ppv']:.1f} |")
    lines += ["", "Rule: every seed's other-lead score higher with all leads, and the mean MLII difference not below "
              "minus one standard error.", ""]
    for model in sorted({c.rsplit("-", 1)[0] for c in configs}):
        a, b = f"{model}-all", f"{model}-rule"
        both = [s for s in seeds if all((x, s, lead) in scores for x in (a, b) for lead in LEADS)]
        if not both:
            continue
        other = [scores[(a, s, "other")]["score"] - scores[(b, s, "other")]["score"] for s in both]
        mlii = [scores[(a, s, "rule")]["score"] - scores[(b, s, "rule")]["score"] for s in both]
        lines.append(f"- {model}: {rule_verdict(other, mlii, ' (all - rule)')}")
    lines += ["", "Per fold (the rule reads the folds pooled), the score per seed on the other lead and on MLII:",
              "", "| validation records | configuration | other lead | MLII |", "|---|---|---|---|"]
    for fold in sorted({f for *_, f in folds}):
        for c in configs:
            cells = []
            for lead in ("other", "rule"):
                got = [pooled_score(folds[(c, s, lead, fold)])["score"] for s in seeds if (c, s, lead, fold) in folds]
                cells.append(" / ".join(f"{100 * g:.2f}" for g in got))
            if any(cells):
                lines.append(f"| {fold} | {c} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path, help="OUT folder of the select-leads sweep")
    parser.add_argument("--mitdb-dir", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(args.threads)
        beats = load_beats("mitdb", mitdb_dir=args.mitdb_dir, download=False, leads="all")
        text = report(fold_matrices(args.sweep, beats))
        atomic_write_text(args.sweep / "leads.md", text)
    except EcgError as exc:
        print(f"select_leads: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
