"""Fast end-to-end text encoding: train only the top N blocks, run the frozen lower blocks once per text.

    enc = TextEncoder(EncoderConfig(finetune="lora", top_n_blocks=2), model, tok)
    fast = FastEncoder(enc)
    vecs = fast(batch_texts)          # == enc.encode_train(batch_texts) (within float tolerance)

With `top_n_blocks=N` nothing below block n_layers-N can change during training, so the hidden states
entering that block depend only on the text. `FastEncoder` computes them once (no grad, eval mode),
keeps them per distinct text (unpadded, (L_i, D)), and on each step runs only the top N blocks (plus the
cheap embedding lookup and the final norm) on a batch rebuilt from that cache. Texts are deduplicated
within a batch first (many users share a profile). Gradients reach the top blocks' trainable weights.

How: during the step the lower blocks are swapped for pass-through modules and a forward pre-hook on
the first top block replaces its input with the cached states; masks and rotary/position tensors are
still built by the model itself, so this works for GPT-2, Gemma/Llama and BERT alike. Right padding
keeps every cached state independent of its batch (causal LMs, and masked keys for BERT).

Limits: `layer` must be -1 (final output); the lower blocks run without dropout (they are a frozen
feature extractor); the cache lives in memory (`n_texts x L x D` floats; ML-100K with GPT-2-small:
about 200 MB) — call `clear()` after the base weights change.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .backbone import transformer_blocks
from .encoder import Prepared, Spans, TextEncoder


class _Stop(Exception):
    """Raised by the capture hook to end a forward pass once the wanted states are in hand."""


class _PassThrough(nn.Module):
    """Stands in for a frozen lower block: returns the hidden states it is given."""

    def __init__(self, block: nn.Module):
        super().__init__()
        for attr in ("attention_type", "layer_idx", "is_sliding"):  # read by some model loops
            if hasattr(block, attr):
                setattr(self, attr, getattr(block, attr))

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


class FastEncoder(nn.Module):
    """Wraps a `TextEncoder` whose config has `top_n_blocks`; call it like `encode_train`."""

    def __init__(self, encoder: TextEncoder):
        super().__init__()
        cfg = encoder.config
        if cfg.top_n_blocks is None:
            raise ValueError("fast mode needs EncoderConfig.top_n_blocks (the number of blocks to fine-tune)")
        if cfg.layer != -1:
            raise ValueError("fast mode pools the final output: set EncoderConfig.layer=-1")
        self.encoder = encoder
        _, blocks = transformer_blocks(encoder.backbone)
        object.__setattr__(self, "_blocks", blocks)  # a view into the encoder, not a second submodule
        self.split = len(blocks) - cfg.top_n_blocks  # index of the first trainable block
        self._states: dict[str, torch.Tensor] = {}  # text -> (L_i, D) states entering block `split`
        self.cache_hits = 0
        self.cache_misses = 0

    def clear(self) -> None:
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)

    def forward(self, texts: Sequence[str], spans: Sequence[Spans] | None = None, fields=None):
        """Pooled vectors for one training batch, with gradients through the top blocks only."""
        enc = self.encoder
        prepared = enc.prepare(texts, spans)
        enc._set_fields(prepared, fields)
        unique = _unique_texts(texts, prepared)
        self._fill(unique, prepared)
        rows = list(range(prepared.n_unique))
        ids, mask = enc.pad([prepared.input_ids[j] for j in rows])
        width = ids.shape[1]
        states = torch.zeros((len(rows), width, enc.hidden_size), dtype=self._dtype(), device=enc.device)
        for k, text in enumerate(unique):
            s = self._states[text]  # (L_k, D)
            states[k, : s.shape[0]] = s
        hidden = self._upper(ids, mask, states)  # (B, L, D)
        out = enc.pool(hidden, mask, prepared, rows)
        inverse = prepared.inverse.to(enc.device)
        if isinstance(out, tuple):
            return out[0].index_select(0, inverse), out[1].index_select(0, inverse)
        return out.index_select(0, inverse)

    def _dtype(self) -> torch.dtype:
        return next(self.encoder.backbone.parameters()).dtype

    def _fill(self, unique: list[str], prepared: Prepared) -> None:
        """Compute and keep the lower-block states of texts not seen before (no grad, eval mode)."""
        missing = [k for k, t in enumerate(unique) if t not in self._states]
        self.cache_hits += len(unique) - len(missing)
        self.cache_misses += len(missing)
        if not missing:
            return
        enc = self.encoder
        was_training = enc.training
        enc.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(missing), enc.config.batch_size):
                    chunk = missing[start : start + enc.config.batch_size]
                    ids, mask = enc.pad([prepared.input_ids[k] for k in chunk])
                    lower = self._lower(ids, mask)  # (b, L, D)
                    for row, k in enumerate(chunk):
                        n = len(prepared.input_ids[k])
                        self._states[unique[k]] = lower[row, :n].clone()
        finally:
            enc.train(was_training)

    def _lower(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """States entering block `split`, stopping the forward pass there: (B, L) -> (B, L, D)."""
        captured = {}

        def capture(module, args, kwargs):
            captured["h"] = args[0] if args else kwargs["hidden_states"]
            raise _Stop

        handle = self._blocks[self.split].register_forward_pre_hook(capture, with_kwargs=True)
        try:
            self.encoder.backbone(input_ids=ids, attention_mask=mask)
        except _Stop:
            pass
        finally:
            handle.remove()
        return captured["h"]

    def _upper(self, ids: torch.Tensor, mask: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Final output with block `split` fed `states` and the lower blocks skipped: (B, L, D)."""

        def inject(module, args, kwargs):
            if args:
                return (states, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": states}

        originals = [self._blocks[i] for i in range(self.split)]
        handle = self._blocks[self.split].register_forward_pre_hook(inject, with_kwargs=True)
        try:
            for i, block in enumerate(originals):
                self._blocks[i] = _PassThrough(block)
            out = self.encoder.backbone(input_ids=ids, attention_mask=mask)
        finally:
            for i, block in enumerate(originals):
                self._blocks[i] = block
            handle.remove()
        return out.last_hidden_state


def _unique_texts(texts: Sequence[str], prepared: Prepared) -> list[str]:
    """The text of each unique input of `prepared` (first occurrence order)."""
    out: list[str | None] = [None] * prepared.n_unique
    for text, j in zip(texts, prepared.inverse.tolist()):
        if out[j] is None:
            out[j] = text
    return out  # type: ignore[return-value]
