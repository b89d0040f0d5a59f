"""What a training batch is made of: class weights, samplers, noise, synthetic S beats, the weight average."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ecglib.config import TrainConfig
from ecglib.data.facts import BEAT_LENGTH, CLASSES
from ecglib.data.inputs import (
    input_layout,
)
from ecglib.errors import InputError
from ecglib.training.batches import WeightAverage, add_noise, class_weights, epoch_order, synthetic_s


# ------------------------------------------------------------------------------------------------------ training
def test_class_weights():
    y = np.array([0] * 6 + [1] * 2 + [2] * 4)
    assert class_weights(y, "none") is None
    torch.testing.assert_close(class_weights(y, "balanced"),
                               torch.tensor([12 / 18, 12 / 6, 12 / 12, 1.0, 1.0]))
    torch.testing.assert_close(class_weights(y, "sqrt"),
                               torch.tensor([12 / 18, 12 / 6, 12 / 12, 1.0, 1.0]).sqrt())
    # A class of a handful of beats: its count is floored at 1 % of the beats (Q: 8 of 45,000 in DS1).
    many = np.array([0] * 9990 + [4] * 10)
    torch.testing.assert_close(class_weights(many, "balanced")[[0, 4]],
                               torch.tensor([10000 / (2 * 9990), 10000 / (2 * 100)]))
    with pytest.raises(InputError, match="class_weight: must be one of none, balanced, sqrt"):
        TrainConfig(class_weight="inverse")


def test_balanced_sampler_draws_classes_evenly():
    y = torch.tensor([0] * 900 + [1] * 100)
    config = TrainConfig(sampler="balanced", seed=0)
    order = epoch_order(y, config, epoch=0)
    assert len(order) == 1000
    assert 0.4 < (y[order] == 1).float().mean() < 0.6
    torch.testing.assert_close(order, epoch_order(y, config, epoch=0))


# ---------------------------------------------------------------------------------------------- synthetic S beats
def test_synthetic_s_gives_n_beats_an_s_rhythm_and_label():

    n, s = CLASSES.index("N"), CLASSES.index("S")
    y = torch.tensor([n, CLASSES.index("V"), n, s, n, CLASSES.index("F")] * 50)
    r = torch.rand(len(y), 3)
    s_rhythm = torch.tensor([[0.7, 1.0, 1.4], [0.6, 1.1, 1.8]])
    assert synthetic_s(y, r, s_rhythm, 0.0, torch.Generator().manual_seed(0)) == (y, r)
    every_y, every_r = synthetic_s(y, r, s_rhythm, 0.99999, torch.Generator().manual_seed(0))
    assert (every_y[y == n] == s).all() and torch.equal(every_y[y != n], y[y != n])
    assert torch.equal(every_r[y != n], r[y != n])  # V, F and real S beats keep their own rhythm
    assert all(any(torch.equal(row, t) for t in s_rhythm) for row in every_r[y == n])
    some_y, some_r = synthetic_s(y, r, s_rhythm, 0.3, torch.Generator().manual_seed(1))
    turned = (some_y != y)
    assert 0.15 < turned.sum().item() / (y == n).sum().item() < 0.45 and (y[turned] == n).all()
    again = synthetic_s(y, r, s_rhythm, 0.3, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], some_y) and torch.equal(again[1], some_r)
    assert torch.equal(y, torch.tensor([n, CLASSES.index("V"), n, s, n, CLASSES.index("F")] * 50))  # not in place


def test_noise_augmentation_shares_the_beats_noise_with_its_template_difference():
    x = torch.rand(64, 4, BEAT_LENGTH)
    layout = input_layout(4)  # predecessor, beat, successor, beat minus template
    assert add_noise(x, 0.0, layout, torch.Generator().manual_seed(0)) is x
    out = add_noise(x, 0.05, layout, torch.Generator().manual_seed(0))
    noise = out - x
    torch.testing.assert_close(noise[:, 3], noise[:, 1])  # the template has no noise of its own
    assert not torch.allclose(noise[:, 0], noise[:, 1]) and not torch.allclose(noise[:, 2], noise[:, 1])
    # A drift of at most the level at each end, white noise of at most the level's standard deviation.
    drift = noise.mean(dim=2)
    assert drift.abs().max() <= 0.05 + 4 * 0.05 / BEAT_LENGTH ** 0.5
    assert 0 < (noise - noise.mean(dim=2, keepdim=True)).std(dim=2).max() < 0.05 * 1.3
    torch.testing.assert_close(out, add_noise(x, 0.05, layout, torch.Generator().manual_seed(0)))
    plain = add_noise(x[:, 1:2], 0.05, input_layout(1), torch.Generator().manual_seed(1))
    assert plain.shape == (64, 1, BEAT_LENGTH) and not torch.equal(plain, x[:, 1:2])
    with pytest.raises(InputError, match=r"noise: must be a number in \[0, 1\), not 1.5"):
        TrainConfig(noise=1.5)


def test_weight_average_follows_its_formula():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    model.register_buffer("scale", torch.ones(2))
    average = WeightAverage(model, 0.3)
    expected = {k: v.detach().clone() for k, v in model.named_parameters()}
    for t in range(1, 5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.scale.fill_(t)
        live = {k: v.detach().clone() for k, v in model.named_parameters()}
        average.update(model)
        d = min(0.3, (1 + t) / (10 + t))  # 0.18, 0.25, then the decay itself
        expected = {k: d * expected[k] + (1 - d) * live[k] for k in expected}
        for k, v in average.model.named_parameters():
            torch.testing.assert_close(v, expected[k])
            assert torch.equal(dict(model.named_parameters())[k], live[k])  # the live weights are not touched
        assert torch.equal(average.model.scale, model.scale)  # buffers are copied, not averaged
    assert average.updates == 4 and not any(p.requires_grad for p in average.model.parameters())
    for bad in (0.0, 1.0):
        with pytest.raises(InputError, match="decay"):
            WeightAverage(model, bad)
    with pytest.raises(InputError, match=r"ema: must be a number in \[0, 1\), not 1.0"):
        TrainConfig(ema=1.0)
