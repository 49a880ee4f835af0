"""Evaluation protocols on fixed-score models whose answers are known."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from gpt2rec.data.splits import Split, SplitConfig
from gpt2rec.eval.protocols import (
    evaluate_candidates,
    evaluate_full,
    evaluate_part,
    evaluate_sampled,
    sample_eval_negatives,
)


class FixedScores(torch.nn.Module):
    """score(u, i) = table[u, i]; records the grad mode scoring ran under."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(torch.as_tensor(table, dtype=torch.float32))
        self.n_users, self.n_items = self.table.shape
        self.config = None
        self.grad_during_scoring = []

    def score_users(self, users):
        self.grad_during_scoring.append(torch.is_grad_enabled())
        return self.table[users]  # (B, I)

    def score_pairs(self, users, items):
        return self.table[users, items]  # (B,)


def _df(pairs):
    return pd.DataFrame({"user": [p[0] for p in pairs], "item": [p[1] for p in pairs]})


# 3 users, 6 items; every user scores items in the order 0 > 1 > 2 > 3 > 4 > 5.
#   train: u0 {0}, u1 {0, 1}, u2 {5}; valid: u0 {1}; test: u0 {2}, u1 {5}, u2 {0, 3}
# Test ranking masks train + valid:
#   u0 list [2, 3, 4, 5] -> hit at rank 1          ndcg@2 = 1,   recall@2 = 1,   mrr@2 = 1
#   u1 list [2, 3, 4, 5] -> item 5 at rank 4       @2: all 0
#   u2 list [0, 1, 2, 3, 4] -> hits at ranks 1, 4  @2: recall 1/2, precision 1/2, hit 1, mrr 1,
#                                                  ndcg = 1 / (1 + 1/log2 3)
SCORES = np.tile(np.arange(6, 0, -1, dtype=np.float32), (3, 1))
TRAIN = _df([(0, 0), (1, 0), (1, 1), (2, 5)])
VALID = _df([(0, 1)])
TEST = _df([(0, 2), (1, 5), (2, 0), (2, 3)])


def test_full_ranking_known_answer():
    model = FixedScores(SCORES)
    model.train()
    got = evaluate_full(model, TEST, [TRAIN, VALID], 3, 6, ks=(2,), item_popularity=np.arange(6))
    assert got["recall@2"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert got["precision@2"] == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert got["hit@2"] == pytest.approx(2 / 3)
    assert got["mrr@2"] == pytest.approx(2 / 3)
    assert got["ndcg@2"] == pytest.approx((1 + 0 + 1 / (1 + 1 / math.log2(3))) / 3)
    # top-2 lists: [2, 3], [2, 3], [0, 1] -> coverage 4/6; avg popularity ((2+3)/2*2 + (0+1)/2)/3
    assert got["coverage@2"] == pytest.approx(4 / 6)
    assert got["avg_pop@2"] == pytest.approx((2.5 + 2.5 + 0.5) / 3)
    assert got["n_users"] == 3
    assert model.grad_during_scoring == [False]
    assert model.training  # mode restored


def test_seen_items_never_recommended():
    rng = np.random.default_rng(0)
    n_users, n_items = 50, 40
    scores = rng.random((n_users, n_items)).astype(np.float32)
    pairs = np.unique(rng.integers(0, n_users * n_items, 800))
    seen = _df(list(zip(pairs // n_items, pairs % n_items)))
    # the model loves exactly the seen items; the held-out item is each user's best unseen item
    table = scores + 10 * np.isin(np.arange(n_users * n_items), pairs).reshape(n_users, n_items)
    best = np.where(table >= 10, -1, table).argmax(1)
    target = _df(list(enumerate(best)))
    got = evaluate_full(FixedScores(table), target, seen, n_users, n_items, ks=(1, 5), batch_size=7)
    assert got["hit@1"] == 1.0 and got["ndcg@5"] == 1.0 and got["n_users"] == n_users


def test_held_out_item_also_seen_is_dropped():
    # u0 test {0, 2} but 0 is in train: R_u0 = {2} only -> recall@1 = 1, not 1/2
    got = evaluate_full(FixedScores(SCORES), _df([(0, 0), (0, 2)]), _df([(0, 0), (0, 1)]), 3, 6, ks=(1,))
    assert got["recall@1"] == 1.0 and got["n_users"] == 1


def test_sampled_protocol_by_hand():
    # u0: target item 2 (score 0.5) vs negatives 0, 1, 3 scoring 0.9, 0.1, 0.5 -> the tie counts
    #     against the model: rank = 1 + #{>= 0.5} = 3 -> hit@1 0, hit@3 1, ndcg@3 = 1/log2(4) = 0.5
    # u1: target item 4 (score 0.8) vs negatives 0, 1, 2 all lower -> rank 1 -> hit 1, ndcg 1
    table = np.array([[0.9, 0.1, 0.5, 0.5, 0.0], [0.3, 0.2, 0.1, 0.0, 0.8]])
    negatives = np.array([[0, 1, 3], [0, 1, 2]])
    got = evaluate_sampled(FixedScores(table), _df([(0, 2), (1, 4)]), negatives, ks=(1, 3))
    assert got == pytest.approx({"hit@1": 0.5, "ndcg@1": 0.5, "hit@3": 1.0, "ndcg@3": 0.75, "n_users": 2})


def test_sampled_constant_scorer_gets_nothing():
    model = FixedScores(np.zeros((2, 5)))
    got = evaluate_sampled(model, _df([(0, 2), (1, 4)]), np.array([[0, 1, 3], [0, 1, 2]]), ks=(3,))
    assert got["hit@3"] == 0.0


def test_sample_eval_negatives_avoid_every_interaction():
    rng = np.random.default_rng(0)
    n_users, n_items = 20, 400
    pairs = np.unique(rng.integers(0, n_users * n_items, 1500))
    everything = _df(list(zip(pairs // n_items, pairs % n_items)))
    target = everything.groupby("user").tail(1)
    target = target[target["user"] != 7]  # user 7 has no target
    a = sample_eval_negatives(target, everything, n_items, n_neg=99, seed=1, n_users=n_users)
    b = sample_eval_negatives(target, everything, n_items, n_neg=99, seed=1, n_users=n_users)
    c = sample_eval_negatives(target, everything, n_items, n_neg=99, seed=2, n_users=n_users)
    assert a.shape == (n_users, 99) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert (a[7] == -1).all()
    interacted = np.zeros((n_users, n_items), dtype=bool)
    interacted[pairs // n_items, pairs % n_items] = True
    rows = np.delete(np.arange(n_users), 7)
    assert not interacted[rows[:, None], a[rows]].any()
    assert all(len(set(r)) == 99 for r in a[rows].tolist())


def test_candidates_rank_only_among_cold_items():
    # candidates {3, 4, 5}; u0 test {4}, u1 test {5} and {1} (1 is not a candidate: dropped)
    # within candidates the order is 3 > 4 > 5: u0 hit at rank 2, u1 item 5 at rank 3
    got = evaluate_candidates(
        FixedScores(SCORES), _df([(0, 4), (1, 5), (1, 1)]), _df([(0, 0)]), [5, 3, 4], ks=(1, 2, 5)
    )
    assert got["hit@1"] == 0.0 and got["hit@2"] == pytest.approx(0.5) and got["hit@5"] == 1.0
    assert got["mrr@5"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert got["coverage@1"] == pytest.approx(1 / 3) and got["coverage@5"] == 1.0
    assert got["n_users"] == 2


def test_a_cold_item_split_ranks_each_part_among_its_own_new_items():
    # items 0-2 known (train), 3-5 new: valid holds new item 4, test new items 3 and 5. Scores favour
    # the known items (0 > 1 > ... > 5), so among every item no new item reaches a top 1.
    train, valid, test = _df([(0, 0), (1, 1), (2, 2)]), _df([(0, 4)]), _df([(1, 5), (2, 3)])
    split = Split(train, valid, test, SplitConfig(kind="cold-item"))
    split.cold_items = np.array([3, 4, 5])
    model = FixedScores(SCORES)
    # valid: candidates {4} only -> u0 hit at rank 1
    assert evaluate_part(model, split, "valid", 3, 6, ks=(1,))["hit@1"] == 1.0
    # test: candidates {3, 5}: u2's item 3 at rank 1, u1's item 5 at rank 2
    got = evaluate_part(model, split, "test", 3, 6, ks=(1,))
    assert got["hit@1"] == pytest.approx(0.5) and got["n_users"] == 2
    assert evaluate_full(model, test, [train, valid], 3, 6, ks=(1,))["hit@1"] == 0.0  # what it was before
    # the training loop's default validation (early stopping) follows the split too
    from types import SimpleNamespace

    from gpt2rec.train.loop import TrainConfig, split_validation

    validate = split_validation(SimpleNamespace(n_users=3, n_items=6), split, TrainConfig(metric="hit@1"))
    assert validate(model)["hit@1"] == 1.0
    # any other split ranks every item
    split.cold_items = None
    assert evaluate_part(model, split, "test", 3, 6, ks=(1,))["hit@1"] == 0.0
