"""The profile-neighbour route for new users (`models.profile_neighbours`)."""

from __future__ import annotations

import logging

import torch

from conftest import pairs_frame
from gpt2rec.models import profile_neighbours
from gpt2rec.models.profile_neighbours import ProfileNeighbours


def _score(model: ProfileNeighbours, n_known: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    known = torch.arange(n_known)
    profiles, known_profiles = torch.randn(2, 3, 4, generator=g), torch.randn(n_known, 3, 4, generator=g)
    return model(profiles, known_profiles, known, torch.zeros(4), torch.ones(4))


def test_k_at_least_the_known_users_warns_once_naming_cold_user_k(caplog, monkeypatch):
    """QA: on small data cold_user_k (100 / 200) covered every known user, so the 'neighbours' were
    everyone and the scores equalled popularity, silently."""
    monkeypatch.setattr(profile_neighbours, "_warned", set())
    model = ProfileNeighbours(n_users=6, n_items=3, k=6)
    model.fit(pairs_frame([(0, 0), (1, 0), (2, 1), (3, 2), (4, 0), (5, 1)]))
    with caplog.at_level(logging.WARNING, logger="gpt2rec"):
        _score(model, 6)
        _score(model, 6)
        mine = [r.getMessage() for r in caplog.records if r.name.startswith("gpt2rec")]
        assert len(mine) == 1 and "cold_user_k=6 is >= the 6 known users" in mine[0]
        assert "set cold_user_k below 6" in mine[0]
        caplog.clear()
        scores = _score(ProfileNeighbours(n_users=6, n_items=3, k=2).eval(), 6)  # k < known: no warning
        assert scores.shape == (2, 3) and not caplog.records
