"""Rankings break ties by the lower index (docs/metrics.md): `ranked_topk` against a plain sort, the
metrics' top-k and the retriever's item blocks on tied scores; evaluation ranks ties in a fixed shuffle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt2rec.eval.metrics import topk_items
from gpt2rec.eval.protocols import evaluate_candidates, evaluate_full
from gpt2rec.eval.tie_order import tie_order
from gpt2rec.models.bpr import BPRMF, BPRConfig
from gpt2rec.retrieval import RetrievalConfig, Retriever
from gpt2rec.utils.ranking import ranked_topk


def reference(row: list[float], k: int) -> list[int]:
    return sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 4).flatmap(
        lambda n: st.lists(
            st.lists(st.sampled_from([0.0, 1.0, 2.0, -np.inf]), min_size=n, max_size=n), min_size=1, max_size=5
        )
    ),
    k=st.integers(0, 6),
)
def test_ranked_topk_is_a_sort_by_score_then_index(rows, k):
    scores = torch.tensor(rows)  # (R, N) few distinct values: ties everywhere
    values, indices = ranked_topk(scores, k)
    assert indices.tolist() == [reference(r, k) for r in rows]
    assert torch.equal(values, scores.gather(1, indices))


def test_ten_equal_scores_rank_from_the_first_index():
    """torch.topk gave [8, 6, 7] here (and [3, 4, 1, 0, 2] over 5000 zeros)."""
    assert topk_items(torch.zeros(1, 10), 3).tolist() == [[0, 1, 2]]
    assert topk_items(torch.zeros(2, 5000), 5).tolist() == [[0, 1, 2, 3, 4]] * 2
    assert ranked_topk(torch.tensor([1.0, 3.0, 3.0, 2.0, 3.0]), 4)[1].tolist() == [1, 2, 4, 3]


def _flat_model(n_users=3, n_items=6):
    """Every item's vector and bias equal: every score ties."""
    model = BPRMF(BPRConfig(dim=4), n_users, n_items).eval()
    with torch.no_grad():
        model.item_emb.weight.fill_(0.5)
        if model.item_bias is not None:
            model.item_bias.weight.zero_()
    return model


@pytest.mark.parametrize("budget", [1, 4, 10_000])  # 1 and 4: item blocks, ties across blocks
def test_the_retriever_ranks_tied_items_by_index_in_blocks(budget):
    model = _flat_model(n_items=6)
    seen = sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]], dtype=np.float32))
    items, _ = Retriever(model, RetrievalConfig(mode="exact", budget=budget)).topk(np.arange(3), 3, seen)
    assert items.tolist() == [[0, 2, 3], [0, 1, 2], [3, 4, 5]]


def test_evaluation_ranks_ties_in_the_fixed_shuffle_not_by_item_id():
    """6 items all tied, item 4 seen by both users. Evaluation ranks ties in tie_order(6) = 3, 2, 5, 4, 0,
    1, so the top 3 is items 3, 2, 5 (by index it would be 0, 1, 2). User 0's truth {2}: a hit at rank
    2, ndcg@3 = 1 / log2 3 = 0.6309; user 1's truth {5}: a hit at rank 3, 1 / log2 4 = 0.5.
    Means: ndcg@3 0.5655, recall@3 1.0."""
    assert tie_order(6).tolist() == [3, 2, 5, 4, 0, 1]
    model = _flat_model(n_users=2, n_items=6)
    train = pd.DataFrame({"user": [0, 1], "item": [4, 4]})
    target = pd.DataFrame({"user": [0, 1], "item": [2, 5]})
    for budget in (1, 10_000):  # item blocks of one, and the whole catalogue at once
        got = evaluate_full(model, target, train, 2, 6, (3,), retrieval=RetrievalConfig(budget=budget))
        assert got["ndcg@3"] == pytest.approx((1 / np.log2(3) + 0.5) / 2) and got["recall@3"] == 1.0


@pytest.mark.parametrize("candidates", [None, np.arange(0, 2000, 2)])
def test_a_model_that_ties_everything_gets_no_credit_from_low_ids(candidates):
    """Every user's truth is the 10 lowest candidate IDs. Ranked by index, a constant model would score
    ndcg@10 = 1; in the shuffle it is near random (10 of 1000 candidates: about 0.01)."""
    model = _flat_model(n_users=20, n_items=2000)
    low = np.arange(2000)[:20:2] if candidates is not None else np.arange(10)
    target = pd.DataFrame({"user": np.repeat(np.arange(20), 10), "item": np.tile(low, 20)})
    if candidates is None:
        got = evaluate_full(model, target, None, 20, 2000, (10,))
    else:
        got = evaluate_candidates(model, target, None, candidates, 20, 2000, (10,))
    assert got["ndcg@10"] < 0.1
