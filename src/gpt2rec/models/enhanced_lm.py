"""The enhanced recommender's hold on its language model: adapter weights in, base weights out.

`LMHolder` is a module whose only parameters are the LM's TRAINABLE tensors (LoRA adapters, or the
top blocks when fine-tuning without PEFT), registered under flattened names. So

- the training loop's optimizer (built from `model.parameters()`) trains them;
- `state_dict()` / checkpoints hold them and never the frozen base weights;
- loading a checkpoint before the LM exists keeps them aside, and they are copied in when the LM
  is rebuilt from its name (`attach`). The LM object itself lives outside the module tree.

`StepMemo` keeps the text vectors encoded WITH gradients during one training step, so the
positive items, the negatives and the contrastive loss of a step share one LM pass. It is cleared
when the step's backward pass reaches the ID embeddings (a tensor hook bumps the step counter).
"""

from __future__ import annotations

import torch
from torch import nn


def _flat(name: str) -> str:
    return name.replace(".", "__")


class LMHolder(nn.Module):
    def __init__(self):
        super().__init__()
        self.runtime = None  # a text.encoder.TextEncoder, kept OUT of the module tree (see attach)
        self._pending: dict[str, torch.Tensor] = {}

    @property
    def attached(self) -> bool:
        return self.runtime is not None

    def attach(self, runtime) -> None:
        """Adopt a runtime's trainable tensors as this module's parameters; apply saved adapters."""
        object.__setattr__(self, "runtime", runtime)  # not a submodule: no base weights in state_dict
        for name, param in runtime.backbone.named_parameters():
            if param.requires_grad:
                self.register_parameter(_flat(name), param)
        self._apply_pending()

    def detach_runtime(self) -> None:
        """Drop the LM (its adapter values are kept aside, ready for the next attach)."""
        if self.runtime is None:
            return
        self._pending.update({k: p.detach().clone() for k, p in self._parameters.items() if p is not None})
        self._parameters.clear()
        self.runtime = None

    def set_trainable(self, flag: bool) -> None:
        for p in self.parameters(recurse=False):
            p.requires_grad_(flag)

    @torch.no_grad()
    def _apply_pending(self) -> None:
        for name in list(self._pending):
            if name in self._parameters:
                self._parameters[name].copy_(self._pending.pop(name).to(self._parameters[name].device))

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # Adapter tensors are accepted whether or not the LM exists yet (kept until `attach`).
        for key, value in state_dict.items():
            if key.startswith(prefix) and "." not in key[len(prefix) :]:
                self._pending[key[len(prefix) :]] = value
        self._apply_pending()

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


class StepMemo:
    """Per-kind cache id -> row of a tensor with gradients, valid within one training step."""

    def __init__(self):
        self.step = 0
        self._seen_step = -1
        self._ids: dict[str, torch.Tensor] = {}
        self._rows: dict[str, torch.Tensor] = {}

    def bump(self, *_):
        self.step += 1

    def get(self, kind: str, ids: torch.Tensor, encode) -> torch.Tensor:
        """Rows for `ids` (B,) -> (B, ...); `encode(new_ids (N,)) -> (N, ...)` fills the gaps."""
        if self._seen_step != self.step:
            self._ids.clear()
            self._rows.clear()
            self._seen_step = self.step
        have = self._ids.get(kind)
        uniq = torch.unique(ids)  # (U,) sorted
        new = uniq if have is None else uniq[~torch.isin(uniq, have)]
        if len(new):
            rows = encode(new)  # (N, ...)
            if have is None:
                self._ids[kind], self._rows[kind] = new, rows
            else:
                self._ids[kind] = torch.cat([have, new])
                self._rows[kind] = torch.cat([self._rows[kind], rows])
        all_ids = self._ids[kind]
        order = torch.argsort(all_ids)
        pos = order[torch.searchsorted(all_ids[order], ids)]  # (B,)
        return self._rows[kind][pos]

    def clear(self) -> None:
        self.step += 1
