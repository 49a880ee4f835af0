"""Where the pieces of a Hugging Face transformer are: its body and its list of blocks (used by the
encoder, LoRA placement and the fast end-to-end encoder alike)."""

from __future__ import annotations

from torch import nn


def base_model(model: nn.Module) -> nn.Module:
    """The transformer body: for a causal-LM wrapper (GPT2LMHeadModel, ...) its `base_model`."""
    inner = getattr(model, "base_model", model)
    return inner if isinstance(inner, nn.Module) else model


def transformer_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The ModuleList of transformer blocks (`h`, `layers`, `encoder.layer`, ...): (dotted name, list)."""
    want = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == want]
    if not found:
        raise ValueError(f"cannot find the {want} transformer blocks of {type(model).__name__}; set top_n_blocks=None")
    return min(found, key=lambda nm: nm[0].count("."))
