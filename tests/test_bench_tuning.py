"""Tuning a baseline on validation (coordinate search) and the loss named by the training config."""

from __future__ import annotations

import pytest
import torch

from gpt2rec.bench import tuning
from gpt2rec.models.registry import get_spec
from gpt2rec.train.loop import TrainConfig, fit


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
