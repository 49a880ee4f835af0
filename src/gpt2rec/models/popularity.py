"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .base import ModelContext, ModelSpec
from .ids import checked_ids


@dataclass
class PopularityConfig:
    """No hyperparameters: the score of an item is its number of training interactions."""


class Popularity(nn.Module):
    def __init__(self, config: PopularityConfig, n_users: int, n_items: int):
        super().__init__()
        self.config = config
        self.n_users = n_users
        self.n_items = n_items
        self.register_buffer("counts", torch.zeros(n_items))  # (I,) float32

    @checked_ids
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.counts.unsqueeze(0).expand(len(users), -1)  # (B, I)

    @checked_ids
    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.counts[items.to(self.counts.device)]  # (B,)


def build(config: PopularityConfig, ctx: ModelContext) -> Popularity:
    return Popularity(config, ctx.n_users, ctx.n_items).to(ctx.device)


@torch.no_grad()
def fit(model: Popularity, ctx: ModelContext) -> None:
    counts = np.bincount(ctx.train["item"].to_numpy(np.int64), minlength=ctx.n_items)
    model.counts.copy_(torch.as_tensor(counts, dtype=torch.float32))


SPEC = ModelSpec(
    name="popularity",
    config_cls=PopularityConfig,
    build=build,
    fit=fit,
    description="most-popular items (training interaction counts); non-personalised floor",
)
