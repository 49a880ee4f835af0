"""New users scored from the known users with the nearest profiles (the enhanced model's default
cold-user path, `cold_users="neighbours"`).

    score(new user, item) = share of the k known users whose standardised LM profile vectors are
                            nearest (cosine) who had the item in training        # (C, I)

A profile of three fields (gender, age group, occupation) gives an 'unknown' ID attending over it
little to work with; on ML-100K's cold-user validation these neighbours beat both that path and
popularity. The training items live in `UserHistory` buffers, so a checkpoint restores them.
"""

from __future__ import annotations

import logging

import pandas as pd
import torch
from torch import nn

from .history import UserHistory

log = logging.getLogger(__name__)
_warned: set[tuple[int, int]] = set()  # (k, known users) already warned about: once each per process


class ProfileNeighbours(nn.Module):
    def __init__(self, n_users: int, n_items: int, k: int, history_nnz: int = 0):
        super().__init__()
        self.k = int(k)
        self.history = UserHistory(n_users, n_items, history_nnz)

    def fit(self, train: pd.DataFrame) -> None:
        self.history.fit(train)

    def size(self, n_known: int) -> int:
        """Neighbours per new user among `n_known` known users."""
        if self.k >= n_known and (self.k, int(n_known)) not in _warned:
            # every known user is a neighbour: the scores are plain popularity among them
            _warned.add((self.k, int(n_known)))
            log.warning(
                f"profile neighbours: cold_user_k={self.k} is >= the {int(n_known)} known users, so every new "
                f"user is scored by plain popularity; set cold_user_k below {int(n_known)} "
                "(gpt2rec train --set cold_user_k=N)"
            )
        return min(self.k, int(n_known))

    def forward(
        self,
        profiles: torch.Tensor,
        known_profiles: torch.Tensor,
        known: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
    ) -> torch.Tensor:
        """Scores (C, I) of new users' profile field vectors `profiles` (C, F, D), given the known
        users' indices `known` (K,) and field vectors `known_profiles` (K, F, D); `mean`, `std`
        (D,) standardise each LM dimension before the cosine (a few dimensions dominate raw LM
        states)."""
        if len(known) == 0:
            raise ValueError("no user has training interactions: there are no neighbours to score a new user from")
        unit = lambda t: nn.functional.normalize(((t - mean) / std).flatten(1), dim=1)  # noqa: E731
        sim = unit(profiles.to(known_profiles)) @ unit(known_profiles).T  # (C, K)
        top = sim.topk(self.size(len(known)), dim=1).indices  # (C, k)
        weights = torch.zeros_like(sim).scatter_(1, top, 1.0 / top.shape[1])  # (C, K)
        return weights @ self.history.dense(known)  # (C, I)
