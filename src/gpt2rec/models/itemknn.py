"""ItemKNN: cosine item-item similarity, each item keeping its `k` nearest neighbours.

score(u, i) = sum over the user's training items j among i's neighbours of sim(i, j), where
sim(i, j) = |U_i & U_j| / (sqrt(|U_i|) sqrt(|U_j|) + shrinkage) (Sarwar et al. 2001; Deshpande &
Karypis 2004). Closed form: `fit` computes the neighbour lists; no gradient training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..utils.config import check_field_types
from ..utils.progress import progress_bar
from .base import ModelContext, ModelSpec, saved_value
from .history import UserHistory
from .ids import checked_ids
from .limits import check_dense_items


@dataclass
class ItemKNNConfig:
    k: int = field(default=100, metadata={"help": "neighbours kept per item"})
    shrinkage: float = field(default=0.0, metadata={"help": "added to the cosine denominator"})
    max_memory_gb: float = field(
        default=8.0, metadata={"help": "refuse catalogs whose dense item x item matrices need more (GiB)"}
    )

    def __post_init__(self):
        check_field_types(self, type(self).__name__)  # built directly, not by from_dict
        if self.k < 1:
            raise ValueError(f"itemknn k must be >= 1, got {self.k}; pass e.g. --set k=100")
        if self.shrinkage < 0:
            raise ValueError(f"itemknn shrinkage must be >= 0, got {self.shrinkage}")
        if not self.max_memory_gb > 0:
            raise ValueError(f"itemknn max_memory_gb must be > 0, got {self.max_memory_gb}")


class ItemKNN(nn.Module):
    def __init__(self, config: ItemKNNConfig, n_users: int, n_items: int, history_nnz: int = 0):
        super().__init__()
        self.config = config
        self.n_users = n_users
        self.n_items = n_items
        k = max(1, min(config.k, n_items - 1))
        self.history = UserHistory(n_users, n_items, history_nnz)
        self.register_buffer("neighbors", torch.zeros(n_items, k, dtype=torch.long))  # (I, k)
        self.register_buffer("weights", torch.zeros(n_items, k))  # (I, k)
        self._sim_t: tuple[tuple, torch.Tensor] | None = None  # (key of the weights it was built from, matrix)

    def checkpoint_meta(self) -> dict:
        return {"history_nnz": self.history.nnz}

    def _similarity_t(self) -> torch.Tensor:
        """Dense (I, I) matrix whose column i holds the weights of item i's neighbours (rebuilt
        whenever `neighbors` or `weights` changed: fit, load_state_dict, .to(device))."""
        key = tuple((t.data_ptr(), t._version) for t in (self.neighbors, self.weights))
        if self._sim_t is None or self._sim_t[0] != key:
            sim = torch.zeros(self.n_items, self.n_items, device=self.weights.device)  # (I, I)
            sim.scatter_(1, self.neighbors, self.weights)  # row i: neighbours of i
            self._sim_t = (key, sim.T.contiguous())  # (I_j, I_i)
        return self._sim_t[1]

    @checked_ids
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.history.dense(users) @ self._similarity_t()  # (B, I) @ (I, I) -> (B, I)

    @checked_ids
    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        hist = self.history.dense(users)  # (B, I)
        items = items.to(hist.device)
        nbr_hit = hist.gather(1, self.neighbors[items])  # (B, k)
        return (nbr_hit * self.weights[items]).sum(1)  # (B,)


def build(config: ItemKNNConfig, ctx: ModelContext) -> ItemKNN:
    check_dense_items("itemknn", ctx.n_items, 4, float(config.max_memory_gb))
    return ItemKNN(config, ctx.n_users, ctx.n_items, saved_value(ctx, "history_nnz", 0)).to(ctx.device)


@torch.no_grad()
def fit(model: ItemKNN, ctx: ModelContext, chunk: int = 1024) -> None:
    pairs = ctx.train[["user", "item"]].drop_duplicates()
    x = sp.csr_matrix(
        (np.ones(len(pairs), np.float32), (pairs["user"].to_numpy(), pairs["item"].to_numpy())),
        shape=(ctx.n_users, ctx.n_items),
    )  # (U, I) binary
    xt = x.T.tocsr()  # (I, U)
    norms = np.sqrt(np.asarray(x.sum(0)).ravel())  # (I,)
    k = model.neighbors.shape[1]
    nbrs, wts = [], []
    for start in progress_bar(range(0, ctx.n_items, chunk), desc="itemknn", leave=False, show=None):
        stop = min(start + chunk, ctx.n_items)
        co = torch.as_tensor((xt[start:stop] @ x).toarray())  # (c, I) co-occurrence counts
        denom = torch.as_tensor(np.outer(norms[start:stop], norms)) + model.config.shrinkage  # (c, I)
        sim = torch.where(denom > 0, co / denom.clamp_min(1e-12), torch.zeros(()))  # (c, I)
        sim[torch.arange(stop - start), torch.arange(start, stop)] = 0.0  # no self-similarity
        w, idx = sim.float().topk(k, dim=1)  # (c, k)
        nbrs.append(idx)
        wts.append(w)
    device = model.weights.device
    model.neighbors.copy_(torch.cat(nbrs).to(device))
    model.weights.copy_(torch.cat(wts).to(device))
    model.history.fit(ctx.train)


SPEC = ModelSpec(
    name="itemknn",
    config_cls=ItemKNNConfig,
    build=build,
    fit=fit,
    description="item-based k-nearest neighbours (cosine, optional shrinkage); closed form",
    history_only=True,
    tune_grid=tuple({"k": k, "shrinkage": s} for s in (0.0, 10.0) for k in (100, 50, 200, 20, 400)),
)
