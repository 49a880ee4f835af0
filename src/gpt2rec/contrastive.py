"""Contrastive alignment of two views of the same entities (a pure function, no model state).

`info_nce(a, b, temperature)` treats row i of `a` and row i of `b` as a positive pair and every
other row of the batch as a negative (in-batch InfoNCE, as in CLIP). The enhanced recommender uses
it to pull each user's/item's ID embedding towards its text representation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(
    a: torch.Tensor,
    b: torch.Tensor,
    temperature: float = 0.1,
    symmetric: bool = True,
    normalize: bool = True,
) -> torch.Tensor:
    """In-batch InfoNCE between two aligned views: a (B, D), b (B, D) -> scalar loss.

    logits[i, j] = cos(a_i, b_j) / temperature (plain dot products when normalize=False);
    loss = mean_i -log softmax_j(logits[i])[i], averaged with the b->a direction when symmetric.
    The loss is >= 0 (a cross-entropy); with B = 1 there is no negative and it is exactly 0.
    Rows must be distinct entities: duplicates would act as false negatives (dedupe first).
    """
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(
            f"info_nce needs two (B, D) tensors of the same shape; got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"info_nce temperature must be > 0; got {temperature}")
    if normalize:
        a = F.normalize(a, dim=-1)  # (B, D)
        b = F.normalize(b, dim=-1)  # (B, D)
    logits = a @ b.T / temperature  # (B, B)
    target = torch.arange(a.shape[0], device=a.device)  # (B,)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, target))
    return loss


def unique_rows(ids: torch.Tensor) -> torch.Tensor:
    """Positions of the first occurrence of each distinct id, in order of first appearance: (B,) -> (U,)."""
    uniq, inverse = torch.unique(ids, return_inverse=True)  # (U,), (B,)
    first = torch.full((uniq.shape[0],), ids.shape[0], dtype=torch.long, device=ids.device)
    pos = torch.arange(ids.shape[0], device=ids.device)
    first = first.scatter_reduce(0, inverse, pos, reduce="amin")  # (U,)
    return first.sort().values
