"""L3AE: EASE guided by the language model's reading of item metadata (Moon, Park, Lee, CIKM 2025).

Two closed forms, no sampling, no epochs:

1. A semantic item-item matrix C from the LM vectors of the item sentences. With F (I, D) the
   L2-normalised item vectors, C is EASE with the items as columns and the vector dimensions as rows:
       P_F = (F F^T + text_reg I)^-1,   C = -P_F / diag(P_F) (column-wise),   diag(C) = 0.
2. EASE on the interactions X (U, I) with an extra pull towards C, and (collective EASE with side
   information, Jeunen, Van Balen, Goethals, RecSys 2020) the item vectors stacked under X as D
   extra "users" weighted by side_weight, so items with similar text also co-occur:
       B = argmin ||X - X B||^2 + side_weight ||F^T - F^T B||^2 + reg ||B||^2 + text_weight ||B - C||^2
       s.t. diag(B) = 0
   The two data terms share one Gram matrix G = X^T X + side_weight F F^T. Setting the gradient to
   zero with a Lagrange multiplier per diagonal entry gives, with P = (G + (reg + text_weight) I)^-1
   and mu = text_weight,
       B_ij = mu (P C)_ij - P_ij (1 + mu (P C)_jj) / P_jj   (i != j),   B_jj = 0.
   At mu = 0 and side_weight = 0 this is exactly EASE (B = -P / diag(P)); as mu grows, B tends to C.
   With `dropout` p > 0 the L2 is per item, reg + p/(1-p) G_jj on row j (EDLAE, Steck 2020), and
   (reg + mu) I in P becomes diag(reg_j + mu); the formula for B is unchanged.

Scores are X_u B. A cold item (no training interaction) has column j of X^T X zero; with
side_weight = 0, P_ij = 0 for i != j and its column is mu (P C)_:j: scored from the items whose text
resembles it (side_weight > 0 adds the items whose vectors overlap it through G). The score of j
for user u is a sum of B_ij over the user's items i, which is what the explanation shows (the liked
items with the largest B_ij).

A cold user (no training interaction, `cold_users="neighbours"`) is scored like the enhanced model's
new users (`profile_neighbours`): the share of the `cold_user_k` known users whose LM profile vectors
are nearest who had the item. (Scoring that share through B as a pseudo-history was lower on
cold-user validation: 0.5405 vs 0.5493, 3 seeds, k = 100.) A brand-new user given only as a
profile (`score_new_user`, `gpt2rec recommend --profile`) takes the cold users' route; a brand-new
item given as a metadata row (`score_new_items`, `--items`) is scored by its text column alone, not
shrunk as a catalogue item nobody chose in training is (`l3ae_new`); so are the catalogue's items
that the fit is told are new (`ModelContext.new_items`: a cold-item split's held-out items).

The item vectors come from the frozen LM, or (`tune_epochs > 0`, for catalogues with new items) from
the LM after LoRA-tuning its top blocks on which training items co-occur (`l3ae_tune`); the adapters
are kept in the checkpoint, so new items and plain-words requests are read by the same LM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import l3ae_new
from .base import ModelContext, ModelSpec, saved_value
from .ease import EASE, ease_weights, emphasised_l2, interaction_gram, ridged
from .ids import checked_ids
from .l3ae_text import item_adapters, item_vectors, text_matrix, unit_rows, user_vectors
from .l3ae_tune import AdapterStore
from .limits import check_dense_items
from .profile_neighbours import ProfileNeighbours
from .text_features import LMSettings
from .text_source import TextInfo

POOLINGS = ("auto", "mean", "fields", "last")
# How `pooling="auto"` reads the items: the mean of the per-field vectors for every LM so far, chosen
# on ML-100K VALIDATION (`benchmarks/README.md`). minilm: warm 0.2685 vs 0.2681 for the sentence mean.
# gemma3-270m: the mean-pooled sentence first (cold-item at reg 1000-3000: 0.2615 vs 0.2243; PromptEOL +
# last token 0.1749), then fields once B leaned on C (reg 3e5): cold-item 5 draws 0.3177 vs 0.3110
# frozen, 0.3319 vs 0.3198 tuned; warm seeds 0-2 0.2720 vs 0.2714.
COLD_USERS = ("neighbours", "none")
# PromptEOL (Jiang et al. 2023): a decoder summarises the sentence in its next-word state
EOL_PROMPT = 'This movie: "{text}" means in one word: "'


@dataclass
class L3AEConfig(LMSettings):
    pooling: str = field(
        default="auto",
        metadata={
            "help": "item vectors: auto (fields, chosen on validation for minilm and gemma3-270m) | fields "
            "(mean of per-field vectors) | mean (of the sentence's tokens) | last"
        },
    )
    # defaults: the bench's choice on ML-100K warm VALIDATION (seed 0, minilm and gemma3-270m alike, 90-point grid)
    reg: float = field(default=30.0, metadata={"help": "L2 lambda of the interaction EASE (as ease reg)"})
    text_weight: float = field(
        default=300.0, metadata={"help": "mu: pull of B towards the text matrix C (0 = EASE, no LM)"}
    )
    text_reg: float = field(default=3.0, metadata={"help": "L2 lambda of the text EASE that gives C"})
    side_weight: float = field(
        default=10.0, metadata={"help": "weight of the item vectors stacked under X (collective EASE; 0 = off)"}
    )
    dropout: float = field(
        default=0.0,
        metadata={
            "help": "EDLAE emphasis p: item j's L2 becomes reg + p/(1-p) G_jj (frequent items lean less "
            "on their co-counts; 0 = plain reg)"
        },
    )
    max_memory_gb: float = field(
        default=8.0, metadata={"help": "refuse catalogs whose dense item x item matrices need more (GiB)"}
    )
    cold_users: str = field(
        default="neighbours",
        metadata={"help": "users without training items: neighbours (nearest LM profiles' items) | none (score 0)"},
    )
    # cold-user VALIDATION (3 seeds, minilm): k = 50 / 100 / 200 gave 0.5426 / 0.5493 / 0.5522
    cold_user_k: int = field(default=200, metadata={"help": "profile neighbours per cold user"})
    prompt: str = field(
        default="",
        metadata={"help": "wrap each item sentence: '' none | eol (PromptEOL, use with pooling=last) | '...{text}...'"},
    )
    center: bool = field(
        default=False,
        metadata={"help": "subtract the mean item vector before the cosines (decoder states share one direction)"},
    )
    # contrastive LoRA tuning of the LM on co-occurring training items before it reads the items
    # (`l3ae_tune`): for items without interactions; 0 = the frozen LM
    tune_epochs: int = field(
        default=0, metadata={"help": "epochs tuning the LM's top blocks (LoRA) on co-occurring items; 0 = frozen LM"}
    )
    tune_lr: float = field(default=3e-4, metadata={"help": "AdamW learning rate of that tuning"})
    tune_blocks: int = field(
        default=2, metadata={"help": "top LM blocks that get LoRA adapters when tuning (all if it has fewer)"}
    )
    # ML-100K mixed VALIDATION (new and known items in one ranking, seed 0): both LMs chose 5, at reg 300
    # (minilm) and 100 (gemma3-270m), i.e. w = 2.5 and 3.75 times C; 3 at the default reg gives 2.7. Scale 1
    # left new items out of nearly every top 10 (draws 0-1 at the defaults: new_recall@10 0.007 vs 0.33 at 3)
    new_item_scale: float = field(
        default=3.0,
        metadata={
            "help": "multiplies new items' text columns (1: the closed form's mu/(reg+mu) C); > 1 lifts new "
            "items among known ones; it matters only where both are ranked together (a live catalogue)"
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.pooling not in POOLINGS:
            raise ValueError(f"l3ae pooling must be one of {POOLINGS}, got {self.pooling!r}; try --set pooling=fields")
        if not self.max_memory_gb > 0:
            raise ValueError(f"l3ae max_memory_gb must be > 0, got {self.max_memory_gb}")
        if not self.reg > 0 or not self.text_reg > 0:
            raise ValueError(f"l3ae reg and text_reg must be > 0, got {self.reg}, {self.text_reg}; try reg=300")
        if self.text_weight < 0:
            raise ValueError(f"l3ae text_weight must be >= 0, got {self.text_weight}; 0 turns the text off")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"l3ae dropout must be in [0, 1), got {self.dropout}; 0 turns the emphasis off")
        if not self.new_item_scale > 0:
            raise ValueError(f"l3ae new_item_scale must be > 0, got {self.new_item_scale}; 1 is the closed form's")
        if self.side_weight < 0:
            raise ValueError(f"l3ae side_weight must be >= 0, got {self.side_weight}; 0 turns the side rows off")
        if self.cold_users not in COLD_USERS:
            raise ValueError(f"l3ae cold_users must be one of {COLD_USERS}, got {self.cold_users!r}")
        if not self.cold_user_k >= 1:
            raise ValueError(f"l3ae cold_user_k must be >= 1, got {self.cold_user_k}")
        if self.prompt and "{text}" not in self.prompt_format:
            raise ValueError(f"l3ae prompt must contain {{text}} (or be 'eol'), got {self.prompt!r}")
        if self.prompt and self.pooling in ("fields", "auto"):
            raise ValueError("l3ae prompt wraps the whole sentence: use it with pooling=last or mean")
        if self.tune_epochs < 0 or not self.tune_lr > 0 or self.tune_blocks < 1:
            raise ValueError(
                f"l3ae tune_epochs must be >= 0, tune_lr > 0 and tune_blocks >= 1; got {self.tune_epochs}, "
                f"{self.tune_lr}, {self.tune_blocks}; tune_epochs=0 keeps the LM frozen"
            )
        if self.tune_epochs and self.layer != -1:
            raise ValueError("l3ae tunes the LM's top blocks and reads their output: set layer=-1 with tune_epochs")

    def item_pooling(self, lm_name: str) -> str:
        """`pooling`, with auto resolved for the LM `lm_name` (fields for every LM measured so far)."""
        return "fields" if self.pooling == "auto" else self.pooling

    @property
    def prompt_format(self) -> str:
        return EOL_PROMPT if self.prompt == "eol" else self.prompt


class L3AE(EASE):
    """EASE's scorer (history @ B) with the text-regularised B; adds per-liked-item contributions
    and, for users without training items, their profile neighbours' items."""

    def __init__(
        self,
        config: L3AEConfig,
        n_users: int,
        n_items: int,
        history_nnz: int = 0,
        profile_shape=(0, 0),
        text_info: TextInfo | None = None,
        adapter_shapes: dict | None = None,
    ):
        super().__init__(config, n_users, n_items, history_nnz)
        fields, dim = (int(v) for v in profile_shape)
        on = config.cold_users == "neighbours" and fields > 0
        self.neighbours = ProfileNeighbours(n_users, n_items, config.cold_user_k, history_nnz) if on else None
        self.text_info = text_info  # what new users' profiles and new items' rows are read with
        self._lm: dict = {}  # encoders for new users / items, loaded on first need (outside the state_dict)
        new_items = text_info is not None and config.text_weight > 0  # a checkpoint from before: none
        d = text_info.text_dim if new_items else 0
        self.register_buffer("item_map", torch.zeros(n_items, d) if new_items else None)  # (I, D) M, l3ae_new
        self.register_buffer("text_mean", torch.zeros(d) if new_items else None)  # (D,) subtracted when centred
        self.register_buffer("item_text", torch.zeros(n_items, d) if new_items else None)  # (I, D) unit F
        self.register_buffer("user_text", torch.zeros(n_users, fields, dim))  # (U, F, D) profile field vectors
        self.register_buffer("profile_mean", torch.zeros(dim))  # (D,) over the known users' fields
        self.register_buffer("profile_std", torch.ones(dim))  # (D,)
        self.register_buffer("user_known", torch.zeros(n_users, dtype=torch.bool))  # (U,) has training items
        self.lm_adapter = AdapterStore(adapter_shapes)  # the tuned LM's LoRA tensors ({} when frozen)

    def checkpoint_meta(self) -> dict:
        info = None if self.text_info is None else self.text_info.to_dict()
        shape = list(self.user_text.shape[1:])
        return {**super().checkpoint_meta(), "profile_shape": shape, "text_info": info,
                "lm_adapter": self.lm_adapter.shapes()}  # fmt: skip

    @property
    def places_new_users(self) -> bool:
        """Whether users without training items are scored (from their profile neighbours); without
        a users table, or with cold_users='none', every item scores 0 for them."""
        return self.neighbours is not None

    @property
    def profile_info(self) -> TextInfo | None:
        """What a new user's profile may hold (`gpt2rec.coldstart` checks profiles against it)."""
        return self.text_info

    def score_new_user(self, profile: dict) -> torch.Tensor:
        """Scores (I,) of a brand-new user given only as a metadata profile: the share of the known
        users with the nearest LM profiles who had each item (the cold users' route)."""
        return l3ae_new.score_new_user(self, profile)

    def encode_text(self, text: str) -> torch.Tensor:
        """(D,) a plain-words request read as the items are (to match against `item_text`)."""
        return l3ae_new.encode_text(self, text)

    @property
    def lm_loaded(self) -> bool:
        """Whether an LM was loaded for new users, new items or plain words (the server's health)."""
        return bool(self._lm)

    def score_new_items(self, user: int, items_df) -> torch.Tensor:
        """Scores (N,) of brand-new items (a metadata table) for the known internal user `user`, by
        their text columns (`l3ae_new`)."""
        return l3ae_new.score_new_items(self, user, items_df)

    def new_item_rows(self, items_df):
        """New items encoded once (`l3ae_new.new_item_rows`): (N, 1, D), (N, I), (N,)."""
        return l3ae_new.new_item_rows(self, items_df)

    def user_rows(self, users: torch.Tensor) -> torch.Tensor:
        """(B, I) the users' training items: what `new_item_rows`' rows are scored against."""
        return self.history.dense(users)

    @checked_ids
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        scores = super().score_users(users)  # (B, I)
        cold = self._cold(users)  # (B,)
        if cold is not None:
            scores[cold] = self._neighbour_scores(users[cold])
        return scores

    @checked_ids
    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        scores = super().score_pairs(users, items)  # (B,)
        cold = self._cold(users)
        if cold is not None:
            rows = self._neighbour_scores(users[cold])  # (C, I)
            scores[cold] = rows.gather(1, items.to(rows.device)[cold].unsqueeze(1)).squeeze(1)
        return scores

    def _cold(self, users: torch.Tensor) -> torch.Tensor | None:
        if self.neighbours is None:
            return None
        cold = ~self.user_known[users.to(self.user_known.device)]  # (B,)
        return cold if bool(cold.any()) else None

    def _neighbour_scores(self, users: torch.Tensor) -> torch.Tensor:
        """(C, I) share of the nearest known profiles that had each item."""
        known = self.user_known.nonzero().squeeze(1)  # (K,)
        text = self.user_text
        return self.neighbours(text[users.to(text.device)], text[known], known, self.profile_mean, self.profile_std)

    def item_contributions(self, items: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """(K, H): B[h, k], the share of item k's score that comes from liked item h (the score is
        their sum, so removing h from the history lowers it by exactly this)."""
        dev = self.weight.device
        return self.weight[history.to(dev)][:, items.to(dev)].T  # (H, K) -> (K, H)


# ---- closed forms (pure functions of tensors, float64; C's own: l3ae_text) ----------------------
def side_gram(vectors: torch.Tensor, side_weight: float, center: bool = False) -> torch.Tensor:
    """side_weight F F^T (I, I): the Gram matrix of the L2-normalised item vectors (I, D) stacked as D
    extra rows under X (collective EASE), to add to X^T X."""
    f = unit_rows(vectors, center)  # (I, D)
    return side_weight * (f @ f.T)  # (I, I)


def l3ae_weights(gram: torch.Tensor, c: torch.Tensor, reg: float | torch.Tensor, text_weight: float) -> torch.Tensor:
    """B (I, I) minimising ||X - XB||^2 + sum_j reg_j ||B_j||^2 + text_weight ||B - C||^2 with
    diag(B) = 0 (`reg` a scalar or one weight per item (I,), row j of B). A per-item reg keeps the
    closed form: P G = I - P diag(reg + mu), and the diagonal term joins the Lagrange multipliers'
    diag(.)."""
    if text_weight == 0:
        return ease_weights(gram, reg)
    p = torch.linalg.inv(ridged(gram, reg + text_weight))  # (I, I) P = (G + diag(reg) + mu I)^-1
    pc = p @ c  # (I, I)
    b = text_weight * pc - p * ((1.0 + text_weight * pc.diagonal()) / p.diagonal()).unsqueeze(0)
    return b.fill_diagonal_(0.0)


def build(config: L3AEConfig, ctx: ModelContext) -> L3AE:
    # float64 G, P, C, P C and B at the peak of fit (plus C's own inverse): about 64 I^2 bytes
    check_dense_items("l3ae", ctx.n_items, 64, config.max_memory_gb)
    # a checkpoint from before the cold-user route has no profile_shape: it loads without the route
    adapters = None
    if ctx.saved is not None:
        shape, info = ctx.saved.get("profile_shape", [0, 0]), ctx.saved.get("text_info")
        info, adapters = None if info is None else TextInfo(**info), ctx.saved.get("lm_adapter")
    else:
        shape, dim = profile_shape(config, ctx), 0
        if config.text_weight > 0 and ctx.dataset is not None:
            dim = item_vectors(config, ctx.dataset, torch.device("cpu"))[0].shape[1]
        dim = dim or shape[1]
        info = l3ae_new.text_info(config, ctx.dataset, dim) if dim else None
    model = L3AE(config, ctx.n_users, ctx.n_items, saved_value(ctx, "history_nnz", 0), shape, info, adapters)
    return model.to(ctx.device)


def profile_shape(config: L3AEConfig, ctx: ModelContext) -> tuple[int, int]:
    """(F, D) of the users' profile field vectors; (0, 0) when the cold-user route is off or the
    dataset has no user table to read."""
    users = None if ctx.dataset is None else ctx.dataset.users
    if config.cold_users == "none" or users is None or not [c for c in users.columns if c != "user_id"]:
        return (0, 0)
    vecs = user_vectors(config, ctx.dataset, torch.device("cpu"))
    return tuple(vecs.shape[1:])


@torch.no_grad()
def fit(model: L3AE, ctx: ModelContext) -> None:
    cfg = model.config
    device = model.weight.device
    gram = interaction_gram(ctx.train, ctx.n_users, ctx.n_items, device)  # (I, I)
    if cfg.text_weight > 0 or cfg.side_weight > 0:
        if ctx.dataset is None:
            raise ValueError("l3ae needs the dataset's item metadata to fit (text_weight or side_weight > 0)")
        # read once, by the LM first tuned on the training data when tune_epochs > 0
        vectors, key = item_vectors(cfg, ctx.dataset, device, ctx.train)  # (I, D)
        model.lm_adapter.load({k: v.to(device) for k, v in item_adapters(key).items()})
        model._lm.clear()  # encoders loaded for an earlier fit may hold other adapters
    if cfg.side_weight > 0:
        gram += side_gram(vectors, cfg.side_weight, cfg.center)
    reg = emphasised_l2(gram, cfg.reg, cfg.dropout)  # scalar, or (I,)
    if cfg.text_weight > 0:
        c = text_matrix(cfg, ctx.dataset, device, ctx.train)  # (I, I)
        b = l3ae_weights(gram, c, reg, cfg.text_weight)
        if ctx.new_items is not None and len(ctx.new_items):  # a cold-item split's: scored as brand-new
            new = torch.as_tensor(ctx.new_items, device=device)
            b = l3ae_new.text_columns(b, c, new, l3ae_new.new_item_weight(cfg))
        if model.item_map is not None:
            unit = unit_rows(vectors, cfg.center)  # (I, D) float64
            model.item_text.copy_(unit)
            model.item_map.copy_(l3ae_new.new_item_map(unit, l3ae_new.new_item_weight(cfg), cfg.text_reg))
            model.text_mean.copy_(vectors.mean(0) if cfg.center else torch.zeros_like(model.text_mean))
    else:
        b = ease_weights(gram, reg)
    model.weight.copy_(b.float())
    model.history.fit(ctx.train)
    model.user_known.zero_().index_fill_(0, torch.as_tensor(ctx.train["user"].unique(), device=device), True)
    if model.neighbours is not None:
        text = user_vectors(cfg, ctx.dataset, device)  # (U, F, D)
        model.user_text.copy_(text)
        flat = text[model.user_known].flatten(0, 1)  # (K F, D)
        model.profile_mean.copy_(flat.mean(0))
        model.profile_std.copy_(flat.std(0).clamp_min(1e-6))
        model.neighbours.fit(ctx.train)


SPEC = ModelSpec(
    name="l3ae",
    config_cls=L3AEConfig,
    build=build,
    fit=fit,
    description="L3AE: EASE pulled towards an item-item matrix from the LM's item vectors (closed form)",
    # `train --tune`: reg x text_weight around the ML-100K warm choice (the default first), up to the
    # large text_weight at which an item's column of B is its text column; and text_reg, which alone
    # sets the text columns new items are scored by (ML-100K cold-item valid: minilm wants 30,
    # gemma3-270m 1, benchmarks/README.md)
    tune_grid=tuple(
        {"reg": r, "text_weight": w, "text_reg": t}
        for t in (3.0, 1.0, 30.0)
        for r in (30.0, 10.0, 100.0, 300.0, 1000.0)
        for w in (300.0, 100.0, 1000.0, 3000.0, 3e5)
    ),
    # a mixed split (new items ranked among known ones) also tries new_item_scale around the defaults
    # (the bench's mixed protocol chose 5 for both LMs, at reg 300 and 100)
    tune_extra={
        "mixed": tuple(
            {"reg": r, "text_weight": w, "text_reg": 3.0, "new_item_scale": s}
            for s in (1.0, 2.0, 5.0, 10.0)
            for r in (30.0, 100.0)
            for w in (300.0, 1000.0)
        )
    },
    # runs saved before these settings existed had no side rows, no cold-user route, unscaled new items
    legacy_defaults={"side_weight": 0.0, "cold_users": "none", "new_item_scale": 1.0},
)
