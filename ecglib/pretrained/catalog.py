"""The pretrained models shipped in this folder: listed, their cards read and checked, their weights loaded.

A model is ``NAME.pt`` + ``NAME.json`` (+ ``NAME.md``) here; :data:`DEFAULT_MODEL` is the one ``ecglib annotate``
uses when no model is named (docs/labelling.md says why that one).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..checkpoints import load_checkpoint
from ..config import DEFAULT_PRETRAINED
from ..errors import InputError, first_line
from ..models import Classifier

FOLDER = Path(__file__).resolve().parent
# The model `ecglib annotate RECORD` labels with when none is named (a setting: ecglib.config says why this one).
DEFAULT_MODEL = DEFAULT_PRETRAINED
CARD_KEYS = ("name", "model", "network", "parameters", "data", "recipe", "seed", "command", "commit", "machine",
             "license", "ec57")


def available(folder: str | os.PathLike = FOLDER) -> list[str]:
    """The names of the pretrained models in ``folder`` (those with both weights and card), sorted."""
    folder = Path(folder)
    return sorted(p.stem for p in folder.glob("*.pt") if (folder / f"{p.stem}.json").is_file())


def _path(name: str, suffix: str, folder: str | os.PathLike) -> Path:
    names = available(folder)
    if name not in names:
        raise InputError(f"no pretrained model {name!r}; `ecglib models` lists them ({', '.join(names) or 'none'}), "
                         "or give a run folder written by `ecglib train`")
    return Path(folder) / f"{name}{suffix}"


def read_card(name: str, folder: str | os.PathLike = FOLDER) -> dict[str, Any]:
    """The card's numbers (NAME.json), checked to hold what ``ecglib models`` and the docs read."""
    path = _path(name, ".json", folder)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable model card ({first_line(exc)})") from None
    missing = [k for k in CARD_KEYS if not isinstance(card, dict) or k not in card]
    if missing:
        raise InputError(f"{path}: model card without {', '.join(missing)}")
    return card


def load_pretrained(name: str, folder: str | os.PathLike = FOLDER) -> tuple[Classifier, dict[str, Any]]:
    """The pretrained model NAME (in evaluation mode) and its card; InputError for an unknown name."""
    card = read_card(name, folder)
    model, _ = load_checkpoint(_path(name, ".pt", folder), expect_model=card["model"])
    model.eval()
    return model, card


def gross(card: dict[str, Any], peaks: str = "detector") -> dict[str, float | None]:
    """The card's DS2 gross EC57 statistics with the default detector's R peaks ("detector") or the reference ones
    ("reference"): keys as ecglib.ec57.bxb's STATS ('V Se', 'V +P', 'S Se', 'S +P', ...)."""
    return card["ec57"][peaks]["gross"]
