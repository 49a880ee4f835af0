"""Negative sampling: never a training positive, seeded, uniform over the free items."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from gpt2rec.data.sampling import NegativeSampler, sample_distinct, sample_negatives, training_batches
from gpt2rec.data.splits import interaction_matrix
from gpt2rec.errors import DataError


def _dense_csr(n_users=60, n_items=25, density=0.85, seed=0):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[:, -1] = False  # at least one free item per user
    mask[0, :-1] = True  # user 0: exactly one free item (the last)
    return sp.csr_matrix(mask.astype(np.float32)), mask


def test_never_a_positive_on_dense_matrix():
    csr, mask = _dense_csr()
    users = np.repeat(np.arange(60), 50)
    neg = sample_negatives(users, csr, 25, np.random.default_rng(0), n_neg=7)
    assert neg.shape == (3000, 7) and neg.dtype == np.int64
    assert neg.min() >= 0 and neg.max() < 25
    assert not mask[users[:, None], neg].any()
    assert (neg[users == 0] == 24).all()  # the only free item of user 0


def test_seeded():
    csr, _ = _dense_csr()
    users = np.arange(60)
    a = sample_negatives(users, csr, 25, np.random.default_rng(3), 4)
    b = sample_negatives(users, csr, 25, np.random.default_rng(3), 4)
    c = sample_negatives(users, csr, 25, np.random.default_rng(4), 4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_roughly_uniform_over_free_items():
    # user 0 owns items {0, 2, 4, 6, 8} of 10: the free items 1, 3, 5, 7, 9 should each get ~1/5
    csr = sp.csr_matrix(([1.0] * 5, ([0] * 5, [0, 2, 4, 6, 8])), shape=(1, 10))
    neg = sample_negatives(np.zeros(50_000, dtype=np.int64), csr, 10, np.random.default_rng(0))
    counts = np.bincount(neg[:, 0], minlength=10)
    assert counts[[0, 2, 4, 6, 8]].sum() == 0
    # each count ~ Binomial(50000, 0.2): sd ~ 89; allow 5 sd
    assert np.all(np.abs(counts[[1, 3, 5, 7, 9]] - 10_000) < 450), counts


def test_user_with_every_item_errors():
    csr = sp.csr_matrix(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(DataError, match="every item"):
        sample_negatives(np.array([1]), csr, 3, np.random.default_rng(0))


def test_sample_distinct_rows_have_no_duplicates():
    csr, mask = _dense_csr(density=0.5, n_items=40)
    sampler = NegativeSampler(csr, 40)
    users = np.flatnonzero((~mask).sum(1) >= 10)
    neg = sample_distinct(sampler, users, np.random.default_rng(0), 10)
    assert neg.shape == (len(users), 10)
    assert all(len(set(row)) == 10 for row in neg.tolist())
    assert not mask[users[:, None], neg].any()
    with pytest.raises(DataError, match="distinct negatives"):
        sample_distinct(sampler, np.array([0]), np.random.default_rng(0), 2)  # user 0 has 1 free item


def test_training_batches_one_shuffled_epoch():
    rng = np.random.default_rng(0)
    pairs = np.unique(rng.integers(0, 20 * 15, 150))
    train = pd.DataFrame({"user": pairs // 15, "item": pairs % 15})
    csr = interaction_matrix(train, 20, 15)
    batches = list(training_batches(train, NegativeSampler(csr, 15), 32, np.random.default_rng(1)))
    assert [len(b[0]) for b in batches] == [32] * (len(train) // 32) + ([len(train) % 32] if len(train) % 32 else [])
    users, pos, neg = (torch.cat(x).numpy() for x in zip(*batches))
    assert all(t.dtype == torch.long for t in batches[0])
    assert sorted(zip(users, pos)) == sorted(zip(train["user"], train["item"]))  # each pair once
    assert list(users) != list(train["user"])  # shuffled
    assert not csr.toarray()[users, neg].any()  # never a training positive


def test_training_batches_several_negatives_share_the_single_negative_draws():
    """num_neg=3 gives (B, 3) negatives, never positives, over the same shuffled pairs as num_neg=1."""
    rng = np.random.default_rng(0)
    pairs = np.unique(rng.integers(0, 20 * 15, 150))
    train = pd.DataFrame({"user": pairs // 15, "item": pairs % 15})
    csr = interaction_matrix(train, 20, 15)
    sampler = NegativeSampler(csr, 15)
    many = list(training_batches(train, sampler, 32, np.random.default_rng(1), num_neg=3))
    users, pos, neg = (torch.cat(x).numpy() for x in zip(*many))
    assert neg.shape == (len(train), 3)
    assert not csr.toarray()[users[:, None], neg].any()
    first = list(training_batches(train, sampler, 32, np.random.default_rng(1)))[0]
    assert torch.equal(first[0], many[0][0])  # the same shuffled users in the first batch
    with pytest.raises(ValueError, match="num_neg"):
        next(training_batches(train, sampler, 32, np.random.default_rng(1), num_neg=0))
