"""On-disk cache of text embeddings: `home_dir()/embeddings/<model>/<digest>.safetensors`.

    cache = EmbeddingCache()
    vecs = cache.encode(encoder, texts, spans, template=cfg.signature())

One entry per (encoder fingerprint, template, ordered text list). The key is built from the model ID,
its revision/config/tokenizer hashes, layer, pooling, max_length, dtype, trained adapter weights (if
any), the template signature and a hash of the texts (and spans); its SHA-256 names the file.

Safety:
- writes are atomic (temporary file + os.replace), so readers never see half a file;
- a per-entry file lock (fcntl) makes concurrent processes compute an entry once (the second waits,
  then reads it);
- each file stores its key, shapes and a SHA-256 of its tensors in the safetensors metadata; an
  unreadable file, another key, a wrong shape or a bad checksum is reported with a warning, deleted
  and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from ..utils.io import file_lock

FORMAT = "gpt2rec-embeddings-v1"


class EmbeddingCache:
    def __init__(self, root: str | Path | None = None):
        if root is None:
            from ..data.home import home_dir

            root = home_dir() / "embeddings"
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    # ---- keys ----------------------------------------------------------------------------------
    @staticmethod
    def key(fingerprint: dict, template: str, texts: Sequence[str], spans=None) -> dict:
        h = hashlib.sha256()
        for t in texts:
            h.update(t.encode("utf-8"))
            h.update(b"\x00")
        if spans is not None:
            h.update(json.dumps([list(s.items()) for s in spans]).encode())  # order = field order
        return {
            **fingerprint,
            "template": hashlib.sha256(template.encode("utf-8")).hexdigest()[:16],
            "n_texts": len(texts),
            "texts": h.hexdigest(),
        }

    def path(self, key: dict) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(key.get("model", "model")).strip("/"))[-60:] or "model"
        return self.root / slug / f"{digest[:32]}.safetensors"

    # ---- read / write --------------------------------------------------------------------------
    def load(self, key: dict) -> dict[str, torch.Tensor] | None:
        """The entry's tensors, or None when absent; a damaged or mismatched entry is removed (warning)."""
        path = self.path(key)
        if not path.exists():
            return None
        problem = None
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # unreadable / truncated file (safetensors has its own error types)
            problem = f"unreadable ({type(exc).__name__}: {exc})"
        else:
            problem = _check(meta, tensors, key)
        if problem is None:
            return tensors
        warnings.warn(f"embedding cache entry {path} is {problem}; rebuilding it", stacklevel=2)
        path.unlink(missing_ok=True)
        return None

    def save(self, key: dict, tensors: dict[str, torch.Tensor]) -> Path:
        from safetensors.torch import save_file

        from ..utils.io import atomic_path

        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        meta = {
            "format": FORMAT,
            "key": json.dumps(key, sort_keys=True, default=str),
            "shapes": json.dumps({k: list(v.shape) for k, v in tensors.items()}, sort_keys=True),
            "sha256": _digest(tensors),
        }
        path = self.path(key)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path

    # ---- the one call most code needs ------------------------------------------------------------
    def encode(
        self,
        encoder,
        texts: Sequence[str],
        spans=None,
        template: str = "",
        progress: bool | None = True,
        refresh: bool = False,
        fields: Sequence[str] | None = None,
        distributed: bool = False,
    ):
        """`encoder.encode(texts, spans, fields=fields)` through the cache (same return type).

        `template`: a string naming how the texts were made (e.g. `TemplateConfig.signature()`); the
        texts themselves are hashed too. `refresh=True` recomputes and overwrites the entry.
        `distributed=True` under torchrun (every rank calls it): the ranks share the encoding and rank
        0 writes the one entry a single process would write (see `TextEncoder.encode`)."""
        texts = list(texts)
        by_field = encoder.config.pooling == "fields"
        key = self.key(encoder.fingerprint(), template, texts, spans if by_field else None)
        if by_field:
            fields = list(fields) if fields is not None else list(spans[0]) if spans else []
            key["fields"] = fields
        from .. import distributed as dist

        if distributed and dist.world_size() > 1:
            return self._encode_distributed(encoder, key, texts, spans, progress, refresh, fields)
        if not refresh and (found := self.load(key)) is not None:
            self.hits += 1
            return _unpack(found, encoder, key)
        path = self.path(key)
        with file_lock(path.with_name(path.name + ".lock")):
            if not refresh and (found := self.load(key)) is not None:  # built by another process meanwhile
                self.hits += 1
                return _unpack(found, encoder, key)
            self.misses += 1
            value = encoder.encode(texts, spans, progress=progress, fields=fields)
            tensors = {"states": value[0], "mask": value[1]} if isinstance(value, tuple) else {"embeddings": value}
            self.save(key, tensors)
        return value

    def _encode_distributed(self, encoder, key, texts, spans, progress, refresh, fields):
        """Every rank reads the entry; if any lacks it, all encode their share and rank 0 writes it."""
        from .. import distributed as dist

        found = None if refresh else self.load(key)
        if all(dist.all_gather_object(found is not None)):
            self.hits += 1
            return _unpack(found, encoder, key)
        self.misses += 1
        shown = progress if dist.is_main() else False  # (None and False is None: a bar on every rank)
        value = encoder.encode(texts, spans, progress=shown, fields=fields, distributed=True)
        if dist.is_main():
            tensors = {"states": value[0], "mask": value[1]} if isinstance(value, tuple) else {"embeddings": value}
            path = self.path(key)
            with file_lock(path.with_name(path.name + ".lock")):
                self.save(key, tensors)
        dist.barrier()  # the entry exists before any rank moves on
        return value


def cached_encode(
    encoder,
    texts: Sequence[str],
    spans=None,
    fields: Sequence[str] | None = None,
    template: str = "",
    cache: EmbeddingCache | None = None,
    progress: bool | None = True,
    refresh: bool = False,
):
    """`encoder.encode(...)` through `cache` (default: `EmbeddingCache()` under `home_dir()`)."""
    cache = cache or EmbeddingCache()
    return cache.encode(encoder, texts, spans, template=template, progress=progress, refresh=refresh, fields=fields)


def _unpack(tensors: dict, encoder, key: dict):
    if encoder.config.pooling == "fields":
        encoder.fields = list(key.get("fields", encoder.fields))
    if "states" in tensors:
        return tensors["states"], tensors["mask"]
    return tensors["embeddings"]


def _check(meta: dict, tensors: dict, key: dict) -> str | None:
    if meta.get("format") != FORMAT:
        return f"not a gpt2rec embedding file (format {meta.get('format')!r})"
    if meta.get("key") != json.dumps(key, sort_keys=True, default=str):
        return "stored under another key (hash collision or stale file)"
    try:
        shapes = json.loads(meta.get("shapes", "{}"))
    except ValueError:
        return "missing its shape metadata"
    if shapes != {k: list(v.shape) for k, v in tensors.items()}:
        return f"of the wrong shape (metadata {shapes})"
    n = key.get("n_texts")
    first = tensors.get("embeddings", tensors.get("states"))
    if first is None or first.shape[0] != n:
        return f"of the wrong size (expected {n} rows)"
    if meta.get("sha256") != _digest(tensors):
        return "damaged (checksum mismatch)"
    return None


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(k.encode())
        h.update(tensors[k].contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
