"""The one exception type that the command line turns into a single error line and exit status 2."""


class EcgError(Exception):
    """Bad input or a run that cannot go on; the message names the file and the problem."""


class InputError(EcgError):
    """A missing, corrupt or inconsistent input file or argument."""


class TrainingError(EcgError):
    """Training cannot continue (non-finite loss, ODE step-size underflow, incompatible checkpoint)."""


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (at most ``limit`` characters), or its type's name: the detail a
    one-line error carries when a library raised a long or multi-line message."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
