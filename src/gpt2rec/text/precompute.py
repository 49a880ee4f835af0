"""Precompute every user and item embedding of a dataset (through the cache) and time it.

`encode_dataset(dataset, encoder, out_dir)` writes `users.safetensors`, `items.safetensors` and
`encode.json`:

- `texts`: users + items encoded; `unique_texts`: distinct inputs actually run (duplicates share);
- `seconds`, `texts_per_s`: the whole job (rendering, tokenization, padding, forward, pooling, cache
  read/write) — the user's view;
- `limit_seconds`, `limit_texts_per_s`: only the bare model forward (`backbone(ids, mask)`, no grad)
  on the same padded token batches, timed separately. The timing is INTERLEAVED: hooks on the
  backbone run and time the bare forward on each job batch's very inputs (alternately just before
  and just after the job's own forward), and that time is subtracted from the job's clock. Both therefore see the same load on a shared machine
  (timing the two one after the other on 2 busy cores gave ratios off by 40%).
  `measure_limit=False` skips it (half the compute);
- `ratio_to_limit` = limit_seconds / seconds (1.0 = no overhead at all). With a cache hit nothing was
  computed: `cached` is true and the ratio is null (use `refresh=True` to measure).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .. import distributed as dist
from ..utils.io import save_tensors, write_json
from .cache import EmbeddingCache
from .distinct import field_names, texts_to_encode
from .encoder import TextEncoder
from .templates import TemplateConfig, item_texts, texts_and_spans, user_texts


def encode_dataset(
    dataset,
    encoder: TextEncoder,
    out_dir: str | Path | None = None,
    template: TemplateConfig | None = None,
    cache: EmbeddingCache | None = None,
    refresh: bool = False,
    measure_limit: bool = True,
    progress: bool = True,
) -> dict:
    """Encode all users and items; returns (and writes to `out_dir/encode.json`) the figures above."""
    template = template or TemplateConfig()
    if template.history:
        template = TemplateConfig(**{**template.__dict__, "history": 0})  # no split here: no history
    cache = cache if cache is not None else EmbeddingCache()
    _warm_up(encoder)
    hits_before = cache.hits
    # the bare-forward limit is timed in one process only (a rank sees only its share of batches)
    limit = _InterleavedLimit(encoder) if measure_limit and dist.world_size() == 1 else None
    start = time.perf_counter()
    try:
        rendered = {"users": user_texts(dataset, template), "items": item_texts(dataset, template)}
        vectors = {}
        by_field = encoder.config.pooling == "fields"
        for name, rows in rendered.items():
            sent, distinct, entity = texts_to_encode(rows)  # the list the models send: their cache entry
            index = distinct[entity]  # (N,) each entity's row among the vectors of `sent`
            texts, spans = texts_and_spans(sent)
            value = cache.encode(
                encoder,
                texts,
                spans if by_field else None,
                progress=progress,
                refresh=refresh,
                fields=field_names(rows) if by_field else None,
                distributed=True,  # under torchrun the ranks share the work; else one process
            )
            vectors[name] = tuple(v[index] for v in value) if isinstance(value, tuple) else value[index]
    finally:
        if limit is not None:
            limit.remove()
    seconds = time.perf_counter() - start - (limit.seconds if limit else 0.0)
    cached = cache.hits > hits_before
    n_texts = sum(len(r) for r in rendered.values())
    prepared = [encoder.prepare(*texts_and_spans(rows)) for rows in rendered.values()]
    report = {
        "dataset": dataset.name,
        "lm": encoder.config.model,
        "model_id": encoder.model_id,
        "pooling": encoder.config.pooling,
        "layer": encoder.config.layer,
        "hidden_size": encoder.hidden_size,
        "device": str(encoder.device),
        "torch_threads": torch.get_num_threads(),
        "batch_size": encoder.config.batch_size,
        "processes": dist.world_size(),
        "users": len(rendered["users"]),
        "items": len(rendered["items"]),
        "texts": n_texts,
        "unique_texts": sum(p.n_unique for p in prepared),
        "tokens": sum(len(ids) for p in prepared for ids in p.input_ids),
        "cached": cached,
        "seconds": round(seconds, 4),
        "texts_per_s": round(n_texts / seconds, 2),
        "limit_seconds": None,
        "limit_texts_per_s": None,
        "ratio_to_limit": None,
    }
    if limit is not None and not cached:
        report.update(
            {
                "limit_seconds": round(limit.seconds, 4),
                "limit_texts_per_s": round(n_texts / limit.seconds, 2),
                "ratio_to_limit": round(limit.seconds / seconds, 3),
                "limit_batches": limit.batches,
            }
        )
    if out_dir is not None and dist.is_main():  # under torchrun rank 0 writes the folder
        out = Path(out_dir)
        for name, value in vectors.items():
            tensors = {"states": value[0], "mask": value[1]} if isinstance(value, tuple) else {"embeddings": value}
            save_tensors(out / f"{name}.safetensors", tensors)
        write_json(out / "encode.json", report)
    return report


class _InterleavedLimit:
    """Hooks on the backbone that time a bare forward (no grad) of each job batch's very inputs,
    alternately just before and just after the job's own forward (so neither side always gets the
    warm caches). `seconds` is their total; `batches` how many were timed."""

    def __init__(self, encoder: TextEncoder):
        self.device = encoder.device
        self.seconds = 0.0
        self.batches = 0
        self._calls = 0
        self._inside = False
        self._handles = [
            encoder.backbone.register_forward_pre_hook(self._before, with_kwargs=True),
            encoder.backbone.register_forward_hook(self._after, with_kwargs=True),
        ]

    def _before(self, module, args, kwargs):
        if not self._inside:
            self._calls += 1
            if self._calls % 2:
                self._time(module, args, kwargs)

    def _after(self, module, args, kwargs, output):
        if not self._inside and not self._calls % 2:
            self._time(module, args, kwargs)

    def _time(self, module, args, kwargs) -> None:
        self._inside = True  # the timed call itself passes through both hooks
        try:
            with torch.no_grad():
                start = time.perf_counter()
                module(*args, **kwargs)
                _sync(self.device)
                self.seconds += time.perf_counter() - start
                self.batches += 1
        finally:
            self._inside = False

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _warm_up(encoder: TextEncoder) -> None:
    """One small forward so one-off start-up costs (allocations, kernels) hit neither timing."""
    ids, mask = encoder.pad([encoder.tokenizer("warm up")["input_ids"]])
    with torch.no_grad():
        encoder.backbone(input_ids=ids, attention_mask=mask)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
