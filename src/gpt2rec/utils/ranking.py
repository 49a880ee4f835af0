"""The top-k every ranking in gpt2rec goes through: ties go to the lower index.

`torch.topk` leaves the order of equal scores unspecified (on CPU, 10 zeros came back as 8, 6, 7), so
a model that ties items (popularity, a user with no signal) would be ranked, and its metrics
computed, by an accident of the kernel. Here equal scores rank by index, on every device.
"""

from __future__ import annotations

import torch


def ranked_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values (..., k), indices (..., k)) of the k best of `scores` (..., N) along the last dimension,
    best first, equal scores by lower index. k is clipped to N."""
    n = scores.shape[-1]
    k = min(int(k), n)
    top = torch.topk(scores, min(k + 1, n), dim=-1)  # one more: a tie at the boundary shows in it
    values, indices = top.values, top.indices
    if k == 0 or scores.numel() == 0:
        return values[..., :k], indices[..., :k]
    # only rows with equal neighbours among these k + 1 can be out of order: the rest keep topk's
    tied = values[..., :-1] == values[..., 1:]  # (..., k)
    if not bool(tied.any()):  # the common case: one check, no copies
        return values[..., :k], indices[..., :k]
    shape, width = (*scores.shape[:-1], k), values.shape[-1]
    flat = scores.reshape(-1, n)  # (R, N)
    rows = tied.reshape(len(flat), -1).any(-1).nonzero().squeeze(1)  # (T,)
    values = values.reshape(-1, width)[:, :k].clone()  # (R, k)
    indices = indices.reshape(-1, width)[:, :k].clone()  # (R, k)
    values[rows], indices[rows] = _ties_by_index(flat[rows], values[rows], k, indices[rows])
    return values.reshape(shape), indices.reshape(shape)


def _ties_by_index(scores: torch.Tensor, values: torch.Tensor, k: int, fallback: torch.Tensor):
    """Rows (T, N) whose top-k `values` (T, k) hold ties: the top k again, equal scores by index."""
    last = values[:, -1:]  # (T, 1) the k-th best score
    above, tied = scores > last, scores == last  # (T, N)
    take = above | (tied & (tied.cumsum(-1) <= k - above.sum(-1, keepdim=True)))  # (T, N) k per row
    if not bool((take.sum(-1) == k).all()):  # NaN at the boundary: no order to define, keep topk's
        return values, fallback
    idx = take.nonzero()[:, 1].view(len(scores), k)  # (T, k) ascending index
    picked = scores.gather(1, idx)  # (T, k)
    order = torch.sort(picked, dim=1, descending=True, stable=True).indices  # ties keep index order
    return picked.gather(1, order), idx.gather(1, order)
