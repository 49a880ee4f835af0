"""The mixed split kind and the bench's mixed protocol (a live catalogue: known and new items ranked
together), on numbers worked by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import pairs_frame
from gpt2rec.bench import plan
from gpt2rec.bench.protocols import evaluate
from gpt2rec.data.dataset import Dataset
from gpt2rec.data.split_files import read_split, write_split
from gpt2rec.data.splits import Split, SplitConfig, make_split
from gpt2rec.eval.protocols import evaluate_part


class Fixed(torch.nn.Module):
    """Fixed scores (U, I)."""

    def __init__(self, scores):
        super().__init__()
        self.scores = torch.as_tensor(scores, dtype=torch.float32)
        self.n_users, self.n_items = self.scores.shape

    def score_users(self, users):
        return self.scores[users]


def _split(train, valid, test, cold):
    return Split(pairs_frame(train), pairs_frame(valid), pairs_frame(test), SplitConfig(kind="mixed"),
                 cold_items=np.array(cold))  # fmt: skip


def _grid_dataset() -> Dataset:
    rows = [(u, i) for u in range(40) for i in range(30) if (u * 7 + i * 3) % 4]
    return Dataset.from_frames("t", pd.DataFrame(rows, columns=["user_id", "item_id"]))


def test_a_mixed_split_holds_out_new_items_and_a_seeded_share_of_the_known_interactions(tmp_path):
    data = _grid_dataset()
    split = make_split(data, SplitConfig(kind="mixed", ratios=(0.8, 0.1, 0.1), cold_fraction=0.2, seed=1))
    cold = set(split.cold_items.tolist())
    drawn = set(make_split(data, SplitConfig(kind="cold-item", cold_fraction=0.2, seed=1)).cold_items.tolist())
    assert drawn <= cold and not cold & set(split.train["item"])  # the draw's items, never in training
    known = data.interactions[~data.interactions["item"].isin(cold)]
    assert 0.75 < len(split.train) / len(known) < 0.85  # 20% of the known interactions held out
    for part in (split.valid, split.test):
        assert (~part["item"].isin(cold)).sum() > 0 and part["item"].isin(cold).sum() > 0
    assert sum(split.sizes().values()) == len(data.interactions)  # nothing lost
    again = make_split(data, SplitConfig(kind="mixed", ratios=(0.8, 0.1, 0.1), cold_fraction=0.2, seed=1))
    assert again.train.equals(split.train) and again.valid.equals(split.valid)
    write_split(split, data, tmp_path / "s")  # a written split reads back with the same new items
    assert np.array_equal(read_split(data, tmp_path / "s").cold_items, split.cold_items)


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
    library = evaluate_part(reads_new, split, "valid", 1, 14, (10,))  # `gpt2rec train --split mixed`'s
    assert library["ndcg@10"] == pytest.approx(out["ndcg@10"]) and library["recall@10"] == 0.5
    # a model that ignores new items (their scores lowest) finds the known item first, never the new one
    blind = Fixed([[40.0, 35.0, *fillers, -1.0, -1.0]])
    out = evaluate(blind, data, split, plan.MIXED, "valid")
    assert out["ndcg@10"] == pytest.approx(1 / (1 + 1 / np.log2(3)), abs=1e-6)
    assert out["recall@10"] == 0.5 and out["new_recall@10"] == 0.0


def test_the_mixed_protocol_holds_out_5_percent_of_items_and_10_percent_of_the_rest():
    from gpt2rec.bench.protocols import protocol_split

    data = _grid_dataset()
    split = protocol_split(data, plan.MIXED, seed=0)
    cold = set(split.cold_items.tolist())
    assert len(cold) >= 2 and not cold & set(split.train["item"])  # 5% of 30 items (1.5), rounded
    known = data.interactions[~data.interactions["item"].isin(cold)]
    assert 0.85 < len(split.train) / len(known) < 0.95
