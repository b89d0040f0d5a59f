"""Heartbeats: the database's facts, the beats table, reading WFDB records and the other sources, splits and the
inputs a model takes.

The public surface, gathered here (``from ecglib import data; data.load_split(...)``) and resolved on first use,
so that reading the class facts does not import numpy, scipy or wfdb:

- facts (:mod:`.facts`): ``CLASSES``, ``CLASS_NAMES``, ``AAMI``, ``MITDB_RECORDS``, ``PACED_RECORDS``, ``DS1``,
  ``DS2``, ``RHYTHM_FEATURES``, ``RHYTHM_INPUTS``;
- the beats table (:mod:`.beats`): ``Beats``, ``load_npz``, ``save_npz``;
- sources (:mod:`.sources`, :mod:`.records`): ``load_beats``, ``load_split``, ``data_config``, ``load_mitdb``,
  ``read_lead``, ``beats_of_run``, ``run_test_set``;
- beats cut from R peaks (:mod:`.extract`, :mod:`.rhythm`): ``beats_from_peaks``, ``extract_beats``,
  ``rhythm_features``;
- splits (:mod:`.splits`): ``split_beats``, ``limit_beats``;
- model inputs (:mod:`.inputs`): ``beat_tensors``, ``model_inputs``, ``make_loader``;
- tables for reading (:mod:`.tables`): ``class_table``, ``majority_class``, ``record_composition``, ``split_table``.
"""
from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    **dict.fromkeys(("CLASSES", "CLASS_NAMES", "AAMI", "MITDB_RECORDS", "PACED_RECORDS", "DS1", "DS2",
                     "RHYTHM_FEATURES", "RHYTHM_INPUTS"), "facts"),
    **dict.fromkeys(("Beats", "load_npz", "save_npz"), "beats"),
    **dict.fromkeys(("load_beats", "load_split", "data_config", "beats_of_run", "run_test_set"), "sources"),
    **dict.fromkeys(("load_mitdb", "read_lead"), "records"),
    **dict.fromkeys(("beats_from_peaks", "extract_beats"), "extract"),
    "rhythm_features": "rhythm",
    **dict.fromkeys(("split_beats", "limit_beats"), "splits"),
    **dict.fromkeys(("beat_tensors", "model_inputs", "make_loader"), "inputs"),
    **dict.fromkeys(("class_table", "majority_class", "record_composition", "split_table"), "tables"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'ecglib.data' has no attribute {name!r}")
