"""Explicit model registry: name -> spec. Each loader imports its module only when asked, so
`gpt2rec train --model bpr` never imports transformers."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UserError
from .base import ModelSpec


def _popularity() -> ModelSpec:
    from .popularity import SPEC

    return SPEC


def _itemknn() -> ModelSpec:
    from .itemknn import SPEC

    return SPEC


def _ease() -> ModelSpec:
    from .ease import SPEC

    return SPEC


def _bpr() -> ModelSpec:
    from .bpr import SPEC

    return SPEC


def _neumf() -> ModelSpec:
    from .neumf import SPEC

    return SPEC


def _genre_content() -> ModelSpec:
    from .genre_content import SPEC

    return SPEC


def _l3ae() -> ModelSpec:
    from .l3ae import SPEC

    return SPEC


def _l3ae_mf() -> ModelSpec:
    from .l3ae_mf import SPEC

    return SPEC


def _basic() -> ModelSpec:
    from .basic import SPEC

    return SPEC


def _enhanced() -> ModelSpec:
    from .enhanced_build import SPEC

    return SPEC


_LOADERS: dict[str, Callable[[], ModelSpec]] = {
    "popularity": _popularity,
    "itemknn": _itemknn,
    "ease": _ease,
    "bpr": _bpr,
    "neumf": _neumf,
    "genre_content": _genre_content,
    "l3ae": _l3ae,
    "l3ae_mf": _l3ae_mf,
    "basic": _basic,
    "enhanced": _enhanced,
}


def model_names() -> list[str]:
    return list(_LOADERS)


def get_spec(name: str) -> ModelSpec:
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(_LOADERS)}") from None
    return loader()
