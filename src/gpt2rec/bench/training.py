"""Training one bench job: build the model, train it (choosing among its grid on the protocol's
validation), evaluate it on test. `BenchRun` is the state shared by one bench process."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import Dataset
from ..data.splits import Split
from ..models.base import ModelContext
from ..models.registry import get_spec
from ..utils.config import from_dict, to_dict
from ..utils.device import seed_everything
from . import plan
from .measure import PeakMemory, Timer
from .plan import BenchConfig, Job, ModelEntry
from .protocols import evaluate, halve_validation, protocol_split
from .store import ResultStore

log = logging.getLogger(__name__)

LM_FIELD = "lm"  # the field of the GPT-2 models' configs that names the language model


@dataclass
class Trained:
    model: torch.nn.Module
    entry: ModelEntry
    candidate: dict
    info: dict
    valid: dict


@dataclass
class BenchRun:
    """Shared state of one bench process."""

    config: BenchConfig
    dataset: Dataset
    store: ResultStore
    device: torch.device
    lms: list[str]
    out_dir: Path
    argv: list[str] | None = None
    splits: dict = field(default_factory=dict)
    kept: dict = field(default_factory=dict)  # (model, lm) -> Trained, warm protocol first seed
    best: ModelEntry | None = None
    skipped: dict = field(default_factory=dict)  # protocol -> why the data cannot support it (the report says)

    def split(self, protocol: str, seed: int) -> Split:
        key = (protocol, seed)
        if key not in self.splits:
            self.splits = {k: v for k, v in self.splits.items() if k[0] == protocol}  # bound memory
            self.splits[key] = protocol_split(self.dataset, protocol, seed)
        return self.splits[key]

    def halves(self, protocol: str, seed: int) -> tuple[Split, Split]:
        """(tune, select) of the protocol's split (`protocols.halve_validation`)."""
        key = (protocol, seed, "halves")
        if key not in self.splits:
            full = self.split(protocol, seed)
            self.splits[key] = halve_validation(full, seed)
        return self.splits[key]

    def tuning_split(self, name: str, protocol: str, seed: int) -> Split:
        """The split entry `name` is trained and tuned on: half the validation users for the
        headline candidates (`plan.tunes_on_half`), all of them otherwise."""
        if plan.tunes_on_half(name, protocol):
            return self.halves(protocol, seed)[0]
        return self.split(protocol, seed)

    def log(self, message: str) -> None:
        log.info("bench: %s", message)


# ---------------------------------------------------------------- training one model


def model_config(entry: ModelEntry, candidate: dict, lm: str | None):
    spec = get_spec(entry.model)
    values = {**entry.overrides, **entry.lm_overrides.get(lm, {}), **candidate.get("model", {})}
    if lm is not None:
        values[LM_FIELD] = lm
    return spec, from_dict(spec.config_cls, values)


def train_config(run: BenchRun, entry: ModelEntry, candidate: dict, seed: int, metric: str = "ndcg@10"):
    from ..train.loop import TrainConfig

    values = {**plan.train_settings(entry), **candidate.get("train", {})}
    values.update(epochs=run.config.epochs_for(entry), seed=seed, device=str(run.device), metric=metric)
    return from_dict(TrainConfig, values)


def train_one(run: BenchRun, entry: ModelEntry, candidate: dict, job: Job, split: Split) -> Trained:
    """Build and train one model on `split`, then evaluate it on the protocol's validation part."""
    from ..train.loop import fit

    spec, cfg = model_config(entry, candidate, job.lm)
    seed_everything(job.seed)
    data = run.dataset
    ctx = ModelContext(data.n_users, data.n_items, data, split.train, run.device, new_items=split.cold_items)
    with Timer() as build:
        model = spec.build(cfg, ctx)
    info = {"build_seconds": build.seconds, "config": to_dict(cfg), "curve": []}
    if spec.fit is not None:
        with Timer() as t:
            spec.fit(model, ctx)
        info.update(train_seconds=t.seconds, epochs=0, best_epoch=None, seconds_per_epoch=t.seconds)
        valid = evaluate(model, run.dataset, split, job.protocol, "valid", job.seed)
    else:
        tcfg = train_config(run, entry, candidate, job.seed, plan.PROTOCOLS[job.protocol].metric)
        result = fit(model, ctx, split, tcfg, None, validate=protocol_validation(run, split, job))
        valid = result.best_valid
        curve = [float(h.get(tcfg.metric, float("nan"))) for h in result.history]
        info.update(_fit_info(result.history, result.best_epoch, tcfg), curve=curve)
    return Trained(model, entry, candidate, info, valid)


def protocol_validation(run: BenchRun, split: Split, job: Job):
    """Early stopping on the PROTOCOL's validation (sampled negatives, cold candidates); None for the
    full-ranking protocols, whose validation is the loop's own. The loop's full ranking would rank
    e.g. cold items among all items, where they never surface."""
    if plan.PROTOCOLS[job.protocol].evaluation == "full":
        return None
    return lambda model: evaluate(model, run.dataset, split, job.protocol, "valid", job.seed)


def _fit_info(history: list, best_epoch: int, tcfg) -> dict:
    return {
        "train_seconds": float(sum(h["seconds"] for h in history)), "epochs": len(history), "best_epoch": best_epoch,
        "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])) if history else None,
        "train_config": to_dict(tcfg),
    }  # fmt: skip


def _score(metrics: dict, protocol: str) -> float:
    return float(metrics.get(plan.PROTOCOLS[protocol].metric, float("-inf")))


def choose(run: BenchRun, entry: ModelEntry, job: Job, split: Split) -> Trained:
    """Train the chosen candidate; on a protocol's first seed, try the grid and keep the best on
    validation (stored under `selections`, reused by the other seeds)."""
    sel_key = f"{job.protocol}|{job.model}|{job.lm}"
    chosen = run.store.section("selections").get(sel_key)
    if chosen is not None:
        return train_one(run, entry, chosen["chosen"], job, split)
    base = base_choice(run, entry, job)
    grid = [stack(base, c) for c in entry.grid_for(job.protocol)] or [base]
    if run.config.quick:
        grid = grid[:1]
    if len(grid) == 1:
        return train_one(run, entry, grid[0], job, split)
    best, tried = None, []
    for candidate in grid:
        trained = train_one(run, entry, candidate, job, split)
        tried.append({"candidate": candidate, "valid": _score(trained.valid, job.protocol)})
        if best is None or tried[-1]["valid"] > _score(best.valid, job.protocol):
            best = trained
    run.store.put("selections", sel_key, {"chosen": best.candidate, "tried": tried, "seed": job.seed,
                                          "metric": plan.PROTOCOLS[job.protocol].metric})  # fmt: skip
    return best


def base_choice(run: BenchRun, entry: ModelEntry, job: Job) -> dict:
    """The candidate chosen for `entry.stacked_on` on this protocol (and LM), tuning it on the
    protocol's first seed when this run has not yet; {} for an entry stacked on nothing."""
    if not entry.stacked_on:
        return {}
    base = plan.entry_named(entry.stacked_on)
    lm = job.lm if base.lm else None
    key = f"{job.protocol}|{base.name}|{lm}"
    if key not in run.store.section("selections") and len(base.grid_for(job.protocol)) > 1:
        choose(run, base, Job(job.protocol, base.name, lm, 0), run.tuning_split(base.name, job.protocol, 0))
    chosen = run.store.section("selections").get(key)
    return chosen["chosen"] if chosen is not None else (list(base.grid_for(job.protocol)) or [{}])[0]


def stack(base: dict, candidate: dict) -> dict:
    """`candidate` on top of `base`: {"model": ..., "train": ...} merged part by part."""
    return {part: {**base.get(part, {}), **candidate.get(part, {})} for part in {*base, *candidate}}


def run_job(run: BenchRun, job: Job, entry: ModelEntry) -> dict:
    split = run.split(job.protocol, job.seed)
    with PeakMemory() as mem:
        trained = choose(run, entry, job, run.tuning_split(entry.name, job.protocol, job.seed))
        with Timer() as t_eval:
            metrics = evaluate(trained.model, run.dataset, split, job.protocol, "test", job.seed)
        select = None
        if plan.tunes_on_half(entry.name, job.protocol):
            select = evaluate(trained.model, run.dataset, run.halves(job.protocol, job.seed)[1], job.protocol, "valid",
                              job.seed)  # fmt: skip
    encoding = run.store.section("speed").get("encoding", {}).get(job.lm or "", {})
    info = trained.info
    record = {
        "protocol": job.protocol, "model": job.model, "lm": job.lm, "seed": job.seed,
        "metrics": metrics, "valid_metrics": trained.valid, "select_metrics": select,
        "train_seconds": info["train_seconds"], "epochs": info["epochs"], "best_epoch": info["best_epoch"],
        "seconds_per_epoch": info["seconds_per_epoch"], "build_seconds": info["build_seconds"],
        "encode_texts_per_s": encoding.get("texts_per_s") if job.lm else None,
        "eval_seconds": t_eval.seconds, "peak_rss_mb": mem.peak_mb, "peak_gpu_mb": mem.gpu_mb,
        "valid_curve": info["curve"], "config": info["config"], "train_config": info.get("train_config"),
        "group": entry.group, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }  # fmt: skip
    if job.protocol == plan.WARM and job.seed == 0:
        run.kept[(job.model, job.lm)] = trained
    return record


def ensure_trained(run: BenchRun, model: str, lm: str | None) -> Trained | None:
    """The warm first-seed model kept in memory; retrained when this process did not train it,
    except a dynamic-strategy model (minutes per epoch): None then, and the caller says so."""
    key = (model, lm)
    if key not in run.kept:
        entry = plan.entry_named(model, run.best)
        if entry.overrides.get("strategy") in plan.DYNAMIC_STRATEGIES:
            return None
        job = Job(plan.WARM, model, lm, 0)
        run.kept[key] = choose(run, entry, job, run.tuning_split(entry.name, plan.WARM, 0))
    return run.kept[key]
