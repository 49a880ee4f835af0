"""Enhanced GPT-2 recommender: ID embeddings attend over per-field text vectors, with optional
end-to-end LoRA tuning of the LM, a contrastive ID/text alignment, and cold start.

    keys_u  = FieldProjector(LM fields of the user's sentence)       # (B, Fu, d) gender, age, occupation
    user    = CrossAttentionFusion(query=id_u, keys=values=keys_u)   # (B, d), weights (B, Fu)
    item    = the same over the item's fields (title, genres)        # (B, d), weights (B, Fi)
    score   = <user, item>
    loss    = BPR + contrastive_weight * InfoNCE(id view, text view)  (the `extra_loss` hook)

Text vectors come from a cache (buffers, refreshed by `prepare_for_eval` after the LM changed) or,
in training with `use_cache = False`, from the LM itself with gradients into its adapters: per step
a random `dynamic_sample` users and as many items go through the LM (the rest read the cache, which
those passes keep current), so a step costs a bounded number of LM passes whatever the batch size.
`strategy`: cached (frozen LM), end2end (dynamic + LoRA), hybrid (cached for
`hybrid_cached_epochs`, then dynamic for `hybrid_end2end_epochs`, then cached again).
Entities without training interactions use a learned "unknown" ID vector (ID dropout in training
teaches the model to lean on text), so new items are scored from their metadata alone; new users
too with `cold_users="model"`. By default new users get the training items of the `cold_user_k`
known users whose LM profile vectors are nearest (`profile_neighbours`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..contrastive import info_nce
from ..errors import UserError
from .base import ModelContext, ModelSpec
from .enhanced_config import STRATEGIES, EnhancedConfig
from .enhanced_lm import LMHolder, StepMemo
from .fusion import CrossAttentionFusion, FieldProjector
from .history import UserHistory
from .profile_neighbours import ProfileNeighbours
from .text_features import (
    adopt_saved_shapes,
    encode_tables,
    id_embeddings,
    json_buffer,
    make_encoder,
    read_json_buffer,
)

__all__ = ["STRATEGIES", "EnhancedConfig", "EnhancedRecommender", "SPEC", "build"]


class EnhancedRecommender(nn.Module):
    _text_shaped = ("user_cache", "item_cache", "user_keys.", "item_keys.", "meta")

    def __init__(
        self,
        config: EnhancedConfig,
        n_users: int,
        n_items: int,
        n_user_fields: int = 1,
        n_item_fields: int = 1,
        text_dim: int = 1,
    ):
        super().__init__()
        self.config = config
        self.n_users, self.n_items = n_users, n_items
        d = config.dim
        self.user_emb, self.item_emb = id_embeddings(n_users, n_items, d, config.init_std)
        self.unknown_user = nn.Parameter(torch.randn(d) * config.init_std)  # (d,)
        self.unknown_item = nn.Parameter(torch.randn(d) * config.init_std)  # (d,)
        self.bias = nn.Embedding(n_items, 1) if config.item_bias else None  # popularity-like offset
        self.unknown_bias = nn.Parameter(torch.zeros(1)) if config.item_bias else None
        if self.bias is not None:
            nn.init.zeros_(self.bias.weight)
        self.neighbours = (
            ProfileNeighbours(n_users, n_items, config.cold_user_k) if config.cold_users == "neighbours" else None
        )
        self.history = UserHistory(n_users, n_items) if config.use_history else None  # training items per user
        self.hist_emb = nn.Embedding(n_items, d) if config.use_history else None
        if self.hist_emb is not None:
            nn.init.normal_(self.hist_emb.weight, std=config.init_std)
        self.register_buffer("user_known", torch.ones(n_users, dtype=torch.bool))  # (U,)
        self.register_buffer("item_known", torch.ones(n_items, dtype=torch.bool))  # (I,)
        self.register_buffer("user_cache", torch.zeros(n_users, n_user_fields, text_dim))  # (U, Fu, D)
        self.register_buffer("item_cache", torch.zeros(n_items, n_item_fields, text_dim))  # (I, Fi, D)
        self.register_buffer("meta", json_buffer({}))  # lm, field names, templates: see `meta_info`
        self.user_keys = FieldProjector(n_user_fields, text_dim, d)
        self.item_keys = FieldProjector(n_item_fields, text_dim, d)
        heads, drop, att = config.n_heads, config.dropout, config.use_attention
        self.user_fusion = CrossAttentionFusion(d, n_user_fields, heads, drop, att, config.layer_norm)
        self.item_fusion = CrossAttentionFusion(d, n_item_fields, heads, drop, att, config.layer_norm)
        self.lm = LMHolder()
        self.use_cache = not config.dynamic  # training path: cached vectors or the LM itself
        self.memo = StepMemo()
        self.rendered: dict[str, list] = {}  # kind -> Rendered per index (present after a build with data)
        self.lm_dirty = False  # the LM changed since the caches were computed
        self.encoder_calls = 0  # LM passes made with gradients (dynamic path)
        self.user_emb.weight.register_hook(self.memo.bump)  # a backward pass ends the step
        self._drop_step, self._drop = -1, {}
        self._table_step, self._tables = -1, {}
        self._fresh_step, self._fresh_sets = -1, {}
        self._eval_items = None  # (I, d) and (I,) item tables reused across eval calls (recommend latency)

    # ---- metadata kept in the state_dict ----------------------------------------------------------
    @property
    def meta_info(self) -> dict:
        return read_json_buffer(self.meta)

    def fields(self, kind: str) -> list[str]:
        return self.meta_info.get(f"{kind}_fields", [])

    # ---- representations --------------------------------------------------------------------------
    def _use_id(self, kind: str, idx: torch.Tensor) -> torch.Tensor:
        """(B,) bool: use the entity's own ID (False: unseen in training, ID dropout, text-only)."""
        known = self.user_known if kind == "user" else self.item_known
        use = known[idx] & self.config.use_ids  # (B,)
        if self.training and self.config.id_dropout > 0:
            if self._drop_step != self.memo.step:  # one draw per step: pos and neg calls agree
                self._drop_step, self._drop = self.memo.step, {}
            if kind not in self._drop:
                n = self.n_users if kind == "user" else self.n_items
                self._drop[kind] = torch.rand(n, device=known.device) < self.config.id_dropout
            use = use & ~self._drop[kind][idx]
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

    def neighbour_scores(self, text: torch.Tensor) -> torch.Tensor:
        """Scores (C, I) of users known only by their profile field vectors `text` (C, Fu, D)."""
        known = self.user_known.nonzero().squeeze(1)  # (K,)
        return self.neighbours(text, self.user_cache[known], known, self.user_keys.mean, self.user_keys.std)

    def _with_cold_users(self, users: torch.Tensor, scores: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """Replace the scores of users without training interactions by `neighbour_scores` (eval
        only; `items` (B,) for pairs, None for every item)."""
        if self.neighbours is None or self.training:
            return scores
        cold = ~self.user_known[users]  # (B,)
        if cold.any():
            rows = self.neighbour_scores(self.user_cache[users[cold]])  # (C, I)
            scores = scores.clone()
            scores[cold] = rows if items is None else rows.gather(1, items[cold].unsqueeze(1)).squeeze(1)
        return scores

    def _text(self, kind: str, idx: torch.Tensor) -> torch.Tensor:
        """LM field vectors (B, F, D): cached, or encoded now with gradients (training, use_cache False)."""
        cache = self.user_cache if kind == "user" else self.item_cache
        if not (self.training and not self.use_cache):
            return cache[idx]
        encode = lambda new: self._encode_dynamic(kind, new)  # noqa: E731
        if self.config.dynamic_sample <= 0:
            return self.memo.get(kind, idx, encode)
        fresh = self._fresh(kind)[idx]  # (B,) this step's sampled entities
        out = cache[idx]  # (B, F, D) no gradients
        if fresh.any():
            out[fresh] = self.memo.get(kind, idx[fresh], encode)  # gradients flow through these rows
        return out

    def _fresh(self, kind: str) -> torch.Tensor:
        """(N,) bool: the `dynamic_sample` entities of `kind` encoded with gradients this step (one
        draw per step, so the positive, negative and contrastive terms agree)."""
        if self._fresh_step != self.memo.step:
            self._fresh_step, self._fresh_sets = self.memo.step, {}
        if kind not in self._fresh_sets:
            n = self.n_users if kind == "user" else self.n_items
            pick = torch.randperm(n, device=self.user_cache.device)[: self.config.dynamic_sample]
            self._fresh_sets[kind] = torch.zeros(n, dtype=torch.bool, device=pick.device).index_fill_(0, pick, True)
        return self._fresh_sets[kind]

    def _encode_dynamic(self, kind: str, idx: torch.Tensor) -> torch.Tensor:
        if kind not in self.rendered:
            raise UserError(
                "dynamic text encoding needs the dataset: build the model with ModelContext(dataset=..., train=...)"
            )
        runtime = self.ensure_lm()
        rendered = [self.rendered[kind][int(i)] for i in idx.tolist()]
        encode = self.fast_encoder or runtime.encode_train
        out = encode([r.text for r in rendered], [r.spans for r in rendered], fields=self.fields(kind))
        self.encoder_calls += 1
        if any(p.requires_grad for p in self.lm.parameters()):
            self.lm_dirty = True
        out = out.to(self.user_cache.device, self.user_cache.dtype)  # (N, F, D)
        (self.user_cache if kind == "user" else self.item_cache)[idx] = out.detach()  # unsampled rows read it
        return out

    def represent(
        self, kind: str, idx: torch.Tensor, text: torch.Tensor | None = None, ids: torch.Tensor | None = None
    ):
        """Fused representations (B, d) and field attention weights (B, F) or None."""
        if text is None and ids is None and self.training and self.use_cache:
            fused, weights, _ = self._step_table(kind)  # every entity once per training step
            return fused[idx], None if weights is None else weights[idx]
        if text is None and ids is None and idx.numel() > 1:  # repeated entities: compute each once
            uniq, inverse = torch.unique(idx, return_inverse=True)  # (U,), (B,)
            if len(uniq) < len(idx):
                fused, weights = self.represent(kind, uniq)
                return fused[inverse], None if weights is None else weights[inverse]
        fused, weights = self._fuse(kind, idx, text, ids)
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

    def _fuse(self, kind: str, idx: torch.Tensor, text: torch.Tensor | None, ids: torch.Tensor | None):
        ids = self._ids(kind, idx) if ids is None else ids  # (B, d)
        if not self.config.use_text:
            return ids, None
        keys = (self.user_keys if kind == "user" else self.item_keys)(self._text(kind, idx) if text is None else text)
        fusion = self.user_fusion if kind == "user" else self.item_fusion
        return fusion(ids, keys)

    def _step_table(self, kind: str):
        """Cached-path training: (fused (N, d), weights (N, F) | None, mean key (N, d)) for ALL N
        entities of `kind`, computed once per step and shared by the positive, negative and
        contrastive terms (cheaper than three passes over a batch's repeated entities)."""
        if self._table_step != self.memo.step:
            self._table_step, self._tables = self.memo.step, {}
        if kind not in self._tables:
            emb = self.user_emb if kind == "user" else self.item_emb
            idx = torch.arange(emb.num_embeddings, device=emb.weight.device)  # (N,)
            ids = self._ids(kind, idx)  # (N, d)
            if not self.config.use_text:
                if kind == "user" and self.history is not None:
                    ids = ids + self._history_vectors(None)
                self._tables[kind] = (ids, None, None)
                return self._tables[kind]
            keys = (self.user_keys if kind == "user" else self.item_keys)(self._text(kind, idx))  # (N, F, d)
            fused, weights = (self.user_fusion if kind == "user" else self.item_fusion)(ids, keys)
            if kind == "user" and self.history is not None:
                fused = fused + self._history_vectors(None)
            self._tables[kind] = (fused, weights, keys.mean(1))
        return self._tables[kind]

    def _all_items(self) -> torch.Tensor:
        return self._item_table()[0]

    def _item_table(self) -> tuple[torch.Tensor, torch.Tensor | float]:
        """Every item's (representation (I, d), bias (I,)); kept between eval calls until the
        model trains, loads or refreshes its text cache again."""
        reuse = not self.training and not torch.is_grad_enabled()  # never cache a graph
        if reuse and self._eval_items is not None:
            return self._eval_items
        idx = torch.arange(self.n_items, device=self.item_emb.weight.device)  # (I,)
        table = (self.represent("item", idx)[0], self._bias(idx))
        if reuse:
            self._eval_items = table
        return table

    def train(self, mode: bool = True):
        if mode or self.training:  # weights may change in training: recompute the item table after it
            self._eval_items = None
        return super().train(mode)

    # ---- the model contract ---------------------------------------------------------------------
    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dev = self.user_emb.weight.device
        self._refresh_if_stale()
        users, items = users.to(dev), items.to(dev)
        u, _ = self.represent("user", users)  # (B, d)
        i, _ = self.represent("item", items)  # (B, d)
        return self._with_cold_users(users, (u * i).sum(-1) + self._bias(items), items)  # (B,)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        self._refresh_if_stale()
        users = users.to(self.user_emb.weight.device)
        u, _ = self.represent("user", users)  # (B, d)
        items, bias = self._item_table()  # (I, d), (I,)
        return self._with_cold_users(users, u @ items.T + bias, None)  # (B, I)

    def attention_weights(self, users: torch.Tensor, items: torch.Tensor):
        """Field attention of users (B, Fu) and items (B, Fi), each row summing to 1 (eval mode)."""
        if not self.config.use_attention:
            raise UserError("this model was trained with use_attention=False (concatenation): it has no field weights")
        dev = self.user_emb.weight.device
        with torch.no_grad():
            self._refresh_if_stale()
            return self.represent("user", users.to(dev))[1], self.represent("item", items.to(dev))[1]

    def item_text_vectors(self) -> torch.Tensor:
        """One LM vector per item (I, D): the mean of its field vectors (for 'similar items')."""
        return self.item_cache.mean(1)

    # ---- training hooks -------------------------------------------------------------------------
    def extra_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """contrastive_weight * mean of user and item InfoNCE between ID and text views."""
        lam = self.config.contrastive_weight
        if lam == 0 or not (self.config.use_ids and self.config.use_text):
            return self.user_emb.weight.new_zeros(())
        u = torch.unique(users)
        it = torch.unique(torch.cat([pos.reshape(-1), neg.reshape(-1)]))
        it = it[self.item_known[it]]  # unseen items have no ID view to align
        loss = self.user_emb.weight.new_zeros(())
        cap = self.config.contrastive_size
        for kind, idx, emb in (("user", u, self.user_emb), ("item", it, self.item_emb)):
            if len(idx) > cap:  # InfoNCE is quadratic in the set: a random subset of the batch's entities
                idx = idx[torch.randperm(len(idx), device=idx.device)[:cap]]
            if len(idx) > 1:
                if self.training and self.use_cache:
                    text_view = self._step_table(kind)[2][idx]  # (B, d)
                else:
                    text_view = (self.user_keys if kind == "user" else self.item_keys)(self._text(kind, idx)).mean(1)
                loss = loss + 0.5 * info_nce(emb(idx), text_view, self.config.temperature)
        return lam * loss

    def on_epoch_start(self, epoch: int, generator: torch.Generator | None = None) -> None:
        """Strategy switch from the (1-based) epoch number alone (a resumed run skips calls)."""
        if self.config.strategy != "hybrid":
            return
        e1, e2 = int(self.config.hybrid_cached_epochs), int(self.config.hybrid_end2end_epochs)
        dynamic = e1 < epoch <= e1 + e2
        if dynamic:
            self.ensure_lm()
        self.use_cache = not dynamic
        self.lm.set_trainable(dynamic and not self.config.freeze_lm)

    @torch.no_grad()
    def prepare_for_eval(self) -> None:
        self._refresh_if_stale()

    # ---- the language model ----------------------------------------------------------------------
    def ensure_lm(self):
        """The LM encoder (built from `meta.lm` on first need, saved adapters applied)."""
        if not self.lm.attached:
            info = self.meta_info
            if "lm" not in info:
                raise UserError("this model has no text tables yet; build it with a dataset and training data")
            kwargs = self.config.finetune_kwargs() if self.config.dynamic else {"finetune": "frozen"}
            encoder = make_encoder(self.config, info["lm"], self.user_emb.weight.device, "fields", **kwargs)
            self.lm.attach(encoder)
            self.lm.train(self.training)
        return self.lm.runtime

    @property
    def fast_encoder(self):
        """`text.fast.FastEncoder` over the LM when fast mode applies (tuned top blocks, final layer)."""
        runtime = self.lm.runtime
        if runtime is None or not self.config.fast or runtime.config.top_n_blocks is None or runtime.config.layer != -1:
            return None
        if getattr(self, "_fast", None) is None or self._fast.encoder is not runtime:
            from ..text.fast import FastEncoder

            object.__setattr__(self, "_fast", FastEncoder(runtime))  # not a submodule
        return self._fast

    @torch.no_grad()
    def refresh_cache(self) -> None:
        """Re-encode every user and item with the current LM (no gradients) into the cache buffers."""
        runtime = self.ensure_lm()
        fast, size = self.fast_encoder, self.config.encode_batch_size
        was_training = runtime.training
        runtime.eval()
        try:
            for kind, buf in (("user", "user_cache"), ("item", "item_cache")):
                texts = [r.text for r in self.rendered[kind]]
                spans = [r.spans for r in self.rendered[kind]]
                fields = self.fields(kind)
                if fast is None:
                    out = runtime.encode(texts, spans, progress=False, fields=fields)
                else:  # only the tuned top blocks run; lower states are reused
                    out = torch.cat(
                        [fast(texts[s : s + size], spans[s : s + size], fields) for s in range(0, len(texts), size)]
                    )
                setattr(self, buf, out.to(getattr(self, buf)))
        finally:
            runtime.train(was_training)
        self.lm_dirty = False
        self._eval_items = None

    def _refresh_if_stale(self) -> None:
        if self.lm_dirty and not (self.training and not self.use_cache) and self.rendered:
            self.refresh_cache()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        adopt_saved_shapes(self, state_dict, prefix, self._text_shaped)
        if self.neighbours is not None and prefix + "neighbours.history.indptr" not in state_dict:
            self.neighbours = None  # saved without the neighbours (older run): new users go through the model
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.lm_dirty = False  # the loaded caches belong to the loaded adapters
        self._eval_items = None

    def score_new_user(self, profile: dict) -> torch.Tensor:
        from ..coldstart import score_new_user

        return score_new_user(self, profile)

    def score_new_items(self, user: int, items_df) -> torch.Tensor:
        from ..coldstart import score_new_items

        return score_new_items(self, user, items_df)


def build(config: EnhancedConfig, ctx: ModelContext) -> EnhancedRecommender:
    if ctx.dataset is None or ctx.train is None:  # checkpoint load: everything comes from the state_dict
        return EnhancedRecommender(config, ctx.n_users, ctx.n_items).to(ctx.device)
    tables = encode_tables(config, ctx.dataset, ctx.train, ctx.device, "fields", keep_encoder=config.dynamic)
    model = EnhancedRecommender(
        config, ctx.n_users, ctx.n_items, len(tables.user_fields), len(tables.item_fields), tables.text_dim
    )
    with torch.no_grad():
        model.user_cache = tables.users.float()
        model.item_cache = tables.items.float()
        model.user_keys.fit_stats(model.user_cache)
        model.item_keys.fit_stats(model.item_cache)
        model.user_known = torch.zeros(ctx.n_users, dtype=torch.bool).index_fill_(
            0, torch.as_tensor(ctx.train["user"].unique()), True
        )
        model.item_known = torch.zeros(ctx.n_items, dtype=torch.bool).index_fill_(
            0, torch.as_tensor(ctx.train["item"].unique()), True
        )
    if model.history is not None:
        model.history.fit(ctx.train)
    if model.neighbours is not None:
        model.neighbours.fit(ctx.train)
    users_df, items_df = ctx.dataset.users, ctx.dataset.items
    model.meta = json_buffer(
        {
            "lm": tables.lm,
            "user_fields": tables.user_fields,
            "item_fields": tables.item_fields,
            "user_columns": [c for c in users_df.columns if c != "user_id"],
            "item_columns": [c for c in items_df.columns if c != "item_id"],
            "item_titles_column": "title" if "title" in items_df.columns else None,
        }
    )
    model.rendered = {"user": tables.user_rendered, "item": tables.item_rendered}
    if config.dynamic:
        from ..text.lora import apply_finetune

        encoder = tables.encoder
        for key, value in config.finetune_kwargs().items():
            setattr(encoder.config, key, value)
        apply_finetune(encoder.backbone, encoder.config)
        model.lm.attach(encoder)
        model.lm.set_trainable(config.strategy == "end2end" and not config.freeze_lm)
    return model.to(ctx.device)


SPEC = ModelSpec(
    name="enhanced",
    config_cls=EnhancedConfig,
    build=build,
    description="ID embeddings attend over per-field LM vectors; LoRA end-to-end, contrastive alignment, cold start",
    # one pass over every entity per step, so large batches are cheap (4 negatives each)
    train_defaults={"epochs": 40, "batch_size": 4096, "lr": 3e-3, "patience": 5, "num_neg": 4},
)
