"""What one training batch is made of: the order of the beats, the class weights of the loss, and the changes a batch
goes through on its way into the model (noise, synthetic S beats; the morphology-dropout mask is one line in
:func:`ecglib.training.loop.fit`), plus the weight average that is validated in place of the weights. Every random draw
comes from a generator seeded by (seed, epoch), so that a resumed run repeats it.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import CLASS_WEIGHTS, TrainConfig
from ..data.facts import CLASSES
from ..errors import InputError

# Class counts are floored at this share of the training beats before weighting: DS1 holds 8 Q beats among 45,000,
# whose balanced weight (about 1,100) would let a single Q beat dominate a batch and derail SGD.
WEIGHT_COUNT_FLOOR = 0.01


def class_weights(y: np.ndarray | torch.Tensor, mode: str = "none", n_classes: int = 5) -> torch.Tensor | None:
    """Loss weights (n_classes,) from training labels y (n,): None for "none"; "balanced" n / (K n_c) (each class
    weighs as much as any other in the loss; K the classes present); "sqrt" the square root of that (a milder
    correction). n_c is floored at WEIGHT_COUNT_FLOOR n, so that a class of a handful of beats gets a large but
    bounded weight. A class absent from y gets weight 1."""
    if mode == "none":
        return None
    if mode not in CLASS_WEIGHTS:
        raise InputError(f"unknown class weighting {mode!r}; choose {', '.join(CLASS_WEIGHTS)}")
    counts = np.bincount(np.asarray(y), minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.ones(n_classes)
    floored = np.maximum(counts[present], WEIGHT_COUNT_FLOOR * counts.sum())
    w[present] = counts.sum() / (present.sum() * floored)
    if mode == "sqrt":
        w = np.sqrt(w)
    return torch.tensor(w, dtype=torch.float32)


def epoch_order(y: torch.Tensor, config: TrainConfig, epoch: int) -> torch.Tensor:
    """The beat indices of one epoch, from (seed, epoch) alone so that a resumed run repeats them."""
    gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    n = len(y)
    if config.sampler == "shuffle":
        return torch.randperm(n, generator=gen)
    counts = torch.bincount(y, minlength=int(y.max()) + 1).double()
    p = (1.0 / counts)[y]
    return torch.multinomial(p, n, replacement=True, generator=gen)


def add_noise(x: torch.Tensor, level: float, layout: dict[str, bool], generator: torch.Generator
              ) -> torch.Tensor:
    """Training beats x (B, C, 187) with noise: per beat, white noise of a standard deviation drawn uniformly in
    [0, level] and a linear baseline drift with ends drawn uniformly in [-level, level], in the beats' [0, 1]
    units. The beat's difference to its record template (``template`` in the layout, the last channel) gets the
    beat's own noise, since the template, a median over the record, has almost none; a neighbour (``context``)
    gets noise of its own. ``level`` 0 returns x unchanged."""
    if level <= 0:
        return x
    b, c, t = x.shape
    ramp = torch.linspace(0.0, 1.0, t)

    def draw(n: int) -> torch.Tensor:
        sd = torch.rand(n, 1, generator=generator) * level
        ends = (torch.rand(n, 2, generator=generator) * 2 - 1) * level
        white = torch.randn(n, t, generator=generator) * sd
        return white + ends[:, :1] + (ends[:, 1:] - ends[:, :1]) * ramp

    noise = draw(b * c).reshape(b, c, t)
    if layout["template"]:
        noise[:, -1] = noise[:, 1 if layout["context"] else 0]
    return x + noise.to(x.device, x.dtype)


class WeightAverage:
    """An exponential moving average of a model's weights (Polyak averaging), kept in a copy of the model.

    After the t-th update (t from 1) the average is avg <- d avg + (1 - d) w with d = min(decay, (1 + t) / (10 + t)):
    the smaller decay early on (the TensorFlow and timm convention) keeps the random initial weights from lingering
    in the average for thousands of steps. Buffers (the rhythm input's standardisation) are copied, not averaged.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        import copy

        if not 0.0 < decay < 1.0:
            raise InputError(f"weight-average decay {decay!r} must lie in (0, 1)")
        self.decay, self.updates = decay, 0
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, new in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(new.detach(), 1.0 - d)
        for avg, new in zip(self.model.buffers(), model.buffers()):
            avg.copy_(new)


def synthetic_s(y: torch.Tensor, rhythm: torch.Tensor, s_rhythm: torch.Tensor, fraction: float,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels y (B,) and raw rhythm features (B, k) of a training batch in which each N beat is, with probability
    ``fraction``, an S beat: label S, the rhythm features of a row of ``s_rhythm`` (m, k: the training S beats')
    drawn at random. Its samples stay as they are. Why: an S beat is conducted like the patient's normal beats and
    comes early, so its shape is the patient's N shape; the training S beats come from few patients, and the
    synthetic ones pair every training patient's N shape with an S rhythm. Returns new tensors; 0 changes nothing."""
    if fraction <= 0:
        return y, rhythm
    n, s = CLASSES.index("N"), CLASSES.index("S")
    turned = (torch.rand(len(y), generator=generator) < fraction).to(y.device) & (y == n)
    pick = torch.randint(len(s_rhythm), (len(y),), generator=generator).to(s_rhythm.device)
    y = torch.where(turned, torch.full_like(y, s), y)
    rhythm = torch.where(turned.unsqueeze(1), s_rhythm[pick].to(rhythm.device, rhythm.dtype), rhythm)
    return y, rhythm
