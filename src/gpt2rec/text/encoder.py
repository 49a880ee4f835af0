"""Sentences -> vectors with a pretrained language model (GPT-2 by default; any HF model works).

    enc = TextEncoder(EncoderConfig(model="gemma3-270m", pooling="mean"))
    vecs = enc.encode(texts)                 # (N, D) float32, no grad, batched, sorted by length
    vecs = enc.encode_train(batch_texts)     # (B, D) with gradients (LoRA / full fine-tuning)

Pooling over the chosen layer (`layer=-1`: the model's final output, after its final norm; other
values index `hidden_states`, 0 = embeddings):
- "mean": attention-mask-aware mean over tokens -> (N, D)
- "last": the last non-pad token (left or right padding) -> (N, D)
- "fields": per-field means over the tokens overlapping each field's character span -> (N, F, D);
  fields in the order of the first text's spans (or `fields=`); a missing/truncated field -> zeros
- "tokens": (states (N, L, D), mask (N, L)), padded to the longest text

Texts are padded on the right (causal LMs: valid positions then never see a pad, so a text gives the
same vector alone or in any batch). Identical inputs in one call are encoded once.

`state_dict()` of a TextEncoder holds only its trainable tensors (LoRA adapters, or the fine-tuned
blocks): frozen pretrained weights come back from `config.model`, never from a checkpoint.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import UserError
from ..utils.device import pick_device
from ..utils.progress import progress_bar
from .backbone import base_model, transformer_blocks
from .lora import apply_finetune

POOLINGS = ("mean", "last", "fields", "tokens")
FINETUNE = ("frozen", "lora", "full")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
Spans = dict  # field name -> (start, end) character offsets


@dataclass
class EncoderConfig:
    model: str = field(default="gpt2", metadata={"help": "hub ID, local folder, or alias (gemma3-270m, minilm)"})
    pooling: str = field(default="mean", metadata={"help": "mean | last | fields | tokens"})
    layer: int = field(default=-1, metadata={"help": "-1 = final output; else hidden_states index"})
    max_length: int = 64
    batch_size: int = 64
    device: str | None = None
    dtype: str = "float32"
    finetune: str = field(default="frozen", metadata={"help": "frozen | lora | full"})
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] | None = field(default=None, metadata={"help": "None = by architecture"})
    top_n_blocks: int | None = field(default=None, metadata={"help": "fine-tune only the top N blocks"})

    def __post_init__(self):  # validation only (typed conversion: utils.config.from_dict)
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got '{self.pooling}'")
        if self.finetune not in FINETUNE:
            raise ValueError(f"finetune must be one of {FINETUNE}, got '{self.finetune}'")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got '{self.dtype}'")
        for name in ("max_length", "batch_size", "lora_r"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.top_n_blocks is not None:
            if self.top_n_blocks < 1:
                raise ValueError(f"top_n_blocks must be >= 1 (or None for all), got {self.top_n_blocks}")
            if self.finetune == "frozen":
                raise ValueError("top_n_blocks only applies when fine-tuning: set finetune='lora' or 'full'")
        if self.lora_targets is not None and not isinstance(self.lora_targets, tuple):
            raise TypeError(f"lora_targets must be a tuple of module names (or None), got {self.lora_targets!r}")


@dataclass
class Prepared:
    """Texts tokenized once: unique inputs, the map back to the caller's order, length-sorted batches."""

    inverse: torch.Tensor  # (N,) index into the unique inputs
    input_ids: list[list[int]]  # per unique input, unpadded
    offsets: list[list[tuple[int, int]]] | None  # per unique input (fields pooling only)
    spans: list[Spans] | None
    batches: list[list[int]]  # indices into the unique inputs, longest first

    @property
    def n_unique(self) -> int:
        return len(self.input_ids)


class TextEncoder(nn.Module):
    """A pretrained LM plus pooling. Pass `model` and `tokenizer` to inject them (tests, custom models)."""

    def __init__(self, config: EncoderConfig | None = None, model=None, tokenizer=None, model_id: str | None = None):
        super().__init__()
        self.config = config or EncoderConfig()
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model and tokenizer to inject a model, or neither to load config.model")
        if model is None:
            model, tokenizer, model_id = load_pretrained(self.config.model)
        self.model_id = model_id or getattr(model.config, "_name_or_path", "") or "injected"
        self.injected = model_id is None
        self.backbone = base_model(model)
        self.backbone.config.use_cache = False
        self.tokenizer = prepare_tokenizer(tokenizer)
        self.hidden_size: int = int(self.backbone.config.hidden_size)
        self.n_layers: int = len(transformer_blocks(self.backbone)[1])
        self.fields: list[str] = []  # field order of the last "fields" pooling call
        self._static_fp: dict | None = None
        if not -(self.n_layers + 1) <= self.config.layer <= self.n_layers:
            raise UserError(
                f"layer must be in [-{self.n_layers + 1}, {self.n_layers}] for this model, got {self.config.layer}"
            )
        if self.config.pooling == "fields" and not getattr(self.tokenizer, "is_fast", False):
            raise UserError(
                "pooling='fields' needs a fast tokenizer (character offsets); use a model with tokenizer.json"
            )
        self.device = pick_device(self.config.device)
        self.backbone.to(device=self.device, dtype=DTYPES[self.config.dtype])
        apply_finetune(self.backbone, self.config)
        self.register_state_dict_post_hook(_drop_frozen_state)
        self.register_load_state_dict_post_hook(_ignore_frozen_missing)
        self.eval()  # like from_pretrained; the training loop switches to train() (dropout, LoRA dropout)

    # ---- tokenization and batching -------------------------------------------------------------
    def prepare(self, texts: Sequence[str], spans: Sequence[Spans] | None = None) -> Prepared:
        """Deduplicate, tokenize (truncating to max_length, with a warning), sort into batches."""
        texts = list(texts)
        fields = self.config.pooling == "fields"
        if fields:
            if spans is None or len(spans) != len(texts):
                raise ValueError("pooling='fields' needs one spans dict per text (see templates.texts_and_spans)")
            keys = [(t, tuple(sorted(s.items()))) for t, s in zip(texts, spans)]
        else:
            keys = texts
        index: dict = {}
        inverse = [index.setdefault(k, len(index)) for k in keys]
        first = {j: i for i, j in reversed(list(enumerate(inverse)))}
        unique = [texts[first[j]] for j in range(len(index))]
        uniq_spans = [spans[first[j]] for j in range(len(index))] if fields else None
        ids, offsets = self._tokenize(unique, fields)
        order = sorted(range(len(ids)), key=lambda j: -len(ids[j]))
        size = self.config.batch_size
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        return Prepared(torch.tensor(inverse, dtype=torch.long), ids, offsets, uniq_spans, batches)

    def _tokenize(self, texts: list[str], offsets: bool):
        if not texts:
            return [], [] if offsets else None
        enc = self.tokenizer(texts, return_offsets_mapping=offsets, padding=False, truncation=False)
        ids = enc["input_ids"]
        long = [i for i, x in enumerate(ids) if len(x) > self.config.max_length]
        if long:
            warnings.warn(
                f"{len(long)} of {len(texts)} texts exceed max_length={self.config.max_length} tokens and are "
                f"truncated (longest {max(len(ids[i]) for i in long)}); raise max_length (--set max_length=N) to keep them",
                stacklevel=3,
            )
            cut = self.tokenizer(
                [texts[i] for i in long],
                return_offsets_mapping=offsets,
                truncation=True,
                max_length=self.config.max_length,
            )
            for k, i in enumerate(long):
                ids[i] = cut["input_ids"][k]
                if offsets:
                    enc["offset_mapping"][i] = cut["offset_mapping"][k]
        return ids, (enc["offset_mapping"] if offsets else None)

    def pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad token rows -> input_ids (B, L), attention_mask (B, L) on the encoder's device."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        return ids.to(self.device), mask.to(self.device)

    # ---- model ---------------------------------------------------------------------------------
    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states of the configured layer: (B, L) ids and mask -> (B, L, D)."""
        layer = self.config.layer
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=layer != -1)
        return out.last_hidden_state if layer == -1 else out.hidden_states[layer]

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor, prepared: Prepared | None = None, rows=None):
        """Pool (B, L, D) states with the configured method; `prepared`/`rows` give offsets for fields."""
        hidden = hidden.float()
        kind = self.config.pooling
        if kind == "mean":
            return mean_pool(hidden, mask)
        if kind == "last":
            return last_pool(hidden, mask)
        if kind == "tokens":
            return hidden * mask.unsqueeze(-1).to(hidden.dtype), mask  # padding rows are zero
        weights = field_weights(
            [prepared.offsets[j] for j in rows], [prepared.spans[j] for j in rows], self.fields, hidden.shape[1]
        )
        return field_pool(hidden, weights.to(hidden.device))

    def _run(self, prepared: Prepared, rows: list[int]):
        ids, mask = self.pad([prepared.input_ids[j] for j in rows])
        return self.pool(self.hidden(ids, mask), mask, prepared, rows)

    def encode(
        self,
        texts: Sequence[str],
        spans: Sequence[Spans] | None = None,
        progress: bool | None = True,
        fields=None,
        distributed: bool = False,
    ):
        """Embed texts without gradients, in eval mode: (N, D), (N, F, D) or ((N, L, D), (N, L)).
        `progress`: a bar (True), none (False), a bar on a terminal only (None).

        `distributed=True` under torchrun (every rank must call it): rank r runs every world-th batch
        of the distinct texts, the very batches one process would run, so the gathered vectors (on
        every rank) are identical to a single-process encode."""
        from .. import distributed as dist

        prepared = self.prepare(texts, spans)
        self._set_fields(prepared, fields)
        shards = dist.world_size() if distributed else 1
        mine = prepared.batches[dist.rank() :: shards] if shards > 1 else prepared.batches
        was_training = self.training
        self.eval()
        results: dict[int, object] = {}
        try:
            with torch.no_grad():
                for rows in progress_bar(mine, desc="encoding", unit="batch", show=progress, leave=False):
                    out = self._run(prepared, rows)
                    for k, j in enumerate(rows):
                        results[j] = (out[0][k], out[1][k]) if isinstance(out, tuple) else out[k]
        finally:
            self.train(was_training)
        if shards > 1:  # CPU copies travel (gloo and nccl alike); every rank gets every row
            mine_cpu = {j: tuple(t.cpu() for t in v) if isinstance(v, tuple) else v.cpu() for j, v in results.items()}
            results = {j: v for part in dist.all_gather_object(mine_cpu) for j, v in part.items()}
        return self._assemble(prepared, results)

    def encode_train(self, texts: Sequence[str], spans: Sequence[Spans] | None = None, fields=None):
        """Embed one training batch WITH gradients (current train/eval mode); duplicates run once."""
        prepared = self.prepare(texts, spans)
        self._set_fields(prepared, fields)
        rows = list(range(prepared.n_unique))
        out = self._run(prepared, rows)
        if isinstance(out, tuple):
            return out[0].index_select(0, prepared.inverse.to(out[0].device)), out[1].index_select(
                0, prepared.inverse.to(out[1].device)
            )
        return out.index_select(0, prepared.inverse.to(out.device))

    def _set_fields(self, prepared: Prepared, fields) -> None:
        if self.config.pooling == "fields":
            self.fields = list(fields) if fields is not None else list(prepared.spans[0]) if prepared.spans else []

    def _assemble(self, prepared: Prepared, results: dict):
        n = prepared.n_unique
        if self.config.pooling == "tokens":
            width = max((len(r) for r in prepared.input_ids), default=0)
            states = torch.zeros(n, width, self.hidden_size)
            mask = torch.zeros(n, width, dtype=torch.long)
            for j, (s, m) in results.items():
                states[j, : s.shape[0]] = s.cpu()
                mask[j, : m.shape[0]] = m.cpu()
            return states[prepared.inverse], mask[prepared.inverse]
        shape = (len(self.fields), self.hidden_size) if self.config.pooling == "fields" else (self.hidden_size,)
        out = torch.zeros((n, *shape))
        for j, v in results.items():
            out[j] = v.cpu()
        return out[prepared.inverse]

    # ---- identity for caches -------------------------------------------------------------------
    def fingerprint(self) -> dict:
        """Everything that changes the vectors: model, its revision/weights, tokenizer, layer, pooling,
        max_length, dtype and the trainable weights (adapters) when any."""
        from .fingerprint import sha, tensor_hash, tokenizer_hash, weights_stamp

        if self._static_fp is None:  # model, tokenizer and settings never change after __init__
            cfg = self.backbone.config
            self._static_fp = {
                "model": self.model_id,
                "revision": getattr(cfg, "_commit_hash", None) or weights_stamp(self.model_id),
                "config": sha(cfg.to_json_string(use_diff=False)),
                "tokenizer": tokenizer_hash(self.tokenizer),
                "layer": self.config.layer,
                "pooling": self.config.pooling,
                "max_length": self.config.max_length,
                "dtype": self.config.dtype,
            }
            if self.injected:  # no name to trust: hash the frozen weights (trained ones are hashed below)
                frozen = set(self.backbone.state_dict()) - _trainable_names(self.backbone)
                self._static_fp["weights"] = tensor_hash(
                    {k: v for k, v in self.backbone.state_dict().items() if k in frozen}
                )
        fp = dict(self._static_fp)
        trainable = {k: v for k, v in self.backbone.state_dict().items() if k in _trainable_names(self.backbone)}
        if trainable:
            fp["trainable"] = tensor_hash(trainable)
        return fp


# ---- pooling (pure functions) --------------------------------------------------------------------
def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid tokens: (B, L, D), (B, L) -> (B, D)."""
    m = mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def last_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """State of the last valid token, for left or right padding: (B, L, D), (B, L) -> (B, D)."""
    width = mask.shape[1]
    last = width - 1 - mask.flip(1).to(torch.long).argmax(1)  # (B,) index of the last 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last.to(hidden.device)]


def field_weights(offsets, spans, fields: list[str], width: int) -> torch.Tensor:
    """(B, F, L) averaging weights: token t belongs to field f when its char range overlaps f's span."""
    w = torch.zeros(len(offsets), len(fields), width)
    for b, (offs, sp) in enumerate(zip(offsets, spans)):
        for f, name in enumerate(fields):
            if name not in sp:
                continue
            start, end = sp[name]
            hits = [t for t, (s, e) in enumerate(offs) if e > s and s < end and e > start]
            if hits:
                w[b, f, hits] = 1.0 / len(hits)
    return w


def field_pool(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, L, D) states, (B, F, L) weights -> (B, F, D)."""
    return torch.einsum("bfl,bld->bfd", weights.to(hidden.dtype), hidden)


# ---- loading and model plumbing ------------------------------------------------------------------
def load_pretrained(name: str):
    """Resolve `name` (alias, folder, hub ID) and load (model, tokenizer, model_id) with Auto classes."""
    from transformers import AutoModel, AutoTokenizer

    from .offline import load_error, resolve_lm

    path = resolve_lm(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path)
    except UserError:
        raise
    except (OSError, ValueError, ConnectionError, TimeoutError) as exc:
        raise load_error(name, exc) from exc
    return model, tokenizer, name


def prepare_tokenizer(tokenizer):
    """Right padding, and a pad token where the model has none (GPT-2: its end-of-text token)."""
    if tokenizer.pad_token is None:
        # Any id inside the vocabulary will do: pads are masked out and never pooled. A NEW token
        # would fall outside the embedding matrix.
        fallback = tokenizer.eos_token or tokenizer.unk_token or tokenizer.convert_ids_to_tokens(0)
        if fallback is None:
            raise ValueError("the tokenizer has no pad, end-of-text, unknown or id-0 token to pad with")
        tokenizer.pad_token = fallback
    tokenizer.padding_side = "right"
    return tokenizer


def _trainable_names(module: nn.Module) -> set[str]:
    return {n for n, p in module.named_parameters() if p.requires_grad}


def _drop_frozen_state(module: TextEncoder, state_dict, prefix, local_metadata) -> None:
    keep = {prefix + "backbone." + n for n in _trainable_names(module.backbone)}
    for key in [k for k in state_dict if k.startswith(prefix + "backbone.") and k not in keep]:
        del state_dict[key]


def _ignore_frozen_missing(module: TextEncoder, incompatible) -> None:
    frozen = {"backbone." + n for n in module.backbone.state_dict() if n not in _trainable_names(module.backbone)}
    for key in list(incompatible.missing_keys):
        if any(key == f or key.endswith("." + f) for f in frozen):
            incompatible.missing_keys.remove(key)
