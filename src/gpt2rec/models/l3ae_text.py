"""l3ae's reading of the metadata by the LM: item vectors (frozen, or read by an LM first tuned on
the training data's co-occurrences, `l3ae_tune`), the text matrix C they give, and the users'
profile field vectors. Memoised, because a validation grid refits many times on the same texts.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from . import l3ae_new, l3ae_tune
from .ease import ease_weights
from .text_features import encode_distinct, field_names, make_encoder, resolve_lm_name


def unit_rows(vectors: torch.Tensor, center: bool = False) -> torch.Tensor:
    """(I, D) float64 rows scaled to length 1, after subtracting the mean row when `center`."""
    f = vectors.double()
    if center:
        f = f - f.mean(0, keepdim=True)
    return torch.nn.functional.normalize(f, dim=1)


def semantic_matrix(vectors: torch.Tensor, text_reg: float, center: bool = False) -> torch.Tensor:
    """C (I, I): EASE over the item vectors (I, D), rows L2-normalised, so F F^T holds cosines."""
    f = unit_rows(vectors, center)  # (I, D)
    return ease_weights(f @ f.T, text_reg)  # (I, I)


def _digest(texts) -> str:
    return hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()


def _train_digest(train) -> str:
    pairs = np.ascontiguousarray(train[["user", "item"]].to_numpy(dtype=np.int64))
    return hashlib.sha256(pairs.tobytes()).hexdigest()


# Two tables at most (the frozen reading that sizes a model, and the tuned one it is fitted with),
# each with its C matrices and, when tuned, its LoRA adapters: bounded memory.
_VECTORS: dict[tuple, torch.Tensor] = {}
_ADAPTERS: dict[tuple, dict] = {}
_SEMANTIC: dict[tuple, torch.Tensor] = {}


def _remember(key: tuple, vectors: torch.Tensor, adapters: dict) -> None:
    for old in list(_VECTORS)[:-1]:
        _VECTORS.pop(old)
        _ADAPTERS.pop(old, None)
    _VECTORS[key] = vectors.cpu()
    _ADAPTERS[key] = adapters
    for memo in [m for m in _SEMANTIC if m[0] not in _VECTORS]:
        _SEMANTIC.pop(memo)


def item_vectors(config, dataset, device, train=None) -> tuple[torch.Tensor, tuple]:
    """(I, D) LM vectors of the item sentences (and their memo key): the sentence vector (`mean`,
    `last`; wrapped in `prompt` when set) or the mean of the per-field vectors (`fields`).

    With `config.tune_epochs > 0` and `train` given, the LM's top blocks are first tuned on the
    training items' co-occurrences (`l3ae_tune`; its adapters: `item_adapters(key)`); otherwise the
    frozen LM reads them, through the on-disk embedding cache."""
    lm = resolve_lm_name(config.lm)
    rendered = l3ae_new.item_sentences(config, dataset)
    pooling = config.item_pooling(lm)
    key = (lm, pooling, config.layer, config.max_length, config.lm_dtype, _digest(r.text for r in rendered))
    tuned = config.tune_epochs > 0 and train is not None
    if tuned:
        key += (config.tune_epochs, config.tune_lr, config.tune_blocks, _train_digest(train))
    if key not in _VECTORS:
        fields = field_names(rendered) if pooling == "fields" else None
        adapters: dict = {}
        if tuned:
            encoder = l3ae_tune.tunable_encoder(config, lm, device, pooling, config.tune_blocks)
            items, neighbours = l3ae_tune.cooccurrence_neighbours(train, dataset.n_users, dataset.n_items)
            l3ae_tune.tune_encoder(encoder, rendered, fields, items, neighbours, config.tune_epochs, config.tune_lr)
            adapters = l3ae_tune.adapter_tensors(encoder)
            vecs = l3ae_new.read_items(encoder, rendered, fields, use_cache=False)  # (I, D)
        else:
            encoder = make_encoder(config, lm, device, pooling)
            vecs = l3ae_new.read_items(encoder, rendered, fields, config.text_cache)  # (I, D)
        del encoder
        _remember(key, vecs, adapters)
    return _VECTORS[key].to(device), key


def item_adapters(key: tuple) -> dict:
    """The LoRA tensors the items of `item_vectors`' `key` were read with ({} for the frozen LM)."""
    return _ADAPTERS.get(key, {})


def text_matrix(config, dataset, device, train=None) -> torch.Tensor:
    """C (I, I) of `config`'s LM reading of the items, memoised per (vectors, text_reg)."""
    vectors, key = item_vectors(config, dataset, device, train)
    memo = (key, config.text_reg, config.center)
    if memo not in _SEMANTIC:
        _SEMANTIC[memo] = semantic_matrix(vectors, config.text_reg, config.center)
    return _SEMANTIC[memo].to(device)


_USERS: dict[tuple, torch.Tensor] = {}


def user_vectors(config, dataset, device) -> torch.Tensor:
    """(U, F, D) frozen-LM vectors of each field of the users' profile sentences (as the enhanced
    model's new users read them; memoised, read through the on-disk embedding cache)."""
    from ..text.templates import user_texts

    lm = resolve_lm_name(config.lm)
    rendered = user_texts(dataset, config.template)
    key = (lm, config.layer, config.max_length, config.lm_dtype, _digest(r.text for r in rendered))
    if key not in _USERS:
        encoder = make_encoder(config, lm, device, "fields")
        table, rows = encode_distinct(encoder, rendered, field_names(rendered), config.text_cache, False)
        vecs = table[rows].float()  # (K, F, D) -> (U, F, D): profiles repeat, each distinct one read once
        vecs = vecs if vecs.dim() == 3 else vecs.unsqueeze(1)  # (U, D) -> (U, 1, D)
        del encoder
        _USERS.clear()
        _USERS[key] = vecs.cpu()
    return _USERS[key].to(device)
