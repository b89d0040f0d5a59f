"""The model that labels records, by name: a pretrained model shipped with ecglib
(:mod:`ecglib.pretrained.catalog`) or a run folder written by ``ecglib train``."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from ..pretrained.catalog import DEFAULT_MODEL, available, load_pretrained
from .annotate import DEFAULT_LEAD, TrainedModel, load_trained


def load_model(name_or_dir: str | os.PathLike | None = None) -> TrainedModel:
    """The model to label with: None takes the default pretrained model (:data:`DEFAULT_MODEL`), a pretrained
    model's name (``ecglib models`` lists them) that model, a path a run folder. InputError naming what was given
    when it is neither."""
    if name_or_dir is None:
        name_or_dir = DEFAULT_MODEL
    text = str(name_or_dir)
    names = available()
    if text in names:
        model, card = load_pretrained(text)
        return TrainedModel(model, None, card.get("lead", DEFAULT_LEAD), {}, name=text, card=card)
    if not Path(text).exists() and "/" not in text and os.sep not in text:
        raise InputError(f"--model {text}: no pretrained model of that name (there are {', '.join(names) or 'none'}; "
                         "`ecglib models` lists them) and no run folder there")
    return load_trained(text)
