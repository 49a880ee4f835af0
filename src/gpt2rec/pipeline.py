"""A whole run as three library calls: `train_run`, `evaluate_run`, `recommend`.

train_run: load data -> split (or read a saved split) -> build -> fit (closed form or the gradient
loop) -> evaluate valid and test -> save the run folder (see `gpt2rec.train.checkpoint`). The split
is saved inside the run folder (`split/`), so evaluation and recommendation use exactly the same
training interactions. Running train_run again on an unfinished folder resumes it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import distributed as dist
from .data.load import DataConfig, load_dataset
from .data.splits import Split, SplitConfig, make_split, read_split, write_split
from .errors import UserError
from .models.base import ModelContext
from .models.registry import get_spec
from .run import Run, recommend_items  # noqa: F401 (recommend_items: public here since before Run)
from .train import checkpoint as ckpt
from .train.loop import TrainConfig, fit
from .utils.config import from_dict, to_dict
from .utils.device import pick_device

EVAL_KS = (5, 10, 20)
# Training settings chosen on ML-100K validation (random 8:1:1) for models whose best epoch lies
# beyond TrainConfig's generic defaults; any field given explicitly overrides these.
TRAIN_DEFAULTS: dict[str, dict] = {
    "bpr": {"epochs": 300, "patience": 10},
    "neumf": {"epochs": 200, "patience": 10},
    # GPT-2 recommenders: one pass over every entity per step, so large batches are cheap (4 negatives each)
    "basic": {"epochs": 40, "batch_size": 4096, "lr": 3e-3, "patience": 5, "num_neg": 4},
    "enhanced": {"epochs": 40, "batch_size": 4096, "lr": 3e-3, "patience": 5, "num_neg": 4},
}
SPLIT_DIR = "split"


@dataclass
class RunConfig:
    model: str
    model_config: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    train: TrainConfig | None = None  # None: TrainConfig with the model's TRAIN_DEFAULTS
    split_dir: str | None = None

    def __post_init__(self):
        if self.train is None or isinstance(self.train, dict):
            self.train = default_train(self.model, self.train or {})
        for name, cls in (("data", DataConfig), ("split", SplitConfig), ("train", TrainConfig)):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, from_dict(cls, getattr(self, name)))
        self.model_config = to_dict(self.model_config_obj())  # validated, defaults filled in

    def model_config_obj(self):
        return from_dict(get_spec(self.model).config_cls, dict(self.model_config or {}))


def default_train(model: str, overrides: dict | None = None) -> TrainConfig:
    """TrainConfig for `model`: generic defaults, then TRAIN_DEFAULTS[model], then `overrides`."""
    return from_dict(TrainConfig, {**TRAIN_DEFAULTS.get(model, {}), **(overrides or {})})


def fit_model(spec, model, ctx: ModelContext, split: Split, train: TrainConfig, run_dir, verbose: bool = True) -> dict:
    """Closed-form fit (spec.fit) or the gradient loop; returns what to record about training."""
    start = time.perf_counter()
    if spec.fit is not None:
        spec.fit(model, ctx)
        return {"kind": "closed-form", "seconds": time.perf_counter() - start}
    result = fit(model, ctx, split, train, run_dir, progress=verbose)
    return {
        "kind": "gradient",
        "seconds": result.seconds,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
    }


def evaluate_model(model, split: Split, n_users: int, n_items: int, train: TrainConfig) -> dict:
    """Full-ranking metrics on valid (seen: train) and test (seen: train + valid)."""
    from .eval.protocols import evaluate_full

    ks = tuple(sorted(set(EVAL_KS) | set(train.eval_ks)))
    pop = np.bincount(split.train["item"].to_numpy(np.int64), minlength=n_items)
    bs = train.eval_batch_size
    valid = evaluate_full(model, split.valid, split.train, n_users, n_items, ks, bs, pop)
    test = evaluate_full(model, split.test, [split.train, split.valid], n_users, n_items, ks, bs, pop)
    return {"valid": valid, "test": test}


def _check_same_run(out: Path, config: dict) -> None:
    path = out / ckpt.CONFIG
    if not path.is_file():
        return
    old = ckpt.read_config(out)
    config = json.loads(json.dumps(config))  # tuples -> lists, as read back from JSON
    keep = {"epochs", "device", "eval_batch_size", "patience"}
    strip = lambda c: {**c, "train": {k: v for k, v in (c.get("train") or {}).items() if k not in keep}}  # noqa: E731
    if strip(old) != strip(config):
        raise UserError(f"{out} already holds a different run; choose a new --out folder or delete {out}")


def train_run(config: RunConfig, out_dir: str | Path, verbose: bool = True) -> dict:
    """Train, evaluate and save a run into `out_dir`; returns {"valid", "test", "train"} metrics."""
    out = Path(out_dir)
    cfg = to_dict(config)
    _check_same_run(out, cfg)
    dataset = load_dataset(config.data)
    split = read_split(dataset, config.split_dir) if config.split_dir else make_split(dataset, config.split)
    if len(split.train) == 0:
        raise UserError("the split left no training interactions; choose another split or ratios")
    device = pick_device(config.train.device)
    torch.manual_seed(config.train.seed)
    ctx = ModelContext(dataset.n_users, dataset.n_items, dataset, split.train, device)
    spec = get_spec(config.model)
    model = spec.build(config.model_config_obj(), ctx)  # before writing: a model that cannot be built
    main = dist.is_main()  # under torchrun rank 0 writes the run folder and evaluates
    if main:
        out.mkdir(parents=True, exist_ok=True)  # (e.g. genre_content without genres) leaves no run behind
        ckpt.save_config(out, cfg)
        ckpt.save_id_maps(out, dataset)
        write_split(split, dataset, out / SPLIT_DIR)
    fit_info = fit_model(spec, model, ctx, split, config.train, out, verbose=verbose and main)
    if not main:
        return {"train": fit_info}
    metrics = evaluate_model(model, split, dataset.n_users, dataset.n_items, config.train)
    metrics["train"] = fit_info
    ckpt.save_model(out, model)
    ckpt.save_metrics(out, metrics)
    return metrics


def load_run(run_dir: str | Path, device=None):
    run_dir = Path(run_dir)
    cfg = ckpt.read_config(run_dir)
    config = RunConfig(**cfg)
    dataset = load_dataset(config.data)
    device = pick_device(device if device is not None else config.train.device)
    model = ckpt.load_model(run_dir, dataset, device)
    split = read_split(dataset, run_dir / SPLIT_DIR)
    return config, dataset, model, split


def evaluate_run(run_dir: str | Path, device=None) -> dict:
    """Reload a run folder and evaluate it again on its own split: {"valid": {...}, "test": {...}}."""
    config, dataset, model, split = load_run(run_dir, device)
    return evaluate_model(model, split, dataset.n_users, dataset.n_items, config.train)


def open_run(run_dir: str | Path, device=None) -> Run:
    """The run folder loaded once, as a `Run` (raw IDs, seen items, top-k rows)."""
    return Run(Path(run_dir), *load_run(run_dir, device))


def recommend(run_dir: str | Path, raw_user_id, k: int = 10, device=None) -> list[dict]:
    """Top-k items for a raw user ID, excluding the user's training items: [{item_id, title, score}]."""
    if int(k) <= 0:
        raise UserError(f"k must be a positive number of items, got {k}; e.g. -k 10")
    return open_run(run_dir, device).recommend(raw_user_id, int(k))
