"""Cold start at the edge: brand-new users (a metadata profile) and brand-new items (a metadata
table) of a run folder, scored from text alone by l3ae, l3ae_mf or the enhanced model. The model
side is `score_new_user` / `score_new_items` (`gpt2rec.models.l3ae_new`, `gpt2rec.models.new_entities`);
here bad input becomes a one-line UserError, profiles and item files are read, and run folders are
opened.

    scores = score_new_user(model, {"gender": "F", "age": 31, "occupation": "writer"})   # (n_items,)
    scores = score_new_items(model, user=42, items_df)                                   # (n_new,)
"""

from __future__ import annotations

import errno
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .errors import DataError, UserError
from .models import new_entities
from .models.new_entities import MAX_AGE  # noqa: F401  (part of this module's interface)
from .run import Run, plain, top_k
from .utils.config import check_k

log = logging.getLogger(__name__)


def _require_cold_start(model) -> None:
    if not hasattr(model, "score_new_user"):
        raise UserError(
            f"cold start needs a model that reads profiles (this is {type(model).__name__}); "
            "train with --model l3ae or --model enhanced"
        )


def _require_new_items(model) -> None:
    if not hasattr(model, "score_new_items"):
        raise UserError(
            f"new items need a model that reads item metadata (this is {type(model).__name__}); "
            "train with --model l3ae or --model enhanced"
        )


def _edge(call, *args):
    """`call(*args)` with the library's ValueError/TypeError (bad profile, bad items) as one-line UserErrors."""
    try:
        return call(*args)
    except (ValueError, TypeError) as exc:
        raise UserError(str(exc)) from None


def check_profile(model, profile: dict) -> dict:
    """Validate a profile dict: unknown or missing fields, or a bad value -> UserError naming the valid ones."""
    _require_cold_start(model)
    return _edge(new_entities.check_profile, model.profile_info, profile)


def score_new_user(model, profile: dict) -> torch.Tensor:
    """Scores of every item (n_items,) for a user who exists only as a metadata profile."""
    _require_cold_start(model)
    return _edge(model.score_new_user, profile)


def score_new_items(model, user: int, items_df: pd.DataFrame) -> torch.Tensor:
    """Scores (n_new,) of items given only as metadata rows, for the known internal user `user`."""
    _require_new_items(model)
    return _edge(model.score_new_items, user, items_df)


@dataclass
class NewItems:
    """New items encoded once: LM field vectors `text` (N, Fi, D), `vectors` (N, d) and biases (N,),
    a user's scores being `user_vectors(model, [u]) @ vectors.T + bias`. The enhanced model: fused
    vectors (the ID view is the learned 'unknown' vector); l3ae: their columns of B (d = I)."""

    text: torch.Tensor
    vectors: torch.Tensor
    bias: torch.Tensor


def new_item_table(model, items_df: pd.DataFrame) -> NewItems:
    """Encode metadata rows once for repeated scoring (see `NewItems`)."""
    _require_new_items(model)
    if hasattr(model, "new_item_rows"):
        return NewItems(*_edge(model.new_item_rows, items_df))
    return NewItems(*_edge(new_entities.new_item_vectors, model, items_df))


def user_vectors(model, users) -> torch.Tensor:
    """What new items' `vectors` are scored against, for known internal users (eval mode, no
    gradients): fused vectors (B, d) (enhanced) or training-item rows (B, I) (l3ae)."""
    if hasattr(model, "user_rows"):
        with torch.no_grad():
            return model.user_rows(torch.as_tensor(list(users), dtype=torch.long))  # (B, I), on the model's device
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
            f'profile must be a JSON object or a JSON file, e.g. \'{{"gender": "F", "age": 31}}\' ({exc})'
        ) from None
    if not isinstance(value, dict):
        raise UserError('profile must be a JSON object, e.g. \'{"gender": "F", "age": 31, "occupation": "writer"}\'')
    return value


def _profile_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (IsADirectoryError, UnicodeDecodeError):
        raise UserError(f"profile {path} is not a UTF-8 JSON file; give a JSON object or its file") from None
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the "name"
        raise UserError(
            f'profile {str(path)[:60]!r} is neither a JSON object nor a file; give e.g. \'{{"gender": "F", "age": 31}}\''
        ) from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise UserError("profile is neither a JSON object nor a file name (too long for one)") from None
        raise


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows; give a finite value")


def read_items(
    path: str | Path, id_column: str = "item_id", sep: str | None = None, encoding: str = "utf-8"
) -> pd.DataFrame:
    """New items from a CSV/TSV, Parquet or JSON list: the columns the run's items are read by
    (MovieLens: title, genres 'A|B'), optional item IDs in `id_column` (the run's item column; as
    `item_id` in the table returned, read as written: "007" stays text). `sep` and `encoding`: the
    run's own items table's (`rank_new_items` passes them), else from the suffix and UTF-8."""
    path = Path(path)
    if path.is_dir():  # was reported as "does not exist"
        raise UserError(f"items file {path} is a directory; pass a CSV/TSV/JSON file with a 'title' column")
    if not path.is_file():
        raise UserError(f"items file {path} does not exist; pass a CSV/TSV/JSON file with a 'title' column")
    from .data.files import check_text_file
    from .data.generic import suffix_sep
    from .data.tables import PARQUET_SUFFIXES, header_sep_hint, read_delimited, sep_name

    if path.suffix.lower() not in PARQUET_SUFFIXES:
        check_text_file(path, encoding, "pass a CSV/TSV/JSON file with a 'title' column", encoding_flag=False)
    hint = ""  # a delimited file read as one column: what its header's separator looks like
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            df = pd.read_parquet(path)
        elif path.suffix.lower() == ".json":
            df = _json_items(path, json.loads(path.read_text(encoding=encoding)))
        else:
            sep = sep or suffix_sep(path)  # read as the run's own tables are (quotes, "::", a title "NA")
            df = read_delimited(path, sep, header=True, encoding=encoding, as_text=[id_column, "item_id"],
                                fix="use CSV with a header row (title,genres)").reset_index(drop=True)  # fmt: skip
            hint = header_sep_hint([str(c) for c in df.columns], sep)
    except (ValueError, RecursionError, pd.errors.ParserError, OSError) as exc:  # (pyarrow's errors are these)
        raise DataError(f"cannot read items file {path} ({exc}); use CSV with a header row (title,genres)") from None
    if hint:  # its rows would be refused as lacking every column the run reads
        raise DataError(f"items file {path}: its fields were split on {sep_name(sep)}{hint}; write it with "
                        f"{sep_name(sep)} (the run's items separator, else its suffix's), or as JSON")  # fmt: skip
    if id_column != "item_id" and id_column in df.columns and "item_id" not in df.columns:
        df = df.rename(columns={id_column: "item_id"})  # the run's own item column (train --item-col)
    if "title" in df.columns:  # an empty title was read as NaN and shown (and encoded) as "nan"
        blank = df["title"].isna() | (df["title"].astype(str).str.strip() == "")
        if blank.any():
            row = int(blank.to_numpy().argmax()) + 1  # 1-based data row, as `row` in the answers
            raise UserError(f"items file {path}: row {row} has no title; give every item a title")
    return df


def _json_items(path: Path, data) -> pd.DataFrame:
    """A JSON items file: a list of objects, one per item (one object alone is one item)."""
    rows = [data] if isinstance(data, dict) else data
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise UserError(f"items file {path} holds {_json_kind(data)}, not items; give a list of objects, e.g. "
                        '[{"title": "Heat (1995)", "genres": "Action|Crime"}]')  # fmt: skip
    return pd.DataFrame(rows)


def _json_kind(data) -> str:
    if isinstance(data, list):
        return "an empty list" if not data else "a list of other values than objects"
    kinds = ((bool, "true or false"), (str, "text"), (type(None), "null"))  # bool before int: it is one
    kind = next((name for tp, name in kinds if isinstance(data, tp)), "a number")
    return f"{kind} ({json.dumps(data)[:40]})"


# ---- run folders (what `gpt2rec recommend --profile / --items` calls) -----------------------------
def recommend_profile(run_dir, profile, k: int = 10, device=None) -> list[dict]:
    """Top-k items of a run's catalogue for a new user given as a profile (dict, JSON text or file)."""
    from .pipeline import open_run

    k = check_k(k)  # before the run is loaded
    return profile_rows(open_run(run_dir, device), profile, k)


def profile_rows(run: Run, profile, k: int = 10) -> list[dict]:
    """Top-k rows of a loaded `Run` for a new user's profile, each with the reason when the model
    scores new users from their profile neighbours."""
    k = check_k(k)
    profile = read_profile(profile) if isinstance(profile, str) else profile
    rows = run.rows(*top_k(score_new_user(run.model, profile), k))
    neighbours = getattr(run.model, "neighbours", None)
    if neighbours is not None:  # the score is a share of the nearest profiles
        known = int(run.model.user_known.sum())
        n = neighbours.size(known)
        # every known user a neighbour: the profile changed nothing, and the reason must not say it did
        who = f"the {n} users with the profiles nearest yours" if n < known else f"all {n} users"
        tail = "" if n < known else " (too few users to pick neighbours by profile)"
        for row in rows:
            row["reason"] = f"{round(row['score'] * n)} of {who} had it{tail}"
    return rows


def rank_new_items(run_dir, raw_user, items, k: int = 10, device=None) -> list[dict]:
    """New items (a DataFrame or a CSV/TSV/JSON path) ranked for a run's known user."""
    from .pipeline import open_run

    k = check_k(k)  # before the run is loaded
    run = open_run(run_dir, device)
    data = getattr(run.config, "data", None)  # new items come in the format of the run's own items table
    sep = getattr(data, "items_sep", None) or getattr(data, "sep", None)  # (its --items-sep, else --sep)
    fmt = {"id_column": getattr(data, "item_col", "item_id"), "sep": sep,
           "encoding": getattr(data, "encoding", "utf-8")}  # fmt: skip
    df = items if isinstance(items, pd.DataFrame) else read_items(items, **fmt)
    info = getattr(run.model, "profile_info", None)
    read = [] if info is None else [f for f in info.item_fields if f != "item_id"]
    unread = [str(c) for c in df.columns if read and c not in read and c != "item_id"]
    if unread and set(read) <= set(df.columns):  # an extra column (a price) is fine, but say it adds nothing
        # (a file without the run's columns is refused below, and the refusal names them: one line)
        log.warning("new items: this run reads %s, not %s; those columns are left unread", info.item_fields, unread)
    # without an item_id column no ID is made up (0, 1, ... would clash with the catalogue's IDs):
    # item_id is None and `row` (1-based data row of the file) says which item it is
    ids = _new_item_ids(run, df["item_id"]) if "item_id" in df.columns else [None] * len(df)
    top, scores = top_k(score_new_items(run.model, run.user_index(raw_user), df), k)
    # shown as the title: the title, else the first column the items are described by (a name)
    shown = "title" if "title" in df.columns else next((c for c in df.columns if c != "item_id"), "item_id")
    return [
        {"item_id": ids[i], "row": int(i) + 1, "title": str(df[shown].iloc[i]), "score": float(s)}
        for i, s in zip(top, scores)
    ]


def _new_item_ids(run: Run, column: pd.Series) -> list:
    """The IDs of new items as written (None where a row has none: NaN is not JSON), each given once
    and none a catalogue item's ID (the answer would name two items by one ID)."""
    ids = [_written_id(v) for v in column.tolist()]
    first: dict[str, int] = {}
    for row, raw in enumerate(ids, start=1):
        if raw is None:
            continue
        key = str(raw)
        if key in first:
            raise UserError(f"new items: item_id {raw!r} is given in rows {first[key]} and {row}; give each new "
                            "item its own ID, or leave item_id out")  # fmt: skip
        first[key] = row
        try:
            known = run.item_index(raw)
        except UserError:
            continue
        title = run.row(known, 0.0)["title"]
        raise UserError(f"new items: item_id {raw!r} (row {row}) is already the catalogue's item {title!r}; give "
                        "the new item another ID, or leave item_id out")  # fmt: skip
    return ids


def _written_id(value):
    """A file's ID as written: whole numbers as int (also 5.0, as JSON with a missing ID reads them),
    "007" and other text as text, a missing one as None."""
    value = plain(value)
    if value is None or isinstance(value, float) and value != value:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        return int(text) if re.fullmatch(r"-?(0|[1-9][0-9]{0,17})", text) else text
    return value
