"""Requests in plain words: the run's own LM encodes the request, items are ranked by text similarity
to their cached field vectors (the enhanced model's; l3ae's item vectors), and blended with a user's
own scores when a user is given.

    rows = query_rows(run, "a funny animated film for kids", k=10)              # text only
    rows = query_rows(run, "something scary", k=10, raw_user=196, blend=0.5)   # half text, half user

Similarity of a request to an item: the mean over the item's fields (title, genres) of the cosine
between the request's vector and the field's vector, so a request can match a title or a genre list.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import UserError
from .run import Run, top_k
from .utils.config import check_k

MAX_QUERY_CHARS = 500


def _enhanced(model) -> bool:
    return hasattr(getattr(model, "text", None), "ensure_lm")  # the enhanced model's TextSource


def require_text_model(model) -> None:
    reads = hasattr(model, "encode_text")  # the basic model keeps item vectors but cannot read a request
    if _enhanced(model) or (reads and getattr(model, "item_text", None) is not None):
        return
    if reads:  # l3ae without its item vectors
        raise UserError(
            "this l3ae run keeps no item text vectors (text_weight=0, or saved before plain-words "
            "requests existed); retrain it with text_weight > 0"
        )
    raise UserError(
        f"requests in plain words need a model that reads them with its LM (this run is "
        f"{type(model).__name__}); train with --model l3ae or --model enhanced"
    )


def require_item_text(items) -> None:
    """Refuse a request in words on a catalogue known by its IDs alone: the LM then read "Item: B0026."
    for every item, and the ranking it gave was noise that looked like an answer."""
    from .text.templates import describes_items

    if not describes_items(items):
        raise UserError(
            "this run's items have nothing but their IDs (no titles, genres or other columns), so a request in "
            "words has nothing to match; retrain with --items FILE holding titles, genres or descriptions"
        )


def item_text_vectors(model) -> torch.Tensor:
    """(I, F, D) the LM vectors a request is matched against: the enhanced model's per-field
    vectors, or l3ae's one vector per item."""
    require_text_model(model)
    return model.text.full("item") if _enhanced(model) else model.item_text.unsqueeze(1)


def check_query(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise UserError('a query must be a non-empty text, e.g. "a funny animated film for kids"')
    if len(text) > MAX_QUERY_CHARS:
        raise UserError(f"a query has at most {MAX_QUERY_CHARS} characters; got {len(text)}")
    return " ".join(text.split())


def encode_query(model, text: str) -> torch.Tensor:
    """The request's LM vector (D,), pooled like one field of an item sentence."""
    require_text_model(model)
    text = check_query(text)
    if not _enhanced(model):
        return model.encode_text(text).float().cpu()  # (D,)
    runtime = model.text.ensure_lm()
    was_training = runtime.training
    runtime.eval()
    try:
        with torch.no_grad():
            out = runtime.encode([text], [{"query": (0, len(text))}], progress=False, fields=["query"])  # (1, 1, D)
    finally:
        runtime.train(was_training)
    return out[0, 0].float().cpu()  # (D,)


def text_match(query: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
    """Mean over fields of cosine(query (D,), fields (N, F, D)) -> (N,)."""
    q = F.normalize(query.float(), dim=-1)  # (D,)
    f = F.normalize(fields.float().cpu(), dim=-1)  # (N, F, D)
    return (f @ q).mean(-1)  # (N,)


def standardise(x: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std over the finite entries (so scores of different scales can be mixed)."""
    finite = torch.isfinite(x)
    vals = x[finite]
    if vals.numel() < 2:
        return torch.where(finite, torch.zeros_like(x), x)
    return (x - vals.mean()) / vals.std().clamp_min(1e-8)


def mix(text: torch.Tensor, user: torch.Tensor, blend: float) -> torch.Tensor:
    """(1 - blend) * standardised text scores + blend * standardised user scores."""
    if not 0.0 <= float(blend) <= 1.0:
        raise UserError(f"blend must lie between 0 (text only) and 1 (user only); got {blend}")
    return (1 - blend) * standardise(text) + blend * standardise(user)


def query_rows(run: Run, text: str, k: int = 10, raw_user=None, blend: float = 0.5) -> list[dict]:
    """Top-k catalogue rows for a plain-words request; with `raw_user`, blended with the user's own
    scores and never one of the user's own items (`Run.owned`). Each row carries its `text_score`."""
    k = check_k(k)
    require_item_text(run.dataset.items)
    sim = text_match(encode_query(run.model, text), item_text_vectors(run.model))  # (I,)
    scores, seen = sim, ()
    if raw_user is not None:
        user = run.user_index(raw_user)
        scores, seen = mix(sim, run.score_users([user])[0], blend), run.owned(user)
    items, values = top_k(scores, k, seen)
    return [{**run.row(i, v), "text_score": float(sim[i])} for i, v in zip(items, values)]
