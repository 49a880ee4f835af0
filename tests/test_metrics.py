"""Metrics on four users worked by hand, then cross-checked against a plain per-user version."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gpt2rec.eval.metrics import (
    average_popularity,
    beyond_accuracy,
    item_coverage,
    ranking_metrics,
    topk_hits,
    topk_items,
)

# Four users, ten items, top-3 lists.
#   A: R = {1, 4}        top-3 = [1, 2, 4] -> hits [1, 0, 1]
#   B: R = {5}           top-3 = [7, 8, 5] -> hits [0, 0, 1]
#   C: R = {2, 3, 6, 9}  top-3 = [0, 1, 7] -> hits [0, 0, 0]
#   D: R = {}            (no held-out items: skipped in every mean)
#
# @3:  A: recall 2/2 = 1, precision 2/3, hit 1, mrr 1/1,
#         DCG = 1/log2(2) + 1/log2(4) = 1.5, IDCG(min(2,3)=2) = 1 + 1/log2(3), ndcg = 1.5 / (1 + 1/log2 3)
#      B: recall 1/1 = 1, precision 1/3, hit 1, mrr 1/3, DCG = 1/log2(4) = 0.5, IDCG = 1, ndcg 0.5
#      C: all 0
#      means over A, B, C: recall 2/3, precision 1/3, hit 2/3, mrr 4/9,
#                          ndcg (1.5 / (1 + 1/log2 3) + 0.5) / 3
# @1:  A: recall 1/2, precision 1, hit 1, mrr 1, ndcg 1/1 = 1; B and C: all 0
#      means: recall 1/6, precision 1/3, hit 1/3, mrr 1/3, ndcg 1/3
HITS = np.array([[1, 0, 1], [0, 0, 1], [0, 0, 0], [0, 0, 0]], dtype=bool)
N_REL = np.array([2, 1, 4, 0])
TOPK = np.array([[1, 2, 4], [7, 8, 5], [0, 1, 7], [3, 2, 1]])
HELD = [{1, 4}, {5}, {2, 3, 6, 9}, set()]

EXPECTED = {
    "recall@3": 2 / 3,
    "precision@3": 1 / 3,
    "hit@3": 2 / 3,
    "mrr@3": 4 / 9,
    "ndcg@3": (1.5 / (1 + 1 / math.log2(3)) + 0.5) / 3,
    "recall@1": 1 / 6,
    "precision@1": 1 / 3,
    "hit@1": 1 / 3,
    "mrr@1": 1 / 3,
    "ndcg@1": 1 / 3,
}


def test_hand_worked_four_users():
    got = ranking_metrics(HITS, N_REL, ks=(1, 3))
    assert set(got) == set(EXPECTED)
    for key, value in EXPECTED.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_topk_hits_from_scores_reproduces_the_hand_case():
    # scores decreasing along each user's top-3 list; item 9 (seen) scores highest for everyone
    scores = torch.zeros(4, 10)
    for u, row in enumerate(TOPK):
        scores[u, row] = torch.tensor([3.0, 2.0, 1.0])
    scores[:, 9] = 10.0
    seen = np.zeros((4, 10), dtype=bool)
    seen[:, 9] = True
    held = np.zeros((4, 10), dtype=bool)
    for u, items in enumerate(HELD):
        held[u, list(items)] = True
    hits = topk_hits(scores, sp.csr_matrix(held), sp.csr_matrix(seen), k=3)
    assert hits.shape == (4, 3) and hits.dtype == torch.bool
    assert np.array_equal(hits.numpy(), HITS)
    assert np.array_equal(topk_items(scores, 3, seen).numpy(), TOPK)  # dense mask works too


def test_coverage_and_popularity_by_hand():
    # TOPK uses items {0, 1, 2, 3, 4, 5, 7, 8}: 8 of 10 -> 0.8; @1 uses {1, 7, 0, 3} -> 0.4
    assert item_coverage(TOPK, 10) == pytest.approx(0.8)
    pop = np.arange(10) * 10.0  # item i has popularity 10 i
    # per-user mean of top-3 popularity: A (10+20+40)/3, B (70+80+50)/3, C (0+10+70)/3, D (30+20+10)/3
    expected = np.mean([70 / 3, 200 / 3, 80 / 3, 60 / 3])
    assert average_popularity(TOPK, pop) == pytest.approx(expected)
    got = beyond_accuracy(TOPK, 10, ks=(1, 3), item_popularity=pop)
    assert got == pytest.approx({"coverage@1": 0.4, "coverage@3": 0.8, "avg_pop@1": 27.5, "avg_pop@3": expected})


def test_cutoff_wider_than_lists_errors():
    with pytest.raises(ValueError, match="1..3"):
        ranking_metrics(HITS, N_REL, ks=(5,))


def _reference(scores, held, seen, ks):
    """Straightforward per-user loops, written independently of gpt2rec.eval.metrics."""
    sums = {f"{m}@{k}": 0.0 for k in ks for m in ("ndcg", "recall", "hit", "mrr", "precision")}
    n = 0
    for u in range(scores.shape[0]):
        relevant = set(np.flatnonzero(held[u]))
        if not relevant:
            continue
        n += 1
        order = [i for i in np.argsort(-scores[u], kind="stable") if not seen[u, i]]
        for k in ks:
            top = order[:k]
            ranks = [r + 1 for r, item in enumerate(top) if item in relevant]
            sums[f"recall@{k}"] += len(ranks) / len(relevant)
            sums[f"precision@{k}"] += len(ranks) / k
            sums[f"hit@{k}"] += 1.0 if ranks else 0.0
            sums[f"mrr@{k}"] += 1.0 / ranks[0] if ranks else 0.0
            dcg = sum(1 / math.log2(r + 1) for r in ranks)
            idcg = sum(1 / math.log2(i + 1) for i in range(1, min(len(relevant), k) + 1))
            sums[f"ndcg@{k}"] += dcg / idcg
    return {key: value / n for key, value in sums.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_independent_implementation(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, ks = 40, 30, (1, 5, 10, 20)
    scores = rng.random((n_users, n_items))  # continuous: no ties
    seen = rng.random((n_users, n_items)) < 0.2
    held = (rng.random((n_users, n_items)) < 0.15) & ~seen
    held[:3] = False  # some users without held-out items
    hits = topk_hits(torch.from_numpy(scores), sp.csr_matrix(held), sp.csr_matrix(seen), k=max(ks))
    got = ranking_metrics(hits, held.sum(1), ks)
    want = _reference(scores, held, seen, ks)
    assert got == pytest.approx(want, abs=1e-12)
