"""Where the enhanced recommender's text vectors come from: `TextSource`.

It owns
- the cached per-field LM vectors of the DISTINCT user and item texts (buffers `user_cache`
  (Ku, Fu, D), `item_cache` (Ki, Fi, D)) and each entity's row among them (`user_rows` (U,),
  `item_rows` (I,)), so checkpoints hold them; sentences repeat (a million users of a few hundred
  profiles), and one row per entity would cost gigabytes;
- what they were made from (`TextInfo`: LM name, field names, metadata columns; saved in the
  checkpoint metadata, so a load builds the buffers at the saved shape);
- the LM (`LMHolder`, rebuilt from its name on first need) and dynamic encoding with gradients:
  per training step at most `dynamic_sample` users and as many items go through the LM, the rest
  read the cache, which those passes keep current;
- the refresh after the LM changed: the LM's trainable tensors' version counters are compared
  with those the caches were computed with, so an optimizer step, a `load_state_dict` or a manual
  in-place change is noticed before the next cached read (`refresh_if_stale`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .enhanced_lm import LMHolder, StepState, sample_draw
from .text_features import make_encoder


@dataclass
class TextInfo:
    """What the text vectors were made from (JSON in the checkpoint metadata)."""

    lm: str
    user_fields: list[str]
    item_fields: list[str]
    text_dim: int
    user_columns: list[str]
    item_columns: list[str]
    item_titles_column: str | None = None
    user_texts: int | None = None  # distinct user texts (rows of user_cache); None: one per user
    item_texts: int | None = None
    text_ages: bool = False  # the users table wrote ages as text ("18-24"): a profile may too

    def to_dict(self) -> dict:
        return asdict(self)


class TextSource(nn.Module):
    def __init__(self, settings, n_users: int, n_items: int, info: TextInfo):
        """`settings`: the model's EnhancedConfig (LM, template, encoding and fine-tuning fields)."""
        super().__init__()
        self.settings = settings
        self.info = info
        self.sizes = {"user": n_users, "item": n_items}
        d, fu, fi = info.text_dim, max(1, len(info.user_fields)), max(1, len(info.item_fields))
        ku, ki = info.user_texts or n_users, info.item_texts or n_items
        self.register_buffer("user_cache", torch.zeros(ku, fu, d))  # (Ku, Fu, D)
        self.register_buffer("item_cache", torch.zeros(ki, fi, d))  # (Ki, Fi, D)
        self.register_buffer("user_rows", torch.arange(n_users) % max(ku, 1))  # (U,) row of each user
        self.register_buffer("item_rows", torch.arange(n_items) % max(ki, 1))  # (I,)
        self.lm = LMHolder()
        self.rendered: dict[str, list] = {}  # kind -> Rendered per index (after a build with data)
        self.encoder_calls = 0  # LM passes made with gradients (dynamic path)
        self._lm_version: tuple | None = None  # LM tensors' versions the caches were computed with
        self._fast = None

    def fields(self, kind: str) -> list[str]:
        return self.info.user_fields if kind == "user" else self.info.item_fields

    def cache(self, kind: str) -> torch.Tensor:
        """The distinct texts' vectors (K, F, D)."""
        return self.user_cache if kind == "user" else self.item_cache

    def rows(self, kind: str) -> torch.Tensor:
        """(N,) each entity's row of `cache(kind)`."""
        return self.user_rows if kind == "user" else self.item_rows

    def full(self, kind: str) -> torch.Tensor:
        """Every entity's field vectors (N, F, D), materialised (small catalogs, explanations)."""
        return self.cache(kind)[self.rows(kind)]

    def set_tables(self, kind: str, table: torch.Tensor, rows: torch.Tensor) -> None:
        """Adopt distinct vectors `table` (K, F, D) and each entity's row `rows` (N,)."""
        setattr(self, f"{kind}_cache", table)
        setattr(self, f"{kind}_rows", rows.to(table.device, torch.long))

    # ---- reading ----------------------------------------------------------------------------------
    def read(self, kind: str, idx: torch.Tensor, step: StepState | None = None) -> torch.Tensor:
        """LM field vectors (B, F, D) of `idx`: cached, or (with a training `step`) encoded now with
        gradients for this step's `dynamic_sample` draw and read from the cache for the rest."""
        cache, rows = self.cache(kind), self.rows(kind)[idx]  # rows (B,)
        if step is None:
            return cache[rows]
        encode = lambda new: self._encode_dynamic(kind, new)  # noqa: E731
        k = self.settings.dynamic_sample
        if k <= 0:
            return step.memo(kind, idx, encode)
        fresh = step.mask(f"sample-{kind}", self.sizes[kind], idx.device, sample_draw(k))[idx]  # (B,)
        out = cache[rows]  # (B, F, D) no gradients
        if fresh.any():
            out[fresh] = step.memo(kind, idx[fresh], encode)  # gradients flow through these rows
        return out

    def _encode_dynamic(self, kind: str, idx: torch.Tensor) -> torch.Tensor:
        if kind not in self.rendered:
            raise ValueError(
                "dynamic text encoding needs the dataset: build the model with ModelContext(dataset=..., train=...)"
            )
        runtime = self.ensure_lm()
        rendered = [self.rendered[kind][int(i)] for i in idx.tolist()]
        # not `or`: a FastEncoder with nothing cached yet has len 0, i.e. is falsy
        encode = self.fast_encoder if self.fast_encoder is not None else runtime.encode_train
        out = encode([r.text for r in rendered], [r.spans for r in rendered], fields=self.fields(kind))
        self.encoder_calls += 1
        cache = self.cache(kind)
        out = out.to(cache.device, cache.dtype)  # (N, F, D)
        cache[self.rows(kind)[idx]] = out.detach()  # unsampled entities of later steps read it
        return out

    @torch.no_grad()
    def encode_new(self, kind: str, rendered: list) -> torch.Tensor:
        """Field vectors (N, F, D) of new entities' rendered texts, with the current LM (eval mode)."""
        runtime = self.ensure_lm()
        was_training = runtime.training
        runtime.eval()
        try:
            texts, spans = [r.text for r in rendered], [r.spans for r in rendered]
            out = runtime.encode(texts, spans, progress=False, fields=self.fields(kind))
        finally:
            runtime.train(was_training)
        return out.to(self.user_cache.device, self.user_cache.dtype)

    # ---- the language model ----------------------------------------------------------------------
    def attach_lm(self, runtime, trainable: bool) -> None:
        """Adopt an LM whose adapters belong to this model (dynamic strategies: at every build)."""
        self.lm.attach(runtime)
        self.lm.set_trainable(trainable)
        self._lm_version = self.lm.version()  # the caches were made by this LM as it is now

    def ensure_lm(self):
        """The LM encoder (a frozen one built from `info.lm` on first need when none is attached)."""
        if not self.lm.attached:
            encoder = make_encoder(self.settings, self.info.lm, self.user_cache.device, "fields", finetune="frozen")
            self.lm.attach(encoder)
            self.lm.train(self.training)
            self._lm_version = self.lm.version()
        return self.lm.runtime

    @property
    def fast_encoder(self):
        """`text.fast.FastEncoder` over the LM when fast mode applies (tuned top blocks, final layer)."""
        runtime = self.lm.runtime
        cfg = None if runtime is None else runtime.config
        if cfg is None or not self.settings.fast or cfg.top_n_blocks is None or cfg.layer != -1:
            return None
        if self._fast is None or self._fast.encoder is not runtime:
            from ..text.fast import FastEncoder

            object.__setattr__(self, "_fast", FastEncoder(runtime))  # not a submodule
        return self._fast

    def lm_changed(self) -> bool:
        """True when the LM's trainable tensors changed since the caches were computed."""
        return self.lm.attached and self.lm.version() != self._lm_version

    @torch.no_grad()
    def refresh(self) -> None:
        """Re-encode every user and item with the current LM (no gradients) into the cache buffers."""
        runtime = self.ensure_lm()
        fast, size = self.fast_encoder, self.settings.encode_batch_size
        was_training = runtime.training
        runtime.eval()
        try:
            for kind, buf in (("user", "user_cache"), ("item", "item_cache")):
                first = self._first_entities(kind)  # one entity per distinct text
                texts = [self.rendered[kind][i].text for i in first]
                spans = [self.rendered[kind][i].spans for i in first]
                fields = self.fields(kind)
                if fast is None:
                    out = runtime.encode(texts, spans, progress=False, fields=fields)
                else:  # only the tuned top blocks run; lower states are reused
                    chunks = range(0, len(texts), size)
                    out = torch.cat([fast(texts[s : s + size], spans[s : s + size], fields) for s in chunks])
                setattr(self, buf, out.to(getattr(self, buf)))
        finally:
            runtime.train(was_training)
        self._lm_version = self.lm.version()

    def _first_entities(self, kind: str) -> list[int]:
        """The first entity of each row of `cache(kind)`, in row order."""
        rows = self.rows(kind).cpu()
        first = torch.full((len(self.cache(kind)),), len(rows), dtype=torch.long)
        first.scatter_reduce_(0, rows, torch.arange(len(rows)), reduce="amin")
        return first.tolist()

    def refresh_if_stale(self) -> None:
        """Refresh the caches when the LM changed (needs the rendered texts: a model loaded without
        its training data keeps the caches saved with its adapters)."""
        if self.rendered and self.lm_changed():
            self.refresh()
