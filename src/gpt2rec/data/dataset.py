"""The one dataset object every loader produces: interactions plus user and item tables.

Internal indices are contiguous (0..n-1) and ordered by raw ID; `user_ids[idx]` / `item_ids[idx]`
map back to the raw IDs found in the source files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError

INTERACTION_COLUMNS = ("user", "item", "rating", "timestamp")


@dataclass
class Dataset:
    """Interactions (internal indices) and metadata tables (row i describes internal index i).

    interactions: columns user (int64), item (int64), rating (float32), timestamp (int64)
    users: column `user_id` (raw) plus metadata columns (MovieLens: gender, age, occupation, zip_code)
    items: column `item_id` (raw) plus `title` (str), `year` (Int64, may be NA), `genres` (list[str])
    """

    name: str
    interactions: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def user_ids(self) -> np.ndarray:
        return self.users["user_id"].to_numpy()

    @property
    def item_ids(self) -> np.ndarray:
        return self.items["item_id"].to_numpy()

    def implicit(self, threshold: float | None = None) -> Dataset:
        """Keep all interactions (threshold None) or those with rating >= threshold."""
        if threshold is None:
            return self
        ratings = self.interactions["rating"]
        kept = self.interactions[ratings >= threshold].reset_index(drop=True)
        if len(ratings) and not len(kept):
            if ratings.min() == ratings.max() == 1:  # what a file without a rating column gets
                raise DataError(
                    f"dataset {self.name!r}: every rating is 1 (a file without a rating column gives each "
                    f"interaction 1), so none is >= --implicit-threshold {threshold:g}; name the rating column "
                    "with --rating-col, or leave the threshold out"
                )
            raise DataError(
                f"dataset {self.name!r}: no rating is >= the implicit threshold {threshold:g} (ratings run from "
                f"{ratings.min():g} to {ratings.max():g}); lower --implicit-threshold or leave it out to keep all"
            )
        return Dataset(self.name, kept, self.users, self.items)

    def describe(self) -> dict:
        n = len(self.interactions)
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n,
            "density": n / max(1, self.n_users * self.n_items),
            "user_columns": [c for c in self.users.columns if c != "user_id"],
            # title and genres are filled in when the data has none (the ID, no genres): not listed then
            "item_columns": [c for c in self.items.columns if c != "item_id" and not self._filled_in(c)],
        }

    def _filled_in(self, col: str) -> bool:
        return filled_in(self.items, col)

    @classmethod
    def from_frames(
        cls,
        name: str,
        interactions: pd.DataFrame,
        users: pd.DataFrame | None = None,
        items: pd.DataFrame | None = None,
    ) -> Dataset:
        """Build from raw frames: interactions with user_id, item_id[, rating, timestamp].

        Users/items are the union of those in the interactions and in the tables, sorted by raw ID.
        """
        for col in ("user_id", "item_id"):
            if col not in interactions.columns:
                raise DataError(f"interactions lack the column '{col}'; found {list(interactions.columns)}")
        inter = interactions.copy()
        if "rating" not in inter.columns:
            inter["rating"] = 1.0
        if "timestamp" not in inter.columns:
            inter["timestamp"] = 0
        users = _table(users, "user_id", inter["user_id"])
        items = _table(items, "item_id", inter["item_id"])
        if "genres" not in items.columns:
            items["genres"] = [[] for _ in range(len(items))]
        if "title" not in items.columns:
            items["title"] = items["item_id"].astype(str)
        out = pd.DataFrame(
            {
                "user": _positions(users["user_id"].to_numpy(), inter["user_id"].to_numpy()),
                "item": _positions(items["item_id"].to_numpy(), inter["item_id"].to_numpy()),
                "rating": inter["rating"].to_numpy().astype(np.float32),
                "timestamp": inter["timestamp"].to_numpy().astype(np.int64),
            }
        )
        return cls(name, out, users, items)


LOADER_ITEM_COLUMNS = ("title", "genres", "year")  # every loader gives items these (filled in when absent)


def filled_in(items: pd.DataFrame, col: str) -> bool:
    """Whether items' `col` is only what the loaders fill in (title = the ID, no genres, no year)."""
    values = items[col]
    if col == "title":
        return bool((values.astype(str) == items["item_id"].astype(str)).all())
    if col == "year":
        return bool(values.isna().all())
    return col == "genres" and not any(isinstance(g, (list, tuple)) and len(g) for g in values)


def display_titles(items: pd.DataFrame) -> list[str]:
    """What names each item to a person: its title, or when the data gives none (the loaders' stand-in
    is the ID) the first column of its own that has values (a name), else its ID."""
    if "title" in items and not filled_in(items, "title"):
        column = items["title"]
    else:
        own = [c for c in items.columns if c != "item_id" and c not in LOADER_ITEM_COLUMNS and items[c].notna().any()]
        column = items[own[0]] if own else items["item_id"]
    # an item without a row in the items table (or a value) is shown by its ID, never as "nan"
    return [str(i) if _blank(v) else str(v) for v, i in zip(column.tolist(), items["item_id"].tolist())]


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _table(table: pd.DataFrame | None, key: str, seen: pd.Series) -> pd.DataFrame:
    ids = np.sort(pd.unique(seen.to_numpy()))  # hash-based: much faster than np.unique at 10^7 rows
    if table is None:
        return pd.DataFrame({key: ids})
    if key not in table.columns:
        raise DataError(f"table lacks the key column '{key}'; found {list(table.columns)}")
    dup = table[key][table[key].duplicated()]
    if len(dup):
        raise DataError(f"duplicate {key} {dup.iloc[0]!r} in the metadata table; each {key} must appear once")
    missing = np.setdiff1d(ids, table[key].to_numpy())
    if len(missing):
        table = pd.concat([table, pd.DataFrame({key: missing})], ignore_index=True)
    return table.sort_values(key).reset_index(drop=True)


def _positions(table_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each value in the sorted `table_ids`, which hold every value (vectorised, no Python rows)."""
    if len(table_ids) and table_ids.dtype.kind in "iu":
        low, span = int(table_ids[0]), int(table_ids[-1]) - int(table_ids[0]) + 1
        if span <= 4 * len(table_ids) + 1024:  # compact integer IDs: one array lookup, no binary search
            where = np.zeros(span, dtype=np.int64)
            where[table_ids - low] = np.arange(len(table_ids))
            return where[values - low]
    return np.searchsorted(table_ids, values).astype(np.int64)
