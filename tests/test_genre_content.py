"""The genre-content baseline (the bench's cold-start yardstick): profile cosines worked by hand,
its tie-break, cold users and a checkpoint round trip."""

from __future__ import annotations

import pandas as pd
import torch

from gpt2rec.data.dataset import Dataset
from gpt2rec.models.base import ModelContext


def _genre_dataset():
    inter = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 12]})
    items = pd.DataFrame(
        {
            "item_id": [10, 11, 12, 13],
            "title": list("abcd"),
            "genres": [["Action"], ["Action", "Comedy"], ["Drama"], ["Comedy"]],
        }
    )
    users = pd.DataFrame({"user_id": [1, 2, 3]})  # user 3 has no interactions: cold
    return Dataset.from_frames("toy", inter, users, items)


def test_genre_content_scores_are_profile_cosines():
    from gpt2rec.models.genre_content import SPEC, GenreContentConfig

    ds = _genre_dataset()
    ctx = ModelContext(ds.n_users, ds.n_items, ds, ds.interactions)
    model = SPEC.build(GenreContentConfig(tiebreak=0.0), ctx)
    SPEC.fit(model, ctx)
    # user 0: genres (Action 2, Comedy 1) over (Action, Comedy, Drama) -> (2, 1, 0) / sqrt(5)
    # item 0 Action: 2/sqrt5; item 1 Action+Comedy: 3/sqrt10; item 2 Drama: 0; item 3 Comedy: 1/sqrt5
    s = model.score_users(torch.tensor([0]))[0]
    expected = torch.tensor([2 / 5**0.5, 3 / 10**0.5, 0.0, 1 / 5**0.5])
    assert torch.allclose(s, expected, atol=1e-6)
    pairs = model.score_pairs(torch.tensor([0, 0]), torch.tensor([1, 3]))
    assert torch.allclose(pairs, expected[[1, 3]], atol=1e-6)
    # cold user 2 falls back to popularity: items 0, 1, 2 have one interaction each, item 3 none
    assert torch.allclose(model.score_users(torch.tensor([2]))[0], torch.tensor([1.0, 1.0, 1.0, 0.0]))


def test_genre_content_tiebreak_and_checkpoint_roundtrip():
    from gpt2rec.models.genre_content import SPEC, GenreContentConfig

    ds = _genre_dataset()
    ctx = ModelContext(ds.n_users, ds.n_items, ds, ds.interactions)
    model = SPEC.build(GenreContentConfig(tiebreak=0.01, cold_user="none"), ctx)
    SPEC.fit(model, ctx)
    s = model.score_users(torch.tensor([1]))[0]  # user 1 likes Drama: item 2 (Drama, count 1) first
    assert int(s.argmax()) == 2
    assert torch.equal(model.score_users(torch.tensor([2]))[0], torch.zeros(4))  # profile-less cold user
    saved = model.checkpoint_meta()  # the genre count: a load builds the model at that size
    fresh = SPEC.build(
        GenreContentConfig(tiebreak=0.01, cold_user="none"), ModelContext(ds.n_users, ds.n_items, saved=saved)
    )
    fresh.load_state_dict(model.state_dict(), strict=True)
    assert torch.equal(fresh.score_users(torch.arange(3)), model.score_users(torch.arange(3)))


def test_genre_content_is_registered():
    from gpt2rec.models.registry import get_spec

    assert get_spec("genre_content").name == "genre_content"
