"""Ranking metrics as pure functions of a top-K hit matrix (RecBole definitions).

For user u with held-out set R_u (|R_u| = n_relevant) and a top-K list whose rank-r entry is a hit
when it lies in R_u (ranks start at 1):

- recall@K    = hits / |R_u|
- precision@K = hits / K
- hit@K       = 1 if hits > 0 else 0
- mrr@K       = 1 / (rank of the first hit), 0 if no hit in the top K
- ndcg@K      = DCG / IDCG, DCG = sum over hit ranks r of 1 / log2(r + 1),
                IDCG = sum_{i=1..min(|R_u|, K)} 1 / log2(i + 1)

Each is averaged over the users with |R_u| >= 1 (users without held-out items are skipped).
Beyond accuracy, over the top-K lists of the evaluated users:

- coverage@K = |union of the top-K lists| / n_items
- avg_pop@K  = mean over users of the mean popularity (train interaction count) of their top-K items

Key names are lower case, `<metric>@<K>`. See docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp
import torch

from ..utils.ranking import ranked_topk

RANKING_METRICS = ("ndcg", "recall", "hit", "mrr", "precision")


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def mask_seen(scores: torch.Tensor, seen) -> torch.Tensor:
    """A copy of `scores` (U, I) with seen items set to -inf; `seen` is a (U, I) bool tensor/array,
    a scipy sparse matrix with the same rows, or None."""
    if seen is None:
        return scores
    if sp.issparse(seen):
        coo = sp.coo_matrix(seen)
        rows = torch.from_numpy(coo.row.astype(np.int64)).to(scores.device)
        cols = torch.from_numpy(coo.col.astype(np.int64)).to(scores.device)
        out = scores.clone()
        out[rows, cols] = float("-inf")
        return out
    seen = torch.as_tensor(seen, dtype=torch.bool, device=scores.device)
    return scores.masked_fill(seen, float("-inf"))


def topk_items(scores: torch.Tensor, k: int, seen=None) -> torch.Tensor:
    """(U, I) scores -> (U, min(k, I)) item indices, best first, never a seen item (unless a user
    has fewer than k unseen items). Ties go to the lower item index (`ranked_topk`)."""
    scores = torch.as_tensor(scores)
    return ranked_topk(mask_seen(scores, seen), k)[1]  # (U, K)


def hits_from_topk(topk: torch.Tensor, held_out) -> torch.Tensor:
    """(U, K) item indices + held-out (U, I) bool/sparse -> (U, K) bool: is the item held out?"""
    if sp.issparse(held_out):
        dense = torch.from_numpy(sp.csr_matrix(held_out).toarray() != 0).to(topk.device)
    else:
        dense = torch.as_tensor(held_out, dtype=torch.bool, device=topk.device)
    return dense.gather(1, topk)  # (U, K)


def topk_hits(scores: torch.Tensor, held_out, seen=None, k: int = 10) -> torch.Tensor:
    """(U, I) scores, held-out rows (U, I), seen mask (U, I) -> (U, K) bool hit matrix."""
    return hits_from_topk(topk_items(scores, k, seen), held_out)


def ranking_metrics(hits, n_relevant, ks: Iterable[int] = (5, 10, 20)) -> dict[str, float]:
    """(U, K) bool hits, (U,) held-out counts -> {"ndcg@K", "recall@K", "hit@K", "mrr@K",
    "precision@K"} for each K in `ks` (K <= hits.shape[1]); means over users with n_relevant >= 1.
    Hits beyond a user's n_relevant are impossible by construction and not checked."""
    hits = _numpy(hits).astype(bool)
    n_rel = _numpy(n_relevant).astype(np.int64)
    if hits.ndim != 2 or n_rel.shape != (hits.shape[0],):
        raise ValueError(f"hits must be (U, K) and n_relevant (U,); got {hits.shape} and {n_rel.shape}")
    ks = sorted(set(int(k) for k in ks))
    if ks and (ks[0] < 1 or ks[-1] > hits.shape[1]):
        raise ValueError(f"cutoffs {ks} must lie in 1..{hits.shape[1]} (the width of the top-K lists)")
    keep = n_rel > 0
    hits, n_rel = hits[keep], n_rel[keep]
    out: dict[str, float] = {}
    if len(n_rel) == 0:
        return {f"{m}@{k}": 0.0 for k in ks for m in RANKING_METRICS}
    width = hits.shape[1]
    discount = 1.0 / np.log2(np.arange(2, width + 2))  # (K,) 1/log2(r+1) for r = 1..K
    ideal = np.cumsum(discount)  # (K,) IDCG for |R_u| = 1..K
    for k in ks:
        h = hits[:, :k]  # (U, k)
        n_hit = h.sum(axis=1)
        first = np.where(h.any(axis=1), h.argmax(axis=1) + 1, 0)  # rank of first hit, 0 = none
        dcg = (h * discount[:k]).sum(axis=1)
        idcg = ideal[np.minimum(n_rel, k) - 1]
        out[f"ndcg@{k}"] = float(np.mean(dcg / idcg))
        out[f"recall@{k}"] = float(np.mean(n_hit / n_rel))
        out[f"hit@{k}"] = float(np.mean(n_hit > 0))
        out[f"mrr@{k}"] = float(np.mean(np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)))
        out[f"precision@{k}"] = float(np.mean(n_hit / k))
    return out


def item_coverage(topk_items, n_items: int) -> float:
    """Share of the catalogue that appears in at least one top-K list."""
    topk = _numpy(topk_items)
    return float(len(np.unique(topk)) / n_items) if topk.size else 0.0


def average_popularity(topk_items, item_popularity) -> float:
    """Mean over users of the mean popularity of their top-K items."""
    topk = _numpy(topk_items)
    if topk.size == 0:
        return 0.0
    pop = _numpy(item_popularity).astype(np.float64)
    return float(pop[topk].mean(axis=1).mean())


def beyond_accuracy(topk_items, n_items: int, ks: Iterable[int], item_popularity=None) -> dict[str, float]:
    """{"coverage@K"} (and {"avg_pop@K"} when popularity is given) for each K in `ks`."""
    topk = _numpy(topk_items)
    out = {}
    for k in sorted(set(int(k) for k in ks)):
        out[f"coverage@{k}"] = item_coverage(topk[:, :k], n_items)
        if item_popularity is not None:
            out[f"avg_pop@{k}"] = average_popularity(topk[:, :k], item_popularity)
    return out
