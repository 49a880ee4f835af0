"""The mixed protocol (a live catalogue: known and new items ranked together), on numbers worked by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import pairs_frame
from gpt2rec.bench import plan
from gpt2rec.bench.protocols import evaluate, hold_out_known
from gpt2rec.data.dataset import Dataset
from gpt2rec.data.splits import Split, SplitConfig


class Fixed(torch.nn.Module):
    """Fixed scores (U, I)."""

    def __init__(self, scores):
        super().__init__()
        self.scores = torch.as_tensor(scores, dtype=torch.float32)
        self.n_users, self.n_items = self.scores.shape

    def score_users(self, users):
        return self.scores[users]


def _split(train, valid, test, cold):
    return Split(pairs_frame(train), pairs_frame(valid), pairs_frame(test), SplitConfig(kind="cold-item"),
                 cold_items=np.array(cold))  # fmt: skip


def test_hold_out_known_moves_a_seeded_share_of_training_to_valid_and_test():
    base = _split([(u, i) for u in range(20) for i in range(8)], [(0, 8)], [(0, 9)], [8, 9])  # 160 training rows
    split = hold_out_known(base, 0.25, seed=1)
    moved = len(base.train) - len(split.train)
    assert 20 <= moved <= 60 and moved == len(split.valid) - 1 + len(split.test) - 1  # about 40, none lost
    everything = pd.concat([split.train, split.valid, split.test])
    assert sorted(zip(everything["user"], everything["item"])) == sorted(
        zip(*[pd.concat([base.train, base.valid, base.test])[c] for c in ("user", "item")])
    )
    assert len(split.valid) > 1 and len(split.test) > 1  # both parts get some
    again = hold_out_known(base, 0.25, seed=1)
    assert again.train.equals(split.train) and again.valid.equals(split.valid)
    assert not hold_out_known(base, 0.25, seed=2).train.equals(split.train)


def test_mixed_ranks_known_and_this_parts_new_items_and_counts_the_new_ones():
    """One user, 14 items; new items 12 (valid) and 13 (test). Train: item 0. Valid truth: known
    item 1 (held out) and new item 12. Candidates: items 1-12 (13 belongs to test; 0 is seen)."""
    split = _split([(0, 0)], [(0, 1), (0, 12)], [(0, 13)], [12, 13])
    data = SimpleNamespace(n_users=1, n_items=14)  # all that evaluation reads of the dataset
    fillers = [30.0 - i for i in range(2, 12)]  # items 2-11, between the others
    # item 13 first (not a candidate), then 12 (rank 1), 2-11 (ranks 2-11), item 1 last (rank 12):
    # ndcg@10 = 1 / (1 + 1/log2(3)) = 0.6131, recall@10 = 1/2, and the new item is found
    reads_new = Fixed([[40.0, 10.0, *fillers, 50.0, 100.0]])
    out = evaluate(reads_new, data, split, plan.MIXED, "valid")
    assert out["ndcg@10"] == pytest.approx(1 / (1 + 1 / np.log2(3)), abs=1e-6)
    assert out["recall@10"] == 0.5 and out["new_recall@10"] == 1.0
    # a model that ignores new items (their scores lowest) finds the known item first, never the new one
    blind = Fixed([[40.0, 35.0, *fillers, -1.0, -1.0]])
    out = evaluate(blind, data, split, plan.MIXED, "valid")
    assert out["ndcg@10"] == pytest.approx(1 / (1 + 1 / np.log2(3)), abs=1e-6)
    assert out["recall@10"] == 0.5 and out["new_recall@10"] == 0.0


def test_the_mixed_protocol_holds_out_new_items_and_known_interactions():
    from gpt2rec.bench.protocols import protocol_split

    rows = [(u, i) for u in range(40) for i in range(30) if (u * 7 + i * 3) % 4]
    data = Dataset.from_frames("t", pd.DataFrame(rows, columns=["user_id", "item_id"]))
    split = protocol_split(data, plan.MIXED, seed=0)
    cold = set(split.cold_items.tolist())
    assert cold and not cold & set(split.train["item"])  # new items are never in training
    assert len(cold) == 2  # 5% of 30 items (1.5), rounded
    known = data.interactions[~data.interactions["item"].isin(cold)]
    assert 0.85 < len(split.train) / len(known) < 0.95  # 10% of the known interactions held out
    assert (~split.valid["item"].isin(cold)).sum() > 0 and (~split.test["item"].isin(cold)).sum() > 0
