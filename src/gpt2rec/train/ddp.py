"""Data-parallel training under torchrun: DistributedDataParallel over the training loop's steps.

Every rank draws the same global batches (the same seeded generators), trains on its own disjoint
rows of each (rank r takes rows r, r + W, ...), and DDP averages the gradients. Each rank's loss is
weighted by (its rows x W / the batch's rows), so the averaged gradient is exactly the gradient of the
global batch's mean loss: W processes with a global batch B follow the trajectory of one process with
batch B (up to float summation order). Rank 0 validates, logs and writes the run folder; the other
ranks receive its validation record, so early stopping decides the same everywhere.

With a world size of 1 nothing is wrapped and `Replicas` passes the batch through unchanged.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .. import distributed as dist


class StepLoss(nn.Module):
    """The loss of one step as a module `forward(users, pos, neg)`, so DDP sees the forward pass
    (DDP synchronises gradients of what runs through its `forward`, not of other methods)."""

    def __init__(self, model: nn.Module, loss_fn, score_negatives):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.score_negatives = score_negatives

    def forward(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(self.model.score_pairs(users, pos), self.score_negatives(self.model, users, neg))
        if hasattr(self.model, "extra_loss"):
            loss = loss + self.model.extra_loss(users, pos, neg)
        return loss


def may_skip_parameters(model: nn.Module) -> bool:
    """True when a trainable parameter can get no gradient in some step: language-model weights
    (LoRA adapters or tuned blocks), which cached steps never touch. DDP then needs
    `find_unused_parameters` (it costs a graph walk per step, so it is off otherwise)."""
    markers = ("lora_", "encoder.", "backbone.", "lm.")
    return any(p.requires_grad and any(m in name for m in markers) for name, p in model.named_parameters())


class Replicas:
    """The loop's view of the ranks: `shard` a global batch, `loss` through DDP, global means."""

    def __init__(self, model: nn.Module, loss_fn, score_negatives, device: torch.device):
        self.world = dist.world_size()
        self.rank = dist.rank()
        self.step = StepLoss(model, loss_fn, score_negatives)
        self.ddp = None
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            with warnings.catch_warnings():  # torch 2.13 deprecates broadcast_buffers, but its successor
                # (forward_sync_buffers) still sends every buffer once at start: the text tables, needlessly
                warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
                self.ddp = DistributedDataParallel(
                    self.step,
                    device_ids=[device] if device.type == "cuda" else None,
                    broadcast_buffers=False,  # buffers (text tables) are identical on every rank and large
                    find_unused_parameters=may_skip_parameters(model),
                )

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, users, pos, neg):
        """This rank's rows of a global batch and the weight that makes DDP's mean the global mean."""
        if self.world == 1:
            return users, pos, neg, 1.0
        n = len(users)
        rows = slice(self.rank, None, self.world)
        local = len(range(n)[rows])
        if local == 0:  # a last batch smaller than the world: run one row with weight 0 (DDP needs every rank)
            return users[:1], pos[:1], neg[:1], 0.0
        return users[rows], pos[rows], neg[rows], local * self.world / n

    def loss(self, users, pos, neg, weight: float) -> torch.Tensor:
        module = self.ddp if self.ddp is not None else self.step
        return module(users, pos, neg) * weight

    def global_sum(self, value: float) -> float:
        """Sum of `value` over the ranks (the epoch's loss total)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        if torch.distributed.get_backend() == "nccl":
            t = t.cuda()
        torch.distributed.all_reduce(t)
        return float(t.item())

    def from_main(self, obj):
        """Rank 0's `obj` on every rank (validation records, stop decisions)."""
        return dist.broadcast_object(obj) if self.world > 1 else obj

    def barrier(self) -> None:
        dist.barrier()
