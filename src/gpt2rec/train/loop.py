"""The training loop for gradient models: a pure loss over sampled triples, validation, early
stopping, and resume after an interruption (state on disk: `gpt2rec.train.state`).

Hooks a model may define; the loop calls each one when present, and nothing else:
- `on_epoch_start(epoch, generator)` before each epoch. Epochs count from 1 everywhere (history,
  log lines, this hook); the hook should set its state from the epoch number alone, because a
  resumed run skips the earlier calls.
- `on_step_start(generator)` before each step's forward passes (e.g. dropout draws).
- `extra_loss(users, pos, neg) -> Tensor`, added to the step's loss (e.g. a contrastive term).
- `on_step_end()` after `optimizer.step()` (e.g. mark cached values stale).
`generator` is the run's own CPU `torch.Generator`, seeded from `TrainConfig.seed` and saved in the
checkpoint, so a resumed run draws exactly what the uninterrupted run would have drawn. Eval-time
caches are the model's business: the loop only switches `model.train()` / `model.eval()`.

Running `fit` again on the same folder with the same config continues from the next epoch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import distributed as dist
from ..data.sampling import NegativeSampler, training_batches
from ..data.splits import Split, interaction_matrix
from ..errors import NonFiniteLossError
from ..losses import LOSSES, bpr_loss
from ..utils.device import deterministic_kernels, pick_device
from ..utils.progress import progress_bar
from .config import RESUMABLE_CHANGES, TrainConfig, metric_k
from .ddp import Replicas, StepLoss
from .optim import make_optimizer
from .state import Randomness, fresh_state, load_checkpoint, save_checkpoint
from .weights import load_weights, snapshot

__all__ = ["RESUMABLE_CHANGES", "NonFiniteLossError", "TrainConfig", "TrainResult", "fit", "metric_k", "train_step"]

log = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # pos (B,), neg (B,) or (B, N) -> scalar
Validate = Callable[[torch.nn.Module], dict]  # model -> {"ndcg@10": ..., ...}
LOSS_CONTRACT = "loss_fn(pos (B,), neg (B,) or (B, N)) -> scalar tensor computed from them"


@dataclass
class TrainResult:
    best_epoch: int
    best_valid: dict
    epochs_run: int
    seconds: float
    history: list = field(default_factory=list)


def fit(
    model: torch.nn.Module,
    ctx,
    split: Split,
    config: TrainConfig,
    run_dir: str | Path | None,
    *,
    loss_fn: LossFn | None = None,
    validate: Validate | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    progress: bool = False,
    stop_after: int | None = None,
) -> TrainResult:
    """Train `model` on `split.train` with `loss_fn` (default: `config.loss`, BPR unless set),
    validate each epoch, keep the best state. `loss_fn(pos (B,), neg (B,) or (B, N))` returns a scalar
    tensor computed from the scores (checked on the first step: a constant would train nothing).

    `validate(model)` returns the epoch's metrics, which must include `config.metric` (the one
    maximised for early stopping); the default ranks every item for the users of `split.valid`.
    The model ends holding its best-validation weights. `on_epoch_end(epoch, record)` is called
    after each epoch's state is saved (raising from it interrupts the run like a kill would).
    `run_dir=None` trains without files (no resume). `progress` shows one bar over the epochs.
    `stop_after`: return once that epoch is saved (a later call with `run_dir` resumes the run).
    A step whose loss is not finite raises `NonFiniteLossError` before that epoch saves anything.
    """
    t0 = time.perf_counter()
    if not isinstance(config, TrainConfig):  # a dict got "'dict' object has no attribute 'device'"
        raise TypeError(
            f"fit's config must be a TrainConfig, got {type(config).__name__}; pass TrainConfig(**settings) "
            "or gpt2rec.utils.config.from_dict(TrainConfig, settings)"
        )
    if loss_fn is not None:
        loss_fn = _FirstCallChecked(loss_fn)
    device = pick_device(config.device)
    if dist.world_size() > 1 and device.type == "cuda":  # under torchrun: this rank's own GPU
        device = torch.device("cuda", torch.cuda.current_device())
    model.to(device)
    validate = validate or split_validation(ctx, split, config)
    sampler = NegativeSampler(interaction_matrix(split.train, ctx.n_users, ctx.n_items), ctx.n_items)
    # sparse gradients all-reduce on gloo (CPU); nccl has no sparse all-reduce, so CUDA ranks stay dense
    lazy = False if dist.world_size() > 1 and device.type == "cuda" else config.lazy_adam
    optimizer = make_optimizer(model, config.lr, config.weight_decay, lazy)
    randomness = Randomness(config.seed)
    run_dir = Path(run_dir) if run_dir is not None else None
    state, best_state = fresh_state(config), None
    if run_dir is not None and (run_dir / "last.safetensors").is_file():
        state, best_state = load_checkpoint(run_dir, model, optimizer, randomness, config)
        log.debug("continuing from the checkpoint of epoch %d in %s", state["epoch"], run_dir)
    loss_fn = loss_fn if loss_fn is not None else LOSSES[config.loss]
    replicas = Replicas(model, loss_fn, score_negatives, device)  # DDP under torchrun, else a pass-through
    bar = progress_bar(total=config.epochs, initial=state["epoch"], desc="training", unit="epoch", show=progress)
    if state["history"]:  # resumed (a new run resumes after its first epoch): the bar shows where it stands
        _show(bar, state["history"][-1], config, refresh=True)
    try:
        last = config.epochs if stop_after is None else min(stop_after, config.epochs)
        while state["epoch"] < last and not state["stopped_early"]:
            epoch = state["epoch"] + 1
            start = time.perf_counter()
            with deterministic_kernels(device):  # one seed, one thread count: the same weights every run
                loss = _train_epoch(model, optimizer, split, sampler, config, randomness, replicas, epoch, device)
            valid = replicas.from_main(_validate(model, validate, config.metric) if replicas.main else None)
            record = {"epoch": epoch, "loss": loss, **valid, "seconds": time.perf_counter() - start}
            improved = _record_epoch(state, record, config)
            if improved:
                best_state = snapshot(model)
            if run_dir is not None and replicas.main:  # rank 0 writes the run folder
                save_checkpoint(run_dir, model, optimizer, randomness, state, write_best=improved)
            if replicas.main:
                _report(bar, record, config, improved)
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
    finally:
        bar.close()
    if best_state is not None:
        load_weights(model, *best_state)
    if state["stopped_early"]:
        log.info("early stop: no %s gain for %d epochs; best epoch %d", config.metric, config.patience,
                 state["best_epoch"])  # fmt: skip
    return TrainResult(
        best_epoch=state["best_epoch"],
        best_valid=state["best_valid"],
        epochs_run=state["epoch"],
        seconds=state["seconds"] or time.perf_counter() - t0,
        history=state["history"],
    )


class _FirstCallChecked:
    """A caller's `loss_fn`, refused at once when it is not callable and checked on its first call
    against `LOSS_CONTRACT`; later calls go straight through (one flag test a step). Without the check
    a wrong signature or a vector failed deep in the step, and a constant (`lambda p, n: 1.0`, a tensor
    without gradient) trained silently on the model's L2 term alone."""

    def __init__(self, loss_fn: LossFn):
        if not callable(loss_fn):
            named = f"; for a named loss ({', '.join(LOSSES)}) set TrainConfig(loss=...)"
            raise TypeError(
                f"loss_fn must be a function such as gpt2rec.losses.bpr_loss ({LOSS_CONTRACT}), got {loss_fn!r}"
                + (named if isinstance(loss_fn, str) else "")
            )
        self.loss_fn, self.checked = loss_fn, False

    def __call__(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        if self.checked:
            return self.loss_fn(pos, neg)
        try:
            value = self.loss_fn(pos, neg)
        except TypeError as exc:  # most often a signature that does not take (pos, neg)
            raise TypeError(f"loss_fn failed on its first call ({exc}); it must be {LOSS_CONTRACT}") from exc
        problem = _loss_problem(value, pos.requires_grad or neg.requires_grad)
        if problem:
            raise TypeError(f"loss_fn returned {problem}; it must be {LOSS_CONTRACT}")
        self.checked = True
        return value


def _loss_problem(value, needs_grad: bool) -> str | None:
    """What is wrong with a loss value, or None."""
    if not isinstance(value, torch.Tensor):
        return f"a {type(value).__name__} ({str(value)[:40]}), not a tensor"
    if value.dim() != 0:
        return f"a tensor of shape {tuple(value.shape)}, not a scalar (reduce it, e.g. with .mean())"
    if not value.is_floating_point():
        return f"a {value.dtype} tensor, not a floating one"
    if needs_grad and not value.requires_grad:
        return "a tensor with no gradient (a constant, or detached from pos and neg: nothing would learn from it)"
    return None


def split_validation(ctx, split: Split, config: TrainConfig) -> Validate:
    """The default validation: `split.valid` under the split's own protocol (seen: train): every item
    ranked, or the held-out new items on a cold-item split (`eval.protocols.evaluate_part`)."""
    from ..eval.protocols import evaluate_part

    popularity = np.bincount(split.train["item"].to_numpy(np.int64), minlength=ctx.n_items)

    def validate(model) -> dict:
        return evaluate_part(model, split, "valid", ctx.n_users, ctx.n_items, config.eval_ks,
                             config.eval_batch_size, popularity)  # fmt: skip

    return validate


def _train_epoch(model, optimizer, split, sampler, config, randomness: Randomness, replicas, epoch, device) -> float:
    """One pass over the shuffled training pairs; returns the mean loss per pair. Under torchrun every
    rank draws the same global batches and trains on its own rows of each (`Replicas.shard`)."""
    if hasattr(model, "on_epoch_start"):
        model.on_epoch_start(epoch, randomness.generator)
    model.train()
    total, count = 0.0, 0
    for users, pos, neg in training_batches(split.train, sampler, config.batch_size, randomness.numpy, config.num_neg):
        users, pos, neg, weight = replicas.shard(users, pos, neg)
        users, pos, neg = users.to(device), pos.to(device), neg.to(device)
        value = train_step(model, optimizer, users, pos, neg, generator=randomness.generator, loss=replicas.loss,
                           weight=weight)  # fmt: skip
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"the training loss became {value} in epoch {epoch}; the learning rate ({config.lr}) is likely "
                "too high, or the data holds non-finite values; lower --lr or check the data"
            )
        total += value * len(users) * (weight > 0)
        count += len(users) * (weight > 0)
    return replicas.global_sum(total) / max(1.0, replicas.global_sum(count))


def train_step(
    model, optimizer, users, pos, neg, loss_fn: LossFn = bpr_loss, generator=None, *, loss=None, weight: float = 1.0
) -> float:
    """One optimisation step on a batch (users (B,), pos (B,), neg (B,) or (B, N)); returns the loss.

    `loss(users, pos, neg, weight)`: how the step's loss is computed (the DDP wrapper of `Replicas`
    under torchrun); by default `loss_fn` on the model's scores plus its `extra_loss`, times `weight`.
    A non-finite loss is returned without stepping, so the weights stay as they were.
    """
    if hasattr(model, "on_step_start"):
        model.on_step_start(generator)
    if loss is None:
        loss = StepLoss(model, loss_fn, score_negatives)
        value_t = loss(users, pos, neg)
    else:
        value_t = loss(users, pos, neg, 1.0)
    value = float(value_t.detach())
    if not math.isfinite(value):
        return value
    optimizer.zero_grad(set_to_none=True)
    (value_t * weight if weight != 1.0 else value_t).backward()
    optimizer.step()
    if hasattr(model, "on_step_end"):
        model.on_step_end()
    return value


def score_negatives(model, users: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Scores of each user's negatives: neg (B,) -> (B,); neg (B, N) -> (B, N)."""
    if neg.dim() == 1:
        return model.score_pairs(users, neg)  # (B,)
    n = neg.shape[1]
    return model.score_pairs(users.repeat_interleave(n), neg.reshape(-1)).view(-1, n)  # (B, N)


def _validate(model, validate: Validate, metric: str) -> dict:
    was_training = model.training
    model.eval()
    try:
        valid = validate(model)
    finally:
        model.train(was_training)
    if not isinstance(valid, Mapping):  # None got "argument of type 'NoneType' is not iterable"
        raise TypeError(
            f"validate(model) must return a dict of metrics that holds {metric!r} (e.g. {{{metric!r}: 0.31}}), "
            f"got {type(valid).__name__}"
        )
    if metric not in valid:
        raise ValueError(f"validation metric {metric!r} not computed; choose one of {sorted(valid)}")
    return valid


def _record_epoch(state: dict, record: dict, config: TrainConfig) -> bool:
    """Fold one finished epoch into the training state; True when it is the new best."""
    value = float(record[config.metric])
    improved = state["best_epoch"] == 0 or value > state["best_value"]
    if improved:
        valid = {k: v for k, v in record.items() if k not in ("epoch", "loss", "seconds")}
        state.update(best_epoch=record["epoch"], best_value=value, best_valid=valid, bad_epochs=0)
    else:
        state["bad_epochs"] += 1
    state["stopped_early"] = config.patience > 0 and state["bad_epochs"] >= config.patience
    state["history"].append(record)
    state["epoch"] = record["epoch"]
    state["seconds"] += record["seconds"]
    return improved


def _report(bar, record: dict, config: TrainConfig, improved: bool) -> None:
    shown = "  ".join(f"{k} {v:.4f}" for k, v in record.items()
                      if "@" in k and k.split("@")[0] in ("ndcg", "recall"))  # fmt: skip
    log.debug("epoch %d/%d  loss %.4f  %s  (%.1fs)%s", record["epoch"], config.epochs, record["loss"], shown,
              record["seconds"], " *" if improved else "")  # fmt: skip
    _show(bar, record, config)
    bar.update(1)


def _show(bar, record: dict, config: TrainConfig, refresh: bool = False) -> None:
    """The epoch's validation metric and loss beside the bar."""
    shown = {"loss": f"{record['loss']:.4f}"}
    if config.metric in record:
        shown = {config.metric: f"{record[config.metric]:.4f}", **shown}
    bar.set_postfix(shown, refresh=refresh)
