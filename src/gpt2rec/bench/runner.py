"""Run the benchmark: data, jobs (choice on validation, training, test), speed, faithfulness, report.

Every finished record is written at once (atomic rewrite of the JSON), so running the same command
again skips the records already there and goes on. The report and plots are rewritten after each
phase, so a partial run still has a readable report.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import Dataset
from ..data.splits import Split
from ..errors import UserError
from ..models.base import ModelContext
from ..models.registry import get_spec
from ..utils.config import from_dict, to_dict
from ..utils.device import pick_device, seed_everything
from . import plan
from .measure import PeakMemory, Timer, load_average, machine_info
from .plan import BenchConfig, Job, ModelEntry
from .protocols import evaluate, protocol_split
from .store import ResultStore

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

    def split(self, protocol: str, seed: int) -> Split:
        key = (protocol, seed)
        if key not in self.splits:
            self.splits = {k: v for k, v in self.splits.items() if k[0] == protocol}  # bound memory
            self.splits[key] = protocol_split(self.dataset, protocol, seed)
        return self.splits[key]

    def log(self, message: str) -> None:
        print(f"bench: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- training one model


def model_config(entry: ModelEntry, candidate: dict, lm: str | None):
    spec = get_spec(entry.model)
    values = {**entry.overrides, **candidate.get("model", {})}
    if lm is not None:
        values[LM_FIELD] = lm
    return spec, from_dict(spec.config_cls, values)


def train_config(run: BenchRun, entry: ModelEntry, candidate: dict, seed: int, metric: str = "ndcg@10"):
    from ..train.loop import TrainConfig

    values = {**plan.train_settings(entry), **candidate.get("train", {})}
    values.update(epochs=run.config.epochs_for(entry), seed=seed, device=str(run.device), metric=metric)
    return TrainConfig(**values)


def train_one(run: BenchRun, entry: ModelEntry, candidate: dict, job: Job, split: Split) -> Trained:
    """Build and train one model on `split`, then evaluate it on the protocol's validation part."""
    from ..train.loop import fit

    spec, cfg = model_config(entry, candidate, job.lm)
    seed_everything(job.seed)
    ctx = ModelContext(run.dataset.n_users, run.dataset.n_items, run.dataset, split.train, run.device)
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
    grid = list(entry.grid) or [{}]
    if run.config.quick:
        grid = grid[:1]
    if chosen is not None or len(grid) == 1:
        candidate = chosen["chosen"] if chosen is not None else grid[0]
        return train_one(run, entry, candidate, job, split)
    best, tried = None, []
    for candidate in grid:
        trained = train_one(run, entry, candidate, job, split)
        tried.append({"candidate": candidate, "valid": _score(trained.valid, job.protocol)})
        if best is None or tried[-1]["valid"] > _score(best.valid, job.protocol):
            best = trained
    run.store.put("selections", sel_key, {"chosen": best.candidate, "tried": tried, "seed": job.seed,
                                          "metric": plan.PROTOCOLS[job.protocol].metric})  # fmt: skip
    return best


def run_job(run: BenchRun, job: Job, entry: ModelEntry) -> dict:
    split = run.split(job.protocol, job.seed)
    with PeakMemory() as mem:
        trained = choose(run, entry, job, split)
        with Timer() as t_eval:
            metrics = evaluate(trained.model, run.dataset, split, job.protocol, "test", job.seed)
    encoding = run.store.section("speed").get("encoding", {}).get(job.lm or "", {})
    info = trained.info
    record = {
        "protocol": job.protocol, "model": job.model, "lm": job.lm, "seed": job.seed,
        "metrics": metrics, "valid_metrics": trained.valid,
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


def run_jobs(run: BenchRun, jobs: list[Job]) -> None:
    """Run the jobs without a record. A job that raises is logged under `failures` (and retried by
    the next run) so one broken model does not stop the others; Ctrl-C still stops the bench."""
    todo = [j for j in jobs if not run.store.has(j.key)]
    if len(todo) < len(jobs):
        run.log(f"{len(jobs) - len(todo)} of {len(jobs)} records already done; resuming")
    for n, job in enumerate(todo, 1):
        entry = plan.entry_named(job.model, run.best)
        start = time.perf_counter()
        label = f"[{n}/{len(todo)}] {job.protocol} {job.model} lm={job.lm or '-'} seed={job.seed}"
        key = "|".join(str(k) for k in job.key)
        try:
            record = run_job(run, job, entry)
        except Exception as exc:  # noqa: BLE001 - recorded and reported, the bench goes on
            message = f"{type(exc).__name__}: {exc}".strip()
            run.store.put("failures", key, {"error": message, "traceback": traceback.format_exc(limit=6)})
            run.log(f"{label}: FAILED ({message.splitlines()[0][:200]})")
            continue
        record["job_seconds"] = time.perf_counter() - start
        run.store.add(record)
        run.store.section("failures").pop(key, None)
        main = plan.PROTOCOLS[job.protocol].metric
        run.log(f"{label}: {main} {record['metrics'].get(main, float('nan')):.4f} ({record['job_seconds']:.1f}s)")


# ---------------------------------------------------------------- phases


def best_enhanced(run: BenchRun) -> ModelEntry | None:
    """The enhanced variant and LM with the highest mean VALIDATION ndcg@10 on warm (pinned to that LM)."""
    scores = {}
    for entry in plan.entries(run.config):
        if entry.model != "enhanced":
            continue
        for lm in plan.lms_for(entry, run.lms, plan.WARM):
            recs = run.store.select(protocol=plan.WARM, model=entry.name, lm=lm)
            if recs:
                scores[(entry.name, lm)] = float(np.mean([r["valid_metrics"].get("ndcg@10", 0.0) for r in recs]))
    if not scores:
        return None
    name, lm = max(scores, key=scores.get)
    run.store.put("selections", "ablation_base", {
        "model": name, "lm": lm, "valid_ndcg@10": {f"{n} [{m}]": v for (n, m), v in scores.items()}})  # fmt: skip
    return plan.ablation_base(plan.entry_named(name), lm)


def available_lms(config: BenchConfig, log=print) -> list[str]:
    """Requested LMs in preference order; by default those of `plan.LM_ORDER` that load offline
    (`gpt2` only when in the local Hugging Face cache). Unavailable defaults are skipped, with a note."""
    from ..text.offline import in_hf_cache, resolve_lm

    if config.lms:
        return list(config.lms)
    out = []
    for lm in plan.QUICK_LMS if config.quick else plan.LM_ORDER:
        try:
            if lm == "gpt2" and not in_hf_cache(lm):
                raise UserError("not in the local Hugging Face cache")
            resolve_lm(lm)
        except UserError as exc:
            log(f"language model {lm} skipped: {exc}")
            continue
        out.append(lm)
    return out


def load_bench_dataset(config: BenchConfig) -> Dataset:
    from ..data.load import DataConfig, load_dataset

    return load_dataset(DataConfig(dataset=config.dataset))


def run_bench(config: BenchConfig, dataset: Dataset | None = None, argv: list[str] | None = None) -> dict:
    """Run (or resume) everything `config` asks for; returns the output paths.

    `dataset` may be injected (tests); otherwise it is loaded as `config.dataset` says.
    """
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(int(config.threads))
    try:
        return _run_bench(config, dataset, argv)
    finally:
        torch.set_num_threads(threads)


def _run_bench(config: BenchConfig, dataset: Dataset | None, argv: list[str] | None) -> dict:
    from . import faithfulness, report, speed

    device = pick_device(config.device)
    dataset = dataset if dataset is not None else load_bench_dataset(config)
    out_dir = Path(config.out_dir)
    store = ResultStore(out_dir / f"{config.stem}.json")
    lms = available_lms(config, log=lambda m: print(f"bench: {m}", file=sys.stderr))
    check_signature(store, config)
    run = BenchRun(config, dataset, store, device, lms, out_dir, argv)
    previous = store.section("meta").get("last_run")
    if previous and previous.get("seconds") is not None and "runs" not in store.section("meta"):
        store.put("meta", "runs", [{"started": previous.get("started"), "seconds": previous["seconds"]}])  # older files
    store.put("meta", "last_run", {
        "command": " ".join(["gpt2rec", "bench", *(argv or [])]), "machine": machine_info(device),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "dataset": dataset.describe(), "quick": config.quick,
        "lms": lms, "bench_config": to_dict(config), "load_average_start": load_average(),
    })  # fmt: skip
    start = time.perf_counter()
    jobs = plan.plan_jobs(config, lms)
    if config.speed:
        speed.measure_encoding(run, [lm for lm in lms if any(j.lm == lm for j in jobs)])
    run_jobs(run, jobs)
    report.write_all(run)  # a readable report already, should the rest be interrupted
    run.best = best_enhanced(run)
    if run.best is not None:
        run_jobs(run, plan.plan_jobs(config, lms, best=run.best))
    if config.speed:
        speed.measure_training_and_latency(run)
    if config.faithfulness:
        faithfulness.run_deletion_test(run)
    seconds = time.perf_counter() - start
    store.put("meta", "last_run", {**store.data["meta"]["last_run"], "seconds": seconds,
                                   "load_average_end": load_average()})  # fmt: skip
    started = store.data["meta"]["last_run"]["started"]
    store.put("meta", "runs", store.section("meta").get("runs", []) + [{"started": started, "seconds": seconds}])
    paths = report.write_all(run)
    run.log(f"done in {time.perf_counter() - start:.0f}s; report: {paths['md']}")
    return paths


def check_signature(store: ResultStore, config: BenchConfig) -> None:
    """Refuse to mix records made under other settings (quick vs full, epoch cap, training defaults)."""
    sig = json.loads(json.dumps(config.signature()))
    old = store.data.get("meta", {}).get("signature")
    if store.records and old is not None and old != sig:
        raise UserError(
            f"{store.path} holds results made with other settings ({old}, now {sig}); "
            "delete it (or pass --out DIR) to start afresh, or rerun with the same settings to resume"
        )
    store.put("meta", "signature", sig)


def ensure_trained(run: BenchRun, model: str, lm: str | None) -> Trained | None:
    """The warm first-seed model kept in memory; retrained when this process did not train it,
    except a dynamic-strategy model (minutes per epoch): None then, and the caller says so."""
    key = (model, lm)
    if key not in run.kept:
        entry = plan.entry_named(model, run.best)
        if entry.overrides.get("strategy") in plan.DYNAMIC_STRATEGIES:
            return None
        job = Job(plan.WARM, model, lm, 0)
        run.kept[key] = choose(run, entry, job, run.split(plan.WARM, 0))
    return run.kept[key]
