"""The deletion test of an item-item model's explanations, and its reasons, on weights set by hand."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from conftest import pairs_frame
from gpt2rec.data.splits import Split, SplitConfig
from gpt2rec.models.l3ae import L3AE, L3AEConfig

N_ITEMS = 6  # users 0 and 1 liked items 0-3; items 4 and 5 are unseen


def hand_model() -> tuple[L3AE, Split]:
    train = pairs_frame([(u, i) for u in (0, 1) for i in range(4)])
    model = L3AE(L3AEConfig(), 2, N_ITEMS)
    w = torch.zeros(N_ITEMS, N_ITEMS)
    w[:4, 5] = torch.tensor([3.0, 2.0, 0.5, 0.5])  # item 5: carried by liked items 0 and 1 (score 6)
    w[:4, 4] = torch.tensor([0.1, 0.1, 1.0, 2.0])  # item 4: carried by liked items 3 and 2 (score 3.2)
    model.weight.copy_(w)
    model.history.fit(train)
    empty = pd.DataFrame({"user": pd.Series([], dtype="int64"), "item": pd.Series([], dtype="int64")})
    return model, Split(train, empty, empty, SplitConfig())


def test_deleting_the_named_liked_items_drops_the_score_more_than_random_ones():
    from gpt2rec.bench.faithfulness import history_deletion_test

    model, split = hand_model()
    out = history_deletion_test(model, split, 2, N_ITEMS, pairs=10)["liked items"]
    # top-1 is item 5 for both users; named = {0, 1}: drop 3 + 2 = 5; the other liked items {2, 3}: 0.5 + 0.5
    assert out["pairs"] == 2
    assert out["top_drop"]["mean"] == pytest.approx(5.0)
    assert out["random_drop"]["mean"] == pytest.approx(1.0)
    assert out["difference"]["mean"] == pytest.approx(4.0) and out["difference"]["ci95"][0] == pytest.approx(4.0)


def test_l3ae_mf_is_tested_on_its_backbone_part():
    """l3ae_mf's residual reads the user's ID, not the history: deleting liked items changes only the
    backbone's part, backbone_weight / scale times l3ae's (here 2 x: drops 10 and 2)."""
    from gpt2rec.bench.faithfulness import history_deletion_test
    from gpt2rec.models.l3ae_mf import L3AEMF, L3AEMFConfig

    backbone, split = hand_model()
    model = L3AEMF(L3AEMFConfig(backbone_weight=2.0, dim=2), backbone)
    with torch.no_grad():
        model.item_known.fill_(True)
        model.residual.user_emb.weight.fill_(0.5)
        model.residual.item_emb.weight.fill_(0.5)  # +0.5 on every score: the top-1 stays item 5
    out = history_deletion_test(model, split, 2, N_ITEMS, pairs=10)["liked items"]
    assert out["pairs"] == 2 and out["top_drop"]["mean"] == pytest.approx(10.0)
    assert out["difference"]["mean"] == pytest.approx(8.0)


def test_reasons_differ_when_the_evidence_differs():
    from gpt2rec.explain import explain, named_history

    model, _ = hand_model()
    assert named_history(model, 5, [0, 1, 2, 3]) == [0, 1]
    assert named_history(model, 4, [3, 2, 1, 0]) == [3, 2]
    e5, e4 = explain(model, None, 0, [5, 4], [0, 1, 2, 3])
    assert (e5.similar, e4.similar) == ([0, 1], [3, 2])
    assert e5.reason == "Because you liked item 0 and item 1." and e4.reason == "Because you liked item 3 and item 2."
    assert e5.similarity == pytest.approx([3.0, 2.0])


def test_the_shared_genre_clause_is_tested_by_deleting_the_liked_items_of_that_genre():
    from gpt2rec.bench.faithfulness import history_deletion_test

    model, split = hand_model()
    # item 5 and the named liked items 0, 1 are Drama; the liked items 2, 3 are not: k = 2,
    # deleting {0, 1} drops item 5's score by 3 + 2, deleting {2, 3} by 0.5 + 0.5
    genres = [["Drama"], ["Drama", "War"], ["Comedy"], ["Comedy"], ["Comedy"], ["Drama", "Comedy"]]
    out = history_deletion_test(model, split, 2, N_ITEMS, pairs=10, genres=genres)["shared genre"]
    assert out["pairs"] == 2 and out["top_drop"]["mean"] == pytest.approx(5.0)
    assert out["random_drop"]["mean"] == pytest.approx(1.0) and out["difference"]["ci95"][0] == pytest.approx(4.0)
    from gpt2rec.explain import shared_genres

    assert shared_genres(genres, 5, [0, 1]) == ["Drama"] and shared_genres(genres, 4, [3, 2]) == ["Comedy"]
