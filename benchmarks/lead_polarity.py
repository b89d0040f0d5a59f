"""Not tied to one lead: would turning a lead whose QRS complexes point down the other way up (x -> -x before the
beats are cut) let MLII-trained fold models read an unseen lead? Inference only, on the DS1 folds.

Each fold model of the select-leads sweep (``benchmarks/sweeps/select-leads.toml``, its "rule" configurations:
trained on MLII) labels its own validation records at the reference R peaks, on MLII and on the records' other lead
(V1 in most), once as read and once with the polarity rule: a lead is negated when its QRS complexes point down
(``ecglib.ec57.rpeaks.lead_polarity``: the median over the beats of the 5-20 Hz band-passed lead at its dominant
extremum near each R peak is negative), which is what ``ecglib annotate`` would do at inference. The models are
trained on the leads as recorded; no training beat changes. Scores are as in ``benchmarks/select_leads.py``:
(F1 S + F1 V) / 2 of the pooled validation counts. No DS2 beat is read.

    python benchmarks/lead_polarity.py RUN_DIR... --mitdb-dir DIR

Prints a markdown table, one row per run, lead and reading; then, where runs of several folds share a seed, their
counts pooled per seed and the select-leads rule applied to the polarity rule against reading as read: every seed's
other-lead score higher, and the mean MLII difference not below minus one standard error.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from select_leads import pooled_score, rule_verdict

from ecglib.checkpoints import load_checkpoint
from ecglib.data.extract import beats_from_peaks
from ecglib.data.inputs import model_inputs
from ecglib.data.records import _other_leads, _read_record, read_lead
from ecglib.ec57.rpeaks import lead_polarity
from ecglib.inference import predict
from ecglib.metrics import confusion


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="fold run folders (best.pt and metrics.json)")
    parser.add_argument("--mitdb-dir", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    cache: dict[tuple[str, str, bool], tuple] = {}

    def beats(name: str, lead: str, rule: bool) -> tuple:
        if (name, lead, rule) not in cache:
            signal, fs, read, samples, symbols, _ = _read_record(args.mitdb_dir, name)
            if lead == "other":
                signal, fs, _ = read_lead(args.mitdb_dir / name, _other_leads(args.mitdb_dir / name, read)[0])
            sign = float(lead_polarity(signal, fs, samples)) if rule else 1.0
            cache[(name, lead, rule)] = beats_from_peaks(sign * signal, fs, samples, name, symbols), sign
        return cache[(name, lead, rule)]

    pooled: dict[tuple[int, str, bool], np.ndarray] = defaultdict(lambda: np.zeros((5, 5), dtype=np.int64))
    print("| run | lead | reading | score | S Se / +P | V Se / +P | turned over |")
    print("|---|---|---|---:|---|---|---|")
    for run in args.runs:
        if not (run / "metrics.json").is_file():
            continue
        metrics = json.loads((run / "metrics.json").read_text())
        val, seed = metrics["split"]["val_records"], int(metrics["config"]["train"]["seed"])
        model, _ = load_checkpoint(run / "best.pt")
        model.eval()
        for lead in ("rule", "other"):
            for rule in (False, True):
                matrix, turned = np.zeros((5, 5), dtype=np.int64), []
                for name in val:
                    b, sign = beats(name, lead, rule)
                    turned += [name] if sign < 0 else []
                    x, y, r = model_inputs(b, model.config).part(np.arange(len(b.y)))
                    matrix += confusion(y.numpy(), predict(model, x, rhythm=r)[0])
                pooled[(seed, lead, rule)] += matrix
                s = pooled_score(matrix)
                reading, name = ("polarity rule" if rule else "as read"), ("MLII" if lead == "rule" else "other")
                print(f"| {run.name} | {name} | {reading} | {100 * s['score']:.2f} | "
                      f"{100 * s['S_se']:.1f} / {100 * s['S_ppv']:.1f} | "
                      f"{100 * s['V_se']:.1f} / {100 * s['V_ppv']:.1f} | {', '.join(turned) or '-'} |", flush=True)
    print(pooled_report(pooled))
    return 0


def pooled_report(pooled: dict[tuple[int, str, bool], np.ndarray]) -> str:
    """The runs' counts pooled per seed (over the folds given), and the select-leads rule for the polarity rule."""
    seeds = sorted({s for s, _, _ in pooled})
    score = {key: pooled_score(m) for key, m in pooled.items()}
    lines = ["", "Pooled per seed over the runs given:", "",
             "| lead | reading | score per seed | V Se / +P (mean) |", "|---|---|---|---|"]
    for lead in ("rule", "other"):
        for rule in (False, True):
            got = [score[(s, lead, rule)] for s in seeds]
            per_seed = " / ".join(f"{100 * g['score']:.2f}" for g in got)
            v_se, v_ppv = (100 * np.mean([g[k] for g in got]) for k in ("V_se", "V_ppv"))
            lines.append(f"| {'MLII' if lead == 'rule' else 'other'} | {'polarity rule' if rule else 'as read'} | "
                         f"{per_seed} | {v_se:.1f} / {v_ppv:.1f} |")
    other = [score[(s, "other", True)]["score"] - score[(s, "other", False)]["score"] for s in seeds]
    mlii = [score[(s, "rule", True)]["score"] - score[(s, "rule", False)]["score"] for s in seeds]
    lines += ["", f"Polarity rule against as read: {rule_verdict(other, mlii)}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
