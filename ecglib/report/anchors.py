"""The published numbers ecglib is read against (the original study's, the inter-patient anchors on DS1 -> DS2),
and the tables that set runs and the beats' rhythm beside them: RR-ratio medians per class (01_explore) and runs
over seeds in the anchors' columns (03_compare).

The rhythm features themselves are computed where beats are cut (:mod:`ecglib.data.rhythm`); their figure is
:func:`ecglib.report.figures.plot_rr_ratios`.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.beats import Beats, require_rhythm
from ..data.facts import CLASSES, RHYTHM_NAMES
from ..errors import InputError

# The study ecglib reproduces: test accuracy and parameters of both models, and the ODE-Net's training time per
# epoch relative to the ResNet's.
ORIGINAL_STUDY: dict[str, Any] = {
    "resnet": {"accuracy": 0.974, "params": 182_853},
    "odenet": {"accuracy": 0.976, "params": 59_333},
    "odenet_slowdown_per_epoch": (6, 9),
}

# Published results on de Chazal's DS1 -> DS2 (AAMI classes, gross statistics in %). Results that cut the test
# patients' beats into sequences grouped by class are not comparable and are left out.
ANCHORS: tuple[dict[str, Any], ...] = (
    {"method": "de Chazal et al. 2004", "inputs": "RR intervals + morphology, LDA",
     "S Se": 76.0, "S +P": 38.0, "V Se": 77.0, "V +P": 82.0},
    {"method": "Zhang et al. 2014", "inputs": "RR + morphology, SVM",
     "S Se": 79.1, "S +P": 36.0, "V Se": 85.5, "V +P": 92.7},
    {"method": "Lin & Yang 2014", "inputs": "normalised RR + morphology",
     "S Se": 81.0, "S +P": 31.0, "V Se": 86.0, "V +P": 73.0},
    {"method": "Huang et al. 2014", "inputs": "random projection + RR, SVM ensemble",
     "S Se": 91.0, "S +P": 42.0, "V Se": 94.0, "V +P": 91.0},
    {"method": "Hao et al. 2023 (G2-ResNeXt)", "inputs": "deep network",
     "S Se": 80.6, "S +P": 82.3, "V Se": 97.1, "V +P": 95.9},
    {"method": "single-beat CNN (Sci Rep 2017)", "inputs": "one beat, morphology only",
     "S Se": 15.4, "S +P": 47.3, "V Se": 60.4, "V +P": 66.8},
)

# The two ratios that separate the classes best: prematurity (pre-RR over the local average) and the
# compensatory pause (post-RR over pre-RR).
DEFAULT_RATIOS = ("pre_over_local", "post_over_pre")


def rr_ratio_table(beats: Beats, features: Sequence[str] = DEFAULT_RATIOS) -> Any:
    """Median and interquartile range of rhythm ``features`` per AAMI class: a DataFrame indexed by class."""
    import pandas as pd

    rhythm = require_rhythm(beats, str(beats.meta.get("source", "beats")))
    rows = {}
    for i, c in enumerate(CLASSES):
        mine = rhythm[beats.y == i]
        if not len(mine):
            continue
        row: dict[str, Any] = {"beats": len(mine)}
        for name in features:
            values = mine[:, RHYTHM_NAMES.index(name)]
            q1, med, q3 = np.percentile(values, [25, 50, 75])
            row[f"{name} median"], row[f"{name} IQR"] = round(float(med), 3), f"{q1:.2f}-{q3:.2f}"
        rows[c] = row
    frame = pd.DataFrame(rows).T
    frame.index.name = "class"
    return frame


def anchors_table() -> Any:
    """The published DS1 -> DS2 results (S and V sensitivity and positive predictivity, %) as a DataFrame."""
    import pandas as pd

    return pd.DataFrame(list(ANCHORS)).set_index("method")


def load_metrics(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """metrics.json of each run folder (or file) in ``paths``."""
    out = []
    for p in paths:
        path = Path(p)
        path = path / "metrics.json" if path.is_dir() else path
        if not path.exists():
            raise InputError(f"{path}: not found; train the model first")
        try:
            out.append(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from None
    return out


def _scores(m: Mapping[str, Any]) -> dict[str, float]:
    gross = m.get("gross") or {c: {"se": m["per_class"][c]["recall"], "ppv": m["per_class"][c]["precision"]}
                               for c in CLASSES}
    return {"accuracy": m["accuracy"], "baseline": m["baseline_accuracy"], "macro-F1": m["macro_f1"],
            "kappa": m.get("kappa", float("nan")),
            "S Se": 100 * gross["S"]["se"], "S +P": 100 * gross["S"]["ppv"],
            "V Se": 100 * gross["V"]["se"], "V +P": 100 * gross["V"]["ppv"]}


def runs_table(groups: Mapping[str, Sequence[Mapping[str, Any]]], per_seed: bool = False) -> Any:
    """One row per group of runs (label -> metrics of its seeds): the mean over seeds of accuracy, majority
    baseline, macro-F1, kappa and the S and V gross Se / +P (%), with the seeds' range; or, with ``per_seed``, one
    row per run. The S and V columns line up with :func:`anchors_table`."""
    import pandas as pd

    rows = []
    for label, runs in groups.items():
        scores = [_scores(m) for m in runs]
        if per_seed:
            for m, s in zip(runs, scores):
                rows.append({"run": label, "seed": m.get("config", {}).get("train", {}).get("seed"), **s})
            continue
        row: dict[str, Any] = {"run": label, "seeds": len(scores)}
        for key in scores[0]:
            values = np.array([s[key] for s in scores], dtype=float)
            row[key] = round(float(values.mean()), 4 if key in ("accuracy", "baseline", "macro-F1", "kappa") else 1)
            if key in ("S Se", "S +P", "V Se", "V +P") and len(values) > 1:
                row[f"{key} range"] = f"{values.min():.1f}-{values.max():.1f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")
