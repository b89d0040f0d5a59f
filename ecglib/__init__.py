"""ecglib: ResNets versus Neural ODEs for heartbeat classification on the MIT-BIH Arrhythmia Database.

Modules: ``data`` (beats from MIT-BIH, Kaggle CSVs or synthetic records; splits), ``models`` (ResNet, ODE-Net),
``train`` (one training loop, checkpoints, resume), ``metrics`` (pure metrics and cost measurements), ``report``
(notebook helpers and the papermill study), ``cli`` (the ``ecglib`` command).
"""
from .data import CLASSES, Beats, load_beats, split_beats
from .errors import EcgError, InputError, TrainingError
from .models import build_model
from .train import TrainConfig, fit, run_training

__version__ = "0.1.0"
__all__ = ["CLASSES", "Beats", "EcgError", "InputError", "TrainConfig", "TrainingError", "build_model", "fit",
           "load_beats", "run_training", "split_beats", "__version__"]
