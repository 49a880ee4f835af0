"""Contrastive LoRA tuning of the LM on co-occurring training items, before l3ae reads the items.

A frozen LM places items by what their sentences say, which is not what users watch together.
Tuning the LM's top blocks (LoRA) so that each training item's vector lies nearest to an item it
co-occurs with (symmetric in-batch InfoNCE; the positive drawn from its `NEIGHBOURS` nearest
training items by the cosine of their user columns) teaches the LM that reading. Items without
interactions (cold and brand-new ones) then benefit through their sentences alone; the tuned
adapters are kept in the checkpoint so that new items and plain-words requests are read the same way.

Validation (ML-100K cold-item, 5 draws, l3ae's cold route; `benchmarks/README.md`): 4 epochs at
lr 3e-4 on the top 2 blocks lifted gemma3-270m 0.3110 -> 0.3260 (every draw) and minilm 0.3407
-> 0.3478; lr 1e-3 overfitted.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..contrastive import info_nce
from ..utils.progress import progress_bar
from .ease import interaction_gram
from .text_features import make_encoder

NEIGHBOURS = 10  # positives are drawn from each item's nearest co-occurring items
TEMPERATURE = 0.05
BATCH_SIZE = 32  # anchors per step; the other pairs of the batch are the negatives


def cooccurrence_neighbours(
    train, n_users: int, n_items: int, k: int = NEIGHBOURS
) -> tuple[torch.Tensor, torch.Tensor]:
    """(W,) the items that co-occur with another item in the training data, and (W, k') each one's
    k' = min(k, W - 1) nearest such items by the cosine of their user columns, as positions in the
    first tensor; an item with fewer than k' co-occurring items repeats its nearest in the rest."""
    gram = interaction_gram(train, n_users, n_items, torch.device("cpu"))  # (I, I) co-occurrence counts
    items = ((gram > 0).sum(1) > 1).nonzero().squeeze(1)  # (W,) co-occurs with some other item
    if len(items) < 2:
        raise ValueError(f"tuning the LM needs at least 2 items that share a user in training, got {len(items)}")
    g = gram[items][:, items]  # (W, W)
    norm = g.diagonal().sqrt()  # (W,)
    cos = g / (norm.unsqueeze(1) * norm.unsqueeze(0))  # (W, W)
    cos.fill_diagonal_(-1.0)  # never its own positive
    top = cos.topk(min(k, len(items) - 1), dim=1)  # (W, k')
    never = top.values <= 0  # never had together: not a positive
    return items, torch.where(never, top.indices[:, :1], top.indices)  # (W,), (W, k')


def tunable_encoder(settings, lm: str, device, pooling: str, blocks: int):
    """The LM `lm` with LoRA adapters (r 8) in its top `blocks` blocks (all of them if it has fewer),
    everything else frozen: what `tune_encoder` trains and new text is later read with."""
    from ..text.lora import apply_finetune

    encoder = make_encoder(settings, lm, device, pooling)
    encoder.config = replace(encoder.config, finetune="lora", top_n_blocks=min(blocks, encoder.n_layers))
    apply_finetune(encoder.backbone, encoder.config)
    return encoder


def encoder_with_adapters(settings, lm: str, device, pooling: str, blocks: int, adapters: dict):
    """`tunable_encoder` holding the LoRA tensors `adapters` (peft's names), ready to read new text."""
    from ..text.lora import set_adapter_state

    encoder = tunable_encoder(settings, lm, device, pooling, blocks)
    set_adapter_state(encoder.backbone, adapters)
    encoder.eval()
    return encoder


def adapter_tensors(encoder) -> dict[str, torch.Tensor]:
    """CPU copies of `encoder`'s LoRA tensors (peft's names), to keep after the encoder is dropped."""
    from ..text.lora import adapter_state_dict

    return {k: v.cpu().clone() for k, v in adapter_state_dict(encoder.backbone).items()}


def tune_encoder(
    encoder, rendered: list, fields: list[str] | None, items: torch.Tensor, neighbours: torch.Tensor,
    epochs: int, lr: float, seed: int = 0,
) -> list[float]:  # fmt: skip
    """Train `encoder`'s trainable (LoRA) tensors in place for `epochs` passes over the anchors
    `items` (W,), each paired with a random one of its `neighbours` (W, k); the sentences are
    `rendered` (row i = item i). Returns each epoch's mean loss. Reproducible from `seed`."""
    from ..text.fast import FastEncoder

    params = [p for p in encoder.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the encoder has nothing to tune: build it with finetune='lora' and top_n_blocks")
    fast = FastEncoder(encoder)  # the frozen lower blocks run once per sentence
    opt = torch.optim.AdamW(params, lr=lr)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)  # derives the dropout seed (the committed figures' draws)
    texts = [r.text for r in rendered]
    spans = [r.spans for r in rendered] if fields else None
    losses = []
    encoder.train()
    # l3ae's fit runs without gradients; LoRA dropout draws from the global generator
    with torch.enable_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        for epoch in range(epochs):
            order = rng.permutation(len(items))
            total = 0.0
            steps = range(0, len(order), BATCH_SIZE)
            for start in progress_bar(steps, desc=f"tune LM {epoch + 1}/{epochs}", leave=False, show=None):
                anchor = order[start : start + BATCH_SIZE]
                if len(anchor) < 2:  # no negative: nothing to learn from
                    continue
                positive = neighbours[anchor, rng.integers(0, neighbours.shape[1], len(anchor))].numpy()
                idx = items[np.concatenate([anchor, positive])].tolist()
                vecs = fast([texts[i] for i in idx], [spans[i] for i in idx] if spans else None, fields=fields)
                vecs = vecs.mean(1) if vecs.dim() == 3 else vecs  # (2B, F, D) -> (2B, D)
                loss = info_nce(vecs[: len(anchor)].float(), vecs[len(anchor) :].float(), TEMPERATURE)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(anchor)
            losses.append(total / len(order))
    fast.clear()
    encoder.eval()
    return losses


def _flat(name: str) -> str:
    if "__" in name:
        raise ValueError(f"LoRA tensor name {name!r} holds '__'; it cannot be kept as a buffer name")
    return name.replace(".", "__")


class AdapterStore(torch.nn.Module):
    """The tuned LoRA tensors as buffers (peft's names, dots flattened), so they travel in the
    model's state_dict and checkpoint; the LM itself is loaded only when new text must be read."""

    def __init__(self, shapes: dict[str, list[int]] | None = None):
        super().__init__()
        for name, shape in (shapes or {}).items():
            self.register_buffer(_flat(name), torch.zeros(shape))

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Replace the kept tensors with `tensors` (peft's names)."""
        for name in list(self._buffers):
            delattr(self, name)
        for name, value in tensors.items():
            self.register_buffer(_flat(name), value.detach().float().clone())

    def tensors(self) -> dict[str, torch.Tensor]:
        """The kept tensors under peft's names ({} when the LM was not tuned)."""
        return {name.replace("__", "."): value for name, value in self._buffers.items()}

    def shapes(self) -> dict[str, list[int]]:
        return {name: list(value.shape) for name, value in self.tensors().items()}
