"""Run the benchmark: data, jobs (choice on validation, training, test), speed, faithfulness, report.

Every finished record is written at once (atomic rewrite of the JSON), so running the same command
again skips the records already there and goes on. The report and plots are rewritten after each
phase (and on Ctrl-C), so a partial run still has a readable report. What makes a file safe to
resume (dataset, settings, stale failures) is `resume`'s.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import Dataset
from ..errors import UserError
from ..utils.config import from_dict, to_dict
from ..utils.device import pick_device
from . import faithfulness, plan, report, speed, tuning
from .measure import load_average, machine_info
from .plan import BenchConfig, Job, ModelEntry
from .protocols import split_problem, unusable_models, unusable_protocols
from .resume import check_dataset, check_out_dir, check_signature
from .store import ResultStore
from .training import BenchRun, run_job


def first_lm_only(jobs: list[Job], lms: list[str]) -> list[str]:
    """One line per model that is given several LMs but runs with the first one only on some
    protocols (lm="all" compares the LMs on warm alone), so nobody takes the other rows as run."""
    if len(lms) < 2:
        return []
    where: dict[str, list[str]] = {}
    for job in jobs:
        if (
            job.protocol != plan.WARM
            and plan.entry_named(job.model).lm == "all"
            and job.protocol not in where.get(job.model, [])
        ):
            where.setdefault(job.model, []).append(job.protocol)
    return [
        f"{model} runs with {lms[0]} only on {', '.join(protocols)} (the LMs are compared on warm); "
        f"for another LM there, run again with --lms {lms[1]}"
        for model, protocols in where.items()
    ]


def run_jobs(run: BenchRun, jobs: list[Job]) -> int:
    """Run the jobs without a record; returns how many failed. A job that raises is logged under
    `failures` (and retried by the next run) so one broken model does not stop the others; Ctrl-C
    still stops the bench."""
    failed = 0
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
            failed += 1
            continue
        record["job_seconds"] = time.perf_counter() - start
        run.store.add(record)
        run.store.section("failures").pop(key, None)
        main = plan.PROTOCOLS[job.protocol].metric
        run.log(f"{label}: {main} {record['metrics'].get(main, float('nan')):.4f} ({record['job_seconds']:.1f}s)")
    return failed


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


def available_lms(config: BenchConfig, log=logging.getLogger(__name__).info) -> list[str]:
    """Requested LMs in preference order; by default those of `plan.LM_ORDER` that load offline
    (`gpt2` only when in the local Hugging Face cache). Unavailable defaults are skipped, with a note."""
    from ..text.offline import in_hf_cache, resolve_lm

    if config.lms:  # asked for by name: one clear line now, not a failure in every job later
        from ..models.text_features import check_lm

        for lm in config.lms:
            check_lm(lm, flag="--lms")
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


def bench_lms(config: BenchConfig, log=logging.getLogger(__name__).info) -> list[str]:
    """`available_lms`, or none when no selected model reads text with an LM (then --lms, if given,
    is said to be unused; it is not loaded)."""
    if not any(e.lm for e in plan.entries(config)):
        if config.lms:
            log(f"--lms {' '.join(config.lms)} is not used: none of the models asked for reads text with an LM")
        return []
    return available_lms(config, log)


def load_bench_dataset(config: BenchConfig) -> Dataset:
    from ..data.load import DataConfig, load_dataset

    # from_dict: a bad flag value (--encoding foo) is one UserError, as in `train` and `data info`
    return load_dataset(from_dict(DataConfig, {"dataset": config.dataset, **config.data}))


def run_bench(config: BenchConfig, dataset: Dataset | None = None, argv: list[str] | None = None) -> dict:
    """Run (or resume) everything `config` asks for; returns the output paths.

    `dataset` may be injected (tests); otherwise it is loaded as `config.dataset` says.
    """
    return _with_threads(config, _run_bench, config, dataset, argv)


def _with_threads(config: BenchConfig, fn, *args):
    """`fn(*args)` under `config.threads` torch threads, the process's own setting restored after."""
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(int(config.threads))
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(threads)


def _run_bench(config: BenchConfig, dataset: Dataset | None, argv: list[str] | None) -> dict:
    check_out_dir(config.out_dir)
    device = pick_device(config.device)
    dataset = dataset if dataset is not None else load_bench_dataset(config)
    skipped = unusable_protocols(dataset)
    asked = [p for p in config.protocol_names if p in skipped]
    if asked:  # asked for by name: refuse before anything runs or is written
        raise UserError(f"protocol {asked[0]} cannot run on {dataset.name}: {skipped[asked[0]]}; "
                        f"leave it out of --protocols")  # fmt: skip
    planned = without_unusable_models(config, dataset)  # the signature stays the command's: it resumes
    out_dir = Path(config.out_dir)
    store = ResultStore(out_dir / f"{config.stem}.json")
    lms = bench_lms(config, log=lambda m: logging.getLogger(__name__).info("bench: %s", m))
    checked: set[str] = set()
    jobs = usable_splits(dataset, [j for j in plan.plan_jobs(planned, lms) if j.protocol not in skipped], skipped,
                         checked, named=config.protocol_names)  # fmt: skip
    if not jobs:  # refused before anything is written: a "done" over an empty report says nothing
        raise UserError(nothing_to_run(planned, skipped, lms))
    check_dataset(store, dataset)
    check_signature(store, config)
    config = planned
    run = BenchRun(config, dataset, store, device, lms, out_dir, argv, skipped=skipped)  # (ablations may add)
    previous = store.section("meta").get("last_run")
    if previous and previous.get("seconds") is not None and "runs" not in store.section("meta"):
        store.put("meta", "runs", [{"started": previous.get("started"), "seconds": previous["seconds"]}])  # older files
    store.put("meta", "last_run", {
        "command": " ".join(["gpt2rec", "bench", *(argv or [])]), "machine": machine_info(device),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "dataset": dataset.describe(), "quick": config.quick,
        "lms": lms, "bench_config": to_dict(config), "load_average_start": load_average(),
    })  # fmt: skip
    start = time.perf_counter()
    for protocol, why in skipped.items() if not config.protocols else ():  # (named ones were refused above)
        run.log(f"protocol {protocol} skipped: {why}")
    for line in first_lm_only(jobs, lms):
        run.log(line)
    try:
        failed, total = _run_phases(run, jobs, skipped, checked)
    except KeyboardInterrupt:  # a partial run still has a readable report of what is done
        paths = report.write_all(run)
        run.log(f"interrupted; report of what is done: {paths['md']} (run the same command again to resume)")
        raise
    seconds = time.perf_counter() - start
    store.put("meta", "last_run", {**store.data["meta"]["last_run"], "seconds": seconds,
                                   "load_average_end": load_average()})  # fmt: skip
    started = store.data["meta"]["last_run"]["started"]
    store.put("meta", "runs", store.section("meta").get("runs", []) + [{"started": started, "seconds": seconds}])
    paths = report.write_all(run)
    if failed:  # said last, so a run with failures never ends on a plain "done"
        run.log(f"{failed} of {total} jobs failed (see the lines above); report: {paths['md']}")
    else:
        run.log(f"done in {time.perf_counter() - start:.0f}s; report: {paths['md']}")
    return {**paths, "failed": failed, "jobs": total}


def _run_phases(run: BenchRun, jobs: list[Job], skipped: dict[str, str], checked: set[str]) -> tuple[int, int]:
    """The main table, the ablations of the best enhanced variant, speed and faithfulness; returns
    (failed, total) jobs."""
    config, store, lms = run.config, run.store, run.lms
    if config.speed:
        speed.measure_encoding(run, [lm for lm in lms if any(j.lm == lm for j in jobs)])
    failed, total = run_jobs(run, jobs), len(jobs)
    report.write_all(run)  # a readable report already, should the rest be interrupted
    run.best = best_enhanced(run)
    more = [j for j in plan.plan_jobs(config, lms, best=run.best) if j.protocol not in skipped] if run.best else []
    more = usable_splits(run.dataset, more, skipped, checked, log=run.log)
    if more:
        failed, total = failed + run_jobs(run, more), total + len(more)
    if config.speed:
        before = load_average()
        speed.measure_training_and_latency(run)
        if run.store.section("speed").get("measured", {}).get("started") != store.data["meta"]["last_run"]["started"]:
            run.store.put("speed", "measured", {  # which run measured the speed figures, under what load
                "command": store.data["meta"]["last_run"]["command"], "started": store.data["meta"]["last_run"]["started"],
                "load_average_start": store.data["meta"]["last_run"]["load_average_start"],
                "load_average_before_training": before, "load_average_end": load_average(),
            })  # fmt: skip
    if config.faithfulness:
        faithfulness.run_deletion_test(run)
    return failed, total


def usable_splits(
    dataset: Dataset, jobs: list[Job], skipped: dict[str, str], checked: set[str], named=(), log=None
) -> list[Job]:
    """`jobs` without those of a protocol whose first split leaves a part empty
    (`protocols.split_problem`): such a protocol is refused when named in --protocols (`named`), else
    added to `skipped` with why (and said with `log`, when given). `checked`: protocols already checked."""
    for protocol in dict.fromkeys(j.protocol for j in jobs if j.protocol not in checked):
        checked.add(protocol)
        why = split_problem(dataset, protocol)
        if why is None:
            continue
        if protocol in named:
            raise UserError(f"protocol {protocol} cannot run on {dataset.name}: {why}, or leave it out of --protocols")
        skipped[protocol] = why
        if log is not None:
            log(f"protocol {protocol} skipped: {why}")
    return [j for j in jobs if j.protocol not in skipped]


def without_unusable_models(config: BenchConfig, dataset: Dataset) -> BenchConfig:
    """`config` with the entries whose model `dataset` cannot feed left out (each said once); named
    in --models, such a model is refused, as a protocol named in --protocols is."""
    unusable = unusable_models(dataset)
    table = plan.entries(config)
    dropped = [e for e in table if e.model in unusable]
    if dropped and config.models:
        raise UserError(f"model {dropped[0].name} cannot run on {dataset.name}: {unusable[dropped[0].model]}; "
                        f"leave it out of --models")  # fmt: skip
    for model in sorted({e.model for e in dropped}):
        logging.getLogger(__name__).info("bench: model %s skipped: %s", model, unusable[model])
    return replace(config, models=tuple(e.name for e in table if e not in dropped)) if dropped else config


def nothing_to_run(config: BenchConfig, skipped: dict[str, str], lms: list[str]) -> str:
    """Why a plan has no job: where each asked model runs, against the protocols asked."""
    mode, table = " with --quick" if config.quick else "", plan.entries(config)
    where = "; ".join(
        f"{e.name} runs on {', '.join(p for p in (e.quick if config.quick else e.protocols) if p not in skipped) or 'none'}"
        for e in table
    )  # fmt: skip
    asked = ", ".join(config.protocol_names or [p for p in plan.PROTOCOLS if p not in skipped])
    if any(e.lm for e in table) and not lms:
        where += " (and the text models had no language model: see the lines above)"
    return f"nothing to run on {asked}{mode}: {where}; pick protocols these models run on, or other --models"


def run_tuning(config: BenchConfig) -> dict:
    """`gpt2rec bench tune`: the coordinate search of each model of `tuning.TUNING` (or
    `config.models`) on its protocol (or each of `config.protocols`), into `config.out_dir`'s results
    store, then the report rewritten from the store."""
    models = list(config.models or tuning.TUNING)
    bad = [m for m in models if m not in tuning.TUNING]
    if bad:
        raise UserError(f"no tuning grid for {bad}; tunable: {', '.join(tuning.TUNING)}")
    check_out_dir(config.out_dir)
    return _with_threads(config, _run_tuning, config, models)


def _run_tuning(config: BenchConfig, models: list[str]) -> dict:
    dataset = load_bench_dataset(config)
    targets = tuning.targets(config, models, dataset)  # refused here, before anything is written
    out_dir = Path(config.out_dir)
    store = ResultStore(out_dir / f"{config.stem}.json")
    check_dataset(store, dataset)
    check_signature(store, config)  # the points go into a quality run's file: under its settings only
    run = BenchRun(config, dataset, store, pick_device(config.device), [], out_dir)
    for model, protocol in targets:
        _, start, axes = tuning.TUNING[model]
        result = tuning.tune(run, model, protocol, start, axes)
        run.log(f"tune {protocol}|{model}: chosen {result['chosen']} ({len(result['tried'])} points)")
    return report.write_all(run)
