"""Top-k items for many users with bounded memory: exact search, or approximate (faiss) for big catalogs.

Exact search scores users in blocks and never holds more than `budget` scores at once: a model
whose score is an inner product of a user and an item vector (it has `user_factors(users) -> (B, D)`
and `item_factors() -> (I, D)`, e.g. BPR-MF) is scored in item blocks too, keeping a running top-k,
so even a catalog of millions of items needs only (B, block) scores; any other model is scored
through `score_users` in user blocks of `budget // n_items` rows. A model whose inner product holds
for some users only says which with `factor_users(users) -> (B,) bool` (the enhanced model's cold
users are scored from their neighbours); the other rows go through `score_users`.

Approximate search (ANN) is used for factor models when the catalog has at least `ann_threshold`
items and the caller expects at least `ann_min_queries` queries (mode "auto"), or always (mode "ann"); models without factors fall back to exact search. The
index is a faiss HNSW graph over the item vectors made L2-searchable by the usual MIPS augmentation
(x -> [x, sqrt(M^2 - |x|^2)], q -> [q, 0], so the nearest in L2 has the largest inner product);
`index="flat"` uses an exact `IndexFlatIP` instead (for checks). The candidates are rescored exactly
and the user's seen items dropped, so ANN only affects which items are found, never their scores.
faiss comes from the `scale` extra (`pip install 'gpt2rec[scale]'`), imported only when needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from .errors import require
from .utils.device import model_device
from .utils.ranking import ranked_topk

MODES = ("auto", "exact", "ann")
INDEXES = ("hnsw", "flat")
DEFAULT_BUDGET = 1 << 24  # scores held at once: 16M float32 = 64 MiB
USER_BLOCK = 4096  # users per ANN query / factor block


@dataclass
class RetrievalConfig:
    mode: str = field(default="auto", metadata={"help": "auto (ANN from ann_threshold items), exact or ann"})
    ann_threshold: int = field(default=50_000, metadata={"help": "catalog size from which auto uses ANN"})
    ann_min_queries: int = field(
        default=10_000, metadata={"help": "auto: ANN only when a caller expects at least this many queries"}
    )
    index: str = field(default="hnsw", metadata={"help": "faiss index: hnsw (approximate) or flat (exact)"})
    hnsw_m: int = field(default=32, metadata={"help": "HNSW graph degree"})
    ef_search: int = field(default=256, metadata={"help": "HNSW search breadth (recall vs speed)"})
    ef_construction: int = field(default=80, metadata={"help": "HNSW build breadth"})
    budget: int = field(default=DEFAULT_BUDGET, metadata={"help": "most scores held in memory at once"})

    def __post_init__(self):  # validation only (typed conversion: utils.config.from_dict)
        if self.mode not in MODES:
            raise ValueError(f"retrieval mode must be one of {MODES}, got {self.mode!r}")
        if self.index not in INDEXES:
            raise ValueError(f"retrieval index must be one of {INDEXES}, got {self.index!r}")
        for name in ("ann_threshold", "ann_min_queries", "hnsw_m", "ef_search", "ef_construction", "budget"):
            if getattr(self, name) < 1:
                raise ValueError(f"retrieval {name} must be >= 1, got {getattr(self, name)}")


def has_factors(model) -> bool:
    return callable(getattr(model, "user_factors", None)) and callable(getattr(model, "item_factors", None))


class Retriever:
    """`topk(users, k, seen)` for one model in eval mode; build it after training (it snapshots the
    item vectors and, for ANN, the index)."""

    def __init__(self, model, config: RetrievalConfig | None = None, queries: int | None = None):
        """`queries`: how many users the caller will ask for (None: many, e.g. a server). In mode
        "auto" a small evaluation stays exact, since building the index would cost more than it saves."""
        self.model = model
        self.config = config or RetrievalConfig()
        self.n_items = int(model.n_items)
        self.items: torch.Tensor | None = None  # (I, D) item factors, when the model has them
        if has_factors(model):
            with torch.no_grad():
                self.items = model.item_factors().float()  # (I, D)
        cfg = self.config
        many = queries is None or queries >= cfg.ann_min_queries
        wants_ann = cfg.mode == "ann" or (cfg.mode == "auto" and self.n_items >= cfg.ann_threshold and many)
        self.index = _build_index(self.items, cfg) if wants_ann and self.items is not None else None

    @property
    def kind(self) -> str:
        """What `topk` does: 'ann', 'exact-factors' (item blocks) or 'exact' (score_users)."""
        return "ann" if self.index is not None else ("exact-factors" if self.items is not None else "exact")

    @torch.no_grad()
    def topk(self, users: np.ndarray, k: int, seen: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(B,) internal users -> items (B, k') int64 and scores (B, k') float32, best first, never an item
        in `seen` (the users' rows, (B, I) CSR); k' = min(k, I). Rows with fewer than k' unseen items end
        in score -inf."""
        users = np.asarray(users, dtype=np.int64)
        k = min(int(k), self.n_items)
        if seen is not None and seen.shape != (len(users), self.n_items):
            raise ValueError(f"seen has shape {seen.shape}, expected {(len(users), self.n_items)}")
        parts = []
        for start in range(0, len(users), USER_BLOCK):
            block = users[start : start + USER_BLOCK]
            block_seen = seen[start : start + USER_BLOCK] if seen is not None else None
            if self.index is not None:
                parts.append(self._by_factors(self._ann, block, k, block_seen))
            elif self.items is not None:
                parts.append(self._by_factors(self._exact_factors, block, k, block_seen))
            else:
                parts.append(self._exact_scores(block, k, block_seen))
        if not parts:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _by_factors(self, search, users, k, seen):
        """`search` for the users the model's factors score; `score_users` for the rest."""
        which = getattr(self.model, "factor_users", None)
        inner = np.ones(len(users), bool) if which is None else which(torch.from_numpy(users)).cpu().numpy()
        if inner.all():
            return search(users, k, seen)
        items, scores = np.zeros((len(users), k), np.int64), np.full((len(users), k), -np.inf, np.float32)
        for rows, fn in ((np.flatnonzero(inner), search), (np.flatnonzero(~inner), self._exact_scores)):
            if len(rows):
                items[rows], scores[rows] = fn(users[rows], k, seen[rows] if seen is not None else None)
        return items, scores

    def _user_vectors(self, users: np.ndarray) -> torch.Tensor:
        dev = self.items.device
        return self.model.user_factors(torch.from_numpy(users).to(dev)).float()  # (B, D)

    def _exact_factors(self, users, k, seen):
        """Item blocks with a running top-k: at most (B, block) scores exist at any time."""
        q = self._user_vectors(users)  # (B, D)
        block = max(k, self.config.budget // max(1, len(users)))
        best_s = torch.full((len(users), 0), float("-inf"), device=q.device)  # (B, <=k)
        best_i = torch.zeros((len(users), 0), dtype=torch.long, device=q.device)
        for lo in range(0, self.n_items, block):
            hi = min(lo + block, self.n_items)
            s = q @ self.items[lo:hi].T  # (B, D) @ (D, c) -> (B, c)
            _mask(s, seen, lo, hi)
            idx = torch.arange(lo, hi, device=q.device).expand(len(users), -1)  # (B, c)
            cat_s, cat_i = torch.cat([best_s, s], 1), torch.cat([best_i, idx], 1)  # (B, k + c)
            best_s, top = ranked_topk(cat_s, k)  # ties: earlier blocks, then lower index
            best_i = cat_i.gather(1, top)
        return best_i.cpu().numpy(), best_s.cpu().numpy()

    def _exact_scores(self, users, k, seen):
        """Whole-catalog scores from `score_users`, in user blocks of at most `budget` scores."""
        dev = model_device(self.model)
        rows = max(1, self.config.budget // self.n_items)
        out_i, out_s = [], []
        for start in range(0, len(users), rows):
            b = users[start : start + rows]
            s = self.model.score_users(torch.from_numpy(b).to(dev)).to(torch.float32, copy=True)  # (b, I)
            _mask(s, seen[start : start + rows] if seen is not None else None, 0, self.n_items)
            values, top = ranked_topk(s, k)
            out_i.append(top.cpu().numpy())
            out_s.append(values.cpu().numpy())
        return np.concatenate(out_i), np.concatenate(out_s)

    def _ann(self, users, k, seen):
        """ANN candidates rescored exactly, seen items dropped. First 2k + 16 candidates per user; the
        rows left with fewer than k unseen ones (heavy users) search again for k + their seen count."""
        q = self._user_vectors(users)  # (B, D)
        degree = np.diff(seen.indptr) if seen is not None else np.zeros(len(users), np.int64)  # (B,)
        first = min(self.n_items, 2 * k + 16)
        items, scores = self._ann_rows(q, first, k, seen)
        short = np.flatnonzero((np.isinf(scores).any(1)) & (degree + k > first))
        if len(short):
            want = min(self.n_items, k + int(degree[short].max()))
            more_i, more_s = self._ann_rows(q[torch.from_numpy(short).to(q.device)], want, k,
                                            seen[short] if seen is not None else None)  # fmt: skip
            items[short], scores[short] = more_i, more_s
        return items, scores

    def _ann_rows(self, q: torch.Tensor, want: int, k: int, seen):
        query = q.cpu().numpy().astype(np.float32)
        if self.config.index == "hnsw":
            query = np.concatenate([query, np.zeros((len(query), 1), np.float32)], 1)  # (B, D + 1)
        _, cand = self.index.search(np.ascontiguousarray(query), want)  # (B, want), -1 = none found
        cand_t = torch.from_numpy(cand.astype(np.int64)).to(q.device)
        safe = cand_t.clamp_min(0)
        s = (q.unsqueeze(1) * self.items[safe]).sum(-1)  # (B, want) exact scores
        s = s.masked_fill(cand_t < 0, float("-inf"))
        if seen is not None and seen.nnz:
            hit = member(seen, cand.astype(np.int64))  # (B, want) bool: candidate already seen
            s = s.masked_fill(torch.from_numpy(hit).to(s.device), float("-inf"))
        values, top = ranked_topk(s, k)  # (approximate anyway: ties by candidate order)
        items = safe.gather(1, top).cpu().numpy()
        scores = values.cpu().numpy()
        if items.shape[1] < k:  # fewer candidates than k: pad with misses
            pad = k - items.shape[1]
            items = np.pad(items, ((0, 0), (0, pad)))
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return items, scores


def _build_index(items: torch.Tensor, cfg: RetrievalConfig):
    faiss = require("faiss", "scale")
    x = np.ascontiguousarray(items.detach().cpu().numpy().astype(np.float32))  # (I, D)
    if cfg.index == "flat":
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        return index
    norms = (x.astype(np.float64) ** 2).sum(1)  # (I,)
    extra = np.sqrt(np.maximum(norms.max() - norms, 0.0)).astype(np.float32)[:, None]  # (I, 1)
    index = faiss.IndexHNSWFlat(x.shape[1] + 1, cfg.hnsw_m)
    index.hnsw.efConstruction = cfg.ef_construction
    index.hnsw.efSearch = cfg.ef_search
    index.add(np.ascontiguousarray(np.concatenate([x, extra], 1)))  # (I, D + 1)
    return index


def _mask(scores: torch.Tensor, seen: sp.csr_matrix | None, lo: int, hi: int) -> None:
    """scores[r, c - lo] = -inf for every seen (r, c) with lo <= c < hi, in place."""
    if seen is None or not seen.nnz:
        return
    rows = np.repeat(np.arange(seen.shape[0], dtype=np.int64), np.diff(seen.indptr))
    cols = seen.indices.astype(np.int64)
    inside = (cols >= lo) & (cols < hi)
    r = torch.from_numpy(rows[inside]).to(scores.device)
    c = torch.from_numpy(cols[inside] - lo).to(scores.device)
    scores[r, c] = float("-inf")


def member(rows: sp.csr_matrix, items: np.ndarray) -> np.ndarray:
    """(B, K) bool: is items[r, j] stored in row r of `rows` (B, I)? Vectorised binary search."""
    rows = sp.csr_matrix(rows)
    rows.sort_indices()
    width = rows.shape[1] + 1
    r = np.repeat(np.arange(rows.shape[0], dtype=np.int64), np.diff(rows.indptr))
    keys = r * width + rows.indices.astype(np.int64)  # sorted: rows in order, columns sorted
    query = np.arange(items.shape[0], dtype=np.int64)[:, None] * width + items  # (B, K)
    pos = np.minimum(np.searchsorted(keys, query), max(0, len(keys) - 1))
    return (keys[pos] == query) if len(keys) else np.zeros(items.shape, bool)
