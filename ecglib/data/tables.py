"""Tables that describe a beats table (what 01_explore shows): classes, records and splits."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .beats import Beats
from .facts import CLASS_NAMES, CLASSES, DS1, DS2, MITDB_RECORDS
from .splits import split_beats


def class_table(beats: Beats) -> Any:
    """One row per AAMI class: its description, beat count and share of all beats."""
    import pandas as pd

    counts = beats.class_counts()
    total = max(1, len(beats))
    return pd.DataFrame({"class": [CLASS_NAMES[c] for c in CLASSES],
                         "beats": [counts[c] for c in CLASSES],
                         "share (%)": [round(100 * counts[c] / total, 2) for c in CLASSES]},
                        index=pd.Index(list(CLASSES), name="AAMI"))


def majority_class(beats: Beats) -> tuple[str, float]:
    """The most frequent class and the accuracy of always predicting it (the majority baseline)."""
    counts = np.bincount(beats.y, minlength=len(CLASSES))
    top = int(counts.argmax())
    return CLASSES[top], float(counts[top] / max(1, counts.sum()))


def record_composition(beats: Beats) -> Any:
    """Beats per record (rows) and class (columns), with a total column; records in MIT-BIH order."""
    import pandas as pd

    frame = beats.to_frame()
    table = pd.crosstab(frame["record"], frame["cls"]).reindex(columns=list(CLASSES), fill_value=0)
    order = [r for r in MITDB_RECORDS if r in table.index] + sorted(r for r in table.index if r not in MITDB_RECORDS)
    table = table.loc[order]
    table.columns = pd.Index(list(CLASSES), name="class")
    table["total"] = table.sum(axis=1)
    return table


def has_record_names(beats: Beats) -> bool:
    """True when the beats carry MIT-BIH record names, so the inter-patient split is possible."""
    return beats.meta.get("source") != "kaggle" and bool(np.isin(beats.record, DS1).any()
                                                         and np.isin(beats.record, DS2).any())


def split_table(beats: Beats, seed: int = 0, val_fraction: float = 0.1,
                protocols: Sequence[str] | None = None) -> Any:
    """Beats per class in train/validation/test of each protocol (inter only with MIT-BIH record names)."""
    import pandas as pd

    if protocols is None:
        protocols = ("intra", "inter") if has_record_names(beats) else ("intra",)
    rows = []
    for protocol in protocols:
        split = split_beats(beats, protocol, val_fraction=val_fraction, seed=seed)
        for part in ("train", "val", "test"):
            idx = getattr(split, part)
            counts = np.bincount(beats.y[idx], minlength=len(CLASSES))
            rows.append({"protocol": protocol, "part": part, **dict(zip(CLASSES, counts.tolist())),
                         "beats": len(idx), "records": len(np.unique(beats.record[idx]))})
    return pd.DataFrame(rows).set_index(["protocol", "part"])
