"""Cold start for the enhanced recommender: score brand-new users (a metadata profile) and
brand-new items (a metadata table) from text alone. New items: their ID view is the learned
'unknown' vector. New users: with `cold_users="neighbours"` the training items of the known users
whose LM profile vectors are nearest; with `cold_users="model"` the unknown ID attending over the
profile, like new items. The text is rendered with the model's own template settings and encoded by
its LM (`TextSource.encode_new`).

Bad profiles and item tables raise ValueError naming the valid fields (the CLI and
`gpt2rec.coldstart` turn it into a one-line message).
"""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from ..text.templates import item_texts, user_texts

_DERIVED = {"age_group": "age"}  # template field -> the profile column it comes from


def profile_columns(info) -> tuple[list[str], list[str]]:
    """(valid columns, required columns) of a new-user profile for a model's `TextInfo`."""
    valid = list(info.user_columns)
    required = [_DERIVED.get(f, f) for f in info.user_fields if _DERIVED.get(f, f) in valid]
    return valid, required


def check_profile(info, profile: dict) -> dict:
    """A validated copy of a profile dict (unknown or missing fields -> ValueError listing the valid ones)."""
    if not isinstance(profile, dict):
        raise TypeError(
            f'a profile must be a JSON object like {{"gender": "F", "age": 31}}; got {type(profile).__name__}'
        )
    valid, required = profile_columns(info)
    unknown = sorted(set(profile) - set(valid))
    missing = [c for c in required if c not in profile or profile[c] in (None, "")]
    if unknown or missing:
        parts = ([f"unknown field(s) {unknown}"] if unknown else []) + (
            [f"missing field(s) {missing}"] if missing else []
        )
        raise ValueError(f"profile has {' and '.join(parts)}; valid fields: {valid} (required: {required})")
    out = dict(profile)
    if "age" in out:
        try:
            out["age"] = int(out["age"])
        except (TypeError, ValueError):
            raise ValueError(f"profile age must be a whole number of years, got {out['age']!r}") from None
    return out


def new_user_text(info, template, profile: dict):
    """The rendered sentence (templates.Rendered) of a profile."""
    profile = check_profile(info, profile)
    users = pd.DataFrame([{"user_id": -1, **profile}])
    items = pd.DataFrame({c: pd.Series(dtype=object) for c in ["item_id", *info.item_columns]})
    empty = pd.DataFrame(
        {
            "user": pd.Series(dtype=np.int64),
            "item": pd.Series(dtype=np.int64),
            "rating": pd.Series(dtype=np.float32),
            "timestamp": pd.Series(dtype=np.int64),
        }
    )
    data = SimpleNamespace(users=users, items=items, n_users=1, n_items=0)
    return user_texts(data, template, empty)[0]


def normalise_items(info, items_df: pd.DataFrame) -> pd.DataFrame:
    """Check a new-items table: needs the item template's columns; genres may be 'A|B' strings."""
    if not isinstance(items_df, pd.DataFrame) or items_df.empty:
        raise ValueError("new items must be a non-empty table with at least a 'title' column")
    needed = [f for f in info.item_fields if f != "item_id"]
    missing = [c for c in needed if c not in items_df.columns]
    if missing:
        raise ValueError(f"new items lack column(s) {missing}; give {needed} (genres as 'Action|Comedy')")
    df = items_df.reset_index(drop=True).copy()
    if "genres" in df.columns:
        df["genres"] = [_genre_list(g) for g in df["genres"]]
    return df


def _genre_list(g) -> list:
    if isinstance(g, (list, tuple)):
        return list(g)
    if isinstance(g, float) and np.isnan(g):
        return []
    return [x.strip() for x in str(g).split("|") if x.strip()]


@contextmanager
def _scoring(model):
    """Eval mode and no gradients; the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def score_new_user(model, profile: dict) -> torch.Tensor:
    """Scores of every item (n_items,) for a user who exists only as a metadata profile."""
    rendered = new_user_text(model.text.info, model.config.template, profile)
    with _scoring(model):
        text = model.text.encode_new("user", [rendered])  # (1, Fu, D)
        return model.score_user_text(text)[0]  # (I,)


def score_new_items(model, user: int, items_df: pd.DataFrame) -> torch.Tensor:
    """Scores (n_new,) of items given only as metadata rows, for the known internal user `user`."""
    df = normalise_items(model.text.info, items_df)
    if not 0 <= int(user) < model.n_users:
        raise ValueError(f"user index {user} is out of range (0..{model.n_users - 1})")
    rendered = item_texts(SimpleNamespace(items=df, n_items=len(df)), model.config.template)
    with _scoring(model):
        text = model.text.encode_new("item", rendered)  # (N, Fi, D)
        return model.score_item_text(int(user), text)  # (N,)
