"""A model's weights as saved: its own tensors, and its language model's LoRA adapters apart.

A module that holds an LM with LoRA adapters says so through `adapter_state()` (peft's
`get_peft_model_state_dict`, or None when its LM has no adapters) and `load_adapter_state(tensors)`
(peft's `set_peft_model_state_dict`). Then

- `split_weights(model)` -> (own, adapter): `own` is `model.state_dict()` less that module's
  tensors; `adapter` the LoRA tensors under peft's own names ({} for a model without adapters);
- `load_weights(model, own, adapter)` is the inverse, exact (bit-identical) and strict: every tensor
  of `own` must be one of the model's and the model must get every one of its tensors back.
- `snapshot(model)` copies both parts (the best epoch, kept in memory while training goes on).

Files written before the adapters were kept apart hold every tensor in `own` and no `adapter`: they
still load (the adapter module's tensors are ordinary parameters of the model).
"""

from __future__ import annotations

import re

import torch


def _adapter_holder(model: torch.nn.Module) -> tuple[str, torch.nn.Module, dict] | None:
    """(module path, module, its adapter tensors) of the module holding LoRA adapters, or None."""
    found = []
    for name, module in model.named_modules():
        adapter_state = getattr(module, "adapter_state", None)
        if callable(adapter_state):
            tensors = adapter_state()
            if tensors is not None:
                found.append((name, module, tensors))
    if len(found) > 1:
        raise ValueError(f"{len(found)} modules hold LoRA adapters ({[n for n, _, _ in found]}); at most one can")
    return found[0] if found else None


def _held(state: dict, prefix: str) -> set:
    return {k for k in state if k.startswith(prefix + ".")}


def split_weights(model: torch.nn.Module) -> tuple[dict, dict]:
    """(the model's own state_dict without the adapter module's tensors, the LoRA adapters by peft's names)."""
    state = model.state_dict()
    holder = _adapter_holder(model)
    if holder is None:
        return state, {}
    prefix, _, adapter = holder
    held = _held(state, prefix)
    if len(held) != len(adapter):  # the module must hold nothing but the adapters
        raise ValueError(f"{prefix} holds {len(held)} tensors but {len(adapter)} LoRA adapters")
    return {k: v for k, v in state.items() if k not in held}, adapter


def snapshot(model: torch.nn.Module) -> tuple[dict, dict]:
    """A copy of `split_weights(model)` that later training steps do not change."""
    own, adapter = split_weights(model)
    return {k: v.detach().clone() for k, v in own.items()}, {k: v.detach().clone() for k, v in adapter.items()}


def load_weights(model: torch.nn.Module, own: dict, adapter: dict) -> None:
    """Load what `split_weights` gave (or an older file's whole state_dict with no adapter part).
    A mismatch raises RuntimeError, as a strict `load_state_dict` does, before anything is loaded."""
    holder = _adapter_holder(model)
    if not adapter:  # no adapters, or a file from before they were saved apart: one strict load
        model.load_state_dict(own, strict=True)
        return
    if holder is None:
        raise RuntimeError(f"Error(s) in loading state_dict: {len(adapter)} LoRA tensors but the model has no adapters")
    prefix, module, _ = holder
    expected = set(model.state_dict()) - _held(model.state_dict(), prefix)
    missing, unexpected = sorted(expected - set(own)), sorted(set(own) - expected)
    if missing or unexpected:
        raise RuntimeError(
            f"Error(s) in loading state_dict: missing keys {missing[:3]}, unexpected keys {unexpected[:3]}"
        )
    try:
        module.load_adapter_state(adapter)
    except ValueError as exc:
        raise RuntimeError(f"Error(s) in loading the LoRA adapters: {exc}") from None
    result = model.load_state_dict(own, strict=False)
    assert not result.unexpected_keys and set(result.missing_keys) == _held(model.state_dict(), prefix)


_SIZE = re.compile(
    r"size mismatch for (\S+): copying a param with shape torch\.Size\((\[.*?\])\) from checkpoint, "
    r"the shape in current model is torch\.Size\((\[.*?\])\)"
)


def load_error_line(exc: Exception) -> str:
    """A failed (strict) `load_state_dict` on one line that still says what did not fit: torch's
    first line ("Error(s) in loading state_dict for BPRMF:") names no tensor, so keep the first size
    mismatch with both shapes, and the missing and unexpected keys (the first 3 of each)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    parts, sizes = [], []
    for line in lines[1:] or lines:
        size = _SIZE.match(line)
        kind, found, keys = line.partition(" in state_dict: ")
        if size:
            sizes.append(size.groups())
        elif found:  # 'Missing key(s) in state_dict: "a", "b". '
            names = re.findall(r'"([^"]*)"', keys)
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            parts.append(f"{kind.lower()} {', '.join(names[:3])}{more}")
        else:
            parts.append(line.rstrip("."))
    if sizes:
        name, saved, current = sizes[0]
        more = f" (and {len(sizes) - 1} more)" if len(sizes) > 1 else ""
        parts.append(f"size mismatch for {name}: the file has shape {saved}, the model {current}{more}")
    return "; ".join(parts)
