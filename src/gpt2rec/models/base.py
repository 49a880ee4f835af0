"""The model contract shared by every recommender (baselines and GPT-2 models alike).

A model is a `torch.nn.Module` with a typed `config` dataclass and two scoring methods. It never
trains itself: gradient models are trained by `gpt2rec.train.loop`, closed-form models (popularity,
ItemKNN, EASE) by their spec's `fit` function. Everything a model needs to be rebuilt lives in its
config plus its `state_dict` (saved as safetensors), so a checkpoint loads without unpickling.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch

from ..data.dataset import Dataset


@runtime_checkable
class Recommender(Protocol):
    config: Any
    n_users: int
    n_items: int

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for each user: (B,) long -> (B, n_items) float."""

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs: (B,), (B,) -> (B,)."""


@dataclass
class ModelContext:
    """What a model builder may read: sizes always; metadata and training data when available.

    On checkpoint load `train` is None: everything learned from it must be in the state_dict, and
    `saved` holds what the model's `checkpoint_meta()` returned when it was saved (sizes known only
    after seeing the data, e.g. the LM's width), so the model is built at the saved shape and loads
    with a plain strict `load_state_dict`.
    """

    n_users: int
    n_items: int
    dataset: Dataset | None = None
    train: pd.DataFrame | None = None  # training interactions, internal indices
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    saved: dict | None = None  # checkpoint load: the model's `checkpoint_meta()` at save time
    # items held out whole as new (a cold-item split's), not merely unchosen in training: a model
    # that reads item metadata may score them as brand-new items (l3ae: by their text column)
    new_items: np.ndarray | None = None


def saved_value(ctx: ModelContext, key: str, default: Any = None) -> Any:
    """`ctx.saved[key]` for a checkpoint load; `default` when building fresh. A checkpoint without
    the key (saved by an older gpt2rec) raises ValueError naming the fix."""
    if ctx.saved is None:
        if default is None:
            raise ValueError(f"building this model needs the dataset and training data (or a checkpoint's {key!r})")
        return default
    if key not in ctx.saved:
        raise ValueError(f"the checkpoint was saved by an older gpt2rec (no {key!r} in its metadata); retrain it")
    return ctx.saved[key]


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry. `fit` is set for closed-form models; None means gradient training.

    `train_defaults`: the model's own TrainConfig settings (gradient models whose best epoch, chosen
    on ML-100K validation, lies beyond the generic defaults); explicit settings override them.
    `history_only`: the model scores users and items from their training interactions alone, so a user
    or item without any gets scores that say nothing (no profile, no metadata, no fallback).
    `tune_grid`: points of model settings `gpt2rec train --tune` fits and scores on validation (closed
    form only), in the order that breaks ties; `tune_extra`: more points tried on one split kind only
    (where a setting matters only there). `tune_axes` (gradient models): the values `--tune`'s
    coordinate search tries per setting, "model.NAME" or "train.NAME" -> values (`train.search`).
    `legacy_defaults`: settings added after the model's first release whose default differs from
    what runs saved before them were fitted with; a run folder's config.json without such a key
    reads this value, not today's default (`train.checkpoint.upgrade_config`).
    `new_items_note`: what a client adding items to a served run of this model should know, when its
    new items, though scored, rarely rank next to known ones (empty when they do).
    """

    name: str
    config_cls: type
    build: Callable[[Any, ModelContext], torch.nn.Module]
    fit: Callable[[torch.nn.Module, ModelContext], None] | None = None
    description: str = ""
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    history_only: bool = False
    tune_grid: tuple[Mapping[str, Any], ...] = ()
    tune_extra: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    tune_axes: Mapping[str, tuple] = field(default_factory=dict)
    legacy_defaults: Mapping[str, Any] = field(default_factory=dict)
    new_items_note: str = ""

    def tune_points(self, split_kind: str) -> tuple[Mapping[str, Any], ...]:
        return tuple(self.tune_grid) + tuple(self.tune_extra.get(split_kind, ()))


def new_users_blind(spec: ModelSpec, model) -> str | None:
    """Why `model` cannot place a user without training interactions, or None when it can."""
    if spec.history_only:
        return f"{spec.name} scores a user from their interactions alone"
    if not getattr(model, "places_new_users", True):
        return f"{spec.name} has no user profiles to read here (no users table, or cold_users=none)"
    return None
