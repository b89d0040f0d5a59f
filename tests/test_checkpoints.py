"""Checkpoint files: what is refused before any model is built from them."""
from __future__ import annotations

import os

import pytest
import torch
from conftest import save_best

from ecglib.checkpoints import load_checkpoint
from ecglib.errors import InputError
from ecglib.metrics import count_parameters
from ecglib.models import build_model


def test_load_checkpoint_checks_the_file(tmp_path):
    ode = save_best(build_model("odenet"), tmp_path / "ode" / "best.pt")
    model, state = load_checkpoint(ode, expect_model="odenet")
    assert model.name == "odenet" and count_parameters(model) == 59_333 and state["epoch"] == 1
    with pytest.raises(InputError, match=r"best.pt: checkpoint of a odenet, not of a resnet"):
        load_checkpoint(ode, expect_model="resnet")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(2048))
    with pytest.raises(InputError, match="junk.pt: not a readable checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(InputError, match="other.pt: not an ecglib checkpoint"):
        load_checkpoint(other)
    narrow = build_model("resnet", width=32)
    wrong = save_best(narrow, tmp_path / "wrong.pt", config={**narrow.config, "width": 64})
    with pytest.raises(InputError, match="wrong.pt: weights do not fit a resnet"):
        load_checkpoint(wrong)
    with pytest.raises(InputError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
