"""The enhanced recommender's configuration (every field settable with `--set key=value`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .text_features import LMSettings

STRATEGIES = ("cached", "end2end", "hybrid")


@dataclass
class EnhancedConfig(LMSettings):
    pooling: str = field(default="fields", metadata={"help": "fields (per-field vectors: the attention set)"})
    dim: int = field(default=128, metadata={"help": "ID / fused representation size"})
    n_heads: int = field(default=4, metadata={"help": "attention heads (dim must be divisible)"})
    use_attention: bool = field(default=True, metadata={"help": "False: concatenation ablation"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the fusion"})
    init_std: float = field(default=0.05, metadata={"help": "std of the ID embedding initialisation"})
    id_dropout: float = field(default=0.1, metadata={"help": "prob. of replacing an ID by 'unknown' in training"})
    # off by default: the bench refuted "the contrastive term improves generalisation" on cold-item
    # (5 draws, -0.027 ndcg@10, 95% CI [-0.055, -0.000]) and showed no gain on warm or sparse-20
    contrastive_weight: float = field(default=0.0, metadata={"help": "lambda of the ID/text InfoNCE (0 = off)"})
    temperature: float = field(default=0.1, metadata={"help": "InfoNCE temperature"})
    contrastive_size: int = field(default=256, metadata={"help": "max users / items per step in the InfoNCE set"})
    strategy: str = field(default="cached", metadata={"help": "cached | end2end | hybrid"})
    hybrid_cached_epochs: int = field(default=3, metadata={"help": "hybrid: first epochs on cached vectors (E1)"})
    hybrid_end2end_epochs: int = field(default=2, metadata={"help": "hybrid: then epochs of dynamic encoding (E2)"})
    freeze_lm: bool = field(default=False, metadata={"help": "never update the LM (dynamic encoding still possible)"})
    use_peft: bool = field(default=True, metadata={"help": "LoRA adapters (False: fine-tune the top blocks fully)"})
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] | None = field(default=None, metadata={"help": "None = by architecture"})
    top_n_blocks: int = field(default=2, metadata={"help": "LM blocks tuned end to end (the rest stays frozen)"})
    fast: bool = field(default=True, metadata={"help": "fast end-to-end mode: lower LM states computed once"})
    dynamic_sample: int = field(
        default=128,
        metadata={
            "help": "dynamic steps: at most this many users and as many "
            "items (a fresh random draw per step) go through the LM with gradients; the rest "
            "read the cache, which those passes keep current (0 = every entity of the batch)"
        },
    )
    use_ids: bool = field(default=True, metadata={"help": "False: text-only ablation (every ID is 'unknown')"})
    use_text: bool = field(default=True, metadata={"help": "False: IDs-only ablation (no LM fields fused)"})
    item_bias: bool = field(default=True, metadata={"help": "a learned per-item bias added to the score"})
    cold_users: str = field(
        default="neighbours",
        metadata={
            "help": "new users: neighbours (training items of the "
            "cold_user_k known users with the nearest LM profile vectors) | model (the unknown ID "
            "attending over the profile)"
        },
    )
    cold_user_k: int = field(default=100, metadata={"help": "neighbours per new user (cold_users=neighbours)"})
    use_history: bool = field(default=False, metadata={"help": "add an SVD++-style sum over the user's training items"})
    layer_norm: bool = field(
        default=False, metadata={"help": "LayerNorm on the fused representation (slower to train on ML-100K)"}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.pooling != "fields":
            raise ValueError(f"enhanced needs pooling='fields' (the attention set), got {self.pooling!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        checks = [
            (self.dim >= 1 and self.n_heads >= 1, f"dim and n_heads must be >= 1, got {self.dim}, {self.n_heads}"),
            (
                not self.use_attention or self.dim % self.n_heads == 0,
                f"dim={self.dim} must be divisible by n_heads={self.n_heads}",
            ),
            (0 <= self.dropout < 1 and 0 <= self.id_dropout < 1, "dropout and id_dropout must be in [0, 1)"),
            (self.use_ids or self.use_text, "use_ids and use_text cannot both be False"),
            (self.contrastive_weight >= 0 and self.temperature > 0, "need contrastive_weight >= 0 and temperature > 0"),
            (self.contrastive_size >= 2, f"contrastive_size must be >= 2, got {self.contrastive_size}"),
            (
                self.cold_users in ("neighbours", "model"),
                f"cold_users must be neighbours or model, got {self.cold_users!r}",
            ),
            (self.cold_user_k >= 1, f"cold_user_k must be >= 1, got {self.cold_user_k}"),
            (self.dynamic_sample >= 0, f"dynamic_sample must be >= 0 (0 = no cap), got {self.dynamic_sample}"),
            (
                self.hybrid_cached_epochs >= 0 and self.hybrid_end2end_epochs >= 0,
                "hybrid epochs must be >= 0",
            ),
            (self.top_n_blocks >= 1 and self.lora_r >= 1, "top_n_blocks and lora_r must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"enhanced config: {message}")

    @property
    def dynamic(self) -> bool:
        return self.strategy in ("end2end", "hybrid")

    def finetune_kwargs(self) -> dict:
        if self.freeze_lm:
            return {"finetune": "frozen"}
        out = {"finetune": "lora" if self.use_peft else "full", "top_n_blocks": self.top_n_blocks}
        if self.use_peft:
            out.update(
                lora_r=self.lora_r,
                lora_alpha=self.lora_alpha,
                lora_dropout=self.lora_dropout,
                lora_targets=self.lora_targets,
            )
        return out
