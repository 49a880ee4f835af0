"""The training loop for gradient models: BPR over sampled triples, validation, early stopping,
and resume after an interruption.

Epochs count from 1 everywhere (history, printed lines, `model.on_epoch_start(epoch)`; the hook
should set its state from the epoch number alone, because a resumed run skips earlier calls).

Run folder files written here (all atomic):
- `history.jsonl`: one JSON line per finished epoch (loss, validation metrics, seconds).
- `last.safetensors`: model (`model.*`) and optimizer (`optim.*`) tensors after the last epoch, with
  the whole training state (epoch, best, patience, RNG states, optimizer hyperparameters) as JSON in
  the file's metadata, so model and state can never disagree.
- `best.safetensors`: the model at the best validation epoch (when it is not the last one).
- `train_state.json`: a readable copy of that training state.
Running `fit` again on the same folder with the same config continues from the next epoch.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.sampling import NegativeSampler, bpr_batches
from ..data.splits import Split, interaction_matrix
from ..errors import DataError, UserError
from ..losses import bpr_loss
from ..utils.config import to_dict
from ..utils.device import pick_device
from ..utils.io import write_json, write_text
from .checkpoint import flat_tensors, save_tensors_meta
from .runfolder import read_safetensors

STATE_VERSION = 1
# fields that may change between a run and its resumption
_RESUMABLE_CHANGES = {"epochs", "device", "eval_batch_size", "patience"}


@dataclass
class TrainConfig:
    epochs: int = field(default=50, metadata={"help": "maximum number of epochs"})
    batch_size: int = field(default=2048, metadata={"help": "training triples per step"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam weight decay (L2 on all weights)"})
    patience: int = field(default=5, metadata={"help": "stop after this many epochs without improvement (0: never)"})
    metric: str = field(default="ndcg@10", metadata={"help": "validation metric to maximise, name@K"})
    seed: int = field(default=0, metadata={"help": "seed of sampling, dropout and initialisation"})
    device: str | None = field(default=None, metadata={"help": "cuda, cpu, ...; None picks CUDA when present"})
    eval_batch_size: int = field(default=1024, metadata={"help": "users scored at once in validation"})
    num_neg: int = field(default=1, metadata={"help": "negatives per positive"})

    def __post_init__(self):
        try:
            self.epochs, self.batch_size, self.patience = int(self.epochs), int(self.batch_size), int(self.patience)
            self.seed, self.eval_batch_size, self.num_neg = int(self.seed), int(self.eval_batch_size), int(self.num_neg)
            self.lr, self.weight_decay = float(self.lr), float(self.weight_decay)
        except (TypeError, ValueError) as exc:
            raise UserError(f"invalid training setting ({exc}); epochs/batch sizes are integers, lr a number") from None
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}"),
            (0 < self.lr < float("inf"), f"lr must be a finite number > 0, got {self.lr}"),
            (
                0 <= self.weight_decay < float("inf"),
                f"weight_decay must be a finite number >= 0, got {self.weight_decay}",
            ),
            (self.patience >= 0, f"patience must be >= 0 (0 disables early stopping), got {self.patience}"),
            (self.num_neg >= 1, f"num_neg must be >= 1, got {self.num_neg}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"training config: {message}")
        metric_k(self.metric)

    @property
    def eval_ks(self) -> tuple[int, ...]:
        return tuple(sorted({10, 20, metric_k(self.metric)}))


def metric_k(metric: str) -> int:
    """K of a validation metric `name@K`; an unknown name is refused here, before anything trains."""
    from ..eval.metrics import RANKING_METRICS

    name, _, k = str(metric).partition("@")
    if not name or not k.isdigit() or int(k) < 1:
        raise UserError(f"metric {metric!r} must look like name@K, e.g. ndcg@10 or recall@20")
    if name not in RANKING_METRICS:
        raise UserError(f"unknown metric {name!r} in {metric!r}; choose one of {', '.join(RANKING_METRICS)} as name@K")
    return int(k)


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
    on_epoch_end: Callable[[int, dict], None] | None = None,
    verbose: bool = True,
) -> TrainResult:
    """Train `model` with BPR on `split.train`, validate on `split.valid`, keep the best state.

    The model ends holding its best-validation weights. `on_epoch_end(epoch, record)` is called
    after each epoch's state is saved (raising from it interrupts the run like a kill would).
    `run_dir=None` trains without files (no resume).
    """
    from ..eval.protocols import evaluate_full

    t0 = time.perf_counter()
    device = pick_device(config.device)
    model.to(device)
    n_users, n_items = ctx.n_users, ctx.n_items
    train_csr = interaction_matrix(split.train, n_users, n_items)
    popularity = np.bincount(split.train["item"].to_numpy(np.int64), minlength=n_items)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    run_dir = Path(run_dir) if run_dir is not None else None
    state = _fresh_state(config)
    best_state = None
    if run_dir is not None and (run_dir / "last.safetensors").is_file():
        state, best_state = _resume(run_dir, model, optimizer, rng, config)
        if verbose:
            print(f"resuming from epoch {state['epoch']} in {run_dir}")
    log = _history_writer(run_dir, state["history"])
    elapsed = state["seconds"]
    n_batches = -(-len(split.train) // config.batch_size)
    epoch = state["epoch"]
    while epoch < config.epochs and not state["stopped_early"]:
        epoch += 1
        start = time.perf_counter()
        if hasattr(model, "on_epoch_start"):
            model.on_epoch_start(epoch)
        model.train()
        total, count = 0.0, 0
        batches = _batches(split.train, train_csr, n_items, config, rng)
        for users, pos, neg in tqdm(batches, total=n_batches, desc=f"epoch {epoch}", leave=False, disable=not verbose):
            users, pos, neg = users.to(device), pos.to(device), neg.to(device)
            loss = bpr_loss(model.score_pairs(users, pos), _score_negatives(model, users, neg))
            if hasattr(model, "extra_loss"):
                loss = loss + model.extra_loss(users, pos, neg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(users)
            count += len(users)
        valid = evaluate_full(
            model, split.valid, split.train, n_users, n_items, config.eval_ks, config.eval_batch_size, popularity
        )
        if config.metric not in valid:
            raise UserError(f"validation metric {config.metric!r} not computed; choose one of {sorted(valid)}")
        value = float(valid[config.metric])
        improved = state["best_epoch"] == 0 or value > state["best_value"]
        if improved:
            state.update(best_epoch=epoch, best_value=value, best_valid=valid, bad_epochs=0)
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            state["bad_epochs"] += 1
        state["stopped_early"] = config.patience > 0 and state["bad_epochs"] >= config.patience
        record = {"epoch": epoch, "loss": total / max(1, count), **valid, "seconds": time.perf_counter() - start}
        state["history"].append(record)
        state["epoch"] = epoch
        state["seconds"] = elapsed = elapsed + record["seconds"]
        if run_dir is not None:
            _checkpoint(run_dir, model, optimizer, rng, state, write_best=improved)
            log(record)
        if verbose:
            shown = "  ".join(
                f"{k} {v:.4f}" for k, v in record.items() if "@" in k and k.split("@")[0] in ("ndcg", "recall")
            )
            mark = " *" if improved else ""
            print(
                f"epoch {epoch}/{config.epochs}  loss {record['loss']:.4f}  {shown}  ({record['seconds']:.1f}s){mark}"
            )
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
    if best_state is not None:
        model.load_state_dict(best_state)
    if verbose and state["stopped_early"]:
        print(f"early stop: no {config.metric} gain for {config.patience} epochs; best epoch {state['best_epoch']}")
    return TrainResult(
        best_epoch=state["best_epoch"],
        best_valid=state["best_valid"],
        epochs_run=state["epoch"],
        seconds=elapsed if elapsed else time.perf_counter() - t0,
        history=state["history"],
    )


def _batches(train, train_csr, n_items, config, rng):
    if config.num_neg == 1:
        yield from bpr_batches(train, train_csr, n_items, config.batch_size, rng)
        return
    sampler = NegativeSampler(train_csr, n_items)
    users = train["user"].to_numpy(np.int64)
    items = train["item"].to_numpy(np.int64)
    order = rng.permutation(len(users))
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        neg = sampler.sample(users[idx], rng, config.num_neg)  # (B, N)
        yield torch.from_numpy(users[idx]), torch.from_numpy(items[idx]), torch.from_numpy(neg)


def _score_negatives(model, users: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    if neg.dim() == 1:
        return model.score_pairs(users, neg)  # (B,)
    n = neg.shape[1]
    return model.score_pairs(users.repeat_interleave(n), neg.reshape(-1)).view(-1, n)  # (B, N)


# ---------------------------------------------------------------- state on disk


def _fresh_state(config: TrainConfig) -> dict:
    return {
        "version": STATE_VERSION,
        "config": to_dict(config),
        "epoch": 0,
        "best_epoch": 0,
        "best_value": None,
        "best_valid": {},
        "bad_epochs": 0,
        "stopped_early": False,
        "seconds": 0.0,
        "history": [],
    }


def _history_writer(run_dir: Path | None, history: list) -> Callable[[dict], None]:
    """Rewrite history.jsonl whole each epoch (atomic; a resumed run never duplicates lines)."""

    def write(_record: dict) -> None:
        if run_dir is not None:
            write_text(run_dir / "history.jsonl", "".join(json.dumps(r) + "\n" for r in history))

    return write


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.uint8).copy())


def _rng_states(rng: np.random.Generator) -> dict:
    out = {"numpy": rng.bit_generator.state, "torch": _b64(torch.get_rng_state())}
    if torch.cuda.is_available():
        out["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return out


def _set_rng_states(rng: np.random.Generator, states: dict) -> None:
    rng.bit_generator.state = states["numpy"]
    torch.set_rng_state(_unb64(states["torch"]))
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([_unb64(s) for s in states["cuda"]])


def _checkpoint(run_dir: Path, model, optimizer, rng, state: dict, write_best: bool) -> None:
    opt = optimizer.state_dict()
    tensors = flat_tensors("model", model.state_dict())
    scalars = {}
    for pid, pstate in opt["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    state = dict(state, rng=_rng_states(rng), optim_groups=opt["param_groups"], optim_scalars=scalars)
    # last first: if we die before best.safetensors is written, the best epoch is the last epoch
    save_tensors_meta(run_dir / "last.safetensors", tensors, {"train_state": state})
    if write_best:
        save_tensors_meta(
            run_dir / "best.safetensors", flat_tensors("model", model.state_dict()), {"epoch": state["epoch"]}
        )
    write_json(run_dir / "train_state.json", state)


def _resume(run_dir: Path, model, optimizer, rng, config: TrainConfig):
    fix = f"delete {run_dir} or train into a new --out folder"
    path = run_dir / "last.safetensors"
    tensors, meta = read_safetensors(path)
    if "train_state" not in meta:
        raise DataError(f"{path} has no training state; {fix}")
    state = json.loads(meta["train_state"])
    old = {k: v for k, v in state["config"].items() if k not in _RESUMABLE_CHANGES}
    new = {k: v for k, v in to_dict(config).items() if k not in _RESUMABLE_CHANGES}
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise UserError(f"{run_dir} holds a run with different training settings ({', '.join(diff)}); {fix}")
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_state, strict=True)
    except RuntimeError as exc:
        raise DataError(f"{path} holds another model ({str(exc).splitlines()[0]}); {fix}") from None
    opt_state: dict = {"state": {}, "param_groups": state["optim_groups"]}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            opt_state["state"].setdefault(int(pid), {})[name] = value
    for key, value in state["optim_scalars"].items():
        pid, name = key.split(".", 1)
        opt_state["state"].setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict(opt_state)
    _set_rng_states(rng, state["rng"])
    if state["best_epoch"] == state["epoch"]:
        best = {k: v.clone() for k, v in model_state.items()}
    elif state["best_epoch"] == 0:
        best = None
    else:
        best = _read_best(run_dir / "best.safetensors", state["best_epoch"], fix)
    state["config"] = to_dict(config)
    return state, best


def _read_best(path: Path, epoch: int, fix: str) -> dict:
    if not path.is_file():
        raise DataError(f"{path} is missing, so the best model of epoch {epoch} is lost; {fix}")
    tensors, meta = read_safetensors(path)
    if meta.get("epoch") != str(epoch):
        raise DataError(f"{path} does not hold the best epoch {epoch}; {fix}")
    return {k[len("model.") :]: v for k, v in tensors.items()}
