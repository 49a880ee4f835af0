"""The `Run` object: one loaded run folder, raw IDs (strings or ints) <-> indices, seen items, top-k rows.

Popularity on a hand-made catalogue: m1 is held by 3 users, m2 by 2, m3 by 1, m4 by nobody, so the
answer for every user is worked out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpt2rec.errors import UserError
from gpt2rec.pipeline import RunConfig, open_run, recommend, train_run
from gpt2rec.run import Run, UnknownIdError, top_k

HELD = {"alice": ["m1"], "bob": ["m1", "m2"], "carol": ["m1", "m2", "m3"]}
TITLES = {"m1": "One (1990)", "m2": "Two (1991)", "m3": "Three (1992)", "m4": "Four (1993)"}


def string_run(path) -> Run:
    """A popularity `Run` over string IDs, built in memory (the file readers take integer IDs)."""
    import pandas as pd

    from gpt2rec.data.dataset import Dataset
    from gpt2rec.data.splits import SplitConfig, make_split
    from gpt2rec.models.base import ModelContext
    from gpt2rec.models.registry import get_spec

    inter = pd.DataFrame([(u, i) for u, items in HELD.items() for i in items], columns=["user_id", "item_id"])
    items = pd.DataFrame({"item_id": list(TITLES), "title": list(TITLES.values())})
    dataset = Dataset.from_frames("strings", inter, items=items)
    split = make_split(dataset, SplitConfig(ratios=(1.0, 0.0, 0.0)))
    spec = get_spec("popularity")
    ctx = ModelContext(dataset.n_users, dataset.n_items, dataset, split.train)
    model = spec.build(spec.config_cls(), ctx)
    spec.fit(model, ctx)
    return Run(path, None, dataset, model, split)


def test_string_ids_map_both_ways_with_dicts(tmp_path):
    run = string_run(tmp_path)
    assert run.user_ids == ["alice", "bob", "carol"] and run.item_ids == ["m1", "m2", "m3", "m4"]
    assert run.user_index("bob") == 1 and run.user_index(" bob ") == 1 and run.item_index("m4") == 3
    assert run.has_item("m2") and not run.has_user("dave")
    with pytest.raises(UnknownIdError, match="unknown user 'dave'") as info:
        run.user_index("dave")
    assert info.value.kind == "user" and isinstance(info.value, UserError)


def test_seen_items_and_rows_by_hand(tmp_path):
    run = string_run(tmp_path)
    assert run.seen(run.user_index("carol")).tolist() == [0, 1, 2]
    assert run.recommend("alice", k=2) == [
        {"item_id": "m2", "title": "Two (1991)", "score": 2.0},
        {"item_id": "m3", "title": "Three (1992)", "score": 1.0},
    ]
    # k larger than the unseen items: only m4 is left for carol
    assert run.recommend("carol", k=10) == [{"item_id": "m4", "title": "Four (1993)", "score": 0.0}]
    with pytest.raises(UserError, match="k must be"):
        run.recommend("bob", k=0)


def test_integer_ids_accept_ints_and_strings(tmp_path):
    rows = [(10, 8), (10, 9), (20, 7), (20, 9), (30, 7), (30, 8)]  # every item held twice
    (tmp_path / "inter.csv").write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in rows))
    config = RunConfig.create(
        model="popularity", data={"dataset": str(tmp_path / "inter.csv")}, split={"ratios": (1, 0, 0)}
    )
    train_run(config, tmp_path / "run", verbose=False)
    run = open_run(tmp_path / "run")
    assert run.user_ids == [10, 20, 30] and run.user_index(20) == run.user_index("20") == 1
    assert run.item_index(np.int64(9)) == 2
    # as the loader reads a file's 20.0: 20 (it said "unknown user '20.0'")
    assert run.user_index("20.0") == run.user_index(20.0) == run.user_index("2e1") == 1
    with pytest.raises(UserError, match="unknown user '20.5'"):
        run.user_index("20.5")
    # 10's only unseen item is 7
    assert run.seen(0).tolist() == [1, 2]
    assert recommend(tmp_path / "run", "10", k=3) == [{"item_id": 7, "title": "7", "score": 2.0}]


def test_top_k_excludes_and_never_returns_excluded_items():
    import torch

    items, scores = top_k(torch.tensor([0.5, 3.0, 2.0, 1.0]), 3, exclude=[1])
    assert items.tolist() == [2, 3, 0] and scores.tolist() == [2.0, 1.0, 0.5]
    assert top_k(torch.tensor([1.0, 2.0]), 5, exclude=[0, 1])[0].tolist() == []
