"""The training loop's state on disk, so an interrupted run resumes byte-identically.

Run folder files written here (all atomic):
- `history.jsonl`: one JSON line per finished epoch (loss, validation metrics, seconds).
- `last.safetensors`: model (`model.*`), LoRA adapter (`adapter.*`, peft's names, see
  `train.weights`) and optimizer (`optim.*`) tensors after the last epoch, with the whole training
  state (epoch, best, patience, RNG states, optimizer hyperparameters) as JSON in the file's
  metadata: one file, written atomically, so model, adapters and state can never disagree.
- `best.safetensors`: the model (`model.*`, `adapter.*`) at the best validation epoch (when it is
  not the last one).
- `train_state.json`: a readable copy of that training state.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, UserError
from ..utils.config import to_dict
from ..utils.io import flat_tensors, save_tensors_meta, write_json, write_text
from .config import TrainConfig, resumable_view
from .runfolder import damaged, read_safetensors
from .weights import load_error_line, load_weights, snapshot, split_weights

STATE_VERSION = 1


class Randomness:
    """Every random stream of a training run, seeded from TrainConfig.seed and saved with it.

    `numpy` draws the batches and negatives; `generator` (an explicit CPU torch.Generator) is handed
    to the model's hooks; torch's global RNG is still saved for models that draw from it.
    """

    def __init__(self, seed: int):
        self.numpy = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)

    def state(self) -> dict:
        out = {
            "numpy": self.numpy.bit_generator.state,
            "torch": _b64(torch.get_rng_state()),
            "generator": _b64(self.generator.get_state()),
        }
        if torch.cuda.is_available():
            out["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
        return out

    def restore(self, states: dict) -> None:
        self.numpy.bit_generator.state = states["numpy"]
        torch.set_rng_state(_unb64(states["torch"]))
        if "generator" in states:  # runs saved before the generator existed never used it
            self.generator.set_state(_unb64(states["generator"]))
        if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([_unb64(s) for s in states["cuda"]])


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.uint8).copy())


def fresh_state(config: TrainConfig) -> dict:
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


def write_history(run_dir: Path, history: list) -> None:
    """Rewrite history.jsonl whole (atomic; a resumed run never duplicates lines)."""
    write_text(run_dir / "history.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def _weight_tensors(model) -> dict:
    own, adapter = split_weights(model)
    return {**flat_tensors("model", own), **flat_tensors("adapter", adapter)}


def _weights_from(tensors: dict) -> tuple[dict, dict]:
    """(own, adapter) of a file written by `_weight_tensors` (older files: no `adapter.*`)."""
    parts: dict = {"model": {}, "adapter": {}}
    for key, value in tensors.items():
        kind, _, name = key.partition(".")
        if kind in parts:
            parts[kind][name] = value
    return parts["model"], parts["adapter"]


def save_checkpoint(run_dir: Path, model, optimizer, randomness: Randomness, state: dict, write_best: bool) -> None:
    opt = optimizer.state_dict()
    tensors = _weight_tensors(model)
    scalars = {}
    for pid, pstate in opt["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    state = dict(state, rng=randomness.state(), optim_groups=opt["param_groups"], optim_scalars=scalars)
    # last first: if we die before best.safetensors is written, the best epoch is the last epoch
    save_tensors_meta(run_dir / "last.safetensors", tensors, {"train_state": state})
    if write_best:
        save_tensors_meta(run_dir / "best.safetensors", _weight_tensors(model), {"epoch": state["epoch"]})
    write_json(run_dir / "train_state.json", state)
    write_history(run_dir, state["history"])


def load_checkpoint(run_dir: Path, model, optimizer, randomness: Randomness, config: TrainConfig):
    """Restore model, optimizer and RNGs from `run_dir`; returns (state, best weights (own, adapter) or None)."""
    fix = f"delete {run_dir} or train into a new --out folder"
    path = run_dir / "last.safetensors"
    tensors, meta = read_safetensors(path)
    try:
        state = json.loads(meta["train_state"])
    except (KeyError, ValueError):
        raise damaged(path, "holds no readable training state") from None
    old, new = resumable_view(state["config"]), resumable_view(to_dict(config))
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise UserError(f"{run_dir} holds a run with different training settings ({', '.join(diff)}); {fix}")
    if state["epoch"] > config.epochs:  # its weights have trained longer than asked: say so, never hand them out
        raise UserError(f"{run_dir} has already trained {state['epoch']} epochs, more than epochs={config.epochs}; "
                        f"resume it with --epochs {state['epoch']} or more, or {fix}")  # fmt: skip
    # patience may change on resume: whether the run has stopped is the new patience's call (a run
    # stopped at patience 2 goes on with patience 0 (off) or 5; "no gain for 0 epochs" was a dead end)
    state["stopped_early"] = config.patience > 0 and state["bad_epochs"] >= config.patience
    weights = _weights_from(tensors)
    try:
        load_weights(model, *weights)
    except RuntimeError as exc:
        raise DataError(f"{path} holds another model ({load_error_line(exc)}); {fix}") from None
    opt_state: dict = {"state": {}, "param_groups": state["optim_groups"]}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            opt_state["state"].setdefault(int(pid), {})[name] = value
    for key, value in state["optim_scalars"].items():
        pid, name = key.split(".", 1)
        opt_state["state"].setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict(opt_state)
    randomness.restore(state["rng"])
    if state["best_epoch"] == state["epoch"]:
        best = snapshot(model)
    elif state["best_epoch"] == 0:
        best = None
    else:
        best = _read_best(run_dir / "best.safetensors", state["best_epoch"], fix)
    state["config"] = to_dict(config)
    return state, best


def _read_best(path: Path, epoch: int, fix: str) -> tuple[dict, dict]:
    if not path.is_file():
        raise DataError(f"{path} is missing, so the best model of epoch {epoch} is lost; {fix}")
    tensors, meta = read_safetensors(path)
    if meta.get("epoch") != str(epoch):
        raise DataError(f"{path} does not hold the best epoch {epoch}; {fix}")
    return _weights_from(tensors)
