"""Training: one loop for both models (:mod:`.loop`), what a batch is made of (:mod:`.batches`), resuming
(:mod:`.resume`) and the run that joins data, model, training and metrics (:mod:`.run`).

Public surface, resolved on first use: ``fit``, ``seed_everything``, ``run_training``.
"""
from __future__ import annotations

from importlib import import_module

_EXPORTS = {"fit": "loop", "seed_everything": "loop", "run_training": "run"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'ecglib.training' has no attribute {name!r}")
