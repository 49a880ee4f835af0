"""Text plumbing shared by the GPT-2 recommenders (basic, enhanced): LM settings, rendering,
frozen-LM tables (through the on-disk cache) and the LM runtime for dynamic encoding. Heavy imports (transformers, peft) happen inside `text.encoder` only.

`register_lm(name, factory)` is the escape hatch for models not loadable by name (tests inject a
tiny GPT-2 this way): `factory() -> (model, tokenizer)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..text.distinct import field_names, texts_to_encode
from ..text.templates import Rendered, TemplateConfig, item_texts, user_texts
from ..utils.config import check_field_types

_INJECTED: dict[str, Callable[[], tuple]] = {}


def register_lm(name: str, factory: Callable[[], tuple] | None) -> None:
    """Make `lm=name` load `factory()` -> (model, tokenizer); None unregisters."""
    if factory is None:
        _INJECTED.pop(name, None)
    else:
        _INJECTED[name] = factory


@dataclass
class LMSettings:
    """Language-model fields common to the GPT-2 recommenders (settable with --set key=value)."""

    lm: str = field(
        default="auto",
        metadata={
            "help": "hub ID, local folder, or alias (gemma3-270m, minilm); auto = gpt2 if cached else gemma3-270m"
        },
    )
    pooling: str = field(default="mean", metadata={"help": "how the LM's token states become text vectors"})
    layer: int = field(default=-1, metadata={"help": "LM layer to read (-1 = final output)"})
    max_length: int = field(default=64, metadata={"help": "max tokens per text"})
    encode_batch_size: int = field(default=64, metadata={"help": "texts per LM forward pass when caching"})
    lm_dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | float16"})
    text_cache: bool = field(default=True, metadata={"help": "reuse frozen-LM vectors from the on-disk cache"})
    template: TemplateConfig = field(default_factory=TemplateConfig, metadata={"help": "metadata -> text"})

    def __post_init__(self):  # validation only (typed conversion: utils.config.from_dict)
        check_field_types(self, type(self).__name__)  # built directly, not by from_dict
        if not isinstance(self.template, TemplateConfig):
            raise TypeError(f"template must be a TemplateConfig, got {type(self.template).__name__}")
        if not str(self.lm):
            raise ValueError("lm must name a language model (hub ID, folder, gemma3-270m, minilm) or 'auto'")
        if self.max_length < 1 or self.encode_batch_size < 1:
            raise ValueError(
                f"max_length and encode_batch_size must be >= 1; got {self.max_length}, {self.encode_batch_size}"
            )


def check_lm(name: str, flag: str = "--lm") -> None:
    """A UserError now, naming `flag`, when `name` cannot be loaded (an injected LM always can)."""
    name = resolve_lm_name(name)
    if name not in _INJECTED:
        from ..text.offline import resolve_lm

        resolve_lm(name, flag=flag)


def resolve_lm_name(name: str) -> str:
    if name != "auto":
        return name
    from ..text.offline import default_lm

    return default_lm()


def make_encoder(settings: LMSettings, lm_name: str, device: torch.device, pooling: str, **finetune):
    """A `TextEncoder` for `lm_name` (an injected factory, or loaded by name); `finetune` kwargs go
    to EncoderConfig (finetune, lora_r, lora_alpha, lora_dropout, lora_targets, top_n_blocks)."""
    from ..text.encoder import EncoderConfig, TextEncoder

    config = EncoderConfig(
        model=lm_name,
        pooling=pooling,
        layer=settings.layer,
        max_length=settings.max_length,
        batch_size=settings.encode_batch_size,
        device=str(device),
        dtype=settings.lm_dtype,
        **finetune,
    )
    if lm_name in _INJECTED:
        model, tokenizer = _INJECTED[lm_name]()
        return TextEncoder(config, model=model, tokenizer=tokenizer)
    return TextEncoder(config)


def render(settings: LMSettings, dataset, train=None) -> tuple[list[Rendered], list[Rendered]]:
    """User and item sentences (row i = internal index i)."""
    return user_texts(dataset, settings.template, train), item_texts(dataset, settings.template)


def encode_rendered(
    encoder, rendered: list[Rendered], fields: list[str] | None, use_cache: bool, progress: bool | None = None
):
    """Frozen-LM vectors of `rendered` without gradients: (N, D) or (N, F, D) for fields pooling.
    `progress=None`: a bar on a terminal only (a model build inside a logged job, e.g. the bench's,
    would otherwise write the bar's every refresh into the log).

    Goes through `gpt2rec.text.cache` when `use_cache` (vectors of a frozen LM never change)."""
    texts = [r.text for r in rendered]
    spans = [r.spans for r in rendered] if encoder.config.pooling == "fields" else None
    if use_cache:
        try:
            from ..text import cache as text_cache
        except ImportError:  # the cache module is optional
            text_cache = None
        if text_cache is not None and hasattr(text_cache, "cached_encode"):
            return text_cache.cached_encode(encoder, texts, spans, progress=progress, fields=fields)
    return encoder.encode(texts, spans, progress=progress, fields=fields)


@dataclass
class TextTables:
    """Frozen-LM vectors of the DISTINCT user and item texts, and each entity's row among them:
    metadata sentences repeat (10^6 users of a few hundred profiles), so the tables stay small."""

    users: torch.Tensor  # (Ku, D) or (Ku, Fu, D), Ku distinct user texts
    items: torch.Tensor  # (Ki, D) or (Ki, Fi, D)
    user_fields: list[str]
    item_fields: list[str]
    user_rendered: list[Rendered]
    item_rendered: list[Rendered]
    lm: str
    encoder: object = None
    user_rows: torch.Tensor | None = None  # (U,) row of each user in `users` (None: one row each)
    item_rows: torch.Tensor | None = None  # (I,)

    @property
    def text_dim(self) -> int:
        return int(self.users.shape[-1])

    def dense(self, kind: str) -> torch.Tensor:
        """Every entity's vectors (N, ...) (materialised: for small catalogs)."""
        table, rows = (self.users, self.user_rows) if kind == "user" else (self.items, self.item_rows)
        return table if rows is None else table[rows]


# Training defaults of the GPT-2 recommenders (basic, enhanced): one pass over every entity per step,
# so large batches are cheap (4 negatives each)
LM_TRAIN_DEFAULTS = {"epochs": 40, "batch_size": 4096, "lr": 3e-3, "patience": 5, "num_neg": 4}


def encode_distinct(
    encoder, rendered: list[Rendered], fields, use_cache: bool, progress: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(vectors of the distinct texts (K, ...), (N,) row of each text): each distinct text through
    the LM once when texts repeat a lot (`text.distinct.DEDUP_SHARE`)."""
    sent, distinct, rows = texts_to_encode(rendered)
    vectors = encode_rendered(encoder, sent, fields, use_cache, progress)
    return (vectors if len(sent) == len(distinct) else vectors[distinct]), rows  # (K, ...), (N,)


def encode_tables(settings: LMSettings, dataset, train, device, pooling: str, keep_encoder: bool = False) -> TextTables:
    """Render every user and item and encode their distinct texts with the FROZEN LM (cached on disk)."""
    lm_name = resolve_lm_name(settings.lm)
    users_r, items_r = render(settings, dataset, train)
    ufields, ifields = field_names(users_r), field_names(items_r)
    encoder = make_encoder(settings, lm_name, device, pooling)
    u, urows = encode_distinct(encoder, users_r, ufields if pooling == "fields" else None, settings.text_cache)
    i, irows = encode_distinct(encoder, items_r, ifields if pooling == "fields" else None, settings.text_cache)
    return TextTables(
        u, i, ufields, ifields, users_r, items_r, lm_name, encoder if keep_encoder else None, urows, irows
    )


def id_embeddings(n_users: int, n_items: int, dim: int, std: float) -> tuple[torch.nn.Embedding, torch.nn.Embedding]:
    """User and item ID tables (U, dim), (I, dim), initialised N(0, std^2)."""
    users, items = torch.nn.Embedding(n_users, dim), torch.nn.Embedding(n_items, dim)
    torch.nn.init.normal_(users.weight, std=std)
    torch.nn.init.normal_(items.weight, std=std)
    return users, items
