"""Genre-content baseline for cold start: cosine between a user's genre profile and item genres.

Each item is its multi-hot genre vector g_i (from `dataset.items["genres"]`). A user's profile is the
mean genre vector of their training items, p_u = mean_{i in train(u)} g_i, and

    score(u, i) = cos(p_u, g_i) + tiebreak * count_i / max_j count_j

where count_i is item i's number of training interactions (a tiny popularity term that only orders
items whose genre sets tie; a cold item has count 0). An item needs no interaction to be scored, so
this is the content baseline for the cold-item protocol.

Cold users have no training items, hence no profile (p_u = 0, cosine 0 everywhere); what they get
is set by `cold_user`: "popularity" (the default) ranks by training counts, i.e. the popularity
baseline; "none" leaves them profile-less (every item scores 0: no information). Either way this
model cannot beat popularity for cold users: it reads no metadata of the user. The bench uses it as
the cold-item reference (and reports its cold-user rows, which equal popularity's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..utils.config import check_field_types
from .base import ModelContext, ModelSpec, saved_value
from .ids import checked_ids

COLD_USER_MODES = ("popularity", "none")


@dataclass
class GenreContentConfig:
    tiebreak: float = field(default=1e-3, metadata={"help": "weight of the popularity tie-break term"})
    cold_user: str = field(default="popularity", metadata={"help": "users without history: popularity | none"})

    def __post_init__(self):
        check_field_types(self, type(self).__name__)  # built directly, not by from_dict
        if self.tiebreak < 0:
            raise ValueError(f"genre_content tiebreak must be >= 0, got {self.tiebreak}; try --set tiebreak=0.001")
        if self.cold_user not in COLD_USER_MODES:
            raise ValueError(f"genre_content cold_user must be one of {COLD_USER_MODES}, got {self.cold_user!r}")


class GenreContent(nn.Module):
    """Buffers: `item_genres` (I, G) L2-normalised, `profiles` (U, G) L2-normalised (zero rows for
    users without history), `has_history` (U,) bool, `popularity` (I,) counts / max."""

    def __init__(self, config: GenreContentConfig, n_users: int, n_items: int, n_genres: int = 1):
        super().__init__()
        self.config = config
        self.n_users = n_users
        self.n_items = n_items
        self.register_buffer("item_genres", torch.zeros(n_items, n_genres))  # (I, G)
        self.register_buffer("profiles", torch.zeros(n_users, n_genres))  # (U, G)
        self.register_buffer("has_history", torch.zeros(n_users, dtype=torch.bool))  # (U,)
        self.register_buffer("popularity", torch.zeros(n_items))  # (I,) in [0, 1]

    def _cold(self, pop: torch.Tensor) -> torch.Tensor:
        return pop if self.config.cold_user == "popularity" else torch.zeros_like(pop)

    @checked_ids
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        users = users.to(self.profiles.device)
        warm = self.profiles[users] @ self.item_genres.T + self.config.tiebreak * self.popularity  # (B, I)
        cold = self._cold(self.popularity).unsqueeze(0)  # (1, I)
        return torch.where(self.has_history[users].unsqueeze(1), warm, cold)

    @checked_ids
    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        users, items = users.to(self.profiles.device), items.to(self.profiles.device)
        pop = self.popularity[items]  # (B,)
        warm = (self.profiles[users] * self.item_genres[items]).sum(-1) + self.config.tiebreak * pop  # (B,)
        cold = self._cold(pop)  # (B,)
        return torch.where(self.has_history[users], warm, cold)

    def checkpoint_meta(self) -> dict:
        return {"n_genres": int(self.item_genres.shape[1])}


def genre_matrix(genres) -> tuple[np.ndarray, list[str]]:
    """A sequence of genre lists (one per item) -> multi-hot (I, G) float32 and the sorted vocabulary."""
    lists = [list(g) if isinstance(g, (list, tuple, np.ndarray)) else [] for g in genres]
    vocab = sorted({str(x) for g in lists for x in g})
    col = {name: j for j, name in enumerate(vocab)}
    out = np.zeros((len(lists), max(1, len(vocab))), dtype=np.float32)
    for i, g in enumerate(lists):
        for name in g:
            out[i, col[str(name)]] = 1.0
    return out, vocab


def build(config: GenreContentConfig, ctx: ModelContext) -> GenreContent:
    if ctx.dataset is None:  # checkpoint load: the buffers come from the state_dict, at the saved size
        return GenreContent(config, ctx.n_users, ctx.n_items, saved_value(ctx, "n_genres")).to(ctx.device)
    multi_hot, vocab = genre_matrix(ctx.dataset.items["genres"])
    if not vocab:
        raise ValueError(f"dataset {ctx.dataset.name!r} has no item genres; genre_content needs a 'genres' column")
    model = GenreContent(config, ctx.n_users, ctx.n_items, multi_hot.shape[1])
    model.item_genres = F.normalize(torch.from_numpy(multi_hot), dim=1)
    return model.to(ctx.device)


@torch.no_grad()
def fit(model: GenreContent, ctx: ModelContext) -> None:
    users = torch.from_numpy(ctx.train["user"].to_numpy(np.int64, copy=True))
    items = torch.from_numpy(ctx.train["item"].to_numpy(np.int64, copy=True))
    dev = model.item_genres.device
    raw = torch.zeros(ctx.n_users, model.item_genres.shape[1], device=dev)  # (U, G) sum of multi-hots
    raw.index_add_(0, users.to(dev), (model.item_genres[items.to(dev)] > 0).float())
    # mean and sum give the same cosine: normalising the sum is the normalised mean
    model.profiles = F.normalize(raw, dim=1)
    model.has_history = torch.bincount(users, minlength=ctx.n_users).to(dev) > 0
    counts = torch.bincount(items, minlength=ctx.n_items).float().to(dev)
    model.popularity = counts / counts.max().clamp_min(1.0)


SPEC = ModelSpec(
    name="genre_content",
    config_cls=GenreContentConfig,
    build=build,
    fit=fit,
    description="cosine of the user's mean genre vector to item genres (cold-item baseline)",
)
