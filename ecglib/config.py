"""Every setting of ecglib, defined once with its range: the model, its ODE solver, the training recipe, the data,
and the study profiles.

Each setting is a field of a config object declared with :func:`ecglib.params.setting`, which attaches its
constraint; :data:`SETTINGS` gathers them by name. The command line's argparse types (:mod:`ecglib.cli.arguments`)
and the sweep spec's checks (:mod:`ecglib.experiments.spec`) are made from these constraints, so both accept and
refuse the same values with the same message. Torch-free on purpose: the command line's defaults and
``ecglib prepare`` read this module without paying for importing torch.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .data.facts import CLASSES, DS1, LEAD_MODES, MAX_FS, MIN_FS
from .errors import InputError
from .params import (
    Boolean,
    Constraint,
    Folder,
    Interval,
    Options,
    Pattern,
    RecordList,
    StepSize,
    check_settings,
    constraints,
    setting,
)

MODELS: tuple[str, ...] = ("resnet", "odenet")
MODEL_LABELS: dict[str, str] = {"resnet": "ResNet", "odenet": "ODE-Net"}  # how tables and figures name them
FEATURE_SETS: tuple[str, ...] = ("beat", "beat+rhythm")
SOURCES: tuple[str, ...] = ("mitdb", "kaggle", "synthetic")
SPLITS: tuple[str, ...] = ("intra", "inter")
# The torchdiffeq methods, in one place: torchdiffeq keeps its own table private (``torchdiffeq._impl``), and a
# test checks that this registry lists the same methods.
FIXED_GRID_SOLVERS: tuple[str, ...] = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams",
                                       "implicit_adams", "fixed_adams")
ADAPTIVE_SOLVERS: tuple[str, ...] = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
SOLVERS: tuple[str, ...] = ADAPTIVE_SOLVERS + FIXED_GRID_SOLVERS
# The same ODE block can be solved by torchode (Lienen & Guennemann 2022) instead: these of our solver names exist
# there (its Heun serves both the fixed-grid heun2 and adaptive_heun), with direct backpropagation only.
BACKENDS: tuple[str, ...] = ("torchdiffeq", "torchode")
TORCHODE_SOLVERS: dict[str, str] = {"dopri5": "dopri5", "adaptive_heun": "heun", "heun2": "heun", "euler": "euler"}
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
SCHEDULES: tuple[str, ...] = ("cosine", "onecycle", "none")
CLASS_WEIGHTS: tuple[str, ...] = ("none", "balanced", "sqrt")
SAMPLERS: tuple[str, ...] = ("shuffle", "balanced")
KEEPS: tuple[str, ...] = ("best", "last")

# RNODE coefficients above this are a typing error: the regularisers are O(1) per state element (models.py).
MAX_REGULARISATION = 100.0
# A fixed-grid solve with more steps than this is refused before it starts: each step keeps its activations for
# direct backpropagation (about 45 MB per RK4 step at batch 128), so 10,000 steps would need hundreds of GB.
MAX_STEPS = 1000
# An adaptive solve that needs more steps than this per forward pass stops with a message instead of running
# on: the dynamics have become stiff, and the tolerance or the learning rate must change.
MAX_ADAPTIVE_STEPS = 2000
# Model sizes beyond these are refused before the model is built (from the command line or from a checkpoint's
# settings): the default is width 64 and 6 blocks; width 1024 with 100 blocks already holds 630 M parameters
# and needs tens of GB of activations at batch 128.
MAX_WIDTH = 1024
MAX_BLOCKS = 100
MAX_CLASSES = 1000
MAX_PARAMETERS = 200_000_000
# More torch threads than this is a typing error: torch would start them all, on any machine.
MAX_THREADS = 512
# Synthetic records longer than an hour each (48 of them) would take minutes to write and gigabytes to cache.
MAX_SYNTHETIC_SECONDS = 3600.0

# Shapes of settings that several fields share.
_FRACTION = Interval(float, 0.0, 1.0, closed="left")  # in [0, 1): 1 would stop learning, drop every beat, ...
THREADS = Interval(int, 1, MAX_THREADS, optional=True)


def _check(config: Any) -> None:
    """Every setting of a config object within its range (ecglib.params), or one InputError naming it."""
    try:
        check_settings(config)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def model_size_problem(name: str, width: Any, blocks: Any = 6, n_classes: Any = 5) -> str | None:
    """Why a model of these settings should not be built (a sentence), or None when it is sane.

    Checked from the settings alone, before any memory is taken: types, the bounds above and an estimate of the
    parameters (each residual block two width x width convolutions of kernel 3; the ODE dynamics two).
    """
    for key, value, high in (("width", width, MAX_WIDTH), ("blocks", blocks, MAX_BLOCKS),
                             ("n_classes", n_classes, MAX_CLASSES)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return f"{key} {value!r} is not a whole number"
        if not (2 if key == "n_classes" else 1) <= value <= high:
            return f"{key} {value} is out of range (at most {high:,})"
    convolutions = 2 * blocks if name == "resnet" else 2
    estimate = convolutions * 3 * (width + 1) * width + width * n_classes
    if estimate > MAX_PARAMETERS:
        return f"about {estimate:,} parameters, more than the {MAX_PARAMETERS:,} allowed"
    return None


# -------------------------------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ModelConfig:
    """Which network, its size, and what it takes as input. context and template None: the recipe of the feature
    set decides (:data:`RECIPES`)."""

    model: str = setting("resnet", Options(MODELS), "the network: a six-block ResNet or an ODE-Net")
    width: int = setting(64, Interval(int, 1, MAX_WIDTH), "channels of every convolution")
    blocks: int = setting(6, Interval(int, 1, MAX_BLOCKS), "residual blocks of the ResNet")
    features: str = setting("beat", Options(FEATURE_SETS), "beat: the beat's samples only (the original study); "
                            "beat+rhythm: also its RR-interval features (WFDB sources only)")
    context: bool | None = setting(None, Boolean(optional=True), "feed each beat with its neighbours (3 channels)")
    template: bool | None = setting(None, Boolean(optional=True), "one more channel: the beat minus its record's "
                                    "median beat (WFDB sources only)")

    def __post_init__(self) -> None:
        _check(self)


# -------------------------------------------------------------------------------------------------------- ODE
@dataclass(frozen=True)
class ODEConfig:
    """How the ODE-Net's block is integrated from t = 0 to t = 1.

    solver: a torchdiffeq method (:data:`SOLVERS`). step_size: the step of a fixed-grid solver (1/3: three
    steps), None for an adaptive one. rtol, atol: the tolerances of an adaptive solver. adjoint: backpropagate by
    solving the adjoint ODE (memory constant in the steps) rather than through the solver's operations.
    seminorm: with the adjoint, measure the backward error on the state and its adjoint only (Kidger et al. 2021).
    backend: "torchdiffeq" or "torchode" (:data:`TORCHODE_SOLVERS`, direct backpropagation only).
    kinetic, jacobian: RNODE regularisation during training (Finlay et al. 2020): the loss gains kinetic times the
    integral over t of the mean squared dynamics, and jacobian times that of the mean squared Jacobian-vector product
    (a one-sample Hutchinson estimate of the Jacobian's Frobenius norm), both per state element. 0 turns them off.

    The defaults are the project's: two midpoint steps (four evaluations of the dynamics, where the ResNet has six
    blocks) with direct backpropagation, chosen by seeds on both protocols against three midpoint steps and one RK4
    step (benchmarks/sweeps/ode-default.toml; docs/performance.md says why and what each setting costs).
    :meth:`original` gives the original study's settings.
    """

    solver: str = setting("midpoint", Options(SOLVERS), "a torchdiffeq method (the original study: dopri5)")
    step_size: float | None = setting(1 / 2, StepSize(MAX_STEPS, optional=True),
                                      "step of a fixed-grid solver, a number or a fraction")
    rtol: float = setting(1e-3, Interval(float, 1e-12, 1.0), "relative tolerance of an adaptive solver")
    atol: float = setting(1e-3, Interval(float, 1e-12, 1.0), "absolute tolerance of an adaptive solver")
    adjoint: bool = setting(False, Boolean(), "backpropagate with the adjoint method: constant memory, more "
                            "evaluations")
    seminorm: bool = setting(False, Boolean(), "adjoint with the seminorm (Kidger et al. 2021)")
    backend: str = setting("torchdiffeq", Options(BACKENDS), "ODE solver library (torchode: direct "
                           "backpropagation, solvers " + ", ".join(TORCHODE_SOLVERS) + ")")
    kinetic: float = setting(0.0, Interval(float, 0.0, MAX_REGULARISATION),
                             "RNODE kinetic-energy regularisation weight (Finlay et al. 2020; 0: off)")
    jacobian: float = setting(0.0, Interval(float, 0.0, MAX_REGULARISATION),
                              "RNODE Jacobian Frobenius-norm regularisation weight (0: off)")

    def __post_init__(self) -> None:
        _check(self)
        if self.fixed_grid and self.step_size is None:
            raise InputError(f"the fixed-grid solver {self.solver} needs a step size (e.g. 1/3: three steps)")
        if not self.fixed_grid and self.step_size is not None:
            raise InputError(f"the adaptive solver {self.solver} chooses its own steps: give rtol/atol, "
                             "not a step size")
        if self.seminorm and not self.adjoint:
            raise InputError("the seminorm applies to the adjoint's backward solve: use it with the adjoint")
        if self.backend == "torchode":
            if self.solver not in TORCHODE_SOLVERS:
                raise InputError(f"torchode has no solver {self.solver!r} here; choose one of "
                                 f"{', '.join(TORCHODE_SOLVERS)}")
            if self.adjoint or self.regularised:
                raise InputError("the torchode backend takes direct backpropagation without regularisation: "
                                 "drop the adjoint, kinetic and jacobian settings")

    @classmethod
    def original(cls) -> ODEConfig:
        """The original study's settings: dopri5 at rtol = atol = 1e-3, gradients by the adjoint method."""
        return cls(solver="dopri5", step_size=None, rtol=1e-3, atol=1e-3, adjoint=True, seminorm=False)

    @classmethod
    def from_dict(cls, settings: dict[str, Any], base: ODEConfig | None = None) -> ODEConfig:
        """``base`` (the project default when None) with the given settings; None values keep the base's.
        Switching to an adaptive solver drops the base's step size, switching to a fixed-grid one needs one."""
        base = base or cls()
        given = {k: v for k, v in settings.items() if v is not None}
        unknown = sorted(set(given) - {f.name for f in fields(cls)})
        if unknown:
            raise InputError(f"unknown ODE setting {unknown[0]!r}")
        solver = given.get("solver", base.solver)
        if solver in ADAPTIVE_SOLVERS and "step_size" not in given:
            given["step_size"] = None
        return replace(base, **given)

    @property
    def regularised(self) -> bool:
        return self.kinetic > 0 or self.jacobian > 0

    @property
    def fixed_grid(self) -> bool:
        return self.solver in FIXED_GRID_SOLVERS

    @property
    def steps(self) -> int | None:
        """Solver steps from t = 0 to t = 1 of a fixed-grid solver (torchdiffeq takes ceil(1 / step_size))."""
        if not self.fixed_grid or self.step_size is None:
            return None
        return math.ceil(1 / self.step_size - 1e-9)

    def label(self) -> str:
        """'rk4, 3 steps, direct backpropagation' or 'dopri5, rtol 0.001, atol 0.001, adjoint'."""
        if self.fixed_grid:
            how = f"{self.solver}, {self.steps} step{'s' if self.steps != 1 else ''}"
        else:
            how = f"{self.solver}, rtol {self.rtol:g}, atol {self.atol:g}"
        grad = ("adjoint" + (" with seminorm" if self.seminorm else "")) if self.adjoint else "direct backpropagation"
        extra = "".join([f", {self.backend}" if self.backend != "torchdiffeq" else "",
                         f", RNODE kinetic {self.kinetic:g} jacobian {self.jacobian:g}" if self.regularised else ""])
        return f"{how}, {grad}{extra}"

    def to_dict(self) -> dict[str, Any]:
        """The settings as a dict; the backend and the regularisation only when they differ from the defaults, so
        that checkpoints written without them keep their settings (and resume)."""
        settings = asdict(self)
        for name in _OPTIONAL_ODE_FIELDS:
            if settings[name] == _ODE_DEFAULTS[name]:
                del settings[name]
        return settings


_OPTIONAL_ODE_FIELDS = ("backend", "kinetic", "jacobian")
_ODE_DEFAULTS = {f.name: f.default for f in fields(ODEConfig)}


# ----------------------------------------------------------------------------------------------------- recipe
# What a model with the rhythm input trains on and with when these options are not given: the beat with its
# predecessor and successor (context), its difference to the record's median beat (template), the loss weighted by
# the square root of inverse class frequency, half of each batch's beats named by their rhythm alone
# (morphology dropout) and 2 % of its N beats turned into S beats with a training S beat's rhythm (synthetic S);
# the last epoch's weights are tested, since on new patients the epoch of best validation accuracy over three
# held-out records is mostly chance; and the S logit is raised by 0.25 when the model decides (s_offset), an
# operating point that trades S precision for S sensitivity as the field's targets ask. Chosen on validation over
# three folds of whole DS1 records (docs/rhythm-recipe.md); the morphology-only model keeps the original study's
# recipe, so that `--features beat` trains and decides as the original study did.
RECIPES: dict[str, dict[str, Any]] = {
    "beat": {"context": False, "template": False, "class_weight": "none", "morphology_dropout": 0.0,
             "synthetic_s": 0.0, "keep": "best", "s_offset": 0.0},
    "beat+rhythm": {"context": True, "template": True, "class_weight": "sqrt", "morphology_dropout": 0.5,
                    "synthetic_s": 0.02, "keep": "last", "s_offset": 0.25},
}
# The recipe's entries that are TrainConfig fields; the others choose the model's inputs.
RECIPE_TRAIN_KEYS = ("class_weight", "morphology_dropout", "synthetic_s", "keep", "s_offset")


def recipe(features: str, **given: Any) -> dict[str, Any]:
    """The inputs, class weighting and kept epoch for ``features`` ("beat" or "beat+rhythm"): :data:`RECIPES`, with
    the options in ``given`` that are not None (context, template, class_weight, keep) taking precedence."""
    if features not in RECIPES:
        raise InputError(f"unknown features {features!r}; choose one of {', '.join(RECIPES)}")
    unknown = set(given) - set(RECIPES[features])
    if unknown:
        raise InputError(f"no recipe option {sorted(unknown)[0]!r}; choose from {', '.join(RECIPES[features])}")
    return {**RECIPES[features], **{k: v for k, v in given.items() if v is not None}}


def recipe_default(key: str) -> str:
    """A recipe option's defaults as --help shows them, "none; sqrt with beat+rhythm" (inputs as off / on)."""
    shown = {f: {False: "off", True: "on"}.get(r[key], r[key]) for f, r in RECIPES.items()}
    return f"{shown['beat']}; {shown['beat+rhythm']} with beat+rhythm"


def logit_offsets(s_offset: float) -> list[float] | None:
    """The models' per-class logit offsets (``build_model(logit_offsets=...)``) for a decision offset of S, in the
    order of CLASSES; None for 0 (the plain argmax)."""
    return [s_offset if c == "S" else 0.0 for c in CLASSES] if s_offset else None


# ----------------------------------------------------------------------------------------------------- train
@dataclass
class TrainConfig:
    """The training recipe. Defaults: the original study's (SGD, lr 0.1, momentum 0.9, batch 128, 5 epochs), with
    one documented improvement: a linear warm-up over the first 5% of steps and a cosine decay to zero. The options
    after ``threads`` are levers against class imbalance and for new patients (docs/rhythm-recipe.md says why each
    exists and when it helped); ``--features beat+rhythm`` sets several of them (:data:`RECIPES`)."""

    epochs: int = setting(5, Interval(int, 1), "training epochs")
    batch_size: int = setting(128, Interval(int, 1), "beats per batch")
    optimizer: str = setting("sgd", Options(OPTIMIZERS), "the optimizer")
    lr: float = setting(0.1, Interval(float, 0.0, closed="right"), "learning rate")
    momentum: float = setting(0.9, _FRACTION, "SGD momentum")
    weight_decay: float = setting(0.0, Interval(float, 0.0), "weight decay")
    schedule: str = setting("cosine", Options(SCHEDULES), "learning-rate schedule after the warm-up (none: the "
                            "original constant rate)")
    warmup: float = setting(0.05, _FRACTION, "share of the steps with a linear warm-up of the learning rate")
    seed: int = setting(0, Interval(int, 0), "seed of the initial weights, the batch order and the split")
    device: str = setting("auto", Pattern(r"auto|cpu|mps|cuda(:\d+)?", "a device: auto, cpu, cuda, cuda:N or mps"),
                          "auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps; whether it exists is checked when "
                          "training starts")
    threads: int | None = setting(None, THREADS, "torch CPU threads (default: torch's choice)")
    # Class imbalance: loss weights none | balanced (n / (K n_c)) | sqrt of that; batches by shuffling (every beat
    # once per epoch) or drawn class-balanced with replacement. "none" and "shuffle" are the original study's.
    class_weight: str = setting("none", Options(CLASS_WEIGHTS), "loss weights against class imbalance: none, "
                                "balanced (n / (K n_c)) or the square root of that")
    sampler: str = setting("shuffle", Options(SAMPLERS), "batches: every beat once per epoch (shuffle), or drawn "
                           "class-balanced with replacement")
    # Each training beat gets white noise of a standard deviation drawn uniformly in [0, noise] and a baseline
    # drift of up to +-noise (beats' [0, 1] units). Why: a new patient's noisy normal beats (record 105's muscle and
    # motion artefacts) look like no training beat but a ventricular one.
    noise: float = setting(0.0, _FRACTION, "augment training beats with white noise and baseline drift of up to "
                           "this level, in the beats' [0, 1] units (0: off)")
    # An exponential moving average of the weights is validated, kept and tested. Why: the average lies in a
    # flatter region that carries better to patients never seen (SWAD, Cha et al. 2021).
    ema: float = setting(0.0, _FRACTION, "validate, keep and test a moving average of the weights with this "
                         "decay per step (0: off)")
    # Rhythm-aware models only: this fraction of each batch's beats has its pooled morphology features zeroed, so
    # the classifier must name them from their rhythm alone (ModDrop, Neverova et al. 2015). Why: on the training
    # patients morphology separates S from V by itself and the rhythm weights stay small.
    morphology_dropout: float = setting(0.0, _FRACTION, "with the rhythm input: zero the pooled morphology "
                                        "features of this fraction of each training batch's beats")
    # Rhythm-aware models only: each training N beat is, with this probability per batch, an S beat with a
    # training S beat's rhythm. Why: an S beat has its patient's normal shape and comes early, and DS1's S beats
    # come from few patients.
    synthetic_s: float = setting(0.0, _FRACTION, "with the rhythm input: each training N beat is, with this "
                                 "probability per batch, an S beat with the rhythm of a training S beat")
    keep: str = setting("best", Options(KEEPS), "the weights tested: the epoch of best validation accuracy, or "
                        "the last")
    # Added to the S logit whenever the model decides (evaluation mode; kept in the model's config), never to the
    # loss. Why: the field's S targets (Se >= 0.76 at +P >= 0.38) weight sensitivity over precision.
    s_offset: float = setting(0.0, Interval(float), "add B to the S logit whenever the model decides "
                              "(validation, test, evaluate, annotate; not the loss): B > 0 finds more S beats at a "
                              "lower S precision")

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> TrainConfig:
        """The defaults with the given settings (keys that are not recipe fields and None values are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in names and v is not None})


# ------------------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class DataConfig:
    """Where a run's beats come from and how they are split. limit None or 0: all beats."""

    source: str = setting("synthetic", Options(SOURCES), "where beats come from (synthetic: the embedded records)")
    mitdb_dir: str | None = setting(None, Folder(optional=True), "folder of the MIT-BIH WFDB records")
    kaggle_dir: str | None = setting(None, Folder(optional=True), "folder with mitbih_train.csv and mitbih_test.csv")
    synthetic_seconds: float = setting(60.0, Interval(float, 10.0, MAX_SYNTHETIC_SECONDS),
                                       "length of each synthetic record in seconds")
    limit: int | None = setting(None, Interval(int, 0, optional=True), "use a stratified subset of this many beats "
                                "(0: all)")
    split: str = setting("intra", Options(SPLITS), "intra: stratified random beats 80/20; inter: de Chazal DS1 -> "
                         "DS2")
    val_fraction: float = setting(0.1, _FRACTION, "share of the training beats held out for validation (inter: as "
                                  "whole DS1 records)")
    val_records: list[str] | None = setting(None, RecordList(DS1, "DS1", optional=True),
                                            "inter: validate on these whole DS1 records")
    leads: str = setting("rule", Options(LEAD_MODES), "rule: the lead the lead rule reads (MLII, else the first); "
                         "all: every lead of each record, each beat once per lead (training sees more than one "
                         "lead; a run is still tested on the rule's lead)")
    download: bool = setting(True, Boolean(), "fetch missing MIT-BIH records from PhysioNet")

    def __post_init__(self) -> None:
        _check(self)


# --------------------------------------------------------------------------------------------------- annotate
_EXTENSION = Pattern(r"[A-Za-z0-9]+", "a file extension of letters and digits")
# The pretrained model (ecglib/pretrained/) `ecglib annotate` labels with when no model is named: docs/labelling.md
# gives both models' DS2 EC57 tables and times, and why this one.
DEFAULT_PRETRAINED = "odenet-ds1"


@dataclass(frozen=True)
class AnnotateConfig:
    """How ``ecglib annotate`` reads recordings and names what it writes (docs/labelling.md). Its detector is one of
    ecglib.ec57.detect's; the model a pretrained model's name or a run folder, checked when it is loaded."""

    annotate_model: str | None = setting(None, Pattern(r"\S.*", "a pretrained model's name or a run folder",
                                                       optional=True),
                                         "a pretrained model (`ecglib models`) or a run folder of `ecglib train`")
    fs: float | None = setting(None, Interval(float, MIN_FS, MAX_FS, optional=True),
                               "sampling rate in Hz of CSV and npy signals (WFDB and EDF files state theirs)")
    lead: str | None = setting(None, Pattern(r"\S.*", "a lead's name or its 0-based position", optional=True),
                               "the lead to read, by name or 0-based position")
    reference: str | None = setting(None, Pattern(_EXTENSION.regex, _EXTENSION.description, optional=True),
                                    "extension of the reference annotations NAME.EXT beside each recording, which "
                                    "the labels are compared with")
    annotator: str = setting("ecglib", _EXTENSION, "annotator name: the extension of the annotation file written "
                             "(NAME.ANNOTATOR) and of the beats CSV (NAME.ANNOTATOR.csv)")

    def __post_init__(self) -> None:
        _check(self)


# Every setting's constraint by name: the command line and sweep specs check their values with these.
SETTINGS: dict[str, Constraint] = {**constraints(ModelConfig), **constraints(ODEConfig), **constraints(TrainConfig),
                                   **constraints(DataConfig), **constraints(AnnotateConfig)}
_CONFIGS = (ModelConfig, ODEConfig, TrainConfig, DataConfig, AnnotateConfig)
assert len(SETTINGS) == sum(len(constraints(c)) for c in _CONFIGS), "a setting name is used by two config objects"


def setting_doc(name: str) -> str:
    """The one-line description of a setting (its field's doc)."""
    for cls in _CONFIGS:
        for f in fields(cls):
            if f.name == name:
                return f.metadata.get("doc", "")
    raise KeyError(name)


def setting_default(name: str) -> Any:
    for cls in _CONFIGS:
        for f in fields(cls):
            if f.name == name:
                return f.default
    raise KeyError(name)


# ------------------------------------------------------------------------------------------------------ study
@dataclass(frozen=True)
class StudyProfile:
    """One way to run the study: the epochs and beat limit per data source (limit None: all beats), the split, the
    training recipe of both models and the ODE-Net's solver."""

    epochs: dict[str, int]
    limit: dict[str, int | None]
    train: TrainConfig
    ode: ODEConfig = field(default_factory=ODEConfig)
    split: str = "intra"


# full: the original protocol (all beats, 5 epochs) with the project's recipe and ODE default.
# quick: a laptop CPU in minutes. A few thousand beats give SGD at batch 128 only tens of steps, and the models
# still predict every beat as N after them; Adam at batch 32 learns in that budget, so quick trades the recipe
# for it (both models alike).
PROFILES: dict[str, StudyProfile] = {
    "quick": StudyProfile(epochs={"synthetic": 8, "mitdb": 3, "kaggle": 3},
                          limit={"synthetic": None, "mitdb": 20_000, "kaggle": 20_000},
                          train=TrainConfig(optimizer="adam", lr=3e-3, batch_size=32)),
    "full": StudyProfile(epochs={"synthetic": 5, "mitdb": 5, "kaggle": 5},
                         limit={"synthetic": None, "mitdb": None, "kaggle": None}, train=TrainConfig()),
}


def study_settings(profile: str, source: str, epochs: int | None = None, limit: int | None = None,
                   train: dict[str, Any] | None = None, ode: dict[str, Any] | None = None
                   ) -> tuple[TrainConfig, ODEConfig, int | None]:
    """The training recipe, ODE settings and beat limit of a study ``profile`` on ``source``, with overrides.

    epochs: None keeps the profile's. limit: None keeps the profile's, 0 means all beats. train, ode: settings
    that replace the profile's (keys of :class:`TrainConfig`, :class:`ODEConfig`). Raises InputError for an
    unknown profile or source and for settings out of range.
    """
    if profile not in PROFILES:
        raise InputError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    spec = PROFILES[profile]
    if source not in spec.epochs:
        raise InputError(f"unknown data source {source!r}; choose one of {', '.join(spec.epochs)}")
    for name, value in (("epochs", epochs), ("limit", limit)):
        if value is not None:
            try:
                SETTINGS[name].check(value)
            except ValueError as exc:
                raise InputError(f"{name}: {exc}") from None
    recipe = TrainConfig.from_dict({**asdict(spec.train), **(train or {}),
                                    "epochs": epochs if epochs is not None else spec.epochs[source]})
    n_limit = spec.limit[source] if limit is None else (limit or None)
    return recipe, ODEConfig.from_dict(ode or {}, base=spec.ode), n_limit
