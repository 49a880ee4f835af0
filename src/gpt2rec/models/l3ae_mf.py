"""l3ae_mf: l3ae's closed-form scores plus a low-rank residual trained with BPR (for sparse data).

    score(u, j) = backbone_weight * l3ae(u, j) / scale + <p_u, q_j>

The backbone is `l3ae` (EASE pulled towards the LM's item-item matrix, closed form), fitted once
when the model is built on training data; `scale` is the std of its scores over the training users,
so `backbone_weight` means the same on any dataset. The training loop then learns only the
residual's user and item embeddings (a BPR-MF, started near zero, so training begins at l3ae's
ranking) with the backbone held fixed. On ML-100K sparse-20 validation the pair beat both parts:
EASE's item-item weights overfit a sparse history, MF's low rank smooths it (`benchmarks/README.md`).

Users and items without training interactions keep a zero residual: new items are scored by the
backbone's text route alone and new users by their profile neighbours, as in l3ae. The backbone's
part of a score is a sum over the user's liked items, which is what the explanations show
(`item_contributions`); the residual does not depend on the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from . import l3ae
from .base import ModelContext, ModelSpec
from .bpr import BPRMF, BPRConfig
from .ids import checked_ids
from .l3ae import L3AE, L3AEConfig


@dataclass
class L3AEMFConfig(L3AEConfig):
    # defaults: ML-100K sparse-20 VALIDATION (seeds 0-2, minilm; backbone_weight 0.03 / 0.1 / 0.3 / 1
    # gave 0.0924 / 0.0956 / 0.0966 / 0.0962); the backbone's as l3ae's choice there
    reg: float = field(default=3000.0, metadata={"help": "L2 lambda of the backbone's interaction EASE"})
    text_reg: float = field(default=30.0, metadata={"help": "L2 lambda of the backbone's text EASE that gives C"})
    dim: int = field(default=128, metadata={"help": "residual embedding size"})
    mf_reg: float = field(default=1e-2, metadata={"help": "L2 weight on the batch's residual embeddings"})
    init_std: float = field(default=0.01, metadata={"help": "std of the residual's normal initialisation"})
    backbone_weight: float = field(
        default=0.3, metadata={"help": "weight of the backbone's scores (in units of their std) against the residual"}
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.backbone_weight > 0:
            raise ValueError(f"l3ae_mf backbone_weight must be > 0, got {self.backbone_weight}; try 0.3")
        self.residual_config()  # validates dim, init_std and mf_reg

    def residual_config(self) -> BPRConfig:
        return BPRConfig(dim=self.dim, init="normal", init_std=self.init_std, reg=self.mf_reg)


CACHE_GB = 1.0  # the backbone's (U, I) scores are kept for training up to this size


class L3AEMF(nn.Module):
    def __init__(self, config: L3AEMFConfig, backbone: L3AE):
        super().__init__()
        self.config = config
        self.n_users, self.n_items = backbone.n_users, backbone.n_items
        self.backbone = backbone
        self.residual = BPRMF(config.residual_config(), self.n_users, self.n_items)
        self.register_buffer("scale", torch.ones(()))  # std of the backbone's scores, training users
        self.register_buffer("item_known", torch.zeros(self.n_items, dtype=torch.bool))  # (I,)
        # (U, I) the fixed backbone's scores, kept while training (a step scores B x negatives pairs,
        # each an I-long dot product otherwise); not saved, dropped when other weights are loaded and
        # rebuilt from them at the next training step (`_cached`)
        self.register_buffer("base_cache", torch.empty(0), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _: setattr(module, "base_cache", torch.empty(0)))

    def checkpoint_meta(self) -> dict:
        return self.backbone.checkpoint_meta()

    @property
    def _weight(self) -> torch.Tensor:
        return self.config.backbone_weight / self.scale

    @checked_ids
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        base = self._base_rows(users)  # (B, I)
        known = self.backbone.user_known[users.to(base.device)].unsqueeze(1) & self.item_known.unsqueeze(0)  # (B, I)
        return self._weight * base + self.residual.score_users(users) * known

    @checked_ids
    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self._cached():
            dev = self.base_cache.device
            base = self.base_cache[users.to(dev), items.to(dev)]  # (B,)
        else:
            base = self.backbone.score_pairs(users, items)  # (B,)
            dev = base.device
        known = self.backbone.user_known[users.to(dev)] & self.item_known[items.to(dev)]  # (B,)
        return self._weight * base + self.residual.score_pairs(users, items) * known

    def extra_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        return self.residual.extra_loss(users, pos, neg)

    def item_contributions(self, items: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """(K, H): the share of item k's score that comes from liked item h (the backbone's part)."""
        return self._weight * self.backbone.item_contributions(items, history)

    def score_history(self, hist: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The part (B,) of the scores of `items` that depends on the histories `hist` (B, I): the
        backbone's (the residual reads the user's ID, so deleting liked items changes only this)."""
        return self._weight * self.backbone.score_history(hist, items)

    # new users and items have no residual: the backbone's routes (`gpt2rec recommend --profile / --items`)
    def score_new_user(self, profile: dict) -> torch.Tensor:
        """Scores (I,) of a brand-new user given only as a metadata profile (l3ae's route)."""
        return self.backbone.score_new_user(profile)

    def score_new_items(self, user: int, items_df) -> torch.Tensor:
        """Scores (N,) of brand-new items for known user `user` (l3ae's route, in this model's units)."""
        return self._weight * self.backbone.score_new_items(user, items_df)

    def new_item_rows(self, items_df):
        text, rows, bias = self.backbone.new_item_rows(items_df)  # (N, 1, D), (N, I), (N,)
        return text, self._weight * rows, bias

    def user_rows(self, users: torch.Tensor) -> torch.Tensor:
        return self.backbone.user_rows(users)

    @property
    def profile_info(self):
        return self.backbone.profile_info

    @property
    def neighbours(self):
        return self.backbone.neighbours

    @property
    def user_known(self) -> torch.Tensor:
        return self.backbone.user_known

    @property
    def item_text(self) -> torch.Tensor | None:
        return self.backbone.item_text

    def encode_text(self, text: str) -> torch.Tensor:
        """(D,) a plain-words request read as the backbone reads items."""
        return self.backbone.encode_text(text)

    @property
    def lm_loaded(self) -> bool:
        return self.backbone.lm_loaded

    @property
    def history(self):
        """The users' training items (`UserHistory`), the backbone's."""
        return self.backbone.history

    def _base_rows(self, users: torch.Tensor) -> torch.Tensor:
        if self.base_cache.numel():
            return self.base_cache[users.to(self.base_cache.device)]  # (B, I)
        return self.backbone.score_users(users)  # (B, I)

    @torch.no_grad()
    def _cached(self, build: bool = False) -> bool:
        """Whether the backbone's scores of every user are kept, building them while training (or
        when `build`) if they fit in CACHE_GB: a resumed run reloads the weights, and without the
        cache each of its steps would score pairs through the backbone (about 14x slower on ML-100K)."""
        fits = self.n_users * self.n_items * 4 <= CACHE_GB * 2**30
        if not self.base_cache.numel() and (self.training or build) and fits:
            dev = self.scale.device
            self.base_cache = torch.cat(
                [self.backbone.score_users(b) for b in torch.arange(self.n_users, device=dev).split(1024)]
            )  # (U, I)
        return bool(self.base_cache.numel())

    @torch.no_grad()
    def fit_backbone(self, ctx: ModelContext) -> None:
        """Fit the backbone in closed form, then `scale`, which items the residual may score and,
        when it fits in CACHE_GB, the backbone's scores of every user for training."""
        l3ae.fit(self.backbone, ctx)
        dev = self.scale.device
        self.item_known.zero_().index_fill_(0, torch.as_tensor(ctx.train["item"].unique(), device=dev), True)
        users = torch.as_tensor(ctx.train["user"].unique(), device=dev)
        self._cached(build=True)
        sums = torch.zeros(3, dtype=torch.float64, device=dev)  # count, sum, sum of squares
        for block in users.split(1024):
            s = self._base_rows(block).double()  # (b, I)
            sums += torch.stack([torch.tensor(s.numel(), dtype=torch.float64, device=dev), s.sum(), s.pow(2).sum()])
        var = (sums[2] - sums[1] ** 2 / sums[0]) / (sums[0] - 1).clamp_min(1)
        self.scale.fill_(float(var.clamp_min(1e-24).sqrt()))


def build(config: L3AEMFConfig, ctx: ModelContext) -> L3AEMF:
    model = L3AEMF(config, l3ae.build(config, ctx)).to(ctx.device)
    if ctx.saved is None and ctx.train is not None:
        model.fit_backbone(ctx)  # the loop then trains the residual only (the backbone is buffers)
    return model


SPEC = ModelSpec(
    name="l3ae_mf",
    config_cls=L3AEMFConfig,
    build=build,
    description="l3ae (closed form, LM item text) plus a BPR-trained low-rank residual, for sparse data",
    # patience 20: the residual starts at zero and first costs a little before it adds (validation)
    train_defaults={"epochs": 300, "patience": 20, "num_neg": 4},
    # `train --tune`: the backbone's share and L2 (its best reg moves with the data's density), the
    # residual's L2 and learning rate
    tune_axes={
        "model.backbone_weight": (0.1, 0.3, 1.0, 3.0),
        "model.reg": (300.0, 1000.0, 3000.0),
        "model.mf_reg": (1e-3, 1e-2),
        "train.lr": (1e-3, 3e-3),
    },
    legacy_defaults={"new_item_scale": 1.0},  # its runs saved before the setting existed
)
