"""Losses as pure functions of positive and negative scores: `loss(pos (B,), neg (B,) or (B, N))`
-> scalar. `gpt2rec.train.loop.fit(loss_fn=...)` takes any of them (BPR by default); fix extra
arguments with `functools.partial`, e.g. `partial(sampled_softmax_loss, temperature=0.1)`."""

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


def sampled_softmax_loss(pos: torch.Tensor, neg: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Sampled softmax (InfoNCE with sampled negatives): each positive against its own N negatives.

    mean over rows of -log( e^(pos/t) / (e^(pos/t) + sum_n e^(neg_n/t)) ), i.e. the cross-entropy of
    the positive among the N + 1 candidates. pos: (B,); neg: (B, N), or (B,) for N = 1.
    With many negatives it approximates the full softmax over the catalogue (better for top-K
    ranking than BPR's pairwise comparisons). `temperature` > 0 sharpens (< 1) or flattens it.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if neg.dim() == pos.dim():
        neg = neg.unsqueeze(-1)  # (B, 1)
    logits = torch.cat([pos.unsqueeze(-1), neg], dim=-1) / temperature  # (B, 1 + N)
    return (torch.logsumexp(logits, dim=-1) - logits[:, 0]).mean()


def bce_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Pointwise log loss: positives labelled 1, negatives 0, averaged over all scores."""
    scores = torch.cat([pos.reshape(-1), neg.reshape(-1)])
    labels = torch.cat([torch.ones(pos.numel()), torch.zeros(neg.numel())]).to(scores)
    return F.binary_cross_entropy_with_logits(scores, labels)


# the losses by name (for configs and the command line)
LOSSES = {"bpr": bpr_loss, "softmax": sampled_softmax_loss, "bce": bce_loss}
