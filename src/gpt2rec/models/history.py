"""Each user's training items, kept inside a model as CSR buffers so a checkpoint restores them.

Closed-form models (ItemKNN, EASE) score a user from their history; on checkpoint load the training
data is not available, so the history is part of the state_dict. The number of stored interactions
is only known after fitting: the owning model records it (`nnz`) in its checkpoint metadata and is
rebuilt with `UserHistory(n_users, n_items, nnz)` before a plain strict `load_state_dict`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn


class UserHistory(nn.Module):
    """Binary user x item matrix in CSR form: `indptr` (n_users + 1,), `indices` (nnz,)."""

    def __init__(self, n_users: int, n_items: int, nnz: int = 0):
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.register_buffer("indptr", torch.zeros(n_users + 1, dtype=torch.long))  # (U + 1,)
        self.register_buffer("indices", torch.zeros(int(nnz), dtype=torch.long))  # (nnz,)

    @property
    def nnz(self) -> int:
        """Stored (user, item) pairs: the size to rebuild this module at before loading a checkpoint."""
        return int(self.indices.numel())

    @torch.no_grad()
    def fit(self, train: pd.DataFrame) -> None:
        """Store the distinct (user, item) pairs of `train` (internal indices)."""
        pairs = train[["user", "item"]].drop_duplicates().sort_values(["user", "item"])
        users = pairs["user"].to_numpy(np.int64)
        counts = np.bincount(users, minlength=self.n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        device = self.indptr.device
        self.indptr = torch.as_tensor(indptr, dtype=torch.long, device=device)
        self.indices = torch.tensor(pairs["item"].to_numpy(np.int64), dtype=torch.long, device=device)

    def dense(self, users: torch.Tensor) -> torch.Tensor:
        """Rows of the matrix for `users` (B,) as a dense float tensor (B, n_items)."""
        users = users.to(self.indptr.device)
        starts = self.indptr[users]  # (B,)
        lengths = self.indptr[users + 1] - starts  # (B,)
        rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths)  # (N,)
        # position of each entry inside its own row, then offset by the row's start
        first = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)  # (N,)
        within = torch.arange(len(rows), device=users.device) - first  # (N,)
        cols = self.indices[torch.repeat_interleave(starts, lengths) + within]  # (N,)
        out = torch.zeros(len(users), self.n_items, device=users.device)  # (B, I)
        out[rows, cols] = 1.0
        return out
