"""Load a user's own interactions (CSV/TSV/Parquet) plus optional user and item tables.

The interactions file needs a user column and an item column (integer IDs); rating and timestamp
columns are optional (rating 1.0 and timestamp 0 when absent). The users table is keyed by the same
user column, the items table by the same item column; an item `title` and `genres` column (split on
`genres_sep`) are used when present, and `year` is parsed from the title when not given.
Implicit feedback (`rating >= threshold`) is applied afterwards by `Dataset.implicit`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .dataset import Dataset
from .files import check_file
from .movielens import parse_years
from .tables import (
    PARQUET_SUFFIXES,
    at,
    check_unique,
    float_column,
    id_column,
    int_column,
    keep_latest,
    read_delimited,
    require_columns,
    sep_name,
)

log = logging.getLogger(__name__)

MAX_AGE = 120  # years; a profile's age is checked against the same bound
_SEP_BY_SUFFIX = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".dat": "::", ".psv": "|"}


@dataclass
class Columns:
    """Column names and parsing options of the user's files."""

    user: str = "user_id"
    item: str = "item_id"
    rating: str | None = None  # None: use a column named "rating" if there is one
    timestamp: str | None = None  # None: use a column named "timestamp" if there is one
    sep: str | None = None  # None: from the file suffix (.csv ',', .tsv '\t', .dat '::'), else ','
    users_sep: str | None = None  # the users table's own; None: `sep`, else from its suffix
    items_sep: str | None = None  # the items table's own; None: `sep`, else from its suffix
    genres_sep: str = "|"
    encoding: str = "utf-8"
    title: str = "title"
    genres: str = "genres"


def load_generic(
    interactions: str | Path,
    users: str | Path | None = None,
    items: str | Path | None = None,
    columns: Columns | None = None,
    name: str | None = None,
) -> Dataset:
    """Build a Dataset from the user's files; every bad value is a DataError naming file and line."""
    cols = columns or Columns()
    path = check_file(interactions, "check the path of the interactions file")
    fix = _fix(cols)
    df = _read(path, cols, fix, as_text=[cols.user, cols.item])  # IDs as written: '007' is not 7
    wanted = [cols.user, cols.item] + [c for c in (cols.rating, cols.timestamp) if c]
    require_columns(df, path, wanted, _sep(path, cols), fix)
    inter = pd.DataFrame(
        {
            "user_id": id_column(df, cols.user, path, fix, f"user ID ({cols.user})"),
            "item_id": id_column(df, cols.item, path, fix, f"item ID ({cols.item})"),
        },
        index=df.index,
    )
    rating_col = cols.rating or ("rating" if "rating" in df.columns else None)
    if rating_col:
        rating_fix = f"ratings are read from column '{rating_col}' (set --rating-col for another)"
        inter["rating"] = float_column(df, rating_col, path, rating_fix, f"rating ({rating_col})")
    ts_col = cols.timestamp or ("timestamp" if "timestamp" in df.columns else None)
    if ts_col:
        ts_fix = f"timestamps are read from column '{ts_col}' (set --timestamp-col for another)"
        inter["timestamp"] = _timestamps(df, ts_col, path, ts_fix)
    if ts_col:  # a repeated line (same time too) is an error; a pair seen again later keeps the latest
        check_unique(inter, ["user_id", "item_id", "timestamp"], path, fix)
        inter = keep_latest(inter, path)
    else:
        inter = keep_latest(inter, path, by_time=False)  # (by_time=False never reads a timestamp)
    user_table = _user_table(Path(users), cols, _is_text(inter["user_id"])) if users else None
    item_table = _item_table(Path(items), cols, _is_text(inter["item_id"])) if items else None
    if user_table is not None:
        _check_coverage(user_table["user_id"], inter["user_id"], Path(users), "user", "--user-col")
    if item_table is not None:
        _check_coverage(item_table["item_id"], inter["item_id"], Path(items), "item", "--item-col")
    return Dataset.from_frames(name or path.stem, inter.reset_index(drop=True), user_table, item_table)


def _is_text(ids: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(ids.dtype)


def _check_coverage(table_ids: pd.Series, seen: pd.Series, path: Path, kind: str, flag: str) -> None:
    """A metadata table must describe the interactions' IDs: none is an error, some missing a warning.

    A wrong ID column or file would otherwise leave every text 'unknown' without a word.
    """
    seen_ids = pd.unique(seen.to_numpy())
    missing = np.setdiff1d(seen_ids, table_ids.to_numpy())
    if not len(missing):
        return
    examples = ", ".join(str(v) for v in missing[:3])
    if len(missing) == len(seen_ids):
        raise DataError(
            f"{path}: none of its {kind} IDs (like {', '.join(str(v) for v in table_ids.iloc[:3])}) occur in the "
            f"interactions (IDs like {examples}); check that it is the {kind}s table of these interactions and "
            f"that {flag} names the same ID column in both"
        )
    log.warning(
        "%s: %d of the %d %ss in the interactions have no row (IDs like %s); their text reads 'unknown' for every "
        "field; add rows for them to use their metadata",
        path,
        len(missing),
        len(seen_ids),
        kind,
        examples,
    )


def _fix(cols: Columns) -> str:
    return (
        f"expected a user column '{cols.user}' and an item column '{cols.item}' (integer or text IDs) "
        f"(set --user-col/--item-col/--sep to match your file)"
    )


def _sep(path: Path, cols: Columns, kind: str | None = None) -> str:
    """The separator of the interactions file (kind None) or of the `kind` ("user", "item") table."""
    own = {"user": cols.users_sep, "item": cols.items_sep}.get(kind) if kind else None
    return own or cols.sep or suffix_sep(path)


def suffix_sep(path: Path) -> str:
    """A delimited file's separator by its suffix (.csv ',', .tsv tab, .dat '::', .psv '|'; else ',')."""
    return _SEP_BY_SUFFIX.get(path.suffix.lower(), ",")


def _read(
    path: Path, cols: Columns, fix: str, as_text: bool | list[str] = False, kind: str | None = None
) -> pd.DataFrame:
    if path.suffix.lower() in PARQUET_SUFFIXES:
        check_file(path, fix)
        with open(path, "rb") as fh:
            if fh.read(4) != b"PAR1":
                raise DataError(f"{path}: not a Parquet file (no PAR1 header); give CSV/TSV a .csv/.tsv suffix; {fix}")
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(f"{path}: cannot read this parquet file ({type(exc).__name__}: {exc}); {fix}") from None
        if df.empty:
            raise DataError(f"{path}: file has no data rows; {fix}")
        df.index = np.arange(len(df)) + 1  # row numbers, as `at` names them
        return df
    return read_delimited(path, _sep(path, cols, kind), header=True, encoding=cols.encoding, as_text=as_text, fix=fix)


def _timestamps(df: pd.DataFrame, col: str, path: Path, fix: str) -> np.ndarray:
    """Integer Unix seconds; date-time strings are converted."""
    s = df[col]
    if pd.api.types.is_datetime64_any_dtype(s):
        if s.isna().any():
            line = s.isna().idxmax()
            raise DataError(f"{path}: {at(path, line)}: timestamp ({col}) is missing (NaT); fix that row; {fix}")
        return (s.astype("datetime64[s]").astype(np.int64)).to_numpy()
    missing = s.isna() | (s.astype(str).str.strip() == "")
    if missing.any():
        line = missing.idxmax()
        raise DataError(f"{path}: {at(path, line)}: timestamp ({col}) is missing; fill it in or drop that row; {fix}")
    num = pd.to_numeric(s, errors="coerce")
    if num.notna().all():
        return int_column(df, col, path, fix, f"timestamp ({col})")
    # a mostly numeric column is Unix seconds: blame its first non-number, not a valid number that
    # happens not to parse as a date-time
    numeric = num.notna().sum() * 2 >= len(s)
    parsed = None if numeric else pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
    bad = num.isna() if numeric else parsed.isna()
    if bad.any():
        line = bad.idxmax()
        value, most = str(s.loc[line]), "Unix seconds" if numeric else "date-times"
        if not numeric and pd.notna(num.loc[line]) or numeric and pd.notna(_as_time(value)):
            what = "a number (Unix seconds)" if not numeric else "a date-time"
            raise DataError(f"{path}: {at(path, line)}: timestamp ({col}) {value!r} is {what}, but most of the column "
                            f"holds {most}; write every timestamp the same way")  # fmt: skip
        raise DataError(f"{path}: {at(path, line)}: timestamp ({col}) {value!r} is neither Unix seconds nor a date-time; "
                        f"fix it; {fix}")  # fmt: skip
    return ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy().astype(np.int64)


def _as_time(value: str):
    return pd.to_datetime(value, errors="coerce", utc=True, format="mixed")


def _keyed_table(path: Path, cols: Columns, kind: str, key: str, text: bool) -> pd.DataFrame:
    """A users/items table read as text, with its ID column `key` (text IDs when the interactions'
    are) checked present and unique."""
    check_file(path, f"check the path of the {kind}s table")
    fix = f"the {kind}s table needs the {kind} column '{key}' with one row per {kind}"
    sep = _sep(path, cols, kind)
    # where a wrong separator is the likely cause, name the table's own flag: --sep may suit the interactions
    read_fix = fix if path.suffix.lower() in PARQUET_SUFFIXES else (
        f"{fix}; its fields were split on the {sep_name(sep)} separator (set --{kind}s-sep for another)"
    )  # fmt: skip
    df = _read(path, cols, read_fix, as_text=True, kind=kind)
    require_columns(df, path, [key], sep, read_fix)
    df = df.assign(**{key: id_column(df, key, path, fix, f"{kind} ID ({key})", text=text)})
    check_unique(df, [key], path, fix)
    return df


def _user_table(path: Path, cols: Columns, text: bool) -> pd.DataFrame:
    df = _keyed_table(path, cols, "user", cols.user, text)
    out = df.rename(columns={cols.user: "user_id"}).reset_index(drop=True)
    if "age" in out.columns:
        written = pd.to_numeric(df["age"], errors="coerce")  # df's index: the file's lines
        beyond = (written < 0) | (written > MAX_AGE)  # e.g. birth years: every user would read as "56+"
        if beyond.any():
            line = beyond.idxmax()
            raise DataError(
                f"{path}: {at(path, line)}: age {written.loc[line]:g} is not an age in years (0-{MAX_AGE}); "
                f"if the column holds birth years, write ages instead, or rename it (e.g. birth_year) to read it "
                f"as a plain field"
            )
        age = pd.to_numeric(out["age"], errors="coerce")
        if age.notna().all() and (age % 1 == 0).all():
            out["age"] = age.astype(np.int64)
    return out


def _item_table(path: Path, cols: Columns, text: bool) -> pd.DataFrame:
    df = _keyed_table(path, cols, "item", cols.item, text)
    out = df.rename(columns={cols.item: "item_id", cols.title: "title", cols.genres: "genres"})
    out = out.reset_index(drop=True)
    if "title" in out.columns:
        out["title"] = out["title"].fillna("").astype(str)
    else:
        out["title"] = out["item_id"].astype(str)
    if "year" in out.columns:
        out["year"] = pd.to_numeric(out["year"], errors="coerce").astype("Int64")
    else:
        out["year"] = parse_years(out["title"])
    if "genres" in out.columns:
        out["genres"] = pd.Series(
            [_split(v, cols.genres_sep) for v in out["genres"].tolist()], index=out.index, dtype=object
        )
    return out


def _split(value, sep: str) -> list[str]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    if not isinstance(value, str) or value.strip() in ("", "(no genres listed)"):
        return []
    return [g.strip() for g in value.split(sep) if g.strip()]
