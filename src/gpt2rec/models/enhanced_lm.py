"""The enhanced recommender's hold on its language model, and the state of one training step.

`LMHolder` is a module whose only parameters are the LM's TRAINABLE tensors (LoRA adapters, or the
top blocks when fine-tuning without PEFT), registered under flattened names. So

- the training loop's optimizer (built from `model.parameters()`) trains them;
- `state_dict()` holds them and never the frozen base weights; a model that has them attaches its
  LM when it is built (also for a checkpoint load). The LM object itself lives outside the module tree.
- LoRA adapters are saved apart, by peft's own names: `adapter_state()` / `load_adapter_state()`
  (see `gpt2rec.train.weights`); fully fine-tuned blocks stay in the model's state_dict.

`StepState` is what one training step shares between its positive, negative and contrastive
terms: the ID-dropout masks, the `dynamic_sample` draw, the fused representations of the entities it touched
(cached path) and the text vectors encoded WITH gradients (dynamic path). The training loop starts
it (`model.on_step_start(generator)`) and ends it (`model.on_step_end()`); every draw comes from
that generator, never from torch's global RNG.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _flat(name: str) -> str:
    return name.replace(".", "__")


class LMHolder(nn.Module):
    def __init__(self):
        super().__init__()
        self.runtime = None  # a text.encoder.TextEncoder, kept OUT of the module tree (see attach)

    @property
    def attached(self) -> bool:
        return self.runtime is not None

    def attach(self, runtime) -> None:
        """Adopt a runtime's trainable tensors as this module's parameters."""
        object.__setattr__(self, "runtime", runtime)  # not a submodule: no base weights in state_dict
        for name, param in runtime.backbone.named_parameters():
            if param.requires_grad:
                self.register_parameter(_flat(name), param)

    def adapter_state(self) -> dict | None:
        """The LM's LoRA tensors as peft's `get_peft_model_state_dict` names them; None without LoRA."""
        if self.runtime is None or self.runtime.config.finetune != "lora":
            return None
        from ..text.lora import adapter_state_dict

        return adapter_state_dict(self.runtime.backbone)

    def load_adapter_state(self, tensors: dict) -> None:
        """Load `adapter_state()`-named tensors (peft's `set_peft_model_state_dict`); ValueError on a mismatch."""
        from ..text.lora import set_adapter_state

        set_adapter_state(self.runtime.backbone, tensors)

    def set_trainable(self, flag: bool) -> None:
        for p in self.parameters(recurse=False):
            p.requires_grad_(flag)

    def version(self) -> tuple:
        """Changes whenever a trainable LM tensor changes (optimizer step, load_state_dict, .to)."""
        return tuple((p.data_ptr(), p._version) for p in self.parameters(recurse=False))

    def _apply(self, fn, recurse=True):
        if self.runtime is not None:  # move/cast the LM with the model
            self.runtime._apply(fn)
            first = next(self.runtime.backbone.parameters(), None)
            if first is not None:
                self.runtime.device = first.device
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True):
        if self.runtime is not None:
            self.runtime.train(mode)
        return super().train(mode)


class StepState:
    """Per-step draws and memos, all keyed by entity kind ("user" / "item")."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator
        self._masks: dict[str, torch.Tensor] = {}
        self._slots: dict[str, torch.Tensor] = {}
        self._rows: dict[str, torch.Tensor] = {}

    def mask(self, name: str, n: int, device, draw: Callable[[int, torch.Generator], torch.Tensor]) -> torch.Tensor:
        """(n,) bool drawn once per step under `name` by `draw(n, generator)` (on CPU, then moved)."""
        if name not in self._masks:
            self._masks[name] = draw(n, self.generator).to(device)
        return self._masks[name]

    def subset(self, idx: torch.Tensor, cap: int) -> torch.Tensor:
        """At most `cap` random entries of `idx` (B,)."""
        if len(idx) <= cap:
            return idx
        return idx[torch.randperm(len(idx), generator=self.generator)[:cap].to(idx.device)]

    def memo(self, kind: str, ids: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Rows for `ids` (B,) -> (B, ...); `encode(new_ids (N,)) -> (N, ...)` fills the gaps, so each
        entity goes through the LM at most once per step."""
        rows, pos = self.memo_rows(kind, ids, encode)
        return rows[pos]

    def memo_rows(self, kind: str, ids: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor]):
        """`memo` as (every memoised row (M, ...), the row of each of `ids` (B,)), for callers that
        gather only some columns (a gather and its backward cost in proportion to the width)."""
        slot = self._slots.get(kind)  # (n,) row of each entity ID in the memo, -1 = not yet
        top = int(ids.max()) + 1 if len(ids) else 0
        if slot is None or len(slot) < top:
            grown = torch.full((top,), -1, dtype=torch.long, device=ids.device)
            if slot is not None:
                grown[: len(slot)] = slot
            self._slots[kind] = slot = grown
        new = torch.unique(ids[slot[ids] < 0])  # (N,) sorted
        if len(new) or kind not in self._rows:
            rows = encode(new)  # (N, ...)
            have = self._rows.get(kind)
            slot[new] = torch.arange(len(new), device=ids.device) + (0 if have is None else len(have))
            self._rows[kind] = rows if have is None else torch.cat([have, rows])
        pos = slot[ids]  # (B,)
        return self._rows[kind], pos


def dropout_draw(p: float) -> Callable[[int, torch.Generator], torch.Tensor]:
    """(n,) bool, each True with probability p."""
    return lambda n, g: torch.rand(n, generator=g) < p


def sample_draw(k: int) -> Callable[[int, torch.Generator], torch.Tensor]:
    """(n,) bool with exactly min(k, n) random entries True."""

    def draw(n: int, g: torch.Generator) -> torch.Tensor:
        pick = torch.randperm(n, generator=g)[:k]
        return torch.zeros(n, dtype=torch.bool).index_fill_(0, pick, True)

    return draw
