"""Hashes that identify an encoder's output for the embedding cache (see `TextEncoder.fingerprint`)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..errors import UserError


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def tensor_hash(tensors: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().to("cpu").contiguous()
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


# Per-call state of a fast tokenizer: transformers sets and clears it on every call (MiniLM ships
# truncation and padding at 128, and its first call clears them), and the encoder passes its own.
_CALL_STATE = ("truncation", "padding")


def tokenizer_hash(tokenizer) -> str:
    """The tokenizer's vocabulary, merges and normalisation, not its per-call state: the same before
    and after its first call (`gpt2rec encode` warms the tokenizer up before it takes the key; training
    does not, and both must find the same cache entry)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        return sha(json.dumps({k: v for k, v in spec.items() if k not in _CALL_STATE}, sort_keys=True))
    return sha(json.dumps(sorted(tokenizer.get_vocab().items())))


def weights_stamp(model_id: str) -> str | None:
    """For a local folder: names, sizes and mtimes of its weight files (changes when it is rewritten)."""
    from .offline import resolve_lm

    try:
        path = Path(resolve_lm(model_id))
    except UserError:
        return None
    if not path.is_dir():
        return None
    stats = [
        (p.name, p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(path.iterdir())
        if p.suffix in (".safetensors", ".bin", ".json") and p.is_file()
    ]
    return sha(json.dumps(stats) + os.fspath(path))
