"""Cold start at the edge: score brand-new users (a metadata profile) and brand-new items (a metadata
table) of a run folder with the enhanced recommender, from text alone (the model side is
`gpt2rec.models.new_entities`; bad input becomes a one-line UserError here).

    scores = score_new_user(model, {"gender": "F", "age": 31, "occupation": "writer"})   # (n_items,)
    scores = score_new_items(model, user=42, items_df)                                   # (n_new,)
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from .errors import DataError, UserError
from .run import Run, plain, top_k


def _require_cold_start(model) -> None:
    if not hasattr(model, "score_new_user"):
        raise UserError(
            f"cold start needs the 'enhanced' model (this is {type(model).__name__}); train with --model enhanced"
        )


def score_new_user(model, profile: dict) -> torch.Tensor:
    """Scores of every item (n_items,) for a user who exists only as a metadata profile."""
    _require_cold_start(model)
    try:
        return model.score_new_user(profile)
    except (ValueError, TypeError) as exc:  # a bad profile: one line naming the valid fields
        raise UserError(str(exc)) from None


def score_new_items(model, user: int, items_df: pd.DataFrame) -> torch.Tensor:
    """Scores (n_new,) of items given only as metadata rows, for the known internal user `user`."""
    _require_cold_start(model)
    try:
        return model.score_new_items(user, items_df)
    except (ValueError, TypeError) as exc:
        raise UserError(str(exc)) from None


def read_profile(arg: str) -> dict:
    """A profile from a JSON string or a path to a JSON file."""
    text = Path(arg).read_text(encoding="utf-8") if arg and Path(arg).is_file() else arg
    try:
        value = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise UserError(
            f'--profile must be a JSON object or a JSON file, e.g. \'{{"gender": "F", "age": 31}}\' ({exc})'
        ) from None
    if not isinstance(value, dict):
        raise UserError('--profile must be a JSON object, e.g. \'{"gender": "F", "age": 31, "occupation": "writer"}\'')
    return value


def read_items(path: str | Path) -> pd.DataFrame:
    """New items from a CSV/TSV (columns title, genres 'A|B', optional item_id, year) or JSON list."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"items file {path} does not exist; pass a CSV/TSV/JSON file with a 'title' column")
    try:
        if path.suffix.lower() == ".json":
            return pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
        return pd.read_csv(path, sep="\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    except (ValueError, pd.errors.ParserError) as exc:
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
