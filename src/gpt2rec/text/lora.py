"""Fine-tuning modes for the language model: frozen, LoRA (peft), or full; adapters saved alone.

- frozen: no parameter trains.
- lora:   peft LoRA adapters (`LoraConfig(r, lora_alpha, target_modules, lora_dropout)`) injected in
          place (`peft.inject_adapter_in_model`, so module paths and forward signatures stay those of
          the base model); only `lora_*` tensors train. Targets default by architecture:
          GPT-2 c_attn, c_proj; Gemma/Llama/Mistral/Qwen q/k/v/o_proj; BERT query, value.
- full:   every weight trains.
`top_n_blocks=N` limits LoRA / full training to the top N transformer blocks.

`save_adapter(encoder, path)` writes ONLY the adapter tensors (peft's `get_peft_model_state_dict`,
as safetensors, with the LoRA settings in its metadata); `load_adapter(encoder, path)` restores them
with peft's `set_peft_model_state_dict` into an encoder built with the same config. The base model is never saved and nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from ..errors import UserError
from .backbone import transformer_blocks

LORA_TARGETS = {
    "gpt2": ("c_attn", "c_proj"),
    "bert": ("query", "value"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj"),
}
_FAMILY = {  # model_type prefix -> LORA_TARGETS key
    "gpt2": "gpt2",
    "bert": "bert",
    "roberta": "bert",
    "gemma": "llama",  # gemma, gemma2, gemma3, gemma3_text
    "llama": "llama",
    "mistral": "llama",
    "qwen": "llama",
    "phi3": None,
}
ADAPTER_FORMAT = "gpt2rec-lora-v2"  # v2: peft's own adapter state-dict names


def default_lora_targets(model: nn.Module) -> tuple[str, ...]:
    """LoRA target module names for the model's architecture (its `config.model_type`)."""
    model_type = getattr(model.config, "model_type", "")
    for prefix, family in _FAMILY.items():
        if model_type.startswith(prefix) and family:
            return LORA_TARGETS[family]
    raise UserError(
        f"no default LoRA targets for model type '{model_type}'; set EncoderConfig.lora_targets to the names "
        f"of its attention projections (e.g. ('q_proj', 'v_proj'))"
    )


def lora_settings(model: nn.Module, cfg) -> dict:
    """The LoRA settings in force for `cfg` (an EncoderConfig) on `model`, as plain JSON values."""
    targets = tuple(cfg.lora_targets) if cfg.lora_targets else default_lora_targets(model)
    settings = {
        "r": cfg.lora_r,
        "lora_alpha": cfg.lora_alpha,
        "lora_dropout": cfg.lora_dropout,
        "target_modules": list(targets),
        "layers_to_transform": None,
        "layers_pattern": None,
    }
    if cfg.top_n_blocks is not None:
        name, blocks = transformer_blocks(model)
        settings["layers_to_transform"] = _top_layers(len(blocks), cfg.top_n_blocks)
        settings["layers_pattern"] = name.split(".")[-1]
    return settings


def apply_finetune(model: nn.Module, cfg) -> None:
    """Set `requires_grad` (and inject LoRA) on the base transformer `model` per `cfg.finetune`."""
    for p in model.parameters():
        p.requires_grad_(False)
    if cfg.finetune == "frozen":
        return
    if cfg.finetune == "full":
        if cfg.top_n_blocks is None:
            for p in model.parameters():
                p.requires_grad_(True)
            return
        _, blocks = transformer_blocks(model)
        for i in _top_layers(len(blocks), cfg.top_n_blocks):
            for p in blocks[i].parameters():
                p.requires_grad_(True)
        return
    inject_lora(model, lora_settings(model, cfg))


def inject_lora(model: nn.Module, settings: dict) -> None:
    import peft

    conv1d = getattr(model.config, "model_type", "") == "gpt2"  # GPT-2 stores weights (in, out)
    config = peft.LoraConfig(
        r=settings["r"],
        lora_alpha=settings["lora_alpha"],
        lora_dropout=settings["lora_dropout"],
        target_modules=list(settings["target_modules"]),
        layers_to_transform=settings["layers_to_transform"],
        layers_pattern=settings["layers_pattern"],
        fan_in_fan_out=conv1d,
        bias="none",
    )
    try:
        peft.inject_adapter_in_model(config, model)
    except ValueError as exc:
        raise UserError(f"cannot add LoRA adapters ({exc}); check EncoderConfig.lora_targets") from exc
    n = 0
    for name, p in model.named_parameters():
        is_lora = "lora_" in name
        p.requires_grad_(is_lora)
        n += is_lora
    if not n:
        raise UserError(f"LoRA matched no module for targets {settings['target_modules']}; check lora_targets")


def adapter_state_dict(model: nn.Module) -> dict:
    """The LoRA tensors of `model`, detached, named by peft's `get_peft_model_state_dict` (without
    the adapter name)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach() for k, v in get_peft_model_state_dict(model).items()}


def set_adapter_state(model: nn.Module, tensors: dict) -> None:
    """Load LoRA tensors named as `adapter_state_dict` names them into `model`, with peft's
    `set_peft_model_state_dict`; ValueError unless the names are exactly `model`'s adapters."""
    from peft import set_peft_model_state_dict

    expected = set(adapter_state_dict(model))
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise ValueError(
            f"the LoRA adapters do not match the model: {len(missing)} missing {missing[:1]}, "
            f"{len(extra)} unexpected {extra[:1]}"
        )
    result = set_peft_model_state_dict(model, tensors)
    if result.unexpected_keys:
        raise ValueError(f"the model has no place for LoRA tensor {result.unexpected_keys[0]}")


def save_adapter(encoder, path: str | Path) -> None:
    """Write the encoder's LoRA adapters (only) to `path` (.safetensors), atomically."""
    from safetensors.torch import save_file

    from ..utils.io import atomic_path

    if encoder.config.finetune != "lora":
        raise ValueError(f"this encoder has no LoRA adapters (finetune='{encoder.config.finetune}')")
    tensors = {k: v.to("cpu").contiguous() for k, v in adapter_state_dict(encoder.backbone).items()}
    meta = {
        "format": ADAPTER_FORMAT,
        "model": str(encoder.model_id),
        "settings": json.dumps(lora_settings(encoder.backbone, encoder.config), sort_keys=True),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_adapter(encoder, path: str | Path) -> None:
    """Load adapters saved by `save_adapter` into an encoder built with the same LoRA config."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"adapter file {path} does not exist; pass the file written by save_adapter")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise UserError(f"adapter file {path} is unreadable ({exc}); save it again") from exc
    if meta.get("format") == "gpt2rec-lora-v1":
        raise UserError(f"{path} was saved by an older gpt2rec (adapter format v1); save the adapters again")
    if meta.get("format") != ADAPTER_FORMAT:
        raise UserError(f"{path} is not a gpt2rec LoRA adapter file (format {meta.get('format')!r})")
    if encoder.config.finetune != "lora":
        raise UserError("build the encoder with finetune='lora' (same r/alpha/targets) before loading adapters")
    ours = lora_settings(encoder.backbone, encoder.config)
    theirs = json.loads(meta.get("settings", "{}"))
    if {k: v for k, v in ours.items() if k != "lora_dropout"} != {
        k: v for k, v in theirs.items() if k != "lora_dropout"
    }:
        raise UserError(f"adapter {path} was saved with LoRA settings {theirs}; this encoder uses {ours}")
    try:
        set_adapter_state(encoder.backbone, tensors)
    except ValueError as exc:
        raise UserError(f"adapter {path}: {exc}; same model?") from None


def _top_layers(n_blocks: int, top_n: int) -> list[int]:
    if top_n > n_blocks:
        raise UserError(f"top_n_blocks={top_n} but the model has only {n_blocks} blocks")
    return list(range(n_blocks - top_n, n_blocks))
