"""EASE and ItemKNN against weights worked out by hand on 4 users x 4 items, and their checkpoints
(built at the saved size of the users' histories, then a plain strict load)."""

from __future__ import annotations

import pandas as pd
import torch

from gpt2rec.models.base import ModelContext
from gpt2rec.models.ease import EASEConfig
from gpt2rec.models.ease import build as build_ease
from gpt2rec.models.ease import fit as fit_ease
from gpt2rec.models.itemknn import ItemKNNConfig
from gpt2rec.models.itemknn import build as build_knn
from gpt2rec.models.itemknn import fit as fit_knn


def ctx_of(pairs) -> ModelContext:
    train = pd.DataFrame(pairs, columns=["user", "item"])
    return ModelContext(4, 4, None, train)


def reload(model, build, config):
    again = build(config, ModelContext(4, 4, saved=model.checkpoint_meta()))
    again.load_state_dict(model.state_dict(), strict=True)
    return again


def test_ease_weights_by_hand():
    # items {0, 1} and {2, 3} never meet, so G = X^T X + I is block diagonal:
    #   block 1 = [[3, 1], [1, 2]] -> P = [[2, -1], [-1, 3]] / 5;  block 2 = [[2, 1], [1, 3]] -> P = [[3, -1], [-1, 2]] / 5
    #   B_ij = -P_ij / P_jj: B_01 = (1/5) / (3/5) = 1/3, B_10 = (1/5) / (2/5) = 1/2, B_23 = 1/2, B_32 = 1/3
    ctx = ctx_of([(0, 0), (0, 1), (1, 0), (2, 2), (2, 3), (3, 3)])
    model = build_ease(EASEConfig(reg=1.0), ctx)
    fit_ease(model, ctx)
    weights = torch.tensor([[0, 1 / 3, 0, 0], [1 / 2, 0, 0, 0], [0, 0, 0, 1 / 2], [0, 0, 1 / 3, 0]])
    torch.testing.assert_close(model.weight, weights)
    # scores = X B: user 1 has item 0 only, user 3 item 3 only
    expected = torch.tensor([[1 / 2, 1 / 3, 0, 0], [0, 1 / 3, 0, 0], [0, 0, 1 / 3, 1 / 2], [0, 0, 1 / 3, 0]])
    torch.testing.assert_close(model.score_users(torch.arange(4)), expected)
    torch.testing.assert_close(
        model.score_pairs(torch.tensor([1, 3]), torch.tensor([1, 2])), torch.tensor([1 / 3, 1 / 3])
    )
    assert torch.equal(
        reload(model, build_ease, model.config).score_users(torch.arange(4)), model.score_users(torch.arange(4))
    )


def test_itemknn_weights_by_hand():
    # users of each item: i0 {0, 1}, i1 {0, 1}, i2 {1, 2}, i3 {2, 3} (two each), so
    # sim(i, j) = |U_i & U_j| / (sqrt 2 sqrt 2): s01 = 1, s02 = s12 = s23 = 1/2, s03 = s13 = 0
    ctx = ctx_of([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 2), (2, 3), (3, 3)])
    model = build_knn(ItemKNNConfig(k=3), ctx)
    fit_knn(model, ctx)
    sim = torch.tensor([[0, 1, 0.5, 0], [1, 0, 0.5, 0], [0.5, 0.5, 0, 0.5], [0, 0, 0.5, 0]])
    dense = torch.zeros(4, 4).scatter_(1, model.neighbors, model.weights)  # row i: i's neighbours
    torch.testing.assert_close(dense, sim)
    # score(u, i) = sum of sim(i, j) over u's items j
    expected = torch.tensor([[1, 1, 1, 0], [1.5, 1.5, 1, 0.5], [0.5, 0.5, 0.5, 0.5], [0, 0, 0.5, 0]])
    torch.testing.assert_close(model.score_users(torch.arange(4)), expected)
    users, items = torch.arange(4).repeat_interleave(4), torch.arange(4).repeat(4)
    torch.testing.assert_close(model.score_pairs(users, items).view(4, 4), expected)
    # shrinkage adds to the denominator: s01 = 2 / (2 + 2) = 1/2
    shrunk = build_knn(ItemKNNConfig(k=3, shrinkage=2.0), ctx)
    fit_knn(shrunk, ctx)
    torch.testing.assert_close(shrunk.score_users(torch.tensor([3])), torch.tensor([[0, 0, 0.25, 0]]))
    again = reload(model, build_knn, model.config)
    assert torch.equal(again.score_users(torch.arange(4)), model.score_users(torch.arange(4)))
    with torch.no_grad():  # weights changed in place: scores follow (no stale similarity matrix)
        again.weights.mul_(2.0)
    torch.testing.assert_close(again.score_users(torch.arange(4)), 2 * expected)
