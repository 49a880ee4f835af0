"""What a served run learns while it runs: new items and new interactions, stored durably in an
SQLite database inside the run folder (`feedback.sqlite`, WAL journal), and merged into the data of
the next training run (`gpt2rec train ... --feedback RUN_DIR`).

    store = FeedbackStore(run_dir)                 # creates the tables on first use
    store.add_item(1683, {"title": "Clue (1985)", "genres": ["Comedy"]})
    store.add_interaction(196, 1683, rating=5.0)
    dataset = merge_feedback(dataset, run_dir)     # interactions and items appended (raw IDs)

Raw IDs are stored as JSON text, so integer and string IDs come back with their type.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .dataset import Dataset

DB_NAME = "feedback.sqlite"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS items (seq INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT UNIQUE NOT NULL,"
    " meta TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS interactions (seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL,"
    " item_id TEXT NOT NULL, rating REAL NOT NULL, timestamp INTEGER NOT NULL, created REAL NOT NULL)",
)


class FeedbackStore:
    """New items and interactions of one run folder; every write is committed before it returns."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / DB_NAME
        self._lock = threading.Lock()  # one connection shared by the server's threads
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a write that returned survives a power cut
            for statement in _SCHEMA:
                self._db.execute(statement)
        except sqlite3.Error as exc:
            # a damaged or foreign file ("file is not a database") is not a permissions problem
            damaged = isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)
            fix = ("it is damaged or not gpt2rec's: move it away (the run then starts with no feedback) or "
                   "restore it from a backup") if damaged else "check the folder's permissions"  # fmt: skip
            raise DataError(f"cannot open the feedback database {self.path} ({exc}); {fix}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_item(self, item_id, meta: dict) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO items (item_id, meta, created) VALUES (?, ?, ?)",
                (json.dumps(item_id), json.dumps(meta), time.time()),
            )

    def add_interaction(self, user_id, item_id, rating: float = 1.0, timestamp: int | None = None) -> None:
        now = time.time()
        ts = int(now) if timestamp is None else int(timestamp)
        with self._lock:
            self._db.execute(
                "INSERT INTO interactions (user_id, item_id, rating, timestamp, created) VALUES (?, ?, ?, ?, ?)",
                (json.dumps(user_id), json.dumps(item_id), float(rating), ts, now),
            )

    def items(self, until: float | None = None) -> list[tuple[object, dict]]:
        """(raw item ID, metadata) of every new item (written up to `until`), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT item_id, meta FROM items WHERE created <= ? ORDER BY seq", (_end(until),)
            ).fetchall()
        return [(json.loads(i), json.loads(m)) for i, m in rows]

    def interactions(self, until: float | None = None) -> pd.DataFrame:
        """Columns user_id, item_id (raw), rating, timestamp (written up to `until`), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT user_id, item_id, rating, timestamp FROM interactions WHERE created <= ? ORDER BY seq",
                (_end(until),),
            ).fetchall()
        return pd.DataFrame(
            [(json.loads(u), json.loads(i), r, t) for u, i, r, t in rows],
            columns=["user_id", "item_id", "rating", "timestamp"],
        )

    def counts(self) -> dict:
        with self._lock:
            n_items = self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            n_inter = self._db.execute("SELECT COUNT(*) FROM interactions").fetchone()[0]
        return {"new_items": n_items, "new_interactions": n_inter}

    def last_write(self) -> float:
        with self._lock:
            times = [self._db.execute(f"SELECT MAX(created) FROM {t}").fetchone()[0] for t in ("items", "interactions")]
        return max((t for t in times if t is not None), default=0.0)


def _end(until: float | None) -> float:
    return float("inf") if until is None else float(until)


def _open(run_dir: str | Path) -> FeedbackStore:
    run_dir = Path(run_dir)
    if not (run_dir / DB_NAME).is_file():
        raise DataError(f"{run_dir} holds no {DB_NAME}; pass a run folder that `gpt2rec serve` wrote feedback into")
    return FeedbackStore(run_dir)


def last_write(run_dir: str | Path) -> float:
    """Time of the last write into a served run folder's feedback database."""
    store = _open(run_dir)
    try:
        return store.last_write()
    finally:
        store.close()


def _check_int64(run_dir, raw_ids: list) -> None:
    """Older servers handed out IDs beyond int64, which pandas cannot hold: one line, not a traceback."""
    for raw in raw_ids:
        if isinstance(raw, int) and not -(2**63) <= raw < 2**63:
            raise DataError(
                f"{Path(run_dir) / DB_NAME} holds ID {raw}, beyond the 64-bit range the data can hold;"
                f" delete the rows whose item_id or user_id is '{raw}' (sqlite3) and train again"
            )


def merge_feedback(dataset: Dataset, run_dir: str | Path, until: float | None = None) -> Dataset:
    """`dataset` with a served run's new items and interactions (written up to `until`) appended."""
    store = _open(run_dir)
    try:
        new_items, inter = store.items(until), store.interactions(until)
    finally:
        store.close()
    _check_int64(run_dir, [i for i, _ in new_items] + list(inter["item_id"]) + list(inter["user_id"]))
    items = dataset.items
    if new_items:
        rows = pd.DataFrame([{"item_id": i, **meta} for i, meta in new_items])
        if "genres" in items.columns:
            rows["genres"] = [g if isinstance(g, list) else [] for g in rows.get("genres", [[]] * len(rows))]
        rows = rows[[c for c in rows.columns if c in items.columns]]
        items = pd.concat([items, rows], ignore_index=True)
    base = pd.DataFrame(
        {
            "user_id": dataset.user_ids[dataset.interactions["user"].to_numpy()],
            "item_id": dataset.item_ids[dataset.interactions["item"].to_numpy()],
            "rating": dataset.interactions["rating"].to_numpy(),
            "timestamp": dataset.interactions["timestamp"].to_numpy(),
        }
    )
    for col, ids in (("user_id", dataset.user_ids), ("item_id", items["item_id"].to_numpy())):
        if len(inter) and len(ids) and isinstance(ids[0], (int, np.integer)):
            inter[col] = inter[col].astype(np.int64)
    # (an empty frame of object columns would turn integer IDs into objects)
    merged = pd.concat([base, inter], ignore_index=True) if len(inter) else base
    return Dataset.from_frames(dataset.name, merged, dataset.users, items)
