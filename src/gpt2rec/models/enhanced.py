"""Enhanced GPT-2 recommender: ID embeddings attend over per-field text vectors, with optional
end-to-end LoRA tuning of the LM, a contrastive ID/text alignment, and cold start.

    keys_u  = FieldProjector(LM fields of the user's sentence)       # (B, Fu, d) gender, age, occupation
    user    = CrossAttentionFusion(query=id_u, keys=values=keys_u)   # (B, d), weights (B, Fu)
    item    = the same over the item's fields (title, genres)        # (B, d), weights (B, Fi)
    score   = <user, item> + item bias
    loss    = BPR + contrastive_weight * InfoNCE(id view, text view)  (the `extra_loss` hook)

The model only scores. Its text vectors come from `self.text` (a `TextSource`: caches, dynamic LM
encoding, refresh after the LM changed). Training-time behaviour is driven by the training loop
through explicit hooks with an explicit `torch.Generator`:

- `on_epoch_start(epoch, generator)`: the strategy of this epoch (cached / end2end / hybrid, from
  the epoch number alone, since a resumed run skips earlier calls);
- `on_step_start(generator)`: a fresh `StepState`: ID-dropout masks, the `dynamic_sample` draw and
  the per-step memos, shared by the step's positive, negative and contrastive terms;
- `on_step_end()`: drops that state.
A training-mode call made outside on_step_start / on_step_end is a step of its own (draws from the
model's own seeded generator; nothing is kept after the call).
`use_cache` is the run-time switch between cached vectors and the LM itself in training.

Eval scoring reuses every item's representation between calls; the table is keyed on the version
counters and storage of every parameter and buffer, so changing any weight in place (an optimizer
step, a fine-tuning, `load_state_dict`) recomputes it. Entities without training interactions use a
learned "unknown" ID vector (ID dropout teaches the model to lean on text); new users by default get
the training items of the `cold_user_k` known users with the nearest LM profiles (`profile_neighbours`).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from ..contrastive import info_nce
from ..text.distinct import DEDUP_SHARE
from .enhanced_config import STRATEGIES, EnhancedConfig
from .enhanced_lm import StepState, dropout_draw
from .fusion import CrossAttentionFusion, FieldProjector
from .history import UserHistory
from .ids import checked_ids
from .profile_neighbours import ProfileNeighbours
from .text_features import id_embeddings
from .text_source import TextInfo, TextSource

__all__ = ["STRATEGIES", "EnhancedConfig", "EnhancedRecommender"]


def _stepwise(method):
    """Run a public scoring method inside a training step: the loop's (on_step_start), or else a
    step of this call alone, so the positive/negative terms of one call share their draws."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        if not self.training or self._step is not None:
            return method(self, *args, **kwargs)
        self._step = StepState(self._generator)
        try:
            return method(self, *args, **kwargs)
        finally:
            self._step = None

    return run


class EnhancedRecommender(nn.Module):
    def __init__(self, config: EnhancedConfig, n_users: int, n_items: int, info: TextInfo, history_nnz: int = 0):
        super().__init__()
        self.config = config
        self.n_users, self.n_items = n_users, n_items
        d, cfg = config.dim, config
        self.user_emb, self.item_emb = id_embeddings(n_users, n_items, d, cfg.init_std)
        self.unknown_user = nn.Parameter(torch.randn(d) * cfg.init_std)  # (d,)
        self.unknown_item = nn.Parameter(torch.randn(d) * cfg.init_std)  # (d,)
        self.bias = nn.Embedding(n_items, 1) if cfg.item_bias else None  # popularity-like offset
        self.unknown_bias = nn.Parameter(torch.zeros(1)) if cfg.item_bias else None
        if self.bias is not None:
            nn.init.zeros_(self.bias.weight)
        cold = cfg.cold_users == "neighbours"
        self.neighbours = ProfileNeighbours(n_users, n_items, cfg.cold_user_k, history_nnz) if cold else None
        self.history = UserHistory(n_users, n_items, history_nnz) if cfg.use_history else None
        self.hist_emb = nn.Embedding(n_items, d) if cfg.use_history else None  # SVD++-style item vectors
        if self.hist_emb is not None:
            nn.init.normal_(self.hist_emb.weight, std=cfg.init_std)
        self.register_buffer("user_known", torch.ones(n_users, dtype=torch.bool))  # (U,)
        self.register_buffer("item_known", torch.ones(n_items, dtype=torch.bool))  # (I,)
        self.text = TextSource(config, n_users, n_items, info)
        fu, fi, dim = self.text.user_cache.shape[1], self.text.item_cache.shape[1], info.text_dim
        self.user_keys, self.item_keys = FieldProjector(fu, dim, d), FieldProjector(fi, dim, d)
        heads, drop, att, norm = cfg.n_heads, cfg.dropout, cfg.use_attention, cfg.layer_norm
        self.user_fusion = CrossAttentionFusion(d, fu, heads, drop, att, norm)
        self.item_fusion = CrossAttentionFusion(d, fi, heads, drop, att, norm)
        self.use_cache = not cfg.dynamic  # training path: cached vectors or the LM itself
        self._step: StepState | None = None  # set by on_step_start, cleared by on_step_end
        self._generator = torch.Generator().manual_seed(0)  # draws of calls outside on_step_start/end
        self._eval_items: tuple[tuple, tuple] | None = None  # (weights key, (item table (I, d), bias (I,)))

    def fields(self, kind: str) -> list[str]:
        return self.text.fields(kind)

    def checkpoint_meta(self) -> dict:
        """Sizes learned from the data, to rebuild this model at its saved shape."""
        holder = self.neighbours.history if self.neighbours is not None else self.history
        return {"text": self.text.info.to_dict(), "history_nnz": 0 if holder is None else holder.nnz}

    # ---- training hooks -------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, generator: torch.Generator | None = None) -> None:
        """Strategy of this (1-based) epoch, from the epoch number alone (a resumed run skips calls)."""
        if self.config.strategy != "hybrid":
            return
        e1, e2 = int(self.config.hybrid_cached_epochs), int(self.config.hybrid_end2end_epochs)
        dynamic = e1 < epoch <= e1 + e2
        self.use_cache = not dynamic
        self.text.lm.set_trainable(dynamic and not self.config.freeze_lm)

    def on_step_start(self, generator: torch.Generator) -> None:
        """Begin a training step: its random draws come from `generator` (a CPU generator)."""
        self._step = StepState(generator)

    def on_step_end(self) -> None:
        self._step = None

    def _training_step(self) -> StepState | None:
        """The current step's state in training mode (None in eval mode)."""
        return self._step if self.training else None

    def _dynamic(self) -> bool:
        return self.training and not self.use_cache

    # ---- representations --------------------------------------------------------------------------
    def _use_id(self, kind: str, idx: torch.Tensor) -> torch.Tensor:
        """(B,) bool: use the entity's own ID (False: unseen in training, ID dropout, text-only)."""
        known = self.user_known if kind == "user" else self.item_known
        use = known[idx] & self.config.use_ids  # (B,)
        step = self._training_step()
        if step is not None and self.config.id_dropout > 0:
            n = self.n_users if kind == "user" else self.n_items
            use = use & ~step.mask(f"drop-{kind}", n, known.device, dropout_draw(self.config.id_dropout))[idx]
        return use

    def _ids(self, kind: str, idx: torch.Tensor) -> torch.Tensor:
        """ID vectors (B, d): 'unknown' for entities unseen in training, and for ID dropout."""
        emb, unknown = (self.user_emb, self.unknown_user) if kind == "user" else (self.item_emb, self.unknown_item)
        return torch.where(self._use_id(kind, idx).unsqueeze(-1), emb(idx), unknown.expand(len(idx), -1))

    def _bias(self, idx: torch.Tensor) -> torch.Tensor | float:
        """Item biases (B,) ('unknown' bias for unseen or dropped items), or 0 without biases."""
        if self.bias is None:
            return 0.0
        return torch.where(self._use_id("item", idx), self.bias(idx).squeeze(-1), self.unknown_bias)

    def _keys(self, kind: str, text: torch.Tensor) -> torch.Tensor:
        return (self.user_keys if kind == "user" else self.item_keys)(text)  # (B, F, d)

    def _cached_keys(self, kind: str, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Keys of entities `idx` (N,) from the cached text: (keys (K, F, d), each entity's row (N,))
        with each distinct text projected once when texts repeat (ML-100K's 943 users have 168
        profiles), else (keys (N, F, d), None)."""
        cache, rows = self.text.cache(kind), self.text.rows(kind)[idx]  # (K', F, D), (N,)
        if len(cache) > DEDUP_SHARE * len(rows):  # too few entities to share many texts
            return self._keys(kind, cache[rows]), None
        distinct, inverse = torch.unique(rows, return_inverse=True)  # (K,), (N,)
        if len(distinct) > DEDUP_SHARE * len(rows):
            return self._keys(kind, cache[rows]), None
        return self._keys(kind, cache[distinct]), inverse

    def _text(self, kind: str, idx: torch.Tensor) -> torch.Tensor:
        return self.text.read(kind, idx, self._training_step() if self._dynamic() else None)  # (B, F, D)

    @_stepwise
    def represent(self, kind: str, idx: torch.Tensor | None, text: torch.Tensor | None = None, ids=None):
        """Fused representations (B, d) and field attention weights (B, F) or None. `text` (B, F, D)
        and `ids` (B, d) replace the entity's cached text / ID view (cold start, deletion tests)."""
        if text is None and ids is None and self.training and self.use_cache:
            if self.config.use_attention and self.config.use_text:  # each entity once per training step
                return self._step_rows(kind, idx, ("fused", "weights"))
            return self._step_rows(kind, idx, ("fused",))[0], None
        if text is None and ids is None and idx.numel() > 1:  # repeated entities: compute each once
            uniq, inverse = torch.unique(idx, return_inverse=True)  # (U,), (B,)
            if len(uniq) < len(idx):
                fused, weights = self.represent(kind, uniq)
                return fused[inverse], None if weights is None else weights[inverse]
        ids = self._ids(kind, idx) if ids is None else ids  # (B, d)
        fused, weights = ids, None
        if self.config.use_text:
            if text is None and not self._dynamic():
                keys, rows = self._cached_keys(kind, idx)  # (K, F, d), (B,) or None
            else:
                keys, rows = self._keys(kind, self._text(kind, idx) if text is None else text), None  # (B, F, d)
            fused, weights = (self.user_fusion if kind == "user" else self.item_fusion)(ids, keys, rows)
        if kind == "user" and self.history is not None and idx is not None:
            fused = fused + self._history_vectors(idx)
        return fused, weights

    def _history_vectors(self, users: torch.Tensor | None) -> torch.Tensor:
        """SVD++-style implicit feedback: sum of the user's training items' history vectors / sqrt(count)
        (B, d); `None` = every user. Zero for users without training interactions."""
        if users is None:
            users = torch.arange(self.n_users, device=self.hist_emb.weight.device)
        rows = self.history.dense(users)  # (B, I)
        norm = rows.sum(1, keepdim=True).clamp_min(1.0).rsqrt()  # (B, 1)
        return (rows * norm) @ self.hist_emb.weight  # (B, d)

    def _step_rows(self, kind: str, idx: torch.Tensor, parts: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
        """Cached-path training: the `parts` of entities `idx` (B,): "fused" (B, d), "weights" (B, F),
        "key" (B, d; the mean key, the contrastive text view). Each entity is computed once per step
        (a memo shared by the positive, negative and contrastive terms), and only the entities the
        step touches: the cost of a step does not grow with the number of users and items."""
        d, f = self.config.dim, len(self.fields(kind)) if self.config.use_text else 0
        rows, pos = self._training_step().memo_rows(f"fused-{kind}", idx, lambda new: self._fuse_rows(kind, new))
        columns = {"fused": slice(0, d), "weights": slice(d, d + f), "key": slice(d + f, None)}
        return tuple(rows[:, columns[part]][pos] for part in parts)  # only the columns asked for

    def _fuse_rows(self, kind: str, idx: torch.Tensor) -> torch.Tensor:
        """[fused (N, d) | weights (N, F) | mean key (N, d)] of distinct entities `idx` (N,), packed
        in one tensor for the step's memo (only fused without text)."""
        fused = self._ids(kind, idx)  # (N, d)
        if not self.config.use_text:
            return fused
        keys, rows = self._cached_keys(kind, idx)  # (K, F, d), (N,) or None
        fused, weights = (self.user_fusion if kind == "user" else self.item_fusion)(fused, keys, rows)
        if weights is None:  # concatenation ablation: no field weights
            weights = fused.new_zeros(len(idx), keys.shape[1])
        if kind == "user" and self.history is not None:
            fused = fused + self._history_vectors(idx)
        mean_key = keys.mean(1) if rows is None else keys.mean(1)[rows]  # (N, d)
        return torch.cat([fused, weights, mean_key], dim=-1)  # (N, d + F + d)

    def _weights_key(self) -> tuple:
        """Changes whenever any parameter or buffer changes (in place or replaced)."""
        tensors = [*self.parameters(), *self.buffers()]
        return tuple((t.data_ptr(), t._version) for t in tensors)

    def _item_table(self) -> tuple[torch.Tensor, torch.Tensor | float]:
        """Every item's (representation (I, d), bias (I,)); reused between eval calls (no grad)
        until a weight changes. Changes made through `.data` bypass the version counters."""
        reuse = not self.training and not torch.is_grad_enabled()  # never cache a graph
        key = self._weights_key() if reuse else None
        if reuse and self._eval_items is not None and self._eval_items[0] == key:
            return self._eval_items[1]
        idx = torch.arange(self.n_items, device=self.item_emb.weight.device)  # (I,)
        table = (self.represent("item", idx)[0], self._bias(idx))
        self._eval_items = (key, table) if reuse else None
        return table

    def _prepare(self) -> None:
        """Before reading cached text: refresh it if the LM changed (not while training dynamically)."""
        if not self._dynamic():
            self.text.refresh_if_stale()

    # ---- cold users -------------------------------------------------------------------------------
    def neighbour_scores(self, text: torch.Tensor) -> torch.Tensor:
        """Scores (C, I) of users known only by their profile field vectors `text` (C, Fu, D)."""
        known = self.user_known.nonzero().squeeze(1)  # (K,)
        return self.neighbours(text, self.text.read("user", known), known, self.user_keys.mean, self.user_keys.std)

    def _with_cold_users(self, users: torch.Tensor, scores: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """Replace the scores of users without training interactions by `neighbour_scores` (eval
        only; `items` (B,) for pairs, None for every item)."""
        if self.neighbours is None or self.training:
            return scores
        cold = ~self.user_known[users]  # (B,)
        if cold.any():
            rows = self.neighbour_scores(self.text.read("user", users[cold]))  # (C, I)
            scores = scores.clone()
            scores[cold] = rows if items is None else rows.gather(1, items[cold].unsqueeze(1)).squeeze(1)
        return scores

    # ---- the model contract ---------------------------------------------------------------------
    @checked_ids
    @_stepwise
    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dev = self.user_emb.weight.device
        self._prepare()
        users, items = users.to(dev), items.to(dev)
        u, _ = self.represent("user", users)  # (B, d)
        i, _ = self.represent("item", items)  # (B, d)
        return self._with_cold_users(users, (u * i).sum(-1) + self._bias(items), items)  # (B,)

    @checked_ids
    @_stepwise
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        self._prepare()
        users = users.to(self.user_emb.weight.device)
        u, _ = self.represent("user", users)  # (B, d)
        items, bias = self._item_table()  # (I, d), (I,)
        return self._with_cold_users(users, u @ items.T + bias, None)  # (B, I)

    # ---- factors for retrieval (exact item blocks, ANN): score = [u, 1] . [i, bias] -----------------
    def user_factors(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, d + 1) with score_users(users) == user_factors(users) @ item_factors().T for the
        users where `factor_users` is True (eval mode)."""
        self._prepare()
        u, _ = self.represent("user", users.to(self.user_emb.weight.device))  # (B, d)
        return torch.cat([u, torch.ones_like(u[:, :1])], 1)  # (B, d + 1)

    def item_factors(self) -> torch.Tensor:
        """(I, d + 1): every item's representation, its bias as the last column."""
        self._prepare()
        items, bias = self._item_table()  # (I, d), (I,) or 0.0
        bias = torch.as_tensor(bias, dtype=items.dtype, device=items.device).expand(len(items))
        return torch.cat([items, bias.unsqueeze(1)], 1)  # (I, d + 1)

    def factor_users(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) bool: users scored by the inner product (not cold users with the neighbours path,
        whose scores `score_users` computes from their nearest known profiles)."""
        users = users.to(self.user_known.device)
        if self.neighbours is None:
            return torch.ones(len(users), dtype=torch.bool, device=users.device)
        return self.user_known[users]

    def score_user_text(self, text: torch.Tensor) -> torch.Tensor:
        """Scores (C, I) of new users given only their profile field vectors `text` (C, Fu, D)."""
        self._prepare()
        if self.neighbours is not None:
            return self.neighbour_scores(text)
        unknown = self.unknown_user.expand(len(text), -1)  # (C, d)
        user, _ = self.represent("user", None, text=text, ids=unknown)  # (C, d)
        items, bias = self._item_table()  # (I, d), (I,)
        return user @ items.T + bias  # (C, I)

    def represent_new_items(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectors (N, d) and biases (N,) of new items given only their field vectors (N, Fi, D): the
        'unknown' ID vector and bias stand in for the IDs they do not have."""
        items, _ = self.represent("item", None, text=text, ids=self.unknown_item.expand(len(text), -1))  # (N, d)
        bias = self.unknown_bias if self.bias is not None else items.new_zeros(1)  # (1,)
        return items, bias.expand(len(text)).clone()  # (N, d), (N,)

    @property
    def profile_info(self):
        """What a new user's profile may hold (`TextInfo`: the user fields and columns, the LM)."""
        return self.text.info

    def score_new_user(self, profile: dict) -> torch.Tensor:
        """Scores (I,) of a brand-new user given as a metadata profile (see `new_entities`)."""
        from .new_entities import score_new_user

        return score_new_user(self, profile)

    def score_new_items(self, user: int, items_df) -> torch.Tensor:
        """Scores (N,) of brand-new items (a metadata table) for known internal user `user`."""
        from .new_entities import score_new_items

        return score_new_items(self, user, items_df)

    def attention_weights(self, users: torch.Tensor, items: torch.Tensor):
        """Field attention of users (B, Fu) and items (B, Fi), each row summing to 1 (eval mode)."""
        if not self.config.use_attention:
            raise ValueError("this model was trained with use_attention=False (concatenation): it has no field weights")
        dev = self.user_emb.weight.device
        with torch.no_grad():
            self._prepare()
            return self.represent("user", users.to(dev))[1], self.represent("item", items.to(dev))[1]

    def item_text_vectors(self) -> torch.Tensor:
        """One LM vector per item (I, D): the mean of its field vectors (for 'similar items')."""
        self._prepare()
        return self.text.full("item").mean(1)

    @_stepwise
    def extra_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """contrastive_weight * mean of user and item InfoNCE between ID and text views."""
        lam = self.config.contrastive_weight
        if lam == 0 or not (self.config.use_ids and self.config.use_text):
            return self.user_emb.weight.new_zeros(())
        step = self._step or StepState(self._generator)  # (eval mode: the subset draw only)
        u = torch.unique(users)
        it = torch.unique(torch.cat([pos.reshape(-1), neg.reshape(-1)]))
        it = it[self.item_known[it]]  # unseen items have no ID view to align
        loss = self.user_emb.weight.new_zeros(())
        for kind, idx, emb in (("user", u, self.user_emb), ("item", it, self.item_emb)):
            idx = step.subset(idx, self.config.contrastive_size)  # InfoNCE is quadratic in the set
            if len(idx) > 1:
                if self.training and self.use_cache:
                    (text_view,) = self._step_rows(kind, idx, ("key",))  # (B, d)
                else:
                    text_view = self._keys(kind, self._text(kind, idx)).mean(1)  # (B, d)
                loss = loss + 0.5 * info_nce(emb(idx), text_view, self.config.temperature)
        return lam * loss
