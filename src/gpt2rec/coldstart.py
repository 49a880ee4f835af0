"""Cold start: score brand-new users (a metadata profile) and brand-new items (a metadata table)
with the enhanced recommender, from text alone. New items: their ID view is the learned 'unknown'
vector. New users: by default (`cold_users="neighbours"`) the training items of the known users
whose LM profile vectors are nearest; with `cold_users="model"` the unknown ID attending over the
profile, like new items.

    scores = score_new_user(model, {"gender": "F", "age": 31, "occupation": "writer"})   # (n_items,)
    scores = score_new_items(model, user=42, items_df)                                   # (n_new,)

The text is rendered with the model's own template settings and encoded by its LM (rebuilt from
the name in the checkpoint on first use, with its trained adapters).
"""

from __future__ import annotations

import errno
import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from .errors import DataError, UserError
from .run import Run, plain, top_k
from .text.templates import item_texts, user_texts

MAX_AGE = 120
_DERIVED = {"age_group": "age"}  # template field -> the profile column it comes from


def _require_cold_start(model) -> None:
    if not hasattr(model, "unknown_user") or not hasattr(model, "meta_info"):
        raise UserError(
            f"cold start needs the 'enhanced' model (this is {type(model).__name__}); train with --model enhanced"
        )
    if "lm" not in model.meta_info:
        raise UserError("this model has no text metadata (it was never built with a dataset); retrain it")


def profile_columns(model) -> tuple[list[str], list[str]]:
    """(valid columns, required columns) of a new-user profile for this model."""
    info = model.meta_info
    valid = list(info.get("user_columns", []))
    required = [_DERIVED.get(f, f) for f in info.get("user_fields", []) if _DERIVED.get(f, f) in valid]
    return valid, required


def check_profile(model, profile: dict) -> dict:
    """Validate a profile dict: unknown or missing fields -> UserError listing the valid fields."""
    _require_cold_start(model)
    if not isinstance(profile, dict):
        raise UserError(
            f'a profile must be a JSON object like {{"gender": "F", "age": 31}}; got {type(profile).__name__}'
        )
    valid, required = profile_columns(model)
    unknown = sorted(set(profile) - set(valid))
    missing = [c for c in required if c not in profile or profile[c] in (None, "")]
    if unknown or missing:
        parts = ([f"unknown field(s) {unknown}"] if unknown else []) + (
            [f"missing field(s) {missing}"] if missing else []
        )
        raise UserError(f"profile has {' and '.join(parts)}; valid fields: {valid} (required: {required})")
    out = {}
    for name, value in profile.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) and value is not None:
            raise UserError(f"profile {name} must be text or a number, got {json.dumps(value)[:60]}")
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"profile {name} must be a finite value, got {value}")
        out[name] = value
    if out.get("age") is not None:
        out["age"] = _age(out["age"])
    return out


def _age(value) -> int:
    """A whole number of years in 0..MAX_AGE (31, 31.0 and "31" are fine; 31.5, -40, 1e308 are not)."""
    try:
        age = float(value)
    except (TypeError, ValueError, OverflowError):
        age = math.nan
    if not (math.isfinite(age) and age == int(age) and 0 <= age <= MAX_AGE):
        raise UserError(f"profile age must be a whole number of years between 0 and {MAX_AGE}, got {value!r}")
    return int(age)


def _encode(model, rendered, kind: str) -> torch.Tensor:
    runtime = model.ensure_lm()
    was_training = runtime.training
    runtime.eval()
    try:
        with torch.no_grad():
            out = runtime.encode(
                [r.text for r in rendered], [r.spans for r in rendered], progress=False, fields=model.fields(kind)
            )
    finally:
        runtime.train(was_training)
    return out.to(model.user_cache.device, model.user_cache.dtype)  # (N, F, D)


def new_user_text(model, profile: dict):
    """The rendered sentence (templates.Rendered) of a validated profile."""
    profile = check_profile(model, profile)
    users = pd.DataFrame([{"user_id": -1, **profile}])
    items = pd.DataFrame({c: pd.Series(dtype=object) for c in ["item_id", *model.meta_info.get("item_columns", [])]})
    empty = pd.DataFrame(
        {
            "user": pd.Series(dtype=np.int64),
            "item": pd.Series(dtype=np.int64),
            "rating": pd.Series(dtype=np.float32),
            "timestamp": pd.Series(dtype=np.int64),
        }
    )
    data = SimpleNamespace(users=users, items=items, n_users=1, n_items=0)
    return user_texts(data, model.config.template, empty)[0]


def score_new_user(model, profile: dict) -> torch.Tensor:
    """Scores of every item (n_items,) for a user who exists only as a metadata profile."""
    rendered = new_user_text(model, profile)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            text = _encode(model, [rendered], "user")  # (1, Fu, D)
            if getattr(model, "neighbours", None) is not None:  # cold_users="neighbours"
                return model.neighbour_scores(text)[0]  # (I,)
            user, _ = model.represent("user", None, text=text, ids=model.unknown_user.unsqueeze(0))  # (1, d)
            items, bias = model._item_table()  # (I, d), (I,)
            return (user @ items.T + bias)[0]  # (I,)
    finally:
        model.train(was_training)


def normalise_items(model, items_df: pd.DataFrame) -> pd.DataFrame:
    """Check a new-items table: needs the item template's columns; genres may be 'A|B' strings."""
    _require_cold_start(model)
    if not isinstance(items_df, pd.DataFrame) or items_df.empty:
        raise UserError("new items must be a non-empty table with at least a 'title' column")
    needed = [f for f in model.meta_info.get("item_fields", []) if f != "item_id"]
    missing = [c for c in needed if c not in items_df.columns]
    if missing:
        raise UserError(f"new items lack column(s) {missing}; give {needed} (genres as 'Action|Comedy')")
    df = items_df.reset_index(drop=True).copy()
    if "genres" in df.columns:
        df["genres"] = [
            g
            if isinstance(g, (list, tuple))
            else [x.strip() for x in str(g).split("|") if x.strip()]
            if not (isinstance(g, float) and np.isnan(g))
            else []
            for g in df["genres"]
        ]
    return df


def score_new_items(model, user: int, items_df: pd.DataFrame) -> torch.Tensor:
    """Scores (n_new,) of items given only as metadata rows, for the known internal user `user`."""
    _require_cold_start(model)
    if not 0 <= int(user) < model.n_users:
        raise UserError(f"user index {user} is out of range (0..{model.n_users - 1})")
    table = new_item_table(model, items_df)
    return user_vectors(model, [int(user)])[0] @ table.vectors.T + table.bias  # (N,)


@dataclass
class NewItems:
    """New items encoded once: LM field vectors `text` (N, Fi, D), fused vectors (N, d), biases (N,)."""

    text: torch.Tensor
    vectors: torch.Tensor
    bias: torch.Tensor


def new_item_table(model, items_df: pd.DataFrame) -> NewItems:
    """Encode metadata rows once (the ID view is the learned 'unknown' vector) for repeated scoring."""
    df = normalise_items(model, items_df)
    rendered = item_texts(SimpleNamespace(items=df, n_items=len(df)), model.config.template)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            text = _encode(model, rendered, "item")  # (N, Fi, D)
            items, _ = model.represent("item", None, text=text, ids=model.unknown_item.expand(len(df), -1))  # (N, d)
            bias = model.unknown_bias if model.bias is not None else items.new_zeros(1)  # new items: 'unknown' bias
            return NewItems(text, items, bias.expand(len(df)).clone())
    finally:
        model.train(was_training)


def user_vectors(model, users) -> torch.Tensor:
    """Fused vectors (B, d) of known internal users (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            idx = torch.as_tensor(list(users), dtype=torch.long, device=model.user_emb.weight.device)  # (B,)
            return model.represent("user", idx)[0]  # (B, d)
    finally:
        model.train(was_training)


def read_profile(arg: str) -> dict:
    """A profile from a JSON text or a path to a JSON file (text that starts with '{' is never a path).

    NaN / Infinity, deep nesting and non-object values are a UserError."""
    text = arg.strip() if isinstance(arg, str) else arg
    if isinstance(text, str) and text and not text.startswith("{"):
        text = _profile_file(Path(arg))
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (TypeError, ValueError, RecursionError) as exc:
        raise UserError(
            f'--profile must be a JSON object or a JSON file, e.g. \'{{"gender": "F", "age": 31}}\' ({exc})'
        ) from None
    if not isinstance(value, dict):
        raise UserError('--profile must be a JSON object, e.g. \'{"gender": "F", "age": 31, "occupation": "writer"}\'')
    return value


def _profile_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (IsADirectoryError, UnicodeDecodeError):
        raise UserError(f"--profile {path} is not a UTF-8 JSON file; give a JSON object or its file") from None
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the "name"
        raise UserError(
            f'--profile {str(path)[:60]!r} is neither a JSON object nor a file; give e.g. \'{{"gender": "F", "age": 31}}\''
        ) from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise UserError("--profile is neither a JSON object nor a file name (too long for one)") from None
        raise


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows; give a finite value")


def read_items(path: str | Path) -> pd.DataFrame:
    """New items from a CSV/TSV (columns title, genres 'A|B', optional item_id, year) or JSON list."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"items file {path} does not exist; pass a CSV/TSV/JSON file with a 'title' column")
    from .data.tables import check_text_file

    check_text_file(path, "utf-8", "pass a CSV/TSV/JSON file with a 'title' column")
    try:
        if path.suffix.lower() == ".json":
            return pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
        return pd.read_csv(path, sep="\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    except (ValueError, RecursionError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read items file {path} ({exc}); use CSV with a header row (title,genres)") from None


# ---- run folders (what `gpt2rec recommend --profile / --items` calls) -----------------------------
def recommend_profile(run_dir, profile, k: int = 10, device=None) -> list[dict]:
    """Top-k items of a run's catalogue for a new user given as a profile (dict, JSON text or file)."""
    from .pipeline import open_run

    return profile_rows(open_run(run_dir, device), profile, k)


def profile_rows(run: Run, profile, k: int = 10) -> list[dict]:
    """Top-k rows of a loaded `Run` for a new user's profile, each with the reason when the model
    scores new users from their profile neighbours."""
    profile = read_profile(profile) if isinstance(profile, str) else profile
    rows = run.rows(*top_k(score_new_user(run.model, profile), int(k)))
    neighbours = getattr(run.model, "neighbours", None)
    if neighbours is not None:  # the score is a share of the nearest profiles
        n = neighbours.size(run.model.user_known.sum())
        for row in rows:
            row["reason"] = f"{round(row['score'] * n)} of the {n} users with the profiles nearest yours had it"
    return rows


def rank_new_items(run_dir, raw_user, items, k: int = 10, device=None) -> list[dict]:
    """New items (a DataFrame or a CSV/TSV/JSON path) ranked for a run's known user."""
    from .pipeline import open_run

    run = open_run(run_dir, device)
    df = items if isinstance(items, pd.DataFrame) else read_items(items)
    top, scores = top_k(score_new_items(run.model, run.user_index(raw_user), df), int(k))
    ids = df["item_id"].tolist() if "item_id" in df.columns else list(range(len(df)))
    return [
        {"item_id": plain(ids[i]), "title": str(df["title"].iloc[i]), "score": float(s)} for i, s in zip(top, scores)
    ]
