"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): closed-form item-item.

G = X^T X + lambda I, P = G^-1, B = -P / diag(P) (column-wise), diag(B) = 0; scores = X_u B.
The (I, I) weight matrix and the users' training items are buffers, so a checkpoint restores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..utils.config import check_field_types
from .base import ModelContext, ModelSpec, saved_value
from .history import UserHistory
from .ids import checked_ids
from .limits import check_dense_items


@dataclass
class EASEConfig:
    reg: float = field(default=300.0, metadata={"help": "L2 regularisation lambda (tuned on ML-100K)"})
    max_memory_gb: float = field(
        default=8.0, metadata={"help": "refuse catalogs whose dense item x item matrices need more (GiB)"}
    )

    def __post_init__(self):
        check_field_types(self, type(self).__name__)  # built directly, not by from_dict
        if not self.reg > 0:
            raise ValueError(f"ease reg (lambda) must be > 0, got {self.reg}; try --set reg=300")
        if not self.max_memory_gb > 0:
            raise ValueError(f"ease max_memory_gb must be > 0, got {self.max_memory_gb}")


class EASE(nn.Module):
    def __init__(self, config: EASEConfig, n_users: int, n_items: int, history_nnz: int = 0):
        super().__init__()
        self.config = config
        self.n_users = n_users
        self.n_items = n_items
        self.history = UserHistory(n_users, n_items, history_nnz)
        self.register_buffer("weight", torch.zeros(n_items, n_items))  # (I, I) float32

    def checkpoint_meta(self) -> dict:
        return {"history_nnz": self.history.nnz}

    @checked_ids
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.history.dense(users) @ self.weight  # (B, I) @ (I, I) -> (B, I)

    @checked_ids
    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.score_history(self.history.dense(users), items)

    def score_history(self, hist: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of `items` (B,) for histories given as rows (B, I) of 0/1: X_u B[:, i]. Lets a
        caller score a user's history with some items deleted (the explanations' deletion test)."""
        cols = self.weight[:, items.to(hist.device)].T  # (B, I)
        return (hist * cols).sum(1)  # (B,)


def build(config: EASEConfig, ctx: ModelContext) -> EASE:
    check_dense_items("ease", ctx.n_items, 36, float(config.max_memory_gb))
    return EASE(config, ctx.n_users, ctx.n_items, saved_value(ctx, "history_nnz", 0)).to(ctx.device)


def interaction_gram(train, n_users: int, n_items: int, device) -> torch.Tensor:
    """X^T X (I, I) float64 of the distinct training (user, item) pairs."""
    pairs = train[["user", "item"]].drop_duplicates()
    x = sp.csr_matrix(
        (np.ones(len(pairs)), (pairs["user"].to_numpy(), pairs["item"].to_numpy())), shape=(n_users, n_items)
    )  # (U, I)
    return torch.as_tensor((x.T @ x).toarray(), dtype=torch.float64, device=device)


def ridged(gram: torch.Tensor, reg: float | torch.Tensor) -> torch.Tensor:
    """G + diag(reg) (I, I): `reg` one L2 weight for all items, or one per item (I,)."""
    reg = torch.as_tensor(reg, dtype=gram.dtype, device=gram.device)
    return gram + torch.diag(reg.expand(len(gram)))


def emphasised_l2(gram: torch.Tensor, reg: float, dropout: float) -> float | torch.Tensor:
    """The L2 weight of each item (I,): reg + p / (1 - p) G_jj. This is what dropping each input with
    probability p does to a linear autoencoder in expectation (EDLAE, Steck, NeurIPS 2020). Frequent
    items get a larger penalty, so B leans less on them. p = 0 leaves the plain `reg`."""
    if dropout == 0:
        return reg
    return reg + dropout / (1.0 - dropout) * gram.diagonal()  # (I,)


def ease_weights(gram: torch.Tensor, reg: float | torch.Tensor) -> torch.Tensor:
    """EASE from a Gram matrix G (I, I): -P / diag(P) column-wise with P = (G + diag(reg))^-1, zero
    diagonal (`reg` a scalar or one weight per item, see `emphasised_l2`)."""
    p = torch.linalg.inv(ridged(gram, reg))  # (I, I) SPD
    b = -p / p.diagonal().unsqueeze(0)  # column j divided by P_jj
    return b.fill_diagonal_(0.0)


@torch.no_grad()
def fit(model: EASE, ctx: ModelContext) -> None:
    gram = interaction_gram(ctx.train, ctx.n_users, ctx.n_items, model.weight.device)  # (I, I)
    model.weight.copy_(ease_weights(gram, model.config.reg).float())
    model.history.fit(ctx.train)


SPEC = ModelSpec(
    name="ease",
    config_cls=EASEConfig,
    build=build,
    fit=fit,
    description="EASE linear item-item autoencoder (Steck 2019); closed form",
    history_only=True,
    # `train --tune`: the default first (ties keep it), then wider and narrower
    tune_grid=tuple({"reg": r} for r in (300.0, 100.0, 1000.0, 30.0, 3000.0, 10.0, 10000.0)),
)
