"""Losses as pure functions of positive and negative scores."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: mean of -log sigmoid(pos - neg) = softplus(neg - pos).

    pos: (B,); neg: (B,) or (B, N) (several negatives per positive, each compared to its positive).
    """
    if neg.dim() == pos.dim() + 1:
        pos = pos.unsqueeze(-1)  # (B, 1)
    return F.softplus(neg - pos).mean()


def bce_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Pointwise log loss: positives labelled 1, negatives 0, averaged over all scores."""
    scores = torch.cat([pos.reshape(-1), neg.reshape(-1)])
    labels = torch.cat([torch.ones(pos.numel()), torch.zeros(neg.numel())]).to(scores)
    return F.binary_cross_entropy_with_logits(scores, labels)
