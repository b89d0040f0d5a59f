"""The constraints of settings, each stated once, and the one validator that enforces them everywhere.

A setting is a field of a config object (:mod:`ecglib.config`) declared with :func:`setting`, which attaches its
constraint: an :class:`Interval`, a set of :class:`Options`, a :class:`Boolean`, a :class:`Pattern`, a
:class:`StepSize`, a :class:`Folder` or a :class:`RecordList`. The same constraint object checks the value when a
config object is made (:func:`check_settings`), when the command line reads it (:func:`arg_type` makes the argparse
type) and when a sweep spec gives it (``constraint.check``), so the three accept and refuse exactly the same
values with the same message: "must be a whole number >= 1, not 0". This is scikit-learn's
``_parameter_constraints`` idea, with the constraint kept on the field itself.
"""
from __future__ import annotations

import argparse
import math
import numbers
import re
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from fractions import Fraction
from typing import Any


class Constraint:
    """What values a setting takes. ``check`` returns the value (normalised: a fraction read as a number, record
    names as a list) or raises ValueError with the message; ``parse`` reads command-line text and checks it."""

    optional: bool = False  # None is accepted (the setting is unset: a default decides)

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, value: Any) -> Any:
        if value is None and self.optional:
            return None
        return self._check(value)

    def _check(self, value: Any) -> Any:
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        return self.check(text)

    def refuse(self, value: Any) -> ValueError:
        return ValueError(f"must be {self.describe()}, not {value!r}")


def _number_text(text: str) -> Any:
    """Command-line text as the number it spells (an int when it is one, else a float), else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@dataclass(frozen=True)
class Interval(Constraint):
    """A whole number (``kind`` int) or a finite real number (float) between ``low`` and ``high`` (None: no
    bound); ``closed`` says which ends belong: "both", "left", "right" or "neither"."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"
    optional: bool = False

    def describe(self) -> str:
        what = "a whole number" if self.kind is int else "a number"
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is None and self.high is None:
            return what if self.kind is int else "a finite number"
        if self.high is None:
            return f"{what} {'>=' if left else '>'} {self.low:g}"
        if self.low is None:
            return f"{what} {'<=' if right else '<'} {self.high:g}"
        return f"{what} in {'[' if left else '('}{self.low:g}, {self.high:g}{']' if right else ')'}"

    def _check(self, value: Any) -> Any:
        given = value  # refused as given: 2 stays "2" in the message, 2.0 "2.0"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise self.refuse(given)
        if self.kind is int:
            if not isinstance(value, numbers.Integral):
                raise self.refuse(given)
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise self.refuse(given)
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not left)):
            raise self.refuse(given)
        if self.high is not None and (value > self.high or (value == self.high and not right)):
            raise self.refuse(given)
        return value

    def parse(self, text: str) -> Any:
        return self.check(_number_text(text))


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of names."""

    options: tuple[str, ...]
    optional: bool = False

    def describe(self) -> str:
        return f"one of {', '.join(self.options)}"

    def _check(self, value: Any) -> Any:
        if not isinstance(value, str) or value not in self.options:
            raise self.refuse(value)
        return value

    def parse(self, text: str) -> Any:
        # "3" is refused as the number a spec's 3 is, so that both say the same
        return self.check(text if text in self.options else _number_text(text))


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class Boolean(Constraint):
    """true or false (on the command line a --name / --no-name switch)."""

    optional: bool = False

    def describe(self) -> str:
        return "true or false"

    def _check(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise self.refuse(value)
        return value

    def parse(self, text: str) -> Any:
        lowered = text.strip().lower()
        return self.check(True if lowered in _TRUE else False if lowered in _FALSE else text)


@dataclass(frozen=True)
class Pattern(Constraint):
    """Text that matches a regular expression, e.g. a device name."""

    regex: str
    description: str
    optional: bool = False

    def describe(self) -> str:
        return self.description

    def _check(self, value: Any) -> Any:
        if not isinstance(value, str) or not re.fullmatch(self.regex, value):
            raise self.refuse(value)
        return value


@dataclass(frozen=True)
class StepSize(Constraint):
    """A fixed-grid solver's step from t = 0 to t = 1: a number or a fraction written as text ("1/3" gives exactly
    three steps, where 0.333 would give a fourth, tiny one: torchdiffeq takes ceil(1 / step) steps), at least
    ``1 / max_steps``."""

    max_steps: int
    optional: bool = False

    def describe(self) -> str:
        return f"a number or a fraction in [1/{self.max_steps}, 1] (1/3: three steps)"

    def _check(self, value: Any) -> Any:
        given = value
        if isinstance(value, str):
            try:
                value = float(Fraction(value.strip()))
            except (ValueError, ZeroDivisionError):
                raise self.refuse(given) from None
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                or not 1 / self.max_steps - 1e-12 <= value <= 1:
            raise self.refuse(given)
        return float(value)

    def parse(self, text: str) -> Any:
        return self.check(_number_text(text))


@dataclass(frozen=True)
class Folder(Constraint):
    """A folder's name (whether it exists is checked where it is read)."""

    optional: bool = False

    def describe(self) -> str:
        return "a folder name"

    def _check(self, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise self.refuse(value)
        return value


@dataclass(frozen=True)
class RecordList(Constraint):
    """Distinct record names among ``allowed``, as "101,112" or a list; checked into a list of names."""

    allowed: tuple[str, ...]
    what: str = "records"
    optional: bool = False

    def describe(self) -> str:
        return f"distinct {self.what} record names, as \"101,112\" or [\"101\", \"112\"]"

    def _check(self, value: Any) -> Any:
        names = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else None
        if not names or not all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in names):
            raise self.refuse(value)
        names = [str(n).strip() for n in names]
        if not all(names) or len(set(names)) != len(names) or any(n not in self.allowed for n in names):
            raise self.refuse(value)
        return names


def setting(default: Any, constraint: Constraint, doc: str = "") -> Any:
    """A config field whose values ``constraint`` says (a dataclass field carrying it in its metadata)."""
    return field(default=default, metadata={"constraint": constraint, "doc": doc})


def constraints(cls: type) -> dict[str, Constraint]:
    """The constraint of each setting of the config class ``cls``, by field name."""
    return {f.name: f.metadata["constraint"] for f in fields(cls) if "constraint" in f.metadata}


def field_of(cls: type, name: str) -> Field:
    return next(f for f in fields(cls) if f.name == name)


def check_settings(obj: Any) -> None:
    """Check every setting of a config object against its constraint, normalising values in place; ValueError
    "NAME: must be ..., not VALUE" for the first that fails."""
    for name, constraint in constraints(type(obj)).items():
        try:
            value = constraint.check(getattr(obj, name))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        object.__setattr__(obj, name, value)  # frozen dataclasses too: a value only normalised, never changed


def arg_type(constraint: Constraint) -> Callable[[str], Any]:
    """The argparse ``type`` of a setting: command-line text read and checked by ``constraint``, its message as
    argparse's error ("argument --epochs: must be a whole number >= 1, not 0")."""
    def parse(text: str) -> Any:
        try:
            return constraint.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = type(constraint).__name__.lower()  # argparse names the type in some messages
    return parse


def metavar(constraint: Constraint, name: str) -> str | None:
    """What --help shows for a setting's value: the options of an Options setting, else the setting's name."""
    if isinstance(constraint, Options):
        return "{" + ",".join(constraint.options) + "}"
    return None if isinstance(constraint, Boolean) else name.upper()
