"""Uniform negative sampling: items a user has NOT interacted with in train, exactly uniform.

Method (vectorized, no rejection loop): for user u with sorted positives p_0 < p_1 < ... the number
of free (non-positive) items below p_j is f_j = p_j - j, a non-decreasing sequence. Draw a rank
r ~ Uniform{0, ..., n_items - deg(u) - 1}; the r-th free item is r + #{j : f_j <= r}. All users'
f_j are packed into one sorted key array (key = u * (n_items + 1) + f_j), so one `searchsorted`
answers every draw at once. A training positive can never come out, however dense the user.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ..errors import DataError


class NegativeSampler:
    """Precomputes the packed keys of a binary (n_users, n_items) CSR matrix of positives."""

    def __init__(self, positives: sp.csr_matrix, n_items: int):
        csr = sp.csr_matrix(positives, copy=True)
        csr.sum_duplicates()
        csr.sort_indices()
        if csr.shape[1] != n_items:
            raise ValueError(f"positives have {csr.shape[1]} item columns, expected n_items={n_items}")
        self.n_items = int(n_items)
        self.indptr = csr.indptr.astype(np.int64)  # (U+1,)
        degree = np.diff(self.indptr)  # (U,)
        self.n_free = self.n_items - degree  # (U,)
        rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), degree)  # (nnz,)
        local = np.arange(len(rows), dtype=np.int64) - self.indptr[rows]  # j within the row
        free_below = csr.indices.astype(np.int64) - local  # f_j, non-decreasing per row
        self.keys = rows * (self.n_items + 1) + free_below  # (nnz,) globally sorted

    def sample(self, users: np.ndarray, rng: np.random.Generator, n_neg: int = 1) -> np.ndarray:
        """(len(users), n_neg) int64 items, each uniform over the user's non-positive items."""
        users = np.asarray(users, dtype=np.int64)
        free = self.n_free[users]  # (B,)
        if len(users) and free.min() <= 0:
            bad = users[free <= 0][0]
            raise DataError(f"user index {bad} has interacted with every item; no negative exists to sample")
        ranks = rng.integers(0, free[:, None], size=(len(users), n_neg))  # (B, n_neg)
        return self._free_item(users[:, None], ranks)

    def _free_item(self, users: np.ndarray, ranks: np.ndarray) -> np.ndarray:
        """The rank-th (0-based) non-positive item of each user; broadcasts users against ranks."""
        query = users * (self.n_items + 1) + ranks
        below = np.searchsorted(self.keys, query, side="right") - self.indptr[users]
        return ranks + below


def sample_negatives(
    users: np.ndarray, train_csr: sp.csr_matrix, n_items: int, rng: np.random.Generator, n_neg: int = 1
) -> np.ndarray:
    """(len(users), n_neg) negatives, uniform over items each user has no train interaction with.

    Builds a `NegativeSampler` (O(nnz)); for repeated calls on the same matrix build one and reuse it.
    """
    return NegativeSampler(train_csr, n_items).sample(users, rng, n_neg)


def sample_distinct(sampler: NegativeSampler, users: np.ndarray, rng: np.random.Generator, n_neg: int) -> np.ndarray:
    """Like `NegativeSampler.sample`, but the n_neg items of a row are distinct (without replacement).

    Duplicates within a row are redrawn, only for the rows that have them, until none remain.
    """
    users = np.asarray(users, dtype=np.int64)
    free = sampler.n_free[users]
    if len(users) and free.min() < n_neg:
        bad = users[free < n_neg][0]
        raise DataError(
            f"user index {bad} has only {int(free[users == bad][0])} items left to sample {n_neg} "
            "distinct negatives from; lower the number of negatives"
        )
    ranks = rng.integers(0, free[:, None], size=(len(users), n_neg))  # (B, n_neg)
    while True:
        ranks.sort(axis=1)
        dup = np.zeros_like(ranks, dtype=bool)
        dup[:, 1:] = ranks[:, 1:] == ranks[:, :-1]
        if not dup.any():
            break
        rows, cols = np.nonzero(dup)
        ranks[rows, cols] = rng.integers(0, free[rows])
    return sampler._free_item(users[:, None], ranks)


def training_batches(
    train_df: pd.DataFrame,
    sampler: NegativeSampler,
    batch_size: int,
    rng: np.random.Generator,
    num_neg: int = 1,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One shuffled epoch of (users (B,), pos_items (B,), neg_items) LongTensors, the training loop's
    only batch source. neg_items is (B,) when num_neg == 1, else (B, num_neg); negatives are uniform
    over each user's non-positive items (`sampler` is built once from the training matrix)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if num_neg <= 0:
        raise ValueError(f"num_neg must be positive, got {num_neg}")
    users = train_df["user"].to_numpy(dtype=np.int64)
    items = train_df["item"].to_numpy(dtype=np.int64)
    order = rng.permutation(len(users))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        u = users[idx]
        neg = sampler.sample(u, rng, num_neg)  # (B, N)
        yield torch.from_numpy(u), torch.from_numpy(items[idx]), torch.from_numpy(neg[:, 0] if num_neg == 1 else neg)
