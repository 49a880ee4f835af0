"""One entry point for every dataset: a MovieLens name, an extracted folder, or the user's own files."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import UserError
from ..utils.config import check_field_types
from .dataset import Dataset
from .fetch import SOURCES, fetch
from .generic import Columns, load_generic
from .movielens import detect_format, read_movielens

_GENERIC_SUFFIXES = (".csv", ".tsv", ".tab", ".dat", ".psv", ".txt", ".parquet", ".pq")


@dataclass
class DataConfig:
    dataset: str = field(
        default="ml-100k",
        metadata={"help": f"a MovieLens name ({', '.join(SOURCES)}), an extracted MovieLens folder, "
                  "or your interactions file (CSV/TSV/Parquet)"},
    )  # fmt: skip
    implicit_threshold: float | None = field(
        default=None, metadata={"help": "keep only interactions with rating >= this (None: keep all)"}
    )
    users: str | None = field(default=None, metadata={"help": "your users table (own files only)"})
    items: str | None = field(default=None, metadata={"help": "your items table (own files only)"})
    user_col: str = field(default="user_id", metadata={"help": "user ID column of your files"})
    item_col: str = field(default="item_id", metadata={"help": "item ID column of your files"})
    rating_col: str | None = field(default=None, metadata={"help": "rating column (default: 'rating' if present)"})
    timestamp_col: str | None = field(
        default=None, metadata={"help": "timestamp column (default: 'timestamp' if present)"}
    )
    sep: str | None = field(default=None, metadata={"help": "field separator (default: from the file suffix)"})
    # (added later: a run's config.json without them loads as None, which reads every file as before)
    users_sep: str | None = field(
        default=None, metadata={"help": "the users table's field separator (default: sep, else from its suffix)"}
    )
    items_sep: str | None = field(
        default=None, metadata={"help": "the items table's field separator (default: sep, else from its suffix)"}
    )
    genres_sep: str = field(default="|", metadata={"help": "separator inside the items' genres column"})
    encoding: str = field(default="utf-8", metadata={"help": "text encoding of your files"})
    feedback: str | None = field(
        default=None, metadata={"help": "a served run folder whose stored new items and interactions are added"}
    )
    feedback_until: float | None = field(
        default=None, metadata={"help": "only feedback written up to this time (set on first use: reloads agree)"}
    )

    def __post_init__(self):  # validation only: typed conversion is utils.config.from_dict's job
        check_field_types(self, "DataConfig")  # built directly (the README builds it so), not by from_dict
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ValueError(f"dataset must be a MovieLens name ({', '.join(SOURCES)}) or a path; got {self.dataset!r}")
        t = self.implicit_threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t)):
            raise ValueError(f"implicit_threshold {t!r} is not a number; give e.g. 4 or leave it unset")
        for name in ("sep", "users_sep", "items_sep"):
            _check_sep(name, getattr(self, name))
        if not self.user_col or not self.item_col:
            raise ValueError("user_col and item_col must name columns of your interactions file")
        if self.user_col == self.item_col:
            raise ValueError(f"user_col and item_col are both {self.user_col!r}; name the user and the item column")
        if not isinstance(self.genres_sep, str) or not self.genres_sep:
            raise ValueError(f"genres_sep {self.genres_sep!r} is empty; give the separator inside the genres "
                             "column, e.g. '|', or leave it unset")  # fmt: skip
        import codecs

        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {self.encoding!r}; use e.g. utf-8 or latin-1") from None

    def columns(self) -> Columns:
        return Columns(
            user=self.user_col, item=self.item_col, rating=self.rating_col, timestamp=self.timestamp_col,
            sep=self.sep, users_sep=self.users_sep, items_sep=self.items_sep, genres_sep=self.genres_sep,
            encoding=self.encoding,
        )  # fmt: skip


def _check_sep(name: str, sep) -> None:
    if sep == "":
        raise ValueError(f"{name} is empty; give a separator such as ',' or '\\t', or leave it unset")
    if sep is not None and (not isinstance(sep, str) or set(sep) & set('\r\n"')):
        raise ValueError(f"{name} {sep!r} cannot separate fields (line ends or quotes); use e.g. ',' or '\\t'")


def pin_feedback(config: DataConfig) -> DataConfig:
    """`config` with `feedback_until` set to the served folder's last write (when it reads feedback and
    has no time yet), so every later reload of the run's data sees the same feedback."""
    if not config.feedback or config.feedback_until is not None:
        return config
    from .feedback import last_write

    return replace(config, feedback_until=last_write(config.feedback))


_PATH_FIELDS = ("dataset", "users", "items", "feedback")


def _paths(config: DataConfig):
    """(field, value) of the config's file and folder references (a MovieLens name is not one)."""
    for name in _PATH_FIELDS:
        value = getattr(config, name)
        if value and not (name == "dataset" and value in SOURCES):
            yield name, value


def absolute_paths(config: DataConfig) -> DataConfig:
    """`config` with relative paths that name existing files made absolute, so the run folder's
    config.json works from any directory."""
    fixed = {n: os.path.abspath(Path(v).expanduser()) for n, v in _paths(config) if Path(v).expanduser().exists()}
    return replace(config, **fixed)


def check_paths(config: DataConfig, config_file: Path) -> None:
    """A one-line UserError naming `config_file`'s entry when a data path it holds is missing."""
    for name, value in _paths(config):
        path = Path(value).expanduser()
        if not path.exists():
            if path.is_absolute():  # moved or deleted since training
                fix = f"put the file back, or set data.{name} there to where it is now"
            else:  # a run saved before paths were stored absolute
                fix = (
                    f"run from the folder the run was trained in, or set data.{name} there to the file's absolute path"
                )
            where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
            raise UserError(f"{config_file}: data.{name} {value!r} not found{where}; {fix}")


def load_dataset(config: DataConfig | str) -> Dataset:
    """Load (fetching MovieLens first if it is not cached) and apply the implicit threshold."""
    if isinstance(config, (str, Path)):
        from ..utils.config import from_dict

        config = from_dict(DataConfig, {"dataset": str(config)})
    dataset = _load(config)
    if config.feedback:
        from .feedback import merge_feedback

        dataset = merge_feedback(dataset, config.feedback, config.feedback_until)
    return dataset.implicit(config.implicit_threshold)


def _load(config: DataConfig) -> Dataset:
    ref = config.dataset
    if ref in SOURCES:
        folder = fetch(ref)
        return read_movielens(folder, ref)
    path = Path(ref).expanduser()
    if path.is_dir():
        if detect_format(path) is None:
            raise UserError(
                f"{path}: folder holds no MovieLens files (u.data, ratings.dat, movies.csv); give your "
                f"interactions file itself (CSV/TSV/Parquet) or a MovieLens name ({', '.join(SOURCES)})"
            )
        return read_movielens(path)
    if path.is_file():
        return load_generic(path, config.users, config.items, config.columns(), name=path.stem)
    if path.suffix.lower() in _GENERIC_SUFFIXES or "/" in ref or "\\" in ref:
        raise UserError(f"{path}: file not found; check the path")
    raise UserError(
        f"unknown dataset {ref!r}; valid names: {', '.join(SOURCES)}, or a path to your interactions file or "
        f"an extracted MovieLens folder"
    )
