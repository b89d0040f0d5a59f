"""What a model takes from a beats table: the beat, its neighbours (context), its difference to its record's
median beat (template) and its rhythm features, as tensors.

Neighbours and templates are built from whole records, so build the inputs of the whole table before taking
parts. Torch is imported only by the functions that make tensors.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .beats import Beats, require_records, require_rhythm
from .facts import RHYTHM_INPUTS, RHYTHM_NAMES

if TYPE_CHECKING:
    import torch


def context_beats(beats: Beats) -> np.ndarray:
    """Each beat with its neighbours in the same record: (n, 3, 187) float32, channels predecessor, beat, successor
    (neighbours in R-peak order among the table's beats of that record and lead, :meth:`Beats.group_key`). The first
    and last beat of a record, with no neighbour on one side, repeat themselves there. Call it on the whole table,
    before subsets drop neighbours.
    Raises InputError for the Kaggle source, whose rows are beats of unknown records and positions."""
    require_records(beats, "beats", "neighbouring beats")
    group = beats.group_key()
    order = np.lexsort((beats.sample, group))
    x, rec = beats.x[order], group[order]
    same = rec[1:] == rec[:-1]
    prev, nxt = x.copy(), x.copy()
    prev[1:][same] = x[:-1][same]
    nxt[:-1][same] = x[1:][same]
    out = np.empty((len(x), 3, x.shape[1]), dtype=np.float32)
    out[order] = np.stack([prev, x, nxt], axis=1)
    return out


def record_templates(beats: Beats, name: str = "beats") -> np.ndarray:
    """Each beat's record template: (n, 187) float32, the sample-wise median of all the table's beats of the same
    record (same units as ``x``: [0, 1], 125 Hz).

    The median over a record's beats is its dominant beat shape, the patient's normal beat in all but a few records
    (ectopic beats are a minority almost everywhere; the median ignores them). It uses the record's beats only and
    no labels, so a test record's template is as available at test time as its beats. Call it on the whole table,
    before subsets drop beats. InputError naming ``name`` for the Kaggle source (no records).
    """
    require_records(beats, name, "record templates")
    out = np.empty_like(beats.x, dtype=np.float32)
    # Grouped by record (and lead, when the table holds several) with one sort: a boolean mask per record would cost
    # n x records comparisons.
    group = beats.group_key()
    order = np.argsort(group, kind="stable")
    _, starts = np.unique(group[order], return_index=True)
    for rows in np.split(order, starts[1:]):
        out[rows] = np.median(beats.x[rows], axis=0)
    return out


def template_difference(beats: Beats, name: str = "beats") -> np.ndarray:
    """Each beat minus its record's template (:func:`record_templates`): (n, 187) float32 in [-1, 1].

    Why: a beat's shape compared with the same patient's usual beat generalises to new patients better than its
    shape alone, which differs more between patients than between N and S beats. A premature atrial (S) beat has
    the patient's normal QRS and leaves a difference near zero; a ventricular (V) beat differs strongly.
    """
    return beats.x - record_templates(beats, name)


def input_layout(in_channels: int) -> dict[str, bool]:
    """{"context": ..., "template": ...} of a model's input from its number of channels, the inverse of
    :func:`input_channels`: 1 the beat; 2 the beat and its difference to the record template; 3 predecessor, beat,
    successor; 4 those and the difference. ValueError for another number."""
    layouts = {input_channels(c, t): {"context": c, "template": t} for c in (False, True) for t in (False, True)}
    if in_channels not in layouts:
        raise ValueError(f"no beat input has {in_channels} channels; choose {', '.join(map(str, sorted(layouts)))}")
    return layouts[in_channels]


def input_channels(context: bool, template: bool) -> int:
    """Channels of the input with ``context`` (predecessor and successor) and ``template`` (beat minus record
    template): 1 + 2 context + 1 template."""
    return 1 + 2 * bool(context) + bool(template)


def to_tensors(beats: Beats, index: np.ndarray | None = None):
    """(x, y) torch tensors, x shaped (n, 1, 187) float32 for Conv1d, y (n,) int64."""
    import torch

    b = beats if index is None else beats.subset(index)
    return torch.from_numpy(np.ascontiguousarray(b.x))[:, None, :], torch.from_numpy(b.y.astype(np.int64))


@dataclass
class BeatTensors:
    """A Beats table as tensors: x (n, C, 187) float32 (channels: the beat, or predecessor, beat and successor with
    context, then the beat minus its record template with template; see :func:`input_layout`), y (n,) int64,
    rhythm (n, k) float32 raw rhythm features or None."""

    x: torch.Tensor
    y: torch.Tensor
    rhythm: torch.Tensor | None

    def part(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        import torch

        i = torch.from_numpy(np.asarray(index, dtype=np.int64))
        return self.x[i], self.y[i], None if self.rhythm is None else self.rhythm[i]


def rhythm_columns(beats: Beats, names: Sequence[str], name: str = "beats") -> np.ndarray:
    """The beats' rhythm features ``names`` in that order, (n, len(names)). InputError naming ``name`` when the
    beats carry no rhythm features or not one of these (an npz prepared before that feature existed)."""
    rhythm = require_rhythm(beats, name)
    stored = (beats.meta.get("rhythm_features") or {}).get("names") or list(RHYTHM_NAMES[:rhythm.shape[1]])
    missing = [n for n in names if n not in stored]
    if missing:
        raise InputError(f"{name}: these beats carry no rhythm feature {missing[0]!r} (prepare them again from "
                         "WFDB records)")
    return rhythm[:, [stored.index(n) for n in names]]


def beat_tensors(beats: Any, features: str = "beat", context: bool = False, name: str = "beats",
                 template: bool = False, rhythm_inputs: Sequence[str] = RHYTHM_INPUTS) -> BeatTensors:
    """The inputs a model takes for ``features`` ("beat" or "beat+rhythm": the rhythm features ``rhythm_inputs``),
    ``context`` and ``template``, for the whole table (neighbours and record templates need the whole records, so
    build them before taking parts). InputError naming ``name`` when the beats lack rhythm features, neighbours or
    records (the Kaggle source)."""
    import torch

    x = context_beats(beats) if context else np.ascontiguousarray(beats.x)[:, None, :]
    if template:
        x = np.concatenate([x, template_difference(beats, name)[:, None, :]], axis=1)
    rhythm = (torch.from_numpy(np.ascontiguousarray(rhythm_columns(beats, rhythm_inputs, name), dtype=np.float32))
              if features == "beat+rhythm" else None)
    return BeatTensors(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                       torch.from_numpy(beats.y.astype(np.int64)), rhythm)


def model_inputs(beats: Beats, model_config: dict[str, Any], name: str = "beats") -> BeatTensors:
    """The tensors a model built with ``model_config`` (``Classifier.config``) takes: the rhythm features its
    ``rhythm_inputs`` name when it has a rhythm input (a model saved before they were named took the first k of
    RHYTHM_FEATURES), the neighbouring beats and the template difference as its channels say
    (:func:`input_layout`)."""
    k = int(model_config.get("rhythm_features") or 0)
    named = model_config.get("rhythm_inputs")
    names = named or RHYTHM_NAMES[:k]
    if len(names) != k:
        raise InputError(f"{name}: the model takes {k} rhythm features per beat, " +
                         (f"but names {len(names)}" if named else f"the beats carry {len(RHYTHM_NAMES)}"))
    try:
        layout = input_layout(model_config.get("in_channels", 1))
    except ValueError as exc:
        raise InputError(f"{name}: {exc}") from None
    return beat_tensors(beats, "beat+rhythm" if k else "beat", name=name, rhythm_inputs=names, **layout)


class RecordInputs:
    """:func:`model_inputs` of one record's beats, made a part at a time: the same tensors, row for row, as
    ``model_inputs(beats, model_config).part(rows)`` for a table of that one record (tests check it), while only
    the part's channels are in memory (a 24-hour recording's 100,000 beats with neighbours and template difference
    would take 300 MB at once). The record's template (the median of all its beats) is computed once."""

    def __init__(self, beats: Beats, model_config: dict[str, Any], name: str = "beats") -> None:
        if len(np.unique(beats.record)) > 1:
            raise ValueError("RecordInputs takes the beats of one record")
        if len(beats) > 1 and np.any(np.diff(beats.sample) <= 0):
            raise ValueError("RecordInputs takes beats in R-peak order")
        k = int(model_config.get("rhythm_features") or 0)
        names = model_config.get("rhythm_inputs") or RHYTHM_NAMES[:k]
        if len(names) != k:
            raise InputError(f"{name}: the model takes {k} rhythm features per beat, but names {len(names)}")
        try:
            layout = input_layout(model_config.get("in_channels", 1))
        except ValueError as exc:
            raise InputError(f"{name}: {exc}") from None
        self.beats, self.context, self.template = beats, layout["context"], layout["template"]
        # The same median as record_templates: over all the record's beats, in float32.
        self.median = np.median(beats.x, axis=0).astype(np.float32) if self.template and len(beats) else None
        self.rhythm = (np.ascontiguousarray(rhythm_columns(beats, names, name), dtype=np.float32) if k else None)

    def __len__(self) -> int:
        return len(self.beats)

    def part(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x (m, C, 187), y (m,), rhythm (m, k) or None) of beats ``rows`` (indices in R-peak order)."""
        import torch

        rows = np.asarray(rows, dtype=np.int64)
        x = self.beats.x
        channels = [x[np.maximum(rows - 1, 0)], x[rows], x[np.minimum(rows + 1, len(x) - 1)]] if self.context \
            else [x[rows]]
        if self.median is not None:
            channels.append(x[rows] - self.median)
        xs = torch.from_numpy(np.ascontiguousarray(np.stack(channels, axis=1), dtype=np.float32))
        r = None if self.rhythm is None else torch.from_numpy(self.rhythm[rows])
        return xs, torch.from_numpy(self.beats.y[rows].astype(np.int64)), r


def make_loader(beats: Beats, index: np.ndarray | None = None, batch_size: int = 128, shuffle: bool = False,
                seed: int = 0):
    """A torch DataLoader over in-memory tensors, for users who want the standard interface. The training loop
    itself slices tensors directly, which is several times faster than per-item collation for 187-sample beats."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    x, y = to_tensors(beats, index)
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=gen)
