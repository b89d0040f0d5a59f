"""Not tied to one lead: would turning a lead whose QRS complexes point down the other way up (x -> -x before the
beats are cut) let MLII-trained fold models read an unseen lead? Inference only, on the DS1 folds.

Each fold model of the select-leads sweep (``benchmarks/sweeps/select-leads.toml``, its "rule" configurations:
trained on MLII) labels its own validation records at the reference R peaks, on MLII and on the records' other lead
(V1 in most), once as read and once with the polarity rule: a lead is negated when the median over its beats of the
R-peak sample minus the median of the +-0.3 s around it is negative. Of the DS1 training records only 207's MLII
points down, so for a fold that validates on 207 the rule changes no training beat and this is what training with the
rule would give; for the other folds it is an approximation. Scores are as in ``benchmarks/select_leads.py``:
(F1 S + F1 V) / 2 of the pooled validation counts. No DS2 beat is read.

    python benchmarks/lead_polarity.py RUN_DIR... --mitdb-dir DIR

Prints a markdown table, one row per run, lead and reading.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from select_leads import pooled_score

from ecglib.checkpoints import load_checkpoint
from ecglib.data.extract import beats_from_peaks
from ecglib.data.inputs import model_inputs
from ecglib.data.records import _other_leads, _read_record, read_lead
from ecglib.inference import predict
from ecglib.metrics import confusion


def polarity(signal: np.ndarray, fs: float, peaks: np.ndarray) -> float:
    """+1 when the lead's R peaks stand above their surroundings (median over the beats), else -1."""
    w = int(0.3 * fs)
    p = peaks[(peaks > w) & (peaks < len(signal) - w)]
    around = np.median(signal[p[:, None] + np.arange(-w, w + 1)], axis=1)
    return 1.0 if np.median(signal[p] - around) >= 0 else -1.0


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
            sign = polarity(signal, fs, samples) if rule else 1.0
            cache[(name, lead, rule)] = beats_from_peaks(sign * signal, fs, samples, name, symbols), sign
        return cache[(name, lead, rule)]

    print("| run | lead | reading | score | S Se / +P | V Se / +P | turned over |")
    print("|---|---|---|---:|---|---|---|")
    for run in args.runs:
        if not (run / "metrics.json").is_file():
            continue
        val = json.loads((run / "metrics.json").read_text())["split"]["val_records"]
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
                s = pooled_score(matrix)
                reading, name = ("polarity rule" if rule else "as read"), ("MLII" if lead == "rule" else "other")
                print(f"| {run.name} | {name} | {reading} | {100 * s['score']:.2f} | "
                      f"{100 * s['S_se']:.1f} / {100 * s['S_ppv']:.1f} | "
                      f"{100 * s['V_se']:.1f} / {100 * s['V_ppv']:.1f} | {', '.join(turned) or '-'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
