"""Every ranking breaks ties by the lower index (docs/metrics.md): `ranked_topk` against a plain sort,
and the paths that rank (the metrics' top-k, the retriever's item blocks, evaluation) on tied scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt2rec.eval.metrics import topk_items
from gpt2rec.eval.protocols import evaluate_full
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


def test_evaluation_of_a_model_that_ties_everything_by_hand():
    """6 items all tied: the top 3 is items 0, 1, 2 for everyone. User 0's truth {2}: a hit at rank 3,
    ndcg@3 = (1 / log2 4) / 1 = 0.5; user 1's truth {5}: no hit. Means: ndcg@3 0.25, recall@3 0.5."""
    model = _flat_model(n_users=2, n_items=6)
    train = pd.DataFrame({"user": [0, 1], "item": [4, 4]})
    target = pd.DataFrame({"user": [0, 1], "item": [2, 5]})
    got = evaluate_full(model, target, train, 2, 6, (3,))
    assert got["ndcg@3"] == pytest.approx(0.25) and got["recall@3"] == pytest.approx(0.5)
