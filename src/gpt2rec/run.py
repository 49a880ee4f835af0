"""One run folder in memory, and the one path from a raw ID to top-k rows.

    run = gpt2rec.pipeline.open_run("runs/enhanced")   # model, config, dataset, split: loaded once
    run.recommend("196", k=10)        # [{item_id, title, score}], the user's training items excluded
    run.user_index("196"), run.item_ids[run.item_index(50)]   # raw ID <-> internal index (dicts)

`pipeline.recommend`, `explain.explain_run`, `coldstart.recommend_profile` and the HTTP server all
go through a `Run`. Raw IDs may be ints or strings: both are looked up by their text, so user 196
and "196" are the same user.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .data.dataset import display_titles
from .data.splits import interaction_matrix
from .errors import UserError
from .retrieval import RetrievalConfig, Retriever
from .utils.config import check_k
from .utils.ranking import ranked_topk

log = logging.getLogger(__name__)


class UnknownIdError(UserError):
    """A raw user or item ID that the run does not know (`kind` is "user" or "item")."""

    def __init__(self, message: str, kind: str, raw):
        super().__init__(message)
        self.kind, self.raw = kind, raw


def plain(value):
    """A numpy scalar as the Python value (JSON-ready); anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def id_key(raw) -> str:
    """The lookup key of a raw ID: its text, so 196, np.int64(196) and " 196" agree."""
    return str(plain(raw)).strip()


def _whole_number(key: str) -> str | None:
    """'1.0' / '1e3' as '1' / '1000' (how the loaders read such integer IDs), else None."""
    try:
        number = float(key)
    except ValueError:
        return None
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else None


def model_device(model: torch.nn.Module) -> torch.device:
    first = next(iter(list(model.parameters()) + list(model.buffers())), None)
    return first.device if first is not None else torch.device("cpu")


def top_k(scores: torch.Tensor, k: int, exclude=()) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k best of `scores` (I,), never an index in `exclude`."""
    scores = scores.detach().float().cpu().clone()  # (I,)
    exclude = np.asarray(exclude, dtype=np.int64)
    if exclude.size:
        scores[torch.as_tensor(exclude)] = float("-inf")
    k = min(int(k), int(torch.isfinite(scores).sum()))
    values, indices = ranked_topk(scores, k)
    return indices.numpy(), values.numpy()


def score_users(model, users: Sequence[int]) -> torch.Tensor:
    """Scores (B, I) of every item for internal users `users`, in eval mode, on the CPU."""
    model.eval()
    with torch.no_grad():
        idx = torch.as_tensor(np.asarray(users, dtype=np.int64), device=model_device(model))  # (B,)
        return model.score_users(idx).float().cpu()  # (B, I)


def recommend_items(model, user: int, k: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item indices and scores for internal user `user`, never an item in `exclude`."""
    return top_k(score_users(model, [user])[0], k, exclude)


class Run:
    """A loaded run folder: `config` (pipeline.RunConfig), `dataset`, `model` (eval mode), `split`,
    and what is derived from them once: raw IDs, titles and the training matrix."""

    def __init__(self, path: str | Path, config: Any, dataset: Any, model: torch.nn.Module, split: Any):
        self.path, self.config, self.dataset, self.model, self.split = Path(path), config, dataset, model, split
        self.user_ids: list = [plain(x) for x in dataset.user_ids.tolist()]  # raw IDs as Python values, by index
        self.item_ids: list = [plain(x) for x in dataset.item_ids.tolist()]
        self.titles = display_titles(dataset.items)
        self._user_pos = {id_key(x): i for i, x in enumerate(self.user_ids)}
        self._item_pos = {id_key(x): i for i, x in enumerate(self.item_ids)}
        self.train_matrix = interaction_matrix(split.train, self.n_users, self.n_items)  # scipy CSR (U, I)
        # every item of a user in the run's data, the valid and test parts too: none is recommended back
        self.owned_matrix = self.train_matrix + interaction_matrix(
            pd.concat([split.valid, split.test]), self.n_users, self.n_items
        )  # (U, I) CSR
        self._retriever: Retriever | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    # ---- raw ID <-> internal index ------------------------------------------------------------
    def user_index(self, raw) -> int:
        return self._index(self._user_pos, self.user_ids, raw, "user")

    def item_index(self, raw) -> int:
        return self._index(self._item_pos, self.item_ids, raw, "item")

    def has_user(self, raw) -> bool:
        return id_key(raw) in self._user_pos

    def has_item(self, raw) -> bool:
        return id_key(raw) in self._item_pos

    @staticmethod
    def _index(pos: dict, ids: list, raw, kind: str) -> int:
        key = id_key(raw)
        if key not in pos and ids and isinstance(ids[0], int):  # integer IDs: the loader read "1.0" as 1
            key = _whole_number(key) or key
        try:
            return pos[key]
        except KeyError:
            sample = ", ".join(str(x) for x in ids[:3])
            raise UnknownIdError(
                f"unknown {kind} {raw!r}: this run knows {len(ids)} {kind}s (IDs like {sample}); pass one of them",
                kind,
                raw,
            ) from None

    # ---- history and ranking ------------------------------------------------------------------
    def seen(self, user: int) -> np.ndarray:
        """Internal indices of the items user `user` trained on (sorted): the history the model scores
        them by, and explanations cite."""
        return _row(self.train_matrix, user)

    def owned(self, user: int) -> np.ndarray:
        """Internal indices of every item of user `user` in the run's data (sorted): the training items
        and those the split held out for validation and test. Recommendations leave them all out."""
        return _row(self.owned_matrix, user)

    def score_users(self, users: Sequence[int]) -> torch.Tensor:
        """Scores (B, I) of every catalogue item for internal users `users` (one model call)."""
        return score_users(self.model, users)

    def row(self, item: int, score: float) -> dict:
        return {"item_id": self.item_ids[int(item)], "title": self.titles[int(item)], "score": float(score)}

    def rows(self, items: Sequence[int], scores: Sequence[float]) -> list[dict]:
        return [self.row(i, s) for i, s in zip(items, scores)]

    def top_items(self, user: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and scores for internal user `user`, none of their own (`owned`), through
        `retriever()`: exact below the ANN threshold, approximate above it for inner-product models."""
        items, scores = self.retriever().topk(np.array([user]), k, self.owned_matrix[[user]])
        finite = np.isfinite(scores[0])  # a user who has seen nearly everything gets fewer than k
        return items[0][finite], scores[0][finite]

    def retriever(self, config: RetrievalConfig | None = None) -> Retriever:
        """The run's top-k searcher, built once (a new `config` rebuilds it); the model is in eval mode."""
        if config is not None or self._retriever is None:
            self.model.eval()
            with torch.no_grad():
                self._retriever = Retriever(self.model, config)
        return self._retriever

    def recommend(self, raw_user, k: int = 10) -> list[dict]:
        """Top-k rows {item_id, title, score} for a raw user ID, never an item the user has in the run's
        data (trained on, or held out for validation and test)."""
        k = check_k(k)
        user = self.user_index(raw_user)
        note = self.history_note(user)
        if note:
            log.warning("user %s: %s", raw_user, note)
        return self.rows(*self.top_items(user, k))

    def history_note(self, user: int) -> str | None:
        """Why internal user `user`'s list means nothing, or None: no training interactions, and a
        model that cannot place such a user (`models.base.new_users_blind`)."""
        from .models.base import new_users_blind
        from .models.registry import get_spec

        name = getattr(self.config, "model", None)
        why = None if len(self.seen(user)) or name is None else new_users_blind(get_spec(name), self.model)
        if why is None:
            return None
        return (
            f"no training interactions in this run, and {why}: this list says nothing about them; a model "
            "that reads profiles (l3ae, enhanced) with a users table can place them"
        )


def _row(matrix, user: int) -> np.ndarray:
    """Column indices of CSR row `user` (sorted), as int64."""
    return matrix.indices[matrix.indptr[user] : matrix.indptr[user + 1]].astype(np.int64)
