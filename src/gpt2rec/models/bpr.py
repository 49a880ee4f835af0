"""BPR-MF (Rendle et al. 2009): user and item embeddings, score = <p_u, q_i> (+ item bias).

Trained by `gpt2rec.train.loop` on the BPR loss. `reg` adds the classic per-batch L2 penalty on the
embeddings the batch touches (through the loop's `extra_loss` hook).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..utils.config import check_field_types
from .base import ModelContext, ModelSpec
from .ids import checked_ids

INITS = ("xavier", "normal")


@dataclass
class BPRConfig:
    # defaults: `gpt2rec bench tune --models bpr` on ML-100K warm seed-0 VALIDATION (benchmarks/results)
    dim: int = field(default=128, metadata={"help": "embedding size"})
    init: str = field(default="xavier", metadata={"help": "xavier (xavier_normal) or normal (std=init_std)"})
    init_std: float = field(default=0.1, metadata={"help": "std of the normal initialisation"})
    item_bias: bool = field(default=False, metadata={"help": "learn a per-item bias"})
    reg: float = field(default=1e-2, metadata={"help": "L2 weight on the batch's embeddings"})

    def __post_init__(self):
        check_field_types(self, type(self).__name__)  # built directly, not by from_dict
        if self.dim < 1:
            raise ValueError(f"bpr dim must be >= 1, got {self.dim}; pass e.g. --dim 64")
        if self.init not in INITS:
            raise ValueError(f"bpr init must be one of {INITS}, got {self.init!r}")
        if self.init_std <= 0 or self.reg < 0:
            raise ValueError(f"bpr needs init_std > 0 and reg >= 0, got {self.init_std}, {self.reg}")


class BPRMF(nn.Module):
    def __init__(self, config: BPRConfig, n_users: int, n_items: int):
        super().__init__()
        self.config = config
        self.n_users = n_users
        self.n_items = n_items
        self.user_emb = nn.Embedding(n_users, config.dim)
        self.item_emb = nn.Embedding(n_items, config.dim)
        self.item_bias = nn.Embedding(n_items, 1) if config.item_bias else None
        for emb in (self.user_emb, self.item_emb):
            if config.init == "xavier":
                nn.init.xavier_normal_(emb.weight)
            else:
                nn.init.normal_(emb.weight, std=config.init_std)
        if self.item_bias is not None:
            nn.init.zeros_(self.item_bias.weight)

    @checked_ids
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        scores = self.user_emb(users) @ self.item_emb.weight.T  # (B, D) @ (D, I) -> (B, I)
        if self.item_bias is not None:
            scores = scores + self.item_bias.weight.T  # (1, I)
        return scores

    @checked_ids
    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        scores = (self.user_emb(users) * self.item_emb(items)).sum(-1)  # (B,)
        if self.item_bias is not None:
            scores = scores + self.item_bias(items).squeeze(-1)
        return scores

    def user_factors(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, D[+1]) with score_users(users) == user_factors(users) @ item_factors().T (for ANN)."""
        p = self.user_emb(users)  # (B, D)
        return p if self.item_bias is None else torch.cat([p, torch.ones_like(p[:, :1])], 1)

    def item_factors(self) -> torch.Tensor:
        """(I, D[+1]): item vectors, the item bias as the last column when there is one."""
        q = self.item_emb.weight  # (I, D)
        return q if self.item_bias is None else torch.cat([q, self.item_bias.weight], 1)

    def extra_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """reg * mean squared norm of the batch's user, positive and negative embeddings."""
        if self.config.reg == 0:
            return torch.zeros((), device=self.user_emb.weight.device)
        sq = (
            self.user_emb(users).pow(2).sum(-1)
            + self.item_emb(pos).pow(2).sum(-1)
            + self.item_emb(neg).pow(2).sum(-1).reshape(len(users), -1).mean(-1)
        )  # (B,)
        return self.config.reg * sq.mean()


def build(config: BPRConfig, ctx: ModelContext) -> BPRMF:
    return BPRMF(config, ctx.n_users, ctx.n_items).to(ctx.device)


SPEC = ModelSpec(
    name="bpr",
    config_cls=BPRConfig,
    build=build,
    description="BPR matrix factorisation (Rendle et al. 2009)",
    train_defaults={"epochs": 300, "patience": 10, "num_neg": 4},  # with lr 1e-3 and the BPR loss
    history_only=True,
    # `train --tune` and `bench tune` (the loss after the negatives: with one negative sampled
    # softmax IS the BPR loss)
    tune_axes={
        "train.lr": (1e-3, 3e-3, 1e-2),
        "train.num_neg": (1, 4, 16),
        "train.loss": ("bpr", "softmax"),
        "model.dim": (32, 64, 128, 256),
        "model.reg": (0.0, 1e-3, 1e-2, 3e-2, 1e-1),
    },
)
