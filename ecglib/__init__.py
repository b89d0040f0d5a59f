"""ecglib: ResNets versus Neural ODEs for heartbeat classification, and whole ECG records labelled and scored as
ANSI/AAMI EC57 does.

Packages by domain: ``data`` (the MIT-BIH facts, beats, records, splits, model inputs), ``training`` (the one
training loop), ``ec57`` (R-peak detection, labelling records, the bxb comparison), ``experiments`` (sweeps on Ray,
statistics over seeds, the papermill study), ``report`` (tables, conclusions, figures), ``cli`` (the ``ecglib``
command). Modules: ``config`` (every setting with its range), ``params`` (the constraints), ``models`` (ResNet,
ODE-Net), ``metrics``, ``inference``, ``checkpoints``, ``runs``, ``files``, ``errors``. docs/architecture.md
draws the layers.
"""
# Only importlib, loaded already: the sooner `python -m ecglib` reaches its Ctrl-C handler, the better.
from importlib import import_module

__version__ = "0.2.0"

# Resolved on first use, so that `import ecglib` does not pay for importing torch.
_EXPORTS = {
    "EcgError": "errors", "InputError": "errors", "TrainingError": "errors",
    "ODEConfig": "config", "TrainConfig": "config", "ModelConfig": "config", "DataConfig": "config",
    "build_model": "models",
    "RunFolder": "runs", "load_checkpoint": "checkpoints", "predict": "inference",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'ecglib' has no attribute {name!r}")
