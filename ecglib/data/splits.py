"""The intra- and inter-patient splits of a beats table into training, validation and test beats.

Validation is always carved from the training part, never from test; in the inter-patient split it is whole
records (patients), never beats of the training patients.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..config import SPLITS
from ..errors import InputError, first_line
from .beats import Beats
from .facts import CLASSES, DS1, DS2


@dataclass
class Split:
    """Indices into a Beats table; validation is always carved from the training part, never from test."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    protocol: str

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _stratify(y: np.ndarray) -> np.ndarray | None:
    # sklearn refuses to stratify a class with a single member; tiny debug subsets fall back to random.
    counts = np.bincount(y)
    return y if counts[counts > 0].min() >= 2 else None


def split_beats(beats: Beats, protocol: str = "intra", test_fraction: float = 0.2, val_fraction: float = 0.1,
                seed: int = 0, val_records: Sequence[str] | None = None) -> Split:
    """Train/validation/test indices.

    intra: stratified random beats, ``test_fraction`` to test (the original study's protocol; for the Kaggle
      source its own train/test files), and ``val_fraction`` of the training beats (stratified) held out.
    inter: de Chazal et al. (2004), DS1 records train and DS2 records test, paced records excluded; validation is
      a set of whole DS1 records (patient-wise, see :func:`patientwise_validation`), never beats of the training
      patients.
    val_records: inter only, these DS1 records are the validation (instead of a seeded draw of ``val_fraction``):
      folds of whole records, the same for every seed, so that model choices are compared on the same patients.
      InputError for a record that is not among the training records, or with the intra protocol.
    """
    idx = np.arange(len(beats))
    if val_records is not None:
        split = _fixed_validation(beats, idx, protocol, list(val_records), test_fraction, seed)
    else:
        try:
            split = _split_beats(beats, idx, protocol, test_fraction, val_fraction, seed)
        except ValueError as exc:  # scikit-learn's own check: too few beats for these fractions
            raise InputError(f"{len(beats)} beat(s) are too few to split into train, validation and test "
                             f"({first_line(exc)})") from None
    # A split that trains on one class, or tests on nothing, would report an accuracy that means nothing.
    trained = np.unique(beats.y[split.train])
    if len(split.test) == 0 or len(trained) < 2:
        raise InputError(f"{len(beats)} beat(s) are too few to split into train, validation and test: training "
                         f"would see {len(split.train)} beat(s) of {len(trained)} class(es) and the test "
                         f"{len(split.test)} beat(s); a classifier needs two classes to learn and beats to test on "
                         "(use more beats: --limit)")
    return split


def _split_beats(beats: Beats, idx: np.ndarray, protocol: str, test_fraction: float, val_fraction: float,
                 seed: int) -> Split:
    from sklearn.model_selection import train_test_split

    if protocol == "intra":
        if beats.meta.get("source") == "kaggle" and set(np.unique(beats.record)) == {"mitbih_train", "mitbih_test"}:
            train, test = idx[beats.record == "mitbih_train"], idx[beats.record == "mitbih_test"]
        else:
            train, test = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                           stratify=_stratify(beats.y))
    elif protocol == "inter":
        if beats.meta.get("source") == "kaggle":
            raise InputError("the inter-patient split needs record names; the Kaggle CSVs have none: "
                             "use --source mitdb")
        train, test = idx[np.isin(beats.record, DS1)], idx[np.isin(beats.record, DS2)]
        if len(train) == 0 or len(test) == 0:
            raise InputError(f"the inter-patient split found {len(train)} DS1 and {len(test)} DS2 beats: "
                             "it needs the MIT-BIH record names")
    else:
        raise InputError(f"unknown split {protocol!r}; choose one of {', '.join(SPLITS)}")
    if val_fraction > 0 and protocol == "inter":
        train, val = patientwise_validation(beats, train, val_fraction, seed)
    elif val_fraction > 0:
        train, val = train_test_split(train, test_size=val_fraction, random_state=seed,
                                      stratify=_stratify(beats.y[train]))
    else:
        val = train[:0]
    return Split(np.sort(train), np.sort(val), np.sort(test), protocol)


def _fixed_validation(beats: Beats, idx: np.ndarray, protocol: str, val_records: list[str], test_fraction: float,
                      seed: int) -> Split:
    """The inter split with the named training records as validation (split_beats' ``val_records``)."""
    if protocol != "inter":
        raise InputError("--val-records names whole records of the inter-patient split; the intra split draws "
                         "random beats (use --split inter)")
    split = _split_beats(beats, idx, protocol, test_fraction, 0.0, seed)
    present = set(beats.record[split.train].tolist())
    if len(set(val_records)) != len(val_records):
        raise InputError(f"--val-records: a record is named twice ({', '.join(val_records)})")
    unknown = [repr(r) if not r else r for r in val_records if r not in present]
    if unknown or not val_records:
        raise InputError(f"--val-records: {unknown[0] if unknown else 'no record'} is not among the training records "
                         f"({', '.join(sorted(present))})")
    if present <= set(val_records):
        raise InputError("--val-records: every training record is held out; leave some to train on")
    held = np.isin(beats.record[split.train], val_records)
    return Split(split.train[~held], split.train[held], split.test, protocol)


# Patient-wise validation must hold some S and V beats to say anything about them, but not so many of DS1's that
# training is starved of them (a few records carry most S beats, record 208 nearly all F beats): S and V get between
# these shares of their beats, and no class with at least VAL_CLASS_MIN beats gets more than the upper share.
VAL_CLASS_SHARE = (0.05, 0.5)


VAL_CLASS_MIN = 50


VAL_DRAWS = 2000


def patientwise_validation(beats: Beats, index: np.ndarray, val_fraction: float = 0.1, seed: int = 0
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Split ``index`` (beats of the training records) into (train, val) by whole records.

    Seeded draws: each draw orders the records at random and takes records in that order until they hold
    ``val_fraction`` of the beats. The first draw (of at most VAL_DRAWS) is kept whose validation holds, for each of
    the classes S and V present in ``index``, between VAL_CLASS_SHARE[0] and VAL_CLASS_SHARE[1] of that class's
    beats, no more than VAL_CLASS_SHARE[1] of any class with at least VAL_CLASS_MIN beats (so that F, nearly all in
    record 208 of DS1, stays in training), and leaves at least one record for training. If no draw satisfies this
    (few records, as in small test sets), the draw whose S and V shares come closest to the band is kept. With fewer
    than two records there is no
    patient-wise validation: val is empty. Returns sorted index arrays.
    """
    records = np.unique(beats.record[index])
    if len(records) < 2:
        return np.sort(index), index[:0]
    rng = np.random.default_rng(seed)
    per_record = {r: index[beats.record[index] == r] for r in records}
    class_total = np.bincount(beats.y[index], minlength=len(CLASSES))
    watched = [c for c in (CLASSES.index("S"), CLASSES.index("V")) if class_total[c] > 0]
    lo, hi = VAL_CLASS_SHARE
    best, best_miss = None, np.inf
    for _ in range(VAL_DRAWS):
        order = rng.permutation(records)
        chosen, n_val = [], 0
        for r in order[:-1]:  # at least one record stays in training
            chosen.append(r)
            n_val += len(per_record[r])
            if n_val >= val_fraction * len(index):
                break
        val = np.concatenate([per_record[r] for r in chosen])
        share = np.bincount(beats.y[val], minlength=len(CLASSES)) / np.maximum(class_total, 1)
        capped = (class_total >= VAL_CLASS_MIN) | np.isin(np.arange(len(CLASSES)), watched)
        miss = float(np.sum(np.maximum(lo - share[watched], 0)) + np.sum(np.maximum(share - hi, 0)[capped]))
        if miss < best_miss:
            best, best_miss = val, miss
        if miss == 0:
            break
    assert best is not None
    train = np.setdiff1d(index, best)
    return np.sort(train), np.sort(best)


def split_records(beats: Beats, split: Split) -> dict[str, list[str]]:
    """The record names in each part of a split: train_records, val_records, test_records (sorted)."""
    return {f"{part}_records": sorted(set(beats.record[getattr(split, part)].tolist()))
            for part in ("train", "val", "test")}


def limit_beats(beats: Beats, limit: int | None, seed: int = 0) -> Beats:
    """A stratified random subset of ``limit`` beats (all of them when limit is None or larger)."""
    if limit is None or limit >= len(beats):
        return beats
    from sklearn.model_selection import train_test_split

    try:
        keep, _ = train_test_split(np.arange(len(beats)), train_size=limit, random_state=seed,
                                   stratify=_stratify(beats.y))
    except ValueError:  # fewer beats asked for than there are classes: a random subset, like _stratify's fallback
        keep, _ = train_test_split(np.arange(len(beats)), train_size=limit, random_state=seed)
    return beats.subset(np.sort(keep))
