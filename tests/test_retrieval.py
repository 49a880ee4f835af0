"""Memory-bounded retrieval and evaluation: block-wise exact search equals the dense answer; ANN with
an exact faiss index equals exact search; HNSW finds nearly all of the true top-10."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from gpt2rec.errors import MissingDependencyError
from gpt2rec.eval.metrics import ranking_metrics, topk_hits
from gpt2rec.eval.protocols import evaluate_full
from gpt2rec.models.bpr import BPRMF, BPRConfig
from gpt2rec.retrieval import RetrievalConfig, Retriever

N_USERS, N_ITEMS = 40, 70


def _model(item_bias=True, dim=8, seed=0):
    torch.manual_seed(seed)
    model = BPRMF(BPRConfig(dim=dim, item_bias=item_bias), N_USERS, N_ITEMS).eval()
    if item_bias:
        torch.nn.init.normal_(model.item_bias.weight)
    return model


class ScoresOnly(torch.nn.Module):
    """The same scores without factors: retrieval must fall back to `score_users`."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.n_users, self.n_items, self.config = inner, inner.n_users, inner.n_items, None

    def score_users(self, users):
        return self.inner.score_users(users)


def _seen(seed=1, density=0.2):
    return sp.random(N_USERS, N_ITEMS, density=density, format="csr", random_state=seed, dtype=np.float32)


def _dense_topk(model, seen, k):
    with torch.no_grad():
        scores = model.score_users(torch.arange(N_USERS))  # (U, I)
    scores = scores.masked_fill(torch.from_numpy(seen.toarray() != 0), float("-inf"))
    top = torch.topk(scores, k, dim=1)
    return top.indices.numpy(), top.values.numpy()


@pytest.mark.parametrize("budget", [1, 13, 10_000])
def test_blockwise_exact_equals_dense(budget):
    model, seen = _model(), _seen()
    want_i, want_s = _dense_topk(model, seen, 10)
    users = np.arange(N_USERS)
    for m in (model, ScoresOnly(model)):
        retriever = Retriever(m, RetrievalConfig(mode="exact", budget=budget))
        assert retriever.kind == ("exact-factors" if m is model else "exact")
        items, scores = retriever.topk(users, 10, seen)
        np.testing.assert_array_equal(items, want_i)
        np.testing.assert_allclose(scores, want_s, rtol=1e-5, atol=1e-6)
        assert not (seen[users[:, None], items].toarray() != 0).any()  # never a seen item


def test_chunked_evaluation_equals_dense_reference():
    model = _model()
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"user": rng.integers(0, N_USERS, 300), "item": rng.integers(0, N_ITEMS, 300)})
    target = pd.DataFrame({"user": rng.integers(0, N_USERS, 120), "item": rng.integers(0, N_ITEMS, 120)})
    small = evaluate_full(model, target, train, N_USERS, N_ITEMS, (5, 10), batch_size=3,
                          retrieval=RetrievalConfig(budget=1))  # fmt: skip
    big = evaluate_full(model, target, train, N_USERS, N_ITEMS, (5, 10))
    assert small == big
    # independent dense reference from the pure metric functions
    seen = sp.csr_matrix((np.ones(len(train)), (train["user"], train["item"])), shape=(N_USERS, N_ITEMS)) != 0
    held = sp.csr_matrix((np.ones(len(target)), (target["user"], target["item"])), shape=(N_USERS, N_ITEMS)) != 0
    held = (held.astype(int) - held.multiply(seen).astype(int)) != 0
    n_rel = np.asarray(held.sum(1)).ravel()
    users = np.flatnonzero(n_rel)
    with torch.no_grad():
        scores = model.score_users(torch.from_numpy(users))
    hits = topk_hits(scores, held[users], seen[users].toarray(), k=10).numpy()
    ref = ranking_metrics(hits, n_rel[users], (5, 10))
    for key, value in ref.items():
        assert small[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("density", [0.2, 0.8])  # 0.8: ~56 seen of 70, so a second, wider search runs
def test_ann_with_exact_index_equals_exact_search(density):
    pytest.importorskip("faiss")
    model, seen = _model(), _seen(density=density)
    users = np.arange(N_USERS)
    exact = Retriever(model, RetrievalConfig(mode="exact")).topk(users, 10, seen)
    ann = Retriever(model, RetrievalConfig(mode="ann", index="flat"))
    assert ann.kind == "ann"
    got = ann.topk(users, 10, seen)
    np.testing.assert_allclose(got[1], exact[1], rtol=1e-5, atol=1e-6)  # -inf where a user has < 10 unseen
    finite = np.isfinite(exact[1])
    assert finite.any() and (density < 0.5 or not finite.all())
    np.testing.assert_array_equal(got[0][finite], exact[0][finite])  # the -inf padding may name any item


def test_hnsw_finds_the_true_top10_and_auto_switches_at_the_threshold():
    pytest.importorskip("faiss")
    model, seen = _model(dim=16), _seen()
    users = np.arange(N_USERS)
    exact, _ = Retriever(model, RetrievalConfig(mode="exact")).topk(users, 10, seen)
    hnsw = Retriever(model, RetrievalConfig(ann_threshold=N_ITEMS))  # auto, at the threshold: ANN
    assert hnsw.kind == "ann"
    got, _ = hnsw.topk(users, 10, seen)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact)])
    assert recall >= 0.95
    assert Retriever(model, RetrievalConfig(ann_threshold=N_ITEMS + 1)).kind == "exact-factors"
    few = RetrievalConfig(ann_threshold=N_ITEMS, ann_min_queries=100)
    assert Retriever(model, few, queries=99).kind == "exact-factors"  # index not worth building
    assert Retriever(model, few, queries=100).kind == "ann"
    assert Retriever(ScoresOnly(model), RetrievalConfig(mode="ann")).kind == "exact"  # no factors: exact


def test_missing_faiss_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(MissingDependencyError, match=r"gpt2rec\[scale\]"):
        Retriever(_model(), RetrievalConfig(mode="ann"))
