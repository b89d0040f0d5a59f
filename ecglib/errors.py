"""The one exception type that the command line turns into a single error line and exit status 2."""


class EcgError(Exception):
    """Bad input or a run that cannot go on; the message names the file and the problem."""


class InputError(EcgError):
    """A missing, corrupt or inconsistent input file or argument."""


class TrainingError(EcgError):
    """Training cannot continue (non-finite loss, ODE step-size underflow, incompatible checkpoint)."""
