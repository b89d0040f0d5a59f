"""The ``ecglib`` command, a thin face over the library: prepare, train, evaluate, study, annotate, models, score,
sweep.

Known errors (bad input, a run that cannot go on) print one line ``ecglib: error: ...`` and exit with status 2.
The parser is :mod:`.arguments`, each subcommand's function is in :mod:`.commands`.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import EcgError
from . import arguments
from .commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    return arguments.build_parser(description=" ".join(__doc__.split("\n\n")[0].split()))


def _close_progress_bars() -> None:
    """Close the progress bars still on screen, so that an error message starts on a line of its own."""
    tqdm_module = sys.modules.get("tqdm.std")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", [])):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close must not hide the error
            pass


def _fail(message: str, status: int = 2) -> int:
    _close_progress_bars()
    try:
        sys.stdout.flush()
    except OSError:  # a closed pipe must not turn the error into a traceback
        pass
    # One line, whatever the message holds.
    print(f"ecglib: {message}".replace("\r", " ").replace("\n", " "), file=sys.stderr, flush=True)
    return status


def _stdout_gone() -> int:
    """The reader of our output went away (``ecglib ... | head -1``): nothing to say, and nothing more to print.
    stdout goes to /dev/null so that Python's own flush at exit does not complain."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    try:
        with warnings.catch_warnings():
            # Warnings of numpy, scipy, wfdb, pandas or torch are not the user's errors and would break the promise
            # of one error line; -W or PYTHONWARNINGS still shows them.
            if not sys.warnoptions:
                warnings.simplefilter("ignore")
            args = build_parser().parse_args(argv)
            status = COMMANDS[args.command](args)
            sys.stdout.flush()  # here, where a reader gone away (a closed pipe) is still ours to handle
            return status
    except EcgError as exc:
        return _fail(f"error: {exc}")
    except BrokenPipeError:
        return _stdout_gone()
    except OSError as exc:  # an output that cannot be written (a file in the way, no space): one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"error: {where}{exc.strerror or exc}")
    except MemoryError:
        return _fail("error: out of memory; use fewer beats (--limit), a smaller --batch-size or a smaller model")
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
