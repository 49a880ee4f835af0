"""The IDs a model's scoring methods take: internal indices, checked at the door.

A negative index would count from the end of a dense matrix (EASE, l3ae) and a float one would be
truncated, so both used to score the wrong entity without a word; out-of-range ones failed deep in
torch with a message that differed by model. `checked_ids` wraps `score_users(users)` and
`score_pairs(users, items)` of every model so they all say the same thing.
"""

from __future__ import annotations

import functools

import torch


def index_tensor(ids, n: int, kind: str, check_range: bool = True) -> torch.Tensor:
    """`ids` (a tensor, list or array of shape (B,)) as a long tensor of indices in [0, n), or ValueError."""
    if not isinstance(ids, torch.Tensor):
        ids = torch.as_tensor(ids)
    if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
        raise ValueError(f"{kind} IDs must be integer indices 0..{n - 1}, got dtype {ids.dtype}; "
                         f"map raw IDs with run.{kind}_index(raw_id)")  # fmt: skip
    if ids.ndim != 1:
        raise ValueError(f"{kind} IDs must be a 1-D tensor (B,), got shape {tuple(ids.shape)}")
    if check_range and len(ids):
        if len(ids) <= 64:  # few IDs (one user's request): Python's min / max, no torch kernels
            listed = ids.tolist()
            low, high = min(listed), max(listed)
        else:
            low, high = map(int, ids.aminmax())
        if low < 0 or high >= n:
            bad = low if low < 0 else high
            raise ValueError(f"{kind} index {bad} is outside 0..{n - 1} (this model has {n} {kind}s); "
                             f"map raw IDs with run.{kind}_index(raw_id)")  # fmt: skip
    return ids.long()


def checked_ids(method):
    """Decorate `score_users(self, users)` or `score_pairs(self, users, items)`: IDs become long
    tensors of in-range indices, pairs of one shape. In training mode the range is not checked
    (the loop's own indices; on a GPU the check would wait for the device every step)."""

    @functools.wraps(method)
    def run(self, users, *items):
        full = not getattr(self, "training", False)
        users = index_tensor(users, self.n_users, "user", full)
        items = tuple(index_tensor(i, self.n_items, "item", full) for i in items)
        if items and users.shape != items[0].shape:
            raise ValueError(f"score_pairs takes users and items of one shape (B,), "
                             f"got {tuple(users.shape)} and {tuple(items[0].shape)}")  # fmt: skip
        return method(self, users, *items)

    return run
