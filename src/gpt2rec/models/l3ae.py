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

Scores are X_u B. A cold item (no training interaction) has column j of X^T X zero; with
side_weight = 0, P_ij = 0 for i != j and its column is mu (P C)_:j: scored from the items whose text
resembles it (side_weight > 0 adds the items whose vectors overlap it through G). The score of j
for user u is a sum of B_ij over the user's items i, which is what the explanation shows (the liked
items with the largest B_ij).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

from .base import ModelContext, ModelSpec, saved_value
from .ease import EASE, ease_weights, interaction_gram
from .limits import check_dense_items
from .text_features import LMSettings, encode_rendered, field_names, make_encoder, resolve_lm_name

POOLINGS = ("mean", "fields", "last")
# PromptEOL (Jiang et al. 2023): a decoder summarises the sentence in its next-word state
EOL_PROMPT = 'This movie: "{text}" means in one word: "'


@dataclass
class L3AEConfig(LMSettings):
    pooling: str = field(
        default="fields", metadata={"help": "item vectors: fields (mean of per-field vectors) | mean | last"}
    )
    # defaults: the bench's choice on ML-100K warm VALIDATION (seed 0, minilm, 18-point grid)
    reg: float = field(default=30.0, metadata={"help": "L2 lambda of the interaction EASE (as ease reg)"})
    text_weight: float = field(
        default=300.0, metadata={"help": "mu: pull of B towards the text matrix C (0 = EASE, no LM)"}
    )
    text_reg: float = field(default=30.0, metadata={"help": "L2 lambda of the text EASE that gives C"})
    side_weight: float = field(
        default=10.0, metadata={"help": "weight of the item vectors stacked under X (collective EASE; 0 = off)"}
    )
    max_memory_gb: float = field(
        default=8.0, metadata={"help": "refuse catalogs whose dense item x item matrices need more (GiB)"}
    )
    prompt: str = field(
        default="",
        metadata={"help": "wrap each item sentence: '' none | eol (PromptEOL, use with pooling=last) | '...{text}...'"},
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
        if self.side_weight < 0:
            raise ValueError(f"l3ae side_weight must be >= 0, got {self.side_weight}; 0 turns the side rows off")
        if self.prompt and "{text}" not in self.prompt_format:
            raise ValueError(f"l3ae prompt must contain {{text}} (or be 'eol'), got {self.prompt!r}")
        if self.prompt and self.pooling == "fields":
            raise ValueError("l3ae prompt wraps the whole sentence: use it with pooling=last or mean, not fields")

    @property
    def prompt_format(self) -> str:
        return EOL_PROMPT if self.prompt == "eol" else self.prompt


class L3AE(EASE):
    """EASE's scorer (history @ B) with the text-regularised B; adds per-liked-item contributions."""

    def item_contributions(self, items: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """(K, H): B[h, k], the share of item k's score that comes from liked item h (the score is
        their sum, so removing h from the history lowers it by exactly this)."""
        dev = self.weight.device
        return self.weight[history.to(dev)][:, items.to(dev)].T  # (H, K) -> (K, H)


# ---- closed forms (pure functions of tensors, float64) --------------------------------------------
def semantic_matrix(vectors: torch.Tensor, text_reg: float) -> torch.Tensor:
    """C (I, I): EASE over the item vectors (I, D), rows L2-normalised, so F F^T holds cosines."""
    f = torch.nn.functional.normalize(vectors.double(), dim=1)  # (I, D)
    return ease_weights(f @ f.T, text_reg)  # (I, I)


def side_gram(vectors: torch.Tensor, side_weight: float) -> torch.Tensor:
    """side_weight F F^T (I, I): the Gram matrix of the L2-normalised item vectors (I, D) stacked as D
    extra rows under X (collective EASE), to add to X^T X."""
    f = torch.nn.functional.normalize(vectors.double(), dim=1)  # (I, D)
    return side_weight * (f @ f.T)  # (I, I)


def l3ae_weights(gram: torch.Tensor, c: torch.Tensor, reg: float, text_weight: float) -> torch.Tensor:
    """B (I, I) minimising ||X - XB||^2 + reg ||B||^2 + text_weight ||B - C||^2 with diag(B) = 0."""
    if text_weight == 0:
        return ease_weights(gram, reg)
    eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    p = torch.linalg.inv(gram + (reg + text_weight) * eye)  # (I, I)
    pc = p @ c  # (I, I)
    b = text_weight * pc - p * ((1.0 + text_weight * pc.diagonal()) / p.diagonal()).unsqueeze(0)
    return b.fill_diagonal_(0.0)


# ---- item vectors from the frozen LM (memoised: a grid refits many times on the same texts) ------
_VECTORS: dict[tuple, torch.Tensor] = {}
_SEMANTIC: dict[tuple, torch.Tensor] = {}


def item_vectors(config: L3AEConfig, dataset, device) -> tuple[torch.Tensor, tuple]:
    """(I, D) frozen-LM vectors of the item sentences (and their memo key): the sentence vector
    (`mean`, `last`; wrapped in `prompt` when set) or the mean of the per-field vectors (`fields`).
    Read through the on-disk embedding cache."""
    from ..text.templates import Rendered, item_texts

    lm = resolve_lm_name(config.lm)
    rendered = item_texts(dataset, config.template)
    if config.prompt:  # the spans no longer match the text: the config refuses fields pooling here
        rendered = [Rendered(config.prompt_format.replace("{text}", r.text), {}) for r in rendered]
    digest = hashlib.sha256("\x00".join(r.text for r in rendered).encode("utf-8")).hexdigest()
    key = (lm, config.pooling, config.layer, config.max_length, config.lm_dtype, digest)
    if key not in _VECTORS:
        encoder = make_encoder(config, lm, device, config.pooling)
        fields = field_names(rendered) if config.pooling == "fields" else None
        vecs = encode_rendered(encoder, rendered, fields, config.text_cache, progress=False)
        vecs = vecs.float().mean(1) if vecs.dim() == 3 else vecs.float()  # (I, F, D) -> (I, D)
        del encoder
        _VECTORS.clear()  # keep one table (and its C matrices): bounded memory
        _SEMANTIC.clear()
        _VECTORS[key] = vecs.cpu()
    return _VECTORS[key].to(device), key


def text_matrix(config: L3AEConfig, dataset, device) -> torch.Tensor:
    """C (I, I) of `config`'s LM reading of the items, memoised per (vectors, text_reg)."""
    vectors, key = item_vectors(config, dataset, device)
    if (key, config.text_reg) not in _SEMANTIC:
        _SEMANTIC[(key, config.text_reg)] = semantic_matrix(vectors, config.text_reg)
    return _SEMANTIC[(key, config.text_reg)].to(device)


def build(config: L3AEConfig, ctx: ModelContext) -> L3AE:
    # float64 G, P, C, P C and B at the peak of fit (plus C's own inverse): about 64 I^2 bytes
    check_dense_items("l3ae", ctx.n_items, 64, config.max_memory_gb)
    return L3AE(config, ctx.n_users, ctx.n_items, saved_value(ctx, "history_nnz", 0)).to(ctx.device)


@torch.no_grad()
def fit(model: L3AE, ctx: ModelContext) -> None:
    cfg = model.config
    device = model.weight.device
    gram = interaction_gram(ctx.train, ctx.n_users, ctx.n_items, device)  # (I, I)
    c = torch.zeros_like(gram)
    if cfg.text_weight > 0 or cfg.side_weight > 0:
        if ctx.dataset is None:
            raise ValueError("l3ae needs the dataset's item metadata to fit (text_weight or side_weight > 0)")
    if cfg.text_weight > 0:
        c = text_matrix(cfg, ctx.dataset, device)  # (I, I)
    if cfg.side_weight > 0:
        gram += side_gram(item_vectors(cfg, ctx.dataset, device)[0], cfg.side_weight)
    model.weight.copy_(l3ae_weights(gram, c, cfg.reg, cfg.text_weight).float())
    model.history.fit(ctx.train)


SPEC = ModelSpec(
    name="l3ae",
    config_cls=L3AEConfig,
    build=build,
    fit=fit,
    description="L3AE: EASE pulled towards an item-item matrix from the LM's item vectors (closed form)",
)
