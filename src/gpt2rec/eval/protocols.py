"""Evaluation protocols: full ranking, sampled ranking (NCF) and candidate-set ranking (cold items);
`evaluate_part` picks the one a split's kind calls for.

All take a model with the `Recommender` contract, run under `torch.no_grad()` in eval mode (restoring the previous mode), and score on the model's
device. Key names match `gpt2rec.eval.metrics`: `ndcg@K`, `recall@K`, `hit@K`, `mrr@K`,
`precision@K`, `coverage@K`, `avg_pop@K`, plus `n_users` (users evaluated).

Held-out items that are also in `seen` are dropped from R_u: they are masked, so never rankable.
Equal scores rank in a fixed random order of the items (`tie_order`), never by item ID.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ..data.sampling import NegativeSampler, sample_distinct
from ..data.splits import Split, interaction_matrix
from ..retrieval import RetrievalConfig, Retriever, member
from ..utils.device import model_device
from ..utils.ranking import ranked_topk
from .metrics import beyond_accuracy, ranking_metrics
from .tie_order import ShuffledItems, tie_order

Seen = pd.DataFrame | Sequence[pd.DataFrame] | sp.spmatrix | None


@contextmanager
def eval_mode(model):
    """Eval mode and no_grad; training mode restored afterwards."""
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_training:
            model.train()


def seen_matrix(seen: Seen, n_users: int, n_items: int) -> sp.csr_matrix:
    """One binary CSR of everything in `seen`: a DataFrame, several DataFrames, a sparse matrix."""
    if seen is None:
        return sp.csr_matrix((n_users, n_items), dtype=np.float32)
    if sp.issparse(seen):
        out = sp.csr_matrix(seen, dtype=np.float32)
    else:
        frames = [seen] if isinstance(seen, pd.DataFrame) else list(seen)
        if not frames:
            return sp.csr_matrix((n_users, n_items), dtype=np.float32)
        out = interaction_matrix(pd.concat([f[["user", "item"]] for f in frames]), n_users, n_items)
    if out.shape != (n_users, n_items):
        raise ValueError(f"seen matrix has shape {out.shape}, expected {(n_users, n_items)}")
    out.data[:] = 1.0
    return out


def evaluate_full(
    model,
    target_df: pd.DataFrame,
    seen: Seen,
    n_users: int,
    n_items: int,
    ks: Iterable[int] = (5, 10, 20),
    batch_size: int = 512,
    item_popularity=None,
    retrieval: RetrievalConfig | None = None,
) -> dict[str, float]:
    """Rank every item for each user with held-out items in `target_df`.

    `seen`: interactions to exclude from ranking (train; for test also valid). Returns the ranking
    metrics, coverage@K (and avg_pop@K when `item_popularity` (n_items,) is given) and n_users.
    Memory is bounded: users go `batch_size` at a time through a `Retriever` (`retrieval`: exact
    search by default, ANN for inner-product models from `ann_threshold` items), which never holds a
    dense users x items matrix and keeps a running top-k over item blocks where the model allows.
    """
    return _ranked_eval(model, target_df, seen, n_users, n_items, ks, batch_size, item_popularity, None, retrieval)


def evaluate_candidates(
    model,
    target_df: pd.DataFrame,
    seen: Seen,
    candidate_items,
    n_users: int | None = None,
    n_items: int | None = None,
    ks: Iterable[int] = (5, 10, 20),
    batch_size: int = 512,
    item_popularity=None,
) -> dict[str, float]:
    """Rank only among `candidate_items` (e.g. every cold test item for the cold-item protocol).

    Held-out items outside the candidates are dropped; coverage@K is relative to the candidates.
    Cutoffs larger than the number of candidates see padded (never-hit) positions.
    """
    n_users = model.n_users if n_users is None else n_users
    n_items = model.n_items if n_items is None else n_items
    cand = np.unique(np.asarray(candidate_items, dtype=np.int64))
    if len(cand) == 0:
        raise ValueError("the candidate item set is empty; pass the items to rank among (e.g. cold test items)")
    if cand[0] < 0 or cand[-1] >= n_items:
        raise ValueError(f"candidate items must be item indices in 0..{n_items - 1}")
    return _ranked_eval(model, target_df, seen, n_users, n_items, ks, batch_size, item_popularity, cand)


def held_cold_items(split: Split, part: str) -> np.ndarray:
    """The cold items (never in train) held out in `part` ("valid" or "test") of a cold-item split."""
    return np.intersect1d(split.cold_items, getattr(split, part)["item"].to_numpy())


def mixed_candidates(split: Split, part: str, n_items: int) -> np.ndarray:
    """A mixed split's candidates for `part`: every item but the other part's new items."""
    return np.setdiff1d(np.arange(n_items), held_cold_items(split, "test" if part == "valid" else "valid"))


def evaluate_part(
    model,
    split: Split,
    part: str,
    n_users: int,
    n_items: int,
    ks: Iterable[int] = (5, 10, 20),
    batch_size: int = 512,
    item_popularity=None,
) -> dict[str, float]:
    """Metrics on `split.<part>` ("valid": seen = train; "test": seen = train + valid) under the
    split's own protocol. A cold-item split ranks among the cold items held out in that part: ranked
    among every item, items without a single interaction never reach a top 10 next to the known
    ones, and every metric reads 0 whatever the model. A mixed split ranks the known items and the
    part's new items together (the other part's new items are not yet in the catalogue). Any other
    split ranks every item."""
    target = getattr(split, part)
    seen = split.train if part == "valid" else [split.train, split.valid]
    if split.config.kind == "mixed":
        cand = mixed_candidates(split, part, n_items)
        return evaluate_candidates(model, target, seen, cand, n_users, n_items, ks, batch_size, item_popularity)
    if split.cold_items is not None:
        cand = held_cold_items(split, part)
        if len(cand):
            return evaluate_candidates(model, target, seen, cand, n_users, n_items, ks, batch_size, item_popularity)
    return evaluate_full(model, target, seen, n_users, n_items, ks, batch_size, item_popularity)


def _ranked_eval(model, target_df, seen, n_users, n_items, ks, batch_size, item_popularity, cand, retrieval=None):
    ks = sorted(set(int(k) for k in ks))
    if not ks or ks[0] < 1:
        raise ValueError(f"cutoffs {ks} must be positive integers, e.g. 5 10 20")
    seen_csr = seen_matrix(seen, n_users, n_items)
    target = interaction_matrix(target_df, n_users, n_items)
    target = target - target.multiply(seen_csr)  # drop held-out items that are also seen
    target.eliminate_zeros()
    # columns in the tie order (position -> item): equal scores rank in a fixed shuffle, not by item ID
    cols = tie_order(n_items if cand is None else cand)  # (C,)
    target, seen_csr = target[:, cols].tocsr(), seen_csr[:, cols].tocsr()
    n_rel = np.diff(target.indptr)  # (U,)
    users = np.flatnonzero(n_rel > 0)
    width = target.shape[1]
    k_max = min(ks[-1], width)
    retrieval = retrieval or RetrievalConfig()
    all_hits, all_top = [], []
    with eval_mode(model):
        if cand is None:  # the whole catalog: memory-bounded exact search, or ANN for big catalogs
            retriever = Retriever(ShuffledItems(model, cols), retrieval, queries=len(users))
            for start in range(0, len(users), batch_size):
                batch = users[start : start + batch_size]  # (B,)
                top, _ = retriever.topk(batch, k_max, seen_csr[batch])  # (B, K)
                all_top.append(top)
                all_hits.append(member(target[batch], top))
        else:
            device = model_device(model)
            rows = max(1, min(batch_size, retrieval.budget // max(1, n_items)))  # (rows, I) scores at once
            cand_t = torch.from_numpy(cols).to(device)
            for start in range(0, len(users), rows):
                batch = users[start : start + rows]  # (B,)
                scores = model.score_users(torch.from_numpy(batch).to(device))  # (B, I)
                scores = scores[:, cand_t.to(scores.device)].to(torch.float32)  # (B, C), a copy
                _fill_rows(scores, seen_csr[batch], float("-inf"))
                top = ranked_topk(scores, k_max)[1].cpu().numpy()  # (B, K)
                all_top.append(top)
                all_hits.append(member(target[batch], top))
    hits = np.concatenate(all_hits) if all_hits else np.zeros((0, k_max), dtype=bool)  # (U', K)
    top = np.concatenate(all_top) if all_top else np.zeros((0, k_max), dtype=np.int64)
    if k_max < ks[-1]:  # fewer candidates than the largest cutoff: pad with misses
        hits = np.pad(hits, ((0, 0), (0, ks[-1] - k_max)))
    out = ranking_metrics(hits, n_rel[users], ks)
    top = cols[top]  # positions -> item indices
    pop = None if item_popularity is None else np.asarray(item_popularity)
    for k in ks:  # cutoffs beyond the candidate count reuse the whole (shorter) lists
        extra = beyond_accuracy(top[:, : min(k, k_max)], width, [min(k, k_max)], pop)
        out.update({key.split("@")[0] + f"@{k}": value for key, value in extra.items()})
    out["n_users"] = int(len(users))
    return out


def _fill_rows(tensor: torch.Tensor, rows: sp.csr_matrix, value) -> None:
    """tensor[i, j] = value for every stored (i, j) of `rows` (B, I), in place."""
    counts = np.diff(rows.indptr)
    r = torch.from_numpy(np.repeat(np.arange(len(counts), dtype=np.int64), counts)).to(tensor.device)
    c = torch.from_numpy(rows.indices.astype(np.int64)).to(tensor.device)
    tensor[r, c] = value


def sample_eval_negatives(
    target_df: pd.DataFrame, seen_all: Seen, n_items: int, n_neg: int = 99, seed: int = 0, n_users: int | None = None
) -> np.ndarray:
    """(n_users, n_neg) distinct negatives per target user, never an item in `seen_all` (pass train,
    valid and test so no interaction of the user is drawn); rows of users without targets are -1.
    Fixed for a given (target users, seen_all, seed)."""
    if n_users is None:
        if not sp.issparse(seen_all):
            raise ValueError("pass n_users, or seen_all as a sparse (n_users, n_items) matrix")
        n_users = seen_all.shape[0]
    csr = seen_matrix(seen_all, n_users, n_items)
    csr = csr + interaction_matrix(target_df, n_users, n_items)  # the targets are never negatives
    users = np.unique(target_df["user"].to_numpy(dtype=np.int64))
    out = np.full((n_users, n_neg), -1, dtype=np.int64)
    out[users] = sample_distinct(NegativeSampler(csr, n_items), users, np.random.default_rng(seed), n_neg)
    return out


def evaluate_sampled(
    model, target_df: pd.DataFrame, negatives: np.ndarray, ks: Iterable[int] = (10,), batch_size: int = 1024
) -> dict[str, float]:
    """NCF protocol: rank each held-out (user, item) among the user's negatives via score_pairs.

    rank = 1 + #negatives scoring >= the held-out item (ties count against the model, so a constant
    scorer gets rank n_neg + 1). hit@K = rank <= K; ndcg@K = 1/log2(rank + 1) if rank <= K else 0.
    Averaged over each user's held-out items, then over users. Returns hit@K, ndcg@K and n_users.
    """
    ks = sorted(set(int(k) for k in ks))
    users = target_df["user"].to_numpy(dtype=np.int64)
    items = target_df["item"].to_numpy(dtype=np.int64)
    negatives = np.asarray(negatives, dtype=np.int64)
    if len(users) and (negatives[users] < 0).any():
        raise ValueError("some target users have no sampled negatives; sample them from this target frame")
    device = model_device(model)
    ranks = np.zeros(len(users), dtype=np.int64)
    with eval_mode(model):
        for start in range(0, len(users), batch_size):
            u, i = users[start : start + batch_size], items[start : start + batch_size]
            cand = np.concatenate([i[:, None], negatives[u]], axis=1)  # (B, 1 + n_neg)
            uu = np.broadcast_to(u[:, None], cand.shape)
            scores = (
                model.score_pairs(
                    torch.from_numpy(uu.reshape(-1).copy()).to(device), torch.from_numpy(cand.reshape(-1)).to(device)
                )
                .reshape(cand.shape)
                .float()
            )  # (B, 1 + n_neg)
            ranks[start : start + len(u)] = (1 + (scores[:, 1:] >= scores[:, :1]).sum(dim=1)).cpu().numpy()
    out: dict[str, float] = {}
    per_user = pd.DataFrame({"user": users})
    for k in ks:
        per_user[f"hit@{k}"] = (ranks <= k).astype(np.float64)
        per_user[f"ndcg@{k}"] = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
    means = per_user.groupby("user").mean().mean() if len(users) else None
    for k in ks:
        for m in ("hit", "ndcg"):
            out[f"{m}@{k}"] = float(means[f"{m}@{k}"]) if means is not None else 0.0
    out["n_users"] = int(len(np.unique(users)))
    return out
