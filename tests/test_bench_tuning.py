"""Tuning a baseline on validation (coordinate search) and the loss named by the training config."""

from __future__ import annotations

import pytest
import torch

from gpt2rec.bench import tuning
from gpt2rec.models.registry import get_spec
from gpt2rec.train.loop import TrainConfig, fit


def test_coordinate_search_finds_the_best_point_of_a_separable_grid_and_scores_each_once():
    # score = -(dim - 128)^2 / 1e4 - (log10 lr + 2)^2: best at dim 128, lr 1e-2, reached in one round
    calls = []

    def score(c):
        calls.append(c)
        import math

        return -((c["model"]["dim"] - 128) ** 2) / 1e4 - (math.log10(c["train"]["lr"]) + 2) ** 2

    start = {"model": {"dim": 64}, "train": {"lr": 1e-3}}
    best, tried = tuning.coordinate_search(score, start, {"train.lr": (1e-3, 1e-2, 1e-1), "model.dim": (64, 128, 256)})
    assert best == {"model": {"dim": 128}, "train": {"lr": 1e-2}}
    # round 1: start, lr 1e-2, lr 1e-1, then at lr 1e-2: dim 128, dim 256 (dim 64 known);
    # round 2 at dim 128: lr 1e-3 and 1e-1 are new, nothing moves, so it stops: 7 points, each scored once
    assert len(tried) == len(calls) == 7
    assert start == {"model": {"dim": 64}, "train": {"lr": 1e-3}}  # not mutated


def test_coordinate_search_keeps_the_current_point_on_a_tie():
    best, tried = tuning.coordinate_search(lambda c: 1.0, {"model": {"k": 1}}, {"model.k": (2, 3)})
    assert best == {"model": {"k": 1}} and len(tried) == 3
    with pytest.raises(ValueError, match="model.NAME or train.NAME"):
        tuning.with_value({}, "dim", 3)


def test_the_bpr_tuning_grid_names_real_fields():
    from gpt2rec.bench.plan import config_fields

    protocol, start, axes = tuning.TUNING["bpr"]
    fields = config_fields("bpr")
    train_fields = set(TrainConfig.__dataclass_fields__)
    for axis in axes:
        section, _, name = axis.partition(".")
        assert name in (fields if section == "model" else train_fields), axis
    assert set(start["model"]) <= fields and set(start["train"]) <= train_fields


def test_train_config_names_the_loss():
    with pytest.raises(ValueError, match="loss must be one of bpr, softmax, bce, got 'hinge'"):
        TrainConfig(loss="hinge")


def _fit_losses(loss: str) -> list[float]:
    from gpt2rec.models.base import ModelContext
    from test_train_loop import N_ITEMS, N_USERS, block_split

    torch.manual_seed(0)
    spec = get_spec("bpr")
    model = spec.build(spec.config_cls(dim=4), ModelContext(N_USERS, N_ITEMS))
    cfg = TrainConfig(epochs=2, patience=0, batch_size=16, lr=0.05, seed=0, num_neg=1, loss=loss)
    return [h["loss"] for h in fit(model, ModelContext(N_USERS, N_ITEMS), block_split(), cfg, None).history]


def test_fit_trains_with_the_configs_loss():
    # with one negative, sampled softmax -log(e^p / (e^p + e^n)) = softplus(n - p) IS the BPR loss
    bpr, softmax, bce = _fit_losses("bpr"), _fit_losses("softmax"), _fit_losses("bce")
    assert softmax == pytest.approx(bpr, rel=1e-5)
    assert bce[0] != pytest.approx(bpr[0], rel=1e-3)
