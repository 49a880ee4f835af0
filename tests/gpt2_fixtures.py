"""Shared data and helpers of the GPT-2 model tests: a tiny metadata dataset (8 users, 6 films) and an
enhanced model built on it with the in-process tiny GPT-2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from gpt2rec.data.dataset import Dataset
from gpt2rec.models.base import ModelContext
from gpt2rec.models.enhanced import EnhancedConfig
from gpt2rec.models.enhanced_build import build as build_enhanced

OCC = ["engineer", "student", "writer", "retired"]
GENRES = [
    ["Action", "Sci-Fi"],
    ["Comedy"],
    ["Drama"],
    ["Action", "Thriller"],
    ["Sci-Fi", "Adventure"],
    ["Comedy", "Romance"],
]


def meta_data():
    """8 users (user 7 has no training interaction), 6 items (item 5 never in train)."""
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, 9),
            "gender": list("MFMFMFMF"),
            "age": [23, 17, 40, 61, 30, 25, 19, 52],
            "occupation": [OCC[i % 4] for i in range(8)],
            "zip_code": ["00000"] * 8,
        }
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(1, 7),
            "title": [
                "Star Wars (1977)",
                "Airplane! (1980)",
                "Fargo (1996)",
                "Heat (1995)",
                "Alien (1979)",
                "Clueless (1995)",
            ],
            "year": pd.array([1977, 1980, 1996, 1995, 1979, 1995], "Int64"),
            "genres": GENRES,
        }
    )
    pairs = [(u, i) for u in range(7) for i in range(5) if (u + i) % 2 == 0]
    inter = pd.DataFrame({"user_id": [u + 1 for u, _ in pairs], "item_id": [i + 1 for _, i in pairs]})
    dataset = Dataset.from_frames("tiny-meta", inter, users, items)
    return dataset, dataset.interactions


def ctx_for(dataset, train):
    return ModelContext(dataset.n_users, dataset.n_items, dataset, train, torch.device("cpu"))


def enhanced(tiny_lm, **kw):
    dataset, train = meta_data()
    config = EnhancedConfig(lm=tiny_lm, text_cache=False, dim=8, n_heads=2, **kw)
    torch.manual_seed(0)
    return build_enhanced(config, ctx_for(dataset, train)), dataset, train


def step(model, users, pos, neg, seed: int = 0):
    """One training step's forward and backward, driven through the model's public step hooks."""
    from gpt2rec.losses import bpr_loss

    model.on_step_start(torch.Generator().manual_seed(seed))
    loss = bpr_loss(model.score_pairs(users, pos), model.score_pairs(users, neg)) + model.extra_loss(users, pos, neg)
    loss.backward()
    model.on_step_end()
    return loss


def nudge_lm(model, by: float = 0.05):
    """Change the LM's trainable tensors in place, as an optimizer step would."""
    with torch.no_grad():
        for p in model.text.lm.parameters():
            p.add_(by)


BATCH = (torch.tensor([0, 1, 2, 0]), torch.tensor([0, 1, 2, 2]), torch.tensor([1, 0, 5, 3]))
