"""The served run: a `Run` plus what arrived while serving (new items, new interactions), and every
answer the HTTP layer gives, as plain Python (no HTTP here; `app.py` maps it to routes).

Items are indexed 0..I-1 (the run's catalogue) then I.. (items added while serving, scored from
their metadata by the enhanced model or l3ae). New interactions are excluded from the user's next answers
at once; they are folded into the model only by the next training run (`train --feedback`).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .. import __version__
from ..coldstart import new_item_table, profile_rows, score_new_user, user_vectors
from ..data.dataset import LOADER_ITEM_COLUMNS
from ..data.feedback import FeedbackStore
from ..errors import UserError
from ..explain import explain
from ..models.registry import get_spec
from ..query import encode_query, item_text_vectors, mix, require_item_text, standardise, text_match
from ..run import Run, UnknownIdError, id_key, top_k
from ..text.templates import describes_items
from ..utils.ranking import ranked_topk
from .derived import column_normalised, rating_range
from .new_ids import client_item_id, fresh_item_id


class Service:
    def __init__(self, run: Run):
        self.run = run
        self.model = run.model
        self.store = FeedbackStore(run.path)
        self._lock = threading.RLock()  # writes and the LM (one encoder, not thread-safe to build)
        self.text_model = hasattr(getattr(self.model, "text", None), "ensure_lm")  # the enhanced model's TextSource
        # LM vectors of the items (text similarity, queries): the enhanced model's or l3ae's `item_text`
        self.item_texts = self.text_model or getattr(self.model, "item_text", None) is not None
        self.can_add_items = self.item_texts and hasattr(self.model, "score_new_items")
        # as `gpt2rec.explain` (and so the CLI): item-item shares, or the LM vectors of the items
        self.can_explain = self.text_model or any(
            hasattr(self.model, a) for a in ("item_contributions", "item_text_vectors")
        )
        # items added while serving: raw IDs, titles, and their encoded tables
        self.new_ids: list = []
        self.new_titles: list[str] = []
        self._new_pos: dict[str, int] = {}
        # (text (N, Fi, D), vectors (N, d), bias (N,)) of the added items (`coldstart.NewItems`), replaced in one assignment
        # after their IDs are listed, so a scoring thread never sees a half-added item
        self._new: tuple | None = None
        self._extra_seen: dict[int, set[int]] = {}  # user -> items seen while serving (indices)
        self._collab = column_normalised(run)  # (U, I) CSC, unit-norm columns: item-item cosine
        self.rating_range = rating_range(run)
        self._bare_catalogue = not describes_items(run.dataset.items)  # IDs alone: requests in words refused
        self._reload()

    # ---- state ----------------------------------------------------------------------------------
    def _reload(self) -> None:
        """Replay the feedback database (a restart serves what was written before it)."""
        items = self.store.items()
        if items:
            self._append_items([i for i, _ in items], [m for _, m in items])
        for row in self.store.interactions().itertuples(index=False):
            try:
                self._remember(self.run.user_index(row.user_id), self.item_index(row.item_id))
            except UnknownIdError:
                continue  # written against another catalogue: kept for training, not served

    @property
    def n_items(self) -> int:
        return self.run.n_items + len(self.new_ids)

    def item_index(self, raw) -> int:
        pos = self._new_pos.get(id_key(raw))
        if pos is not None:
            return self.run.n_items + pos
        if not self.new_ids:
            return self.run.item_index(raw)
        try:
            return self.run.item_index(raw)
        except UnknownIdError as exc:  # counted with the items added while serving
            sample = ", ".join(str(x) for x in self.run.item_ids[:3])
            raise UnknownIdError(
                f"unknown item {raw!r}: this server knows {self.n_items} items ({self.run.n_items} from its run, IDs "
                f"like {sample}; {len(self.new_ids)} added, e.g. {self.new_ids[-1]}); pass one of them",
                exc.kind,
                raw,
            ) from None

    def item_id(self, idx: int):
        return self.run.item_ids[idx] if idx < self.run.n_items else self.new_ids[idx - self.run.n_items]

    def title(self, idx: int) -> str:
        return self.run.titles[idx] if idx < self.run.n_items else self.new_titles[idx - self.run.n_items]

    def row(self, idx: int, score: float) -> dict:
        return {"item_id": self.item_id(int(idx)), "title": self.title(int(idx)), "score": float(score)}

    def seen(self, user: int) -> np.ndarray:
        """Items never recommended to `user`: their own in the run's data (`Run.owned`) and those
        recorded while serving."""
        extra = self._extra_seen.get(user)
        base = self.run.owned(user)
        return base if not extra else np.concatenate([base, np.array(list(extra), np.int64)])

    def health(self) -> dict:
        profile = getattr(self.model, "profile_info", None)  # models that read new users' profiles
        info = profile.to_dict() if profile is not None else {}
        return {
            "status": "ok",
            "version": __version__,
            "model": self._model_name(),
            "lm": info.get("lm"),
            "lm_loaded": self._lm_loaded(),
            "users": self.run.n_users,
            "items": self.n_items,
            "catalogue_items": self.run.n_items,
            "can_add_items": self.can_add_items,
            "can_explain": self.can_explain,
            "user_fields": info.get("user_columns", []),
            "item_fields": self._own_item_fields(),
            "reads_genres": self.can_add_items and "genres" in self.model.profile_info.item_fields,
            **self.store.counts(),
        }

    def _lm_loaded(self) -> bool:
        """True once an LM is loaded: the enhanced model's attached one, or one l3ae loaded on first
        need (new items, profiles, plain words), which health used to report as never loaded."""
        if self.text_model:
            return bool(self.model.text.lm.attached)
        return bool(getattr(self.model, "lm_loaded", False))

    def _model_name(self) -> str:
        return self.run.config.model if self.run.config is not None else type(self.model).__name__

    def _spec(self):
        """The run's registry entry (None for a model built outside the registry)."""
        return get_spec(self.run.config.model) if self.run.config is not None else None

    # ---- scoring ----------------------------------------------------------------------------------
    def scores(self, users: list[int]) -> torch.Tensor:
        """Scores (B, I + N) of every item, catalogue and added, for internal users (one model call)."""
        base = self.run.score_users(users)  # (B, I)
        if self._new is None:
            return base
        _, vectors, bias = self._new
        extra = user_vectors(self.model, users) @ vectors.T + bias  # (B, N)
        return torch.cat([base, extra.float().cpu()], dim=1)

    def recommend_many(self, users: list[int], k: int) -> list[list[dict]]:
        """Top-k unseen rows for each internal user; one scoring call and one top-k for the batch."""
        scores = self.scores(users)  # (B, I + N)
        seen = [self.seen(u) for u in users]
        rows = np.repeat(np.arange(len(users)), [len(s) for s in seen])  # (S,)
        scores[torch.as_tensor(rows), torch.as_tensor(np.concatenate(seen))] = float("-inf")
        values, items = ranked_topk(scores, k)  # (B, k)
        out = []
        for vals, idx in zip(values.tolist(), items.tolist()):
            out.append([self.row(i, v) for i, v in zip(idx, vals) if v != float("-inf")])
        return out

    def explain_rows(self, user: int, rows: list[dict]) -> list[dict]:
        """Add field weights, similar liked items and the reason to a user's rows (catalogue items
        through `gpt2rec.explain`; added items by text similarity alone). Item-item models (l3ae,
        l3ae_mf) explain by the liked items that carry the score; other models are refused, as the CLI
        refuses them (a list of null explanations looked like an answer)."""
        if not self.can_explain:
            raise UserError(
                f"this run's model ({self._model_name()}) cannot explain its recommendations; "
                "leave explain out, or train with --model l3ae or --model enhanced"
            )
        history = self.run.seen(user)
        idx = [self.item_index(r["item_id"]) for r in rows]
        known = [i for i in idx if i < self.run.n_items]
        with self._lock, torch.no_grad():  # (known may be empty: only added items, which explain() skips)
            found = {e.item: e for e in explain(self.model, self.run.dataset, user, known, history)}
        out = []
        for r, i in zip(rows, idx):
            e = found.get(i)
            if e is None:
                sim = self._text_similar(i, history, 2)
                titles = [self.title(j) for j, _ in sim]
                reason = "New in the catalogue, scored from its metadata" + (
                    f"; close to {' and '.join(titles)} you liked." if titles else "."
                )
                ex = {"user_fields": {}, "item_fields": {}, "similar": [self.item_id(j) for j, _ in sim]}
                ex.update({"similar_titles": titles, "reason": reason})
            else:
                ex = {"user_fields": e.user_fields, "item_fields": e.item_fields, "reason": e.reason}
                ex.update({"similar": [self.item_id(j) for j in e.similar], "similar_titles": e.similar_titles})
            out.append({**r, "explanation": ex})
        return out

    def _item_text(self) -> torch.Tensor:
        """LM field vectors of every item, catalogue then added: (I + N, Fi, D)."""
        cache = item_text_vectors(self.model).float().cpu()
        return cache if self._new is None else torch.cat([cache, self._new[0]])

    def _text_similar(self, item: int, among: np.ndarray, n: int) -> list[tuple[int, float]]:
        if len(among) == 0:
            return []
        vec = F.normalize(self._item_text().mean(1), dim=-1)  # (I + N, D)
        sim = vec[torch.as_tensor(among)] @ vec[item]  # (H,)
        order = torch.argsort(sim, descending=True)[:n].tolist()
        return [(int(among[j]), float(sim[j])) for j in order]

    def profile(self, profile: dict | None, liked: list, k: int) -> list[dict]:
        """A new user from profile fields and/or liked items (an anonymous session)."""
        liked_idx = [self.item_index(x) for x in liked]
        if not liked_idx:  # profile alone: the model's cold-start path (catalogue items)
            with self._lock:
                return profile_rows(self.run, profile, k)
        scores = standardise(self._liked_scores(liked_idx))
        if profile:
            with self._lock:
                fields = score_new_user(self.model, profile).float().cpu()  # (I,)
            scores = 0.5 * scores + 0.5 * torch.cat([standardise(fields), torch.zeros(self.n_items - len(fields))])
        return self._rank(scores, k, liked_idx)

    def _liked_scores(self, liked: list[int]) -> torch.Tensor:
        """Item-item similarity to the liked items (I + N,): collaborative cosine plus text cosine."""
        collab = torch.zeros(self.n_items)
        known = [i for i in liked if i < self.run.n_items]
        if known:
            sims = (self._collab[:, known].T @ self._collab).toarray().sum(0)  # (I,)
            collab[: self.run.n_items] = torch.as_tensor(sims, dtype=torch.float32)
        if not self.item_texts:
            return collab
        vec = F.normalize(self._item_text().mean(1), dim=-1)  # (I + N, D)
        text = (vec @ vec[torch.as_tensor(liked)].T).mean(1)  # (I + N,)
        return standardise(collab) + standardise(text)

    def _rank(self, scores: torch.Tensor, k: int, exclude) -> list[dict]:
        items, values = top_k(scores, k, exclude)
        return [self.row(i, v) for i, v in zip(items, values)]

    def query(self, text: str, k: int, user: int | None, blend: float) -> list[dict]:
        """A plain-words request, over catalogue and added items; blended with `user`'s scores."""
        if self._bare_catalogue and not self.new_ids:  # (added items always have a title: words match those)
            require_item_text(self.run.dataset.items)
        with self._lock:
            vec = encode_query(self.model, text)  # (D,)
        sim = text_match(vec, self._item_text())  # (I + N,)
        scores, seen = sim, []
        if user is not None:
            scores, seen = mix(sim, self.scores([user])[0], blend), self.seen(user)
        items, values = top_k(scores, k, seen)
        return [{**self.row(i, v), "text_score": float(sim[i])} for i, v in zip(items, values)]

    def similar(self, item: int, k: int) -> list[dict]:
        """Items like `item`: mean of the text cosine and the collaborative (co-interaction) cosine."""
        parts = {}
        if item < self.run.n_items:
            col = self._collab[:, [item]]
            collab = torch.zeros(self.n_items)
            collab[: self.run.n_items] = torch.as_tensor((col.T @ self._collab).toarray()[0], dtype=torch.float32)
            parts["collaborative"] = collab
        if self.item_texts:
            vec = F.normalize(self._item_text().mean(1), dim=-1)  # (I + N, D)
            parts["text"] = vec @ vec[item]
        scores = sum(parts.values()) / len(parts)
        items, values = top_k(scores, k, [item])
        return [{**self.row(i, v), **{p: float(s[i]) for p, s in parts.items()}} for i, v in zip(items, values)]

    # ---- writes ---------------------------------------------------------------------------------
    def add_item(self, item_id, meta: dict) -> dict:
        if not self.can_add_items:
            raise UserError(
                f"this run's model ({self._model_name()}) cannot score new items from their metadata; "
                "train with --model l3ae or --model enhanced to add items while serving"
            )
        with self._lock:
            catalogue, in_use = self.run.item_ids, self._in_use
            if item_id is None:
                item_id = fresh_item_id(catalogue, self.new_ids, in_use)
            else:
                item_id = client_item_id(item_id, catalogue, in_use)
            self._append_items([item_id], [meta])  # encodes first: a bad item is never stored
            self.store.add_item(item_id, meta)
        spec = self._spec()
        note = spec.new_items_note if spec is not None else ""
        return {"item_id": item_id, "title": self.new_titles[-1]} | ({"note": note} if note else {})

    def _own_item_fields(self) -> list[str]:
        """The columns beyond title, genres and year a new item of this run must give (`fields`)."""
        if not self.can_add_items:
            return []
        return [f for f in self.model.profile_info.item_fields if f not in LOADER_ITEM_COLUMNS]

    def item_fields(self, given: dict) -> dict:
        """A new item's other columns (`fields`): those its run's items are read by beyond title,
        genres and year must all be there, and nothing else (a typo would go unread)."""
        own = [c for c in self.model.profile_info.item_columns if c not in LOADER_ITEM_COLUMNS]
        unknown = sorted(set(given) - set(own))
        if unknown:
            have = f"its own columns are {own}" if own else "it has none beyond title, genres and year"
            raise UserError(f"unknown item field(s) {unknown}: {have}")
        missing = [f for f in self._own_item_fields() if f not in given]
        if missing:
            raise UserError(
                f"this run reads its items' {missing} too; give them in fields, e.g. {{{missing[0]!r}: ...}}"
            )
        return {k: str(v) for k, v in given.items()}

    def check_genres(self, genres: list) -> None:
        """Genres for a run that does not read them would go unread: refused."""
        if genres and "genres" not in self.model.profile_info.item_fields:
            raise UserError("this run's items have no genres (it does not read them); leave genres out")

    def _in_use(self, raw) -> bool:
        return self.run.has_item(raw) or id_key(raw) in self._new_pos

    def _append_items(self, ids: list, metas: list[dict]) -> None:
        df = pd.DataFrame([{"item_id": i, **m} for i, m in zip(ids, metas)])
        table = new_item_table(self.model, df)
        parts = (table.text.float().cpu(), table.vectors, table.bias)
        for i, m in zip(ids, metas):
            self.new_ids.append(i)
            self.new_titles.append(str(m.get("title", i)))
        new = parts if self._new is None else tuple(torch.cat([a, b]) for a, b in zip(self._new, parts))
        self._new = new
        for n, i in enumerate(ids, len(self.new_ids) - len(ids)):
            self._new_pos[id_key(i)] = n

    def check_rating(self, rating: float) -> None:
        """Ratings only meet thresholds in training (implicit, liked), but one far outside the
        run's scale (-1000000) is a client's mistake, stored for good: refused."""
        lo, hi = self.rating_range
        if not (math.isfinite(rating) and lo <= rating <= hi):
            raise UserError(f"rating must be a number from {lo:g} to {hi:g} (this run's scale); got {rating:.10g}")

    def add_interaction(self, raw_user, raw_item, rating: float) -> dict:
        self.check_rating(rating)
        user, item = self.run.user_index(raw_user), self.item_index(raw_item)
        with self._lock:
            self.store.add_interaction(self.run.user_ids[user], self.item_id(item), rating)
            self._remember(user, item)
        return {"user_id": self.run.user_ids[user], "item_id": self.item_id(item), "rating": float(rating)}

    def _remember(self, user: int, item: int) -> None:
        self._extra_seen.setdefault(user, set()).add(item)


def load_service(run_dir: str | Path, device=None) -> Service:
    from ..pipeline import open_run

    return Service(open_run(run_dir, device))
