"""NeuMF (He et al. 2017, "Neural Collaborative Filtering"): a GMF branch and an MLP branch.

GMF: p_u * q_i (element-wise, `dim` wide). MLP: [u; i] embeddings (mlp_layers[0] / 2 wide each)
through Linear+ReLU layers mlp_layers[0] -> ... -> mlp_layers[-1]. The two outputs are concatenated
into one linear layer giving the score. `score_users` never builds (B * I) concatenated inputs: the
first MLP layer is split into a user part and an item part that are broadcast-added in user chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..utils.config import check_field_types
from .base import ModelContext, ModelSpec
from .ids import checked_ids


@dataclass
class NeuMFConfig:
    dim: int = field(default=64, metadata={"help": "GMF embedding size"})
    mlp_layers: tuple[int, ...] = field(
        default=(64, 32, 16), metadata={"help": "MLP widths; the first is the [u; i] input width"}
    )
    dropout: float = field(default=0.0, metadata={"help": "dropout after each MLP layer"})
    init_std: float = field(default=0.01, metadata={"help": "std of the embedding initialisation"})
    chunk_elements: int = field(default=1 << 24, metadata={"help": "memory budget of score_users"})

    def __post_init__(self):
        check_field_types(self, type(self).__name__)  # built directly, not by from_dict
        if self.dim < 1:
            raise ValueError(f"neumf dim must be >= 1, got {self.dim}")
        if len(self.mlp_layers) < 2 or min(self.mlp_layers) < 1 or self.mlp_layers[0] % 2:
            raise ValueError(
                f"neumf mlp_layers must have >= 2 positive widths, the first even; got "
                f"{self.mlp_layers}; e.g. --set mlp_layers=64,32,16"
            )
        if not 0 <= self.dropout < 1 or self.init_std <= 0:
            raise ValueError(f"neumf needs 0 <= dropout < 1 and init_std > 0, got {self.dropout}, {self.init_std}")


class NeuMF(nn.Module):
    def __init__(self, config: NeuMFConfig, n_users: int, n_items: int):
        super().__init__()
        self.config = config
        self.n_users = n_users
        self.n_items = n_items
        half = config.mlp_layers[0] // 2
        self.gmf_user = nn.Embedding(n_users, config.dim)
        self.gmf_item = nn.Embedding(n_items, config.dim)
        self.mlp_user = nn.Embedding(n_users, half)
        self.mlp_item = nn.Embedding(n_items, half)
        widths = config.mlp_layers
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.dim + widths[-1], 1)
        for emb in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(emb.weight, std=config.init_std)
        for layer in self.mlp:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.kaiming_uniform_(self.out.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.out.bias)

    def _mlp_tail(self, h: torch.Tensor) -> torch.Tensor:
        """ReLU after the first layer's pre-activation, then the remaining layers. (..., H1) -> (..., H_last)."""
        h = self.drop(torch.relu(h))
        for layer in self.mlp[1:]:
            h = self.drop(torch.relu(layer(h)))
        return h

    @checked_ids
    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        gmf = self.gmf_user(users) * self.gmf_item(items)  # (B, D)
        mlp_in = torch.cat([self.mlp_user(users), self.mlp_item(items)], -1)  # (B, H0)
        mlp = self._mlp_tail(self.mlp[0](mlp_in))  # (B, H_last)
        return self.out(torch.cat([gmf, mlp], -1)).squeeze(-1)  # (B,)

    @checked_ids
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        dim, half = self.config.dim, self.config.mlp_layers[0] // 2
        w_gmf, w_mlp = self.out.weight[0, :dim], self.out.weight[0, dim:]  # (D,), (H_last,)
        gmf = (self.gmf_user(users) * w_gmf) @ self.gmf_item.weight.T  # (B, I)
        first = self.mlp[0]
        h_user = self.mlp_user(users) @ first.weight[:, :half].T + first.bias  # (B, H1)
        h_item = self.mlp_item.weight @ first.weight[:, half:].T  # (I, H1)
        step = max(1, self.config.chunk_elements // max(1, self.n_items * h_item.shape[1]))
        parts = []
        for start in range(0, len(users), step):
            h = h_user[start : start + step, None, :] + h_item[None, :, :]  # (b, I, H1)
            parts.append(self._mlp_tail(h) @ w_mlp)  # (b, I)
        return gmf + torch.cat(parts, 0) + self.out.bias  # (B, I)


def build(config: NeuMFConfig, ctx: ModelContext) -> NeuMF:
    return NeuMF(config, ctx.n_users, ctx.n_items).to(ctx.device)


SPEC = ModelSpec(
    name="neumf",
    config_cls=NeuMFConfig,
    build=build,
    description="NeuMF: GMF + MLP branches fused by a linear layer (He et al. 2017)",
    train_defaults={"epochs": 200, "patience": 10},
    history_only=True,
    tune_axes={"train.lr": (1e-3, 3e-3, 1e-2), "train.num_neg": (1, 4), "model.dim": (32, 64, 128)},
)
