"""Basic GPT-2 recommender: frozen-LM text embeddings + ID embeddings, scored by an MLP.

At build time every user and item sentence is encoded once by a frozen language model (through the
on-disk embedding cache) and kept as buffers, so a checkpoint holds everything needed to score and
never the LM itself. Each text vector is standardised and projected to the ID size, and

    score(u, i) = MLP([user_id, user_text, item_id, item_text])

The first MLP layer is split into a user half and an item half (W [x_u; x_i] = W_u x_u + W_i x_i),
so `score_users` computes the item half once for all items and only the cheap rest per pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .base import ModelContext, ModelSpec, saved_value
from .fusion import FieldProjector
from .ids import checked_ids
from .text_features import LM_TRAIN_DEFAULTS, LMSettings, encode_tables, id_embeddings

# max floats in one (chunk, n_items, hidden) block of score_users
_BLOCK = 1 << 24


@dataclass
class BasicConfig(LMSettings):
    dim: int = field(default=64, metadata={"help": "ID embedding size (text is projected to it)"})
    hidden: tuple[int, ...] = field(default=(128, 64), metadata={"help": "MLP hidden sizes"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the MLP"})
    init_std: float = field(default=0.05, metadata={"help": "std of the ID embedding initialisation"})

    def __post_init__(self):
        super().__post_init__()
        if self.pooling not in ("mean", "last"):
            raise ValueError(f"basic pooling must be 'mean' or 'last', got {self.pooling!r}")
        if self.dim < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"basic needs dim >= 1 and hidden sizes >= 1; got dim={self.dim}, hidden={self.hidden}")
        if not 0 <= self.dropout < 1 or self.init_std <= 0:
            raise ValueError(f"basic needs 0 <= dropout < 1 and init_std > 0; got {self.dropout}, {self.init_std}")


class BasicRecommender(nn.Module):
    """Buffers `user_text` (U, D) / `item_text` (I, D) hold frozen-LM vectors; D is saved in the
    checkpoint metadata (`checkpoint_meta`) so a load builds the model at that width."""

    def __init__(self, config: BasicConfig, n_users: int, n_items: int, text_dim: int = 1):
        super().__init__()
        self.config = config
        self.n_users, self.n_items = n_users, n_items
        d = config.dim
        self.user_emb, self.item_emb = id_embeddings(n_users, n_items, d, config.init_std)
        self.register_buffer("user_text", torch.zeros(n_users, text_dim))  # (U, D)
        self.register_buffer("item_text", torch.zeros(n_items, text_dim))  # (I, D)
        self.user_proj = FieldProjector(None, text_dim, d)
        self.item_proj = FieldProjector(None, text_dim, d)
        h0 = config.hidden[0]
        self.first_user = nn.Linear(2 * d, h0)
        self.first_item = nn.Linear(2 * d, h0, bias=False)
        layers: list[nn.Module] = []
        for h_in, h_out in zip(config.hidden, config.hidden[1:] + (1,)):
            layers += [nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(h_in, h_out)]
        self.rest = nn.Sequential(*layers)

    @torch.no_grad()
    def set_text(self, user_text: torch.Tensor, item_text: torch.Tensor) -> None:
        """Install LM vectors (U, D), (I, D) and fit the standardisation on them."""
        self.user_text = user_text.float().to(self.user_text.device)
        self.item_text = item_text.float().to(self.item_text.device)
        self.user_proj.fit_stats(self.user_text)
        self.item_proj.fit_stats(self.item_text)

    def _user_half(self, users: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.user_emb(users), self.user_proj(self.user_text[users])], -1)  # (B, 2d)
        return self.first_user(x)  # (B, h0)

    def _item_half(self, items: torch.Tensor | None = None) -> torch.Tensor:
        ids = self.item_emb.weight if items is None else self.item_emb(items)  # (I|B, d)
        text = self.item_text if items is None else self.item_text[items]  # (I|B, D)
        return self.first_item(torch.cat([ids, self.item_proj(text)], -1))  # (I|B, h0)

    @checked_ids
    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dev = self.user_emb.weight.device
        users, items = users.to(dev), items.to(dev)
        return self.rest(self._user_half(users) + self._item_half(items)).squeeze(-1)  # (B,)

    @checked_ids
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        users = users.to(self.user_emb.weight.device)
        u = self._user_half(users)  # (B, h0)
        it = self._item_half()  # (I, h0)
        chunk = max(1, _BLOCK // max(1, self.n_items * it.shape[1]))
        out = [
            self.rest(u[s : s + chunk].unsqueeze(1) + it.unsqueeze(0)).squeeze(-1)  # (b, I)
            for s in range(0, len(users), chunk)
        ]
        return torch.cat(out, 0) if out else u.new_zeros(0, self.n_items)  # (B, I)

    def item_text_vectors(self) -> torch.Tensor:
        """LM vectors of all items (I, D), for explanations (similar items in text space)."""
        return self.item_text

    def checkpoint_meta(self) -> dict:
        return {"text_dim": int(self.user_text.shape[1])}


def build(config: BasicConfig, ctx: ModelContext) -> BasicRecommender:
    if ctx.dataset is None or ctx.train is None:  # checkpoint load: text buffers come from the state_dict
        return BasicRecommender(config, ctx.n_users, ctx.n_items, saved_value(ctx, "text_dim")).to(ctx.device)
    tables = encode_tables(config, ctx.dataset, ctx.train, ctx.device, pooling=config.pooling)
    model = BasicRecommender(config, ctx.n_users, ctx.n_items, tables.text_dim)
    model.set_text(tables.dense("user"), tables.dense("item"))
    return model.to(ctx.device)


SPEC = ModelSpec(
    name="basic",
    config_cls=BasicConfig,
    build=build,
    description="frozen-LM text embeddings of user/item metadata + ID embeddings, scored by an MLP",
    train_defaults=dict(LM_TRAIN_DEFAULTS),
    tune_axes={"train.lr": (1e-3, 3e-3, 1e-2), "model.dim": (32, 64, 128), "model.dropout": (0.0, 0.1, 0.3)},
)
