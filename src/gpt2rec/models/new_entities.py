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

import json
import math
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from ..data.generic import MAX_AGE
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
    out = {}
    for name, value in profile.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) and value is not None:
            raise ValueError(f"profile {name} must be text or a number, got {json.dumps(value)[:60]}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"profile {name} must be a finite value, got {value}")
        out[name] = value
    if out.get("age") is not None:
        out["age"] = _age(out["age"], getattr(info, "text_ages", False))
    return out


def _age(value, text_ok: bool = False) -> int | str:
    """A whole number of years in 0..MAX_AGE (31, 31.0 and "31" are fine; 31.5, -40, 1e308 are not),
    or, for a run whose users table wrote ages as text, any text ("18-24": read as written)."""
    try:
        age = float(value)
    except (TypeError, ValueError, OverflowError):
        if text_ok and isinstance(value, str) and value.strip():
            return value.strip()
        age = math.nan
    if not (math.isfinite(age) and age == int(age) and 0 <= age <= MAX_AGE):
        raise ValueError(f"profile age must be a whole number of years between 0 and {MAX_AGE}, got {value!r}")
    return int(age)


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
        how = " (genres as 'Action|Comedy')" if "genres" in needed else ""
        raise ValueError(f"new items lack column(s) {missing}; give {needed}{how}")
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
    if not 0 <= int(user) < model.n_users:
        raise ValueError(f"user index {user} is out of range (0..{model.n_users - 1})")
    _, vectors, bias = new_item_vectors(model, items_df)  # (N, d), (N,)
    with _scoring(model):
        u, _ = model.represent("user", torch.tensor([int(user)], device=vectors.device))  # (1, d)
        return (u @ vectors.T)[0] + bias  # (N,)


def new_item_vectors(model, items_df: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """New items' LM field vectors (N, Fi, D), fused vectors (N, d) and biases (N,), encoded once for
    repeated scoring: the ID view is the learned 'unknown' vector, the bias the 'unknown' bias."""
    df = normalise_items(model.text.info, items_df)
    rendered = item_texts(
        SimpleNamespace(items=df, n_items=len(df)), model.config.template, model.text.info.item_fields
    )
    with _scoring(model):
        text = model.text.encode_new("item", rendered)  # (N, Fi, D)
        vectors, bias = model.represent_new_items(text)  # (N, d), (N,)
    return text, vectors, bias
