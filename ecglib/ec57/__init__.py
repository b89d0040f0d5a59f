"""Whole records labelled and scored as ANSI/AAMI EC57 prescribes: R-peak detection (:mod:`.detect`), labelling
(:mod:`.annotate`, with the model of :mod:`.trained`), annotation files (:mod:`.annotations`), the bxb comparison
(:mod:`.bxb`, pure) and scoring with bxb-style reports (:mod:`.score`).

Public surface, resolved on first use: ``annotate_record``, ``annotate_records``, ``load_trained``, ``load_model``,
``detect_r_peaks``, ``DETECTORS``, ``compare``, ``summarize``, ``score_record``, ``score_records``,
``format_table``, ``format_matrix``, ``write_csv``, ``read_annotations``, ``write_annotations``.
"""
from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    **dict.fromkeys(("annotate_record", "annotate_records", "load_trained"), "annotate"),
    "load_model": "trained",
    **dict.fromkeys(("detect_r_peaks", "DETECTORS"), "detect"),
    **dict.fromkeys(("compare", "summarize"), "bxb"),
    **dict.fromkeys(("score_record", "score_records", "format_table", "format_matrix", "write_csv"), "score"),
    **dict.fromkeys(("read_annotations", "write_annotations"), "annotations"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'ecglib.ec57' has no attribute {name!r}")
