"""The training loop's optimizer: Adam, with lazy row updates for embedding tables.

Dense Adam updates every row of every embedding table on every step, so an epoch costs
(steps ~ interactions) x (rows ~ users + items): quadratic when the catalog grows with the data.
With `lazy_adam` the loop switches the model's `nn.Embedding` tables to sparse gradients and
`LazyAdam` updates only the rows a step touched (like `torch.optim.SparseAdam`, but in the same
optimizer as the dense parameters, so checkpoints and resume see one optimizer):

    rows touched:  m_r = b1 m_r + (1 - b1) g_r;  v_r = b2 v_r + (1 - b2) g_r^2;  w_r -= lr m^_r / (sqrt(v^_r) + eps)
    other rows:    unchanged (dense Adam would keep moving them by their decaying momentum)

The bias corrections use the parameter's step count (every step), as dense Adam does. Weight decay
(L2) is applied to the touched rows only. Dense gradients (every other parameter, or a table also
used whole in the step) take torch's own Adam step.

Under DDP on CPU (gloo) the sparse gradients are all-reduced as sparse tensors (DDP supports them; 2
processes follow the 1-process trajectory, tested); nccl has no sparse all-reduce, so the training
loop keeps the tables dense for multi-GPU runs.
"""

from __future__ import annotations

import torch
from torch import nn

LAZY_ROWS = 100_000  # `lazy=None`: lazy updates from this many embedding rows


class LazyAdam(torch.optim.Adam):
    """`torch.optim.Adam` that also takes sparse gradients, updating only their rows."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        sparse = [p for group in self.param_groups for p in group["params"] if p.grad is not None and p.grad.is_sparse]
        held = {id(p): p.grad for p in sparse}
        for p in sparse:  # hidden from the dense step, which refuses sparse gradients
            p.grad = None
        try:
            super().step()
        finally:
            for p in sparse:
                p.grad = held[id(p)]
        for group in self.param_groups:
            for p in group["params"]:
                if id(p) in held:
                    self._sparse_step(p, held[id(p)], group)
        return loss

    def _sparse_step(self, p: torch.Tensor, grad: torch.Tensor, group: dict) -> None:
        grad = grad.coalesce()  # duplicate rows (an item twice in a batch) summed
        rows, values = grad.indices()[0], grad.values()  # (R,), (R, D...)
        if rows.numel() == 0:
            return
        beta1, beta2 = group["betas"]
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        step = float(state["step"])
        if group["weight_decay"]:
            values = values.add(p[rows], alpha=group["weight_decay"])
        m = state["exp_avg"][rows].lerp_(values, 1 - beta1)  # (R, D)
        v = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(values, values, value=1 - beta2)  # (R, D)
        state["exp_avg"][rows] = m
        state["exp_avg_sq"][rows] = v
        step_size = group["lr"] / (1 - beta1**step)
        denom = (v.sqrt() / (1 - beta2**step) ** 0.5).add_(group["eps"])  # (R, D)
        p.index_add_(0, rows, m.div_(denom), alpha=-step_size)


def sparse_embeddings(model: nn.Module, on: bool) -> int:
    """Switch every `nn.Embedding` of `model` to sparse (True) or dense (False) gradients; returns
    how many tables it switched. Max-norm tables stay dense (their renormalisation is in place)."""
    count = 0
    for module in model.modules():
        if isinstance(module, nn.Embedding) and module.max_norm is None:
            module.sparse = on
            count += 1
    return count


def embedding_rows(model: nn.Module) -> int:
    """Rows of all of `model`'s `nn.Embedding` tables (what dense Adam updates on every step)."""
    return sum(m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding))


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, lazy: bool | None) -> torch.optim.Optimizer:
    """The loop's optimizer over `model`'s parameters: `LazyAdam` with sparse embedding gradients
    when `lazy`, else torch's dense Adam (and dense tables). `lazy=None`: lazy from `LAZY_ROWS`
    embedding rows, where dense updates of whole tables outweigh the batch's own work; below it dense
    Adam costs little, and it is what ML-100K's results were tuned with (lazy moves rows a step does
    not touch less, which slowed BPR-MF's first epochs there: see docs/scale.md)."""
    if lazy is None:
        lazy = embedding_rows(model) >= LAZY_ROWS
    sparse_embeddings(model, lazy)
    cls = LazyAdam if lazy else torch.optim.Adam
    return cls(model.parameters(), lr=lr, weight_decay=weight_decay)
