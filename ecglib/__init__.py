"""ecglib: ResNets versus Neural ODEs for heartbeat classification on the MIT-BIH Arrhythmia Database.

Modules: ``config`` (every setting and default: ODE solver, training recipe, study profiles), ``beats`` (the beats
table and the database's facts), ``records`` and ``synthetic`` (WFDB records, Kaggle CSVs and synthetic records
read into beats), ``data`` (the front door, splits), ``models`` (ResNet, ODE-Net), ``train`` (one training loop),
``runs`` (run folders and checkpoints), ``metrics`` (pure metrics and cost measurements), ``plots``, ``compare`` and
``rhythm`` (the notebooks' figures, tables and conclusions), ``study`` (the papermill study), ``annotate``, ``ec57``
and ``score`` (whole records labelled and scored as ANSI/AAMI EC57 does), ``spec`` and ``sweep`` (sweeps on Ray),
``files``, ``checks`` and ``cache`` (atomic writes, checks of what enters from files, the verified cache), ``cli``
(the ``ecglib`` command).
"""
# Only importlib, loaded already: the sooner `python -m ecglib` reaches its Ctrl-C handler, the better.
from importlib import import_module

__version__ = "0.1.0"

# Resolved on first use, so that `ecglib prepare` does not pay for importing torch.
_EXPORTS = {
    "CLASSES": "data", "Beats": "data", "load_beats": "data", "split_beats": "data",
    "EcgError": "errors", "InputError": "errors", "TrainingError": "errors",
    "ODEConfig": "config", "TrainConfig": "config", "PROFILES": "config",
    "build_model": "models",
    "fit": "train", "run_training": "train",
    "RunFolder": "runs", "load_checkpoint": "runs",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'ecglib' has no attribute {name!r}")
