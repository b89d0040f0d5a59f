"""The optional parts of ecglib and the packages each needs (``pip install 'ecglib[NAME]'``), checked before the
part starts, so that a missing package is one line naming the extra rather than an ImportError deep inside."""
from __future__ import annotations

import importlib.util

from .errors import InputError

# extra -> the importable modules it installs (as in pyproject.toml's optional-dependencies).
EXTRAS: dict[str, tuple[str, ...]] = {
    "study": ("papermill", "nbconvert", "nbformat", "ipykernel"),
    "sweep": ("ray",),
    "torchode": ("torchode",),
    "detectors": ("neurokit2",),
    "edf": ("edfio",),
}


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]


def require_extra(extra: str, what: str) -> None:
    """InputError "WHAT needs the 'EXTRA' extra ..." when a module of ``extra`` is not installed."""
    absent = missing(extra)
    if absent:
        raise InputError(f"{what} needs the '{extra}' extra ({', '.join(absent)} not installed): "
                         f"pip install 'ecglib[{extra}]'")
