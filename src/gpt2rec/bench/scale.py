"""`gpt2rec bench scale [--quick]`: time and memory against data size, on synthetic catalogs.

Sizes (interactions, users, items): 10^5 (10^4, 10^4), 10^6 (10^5, 31,623), 10^7 (10^6, 10^5);
`--quick` stops at 10^6. For each size, in a fresh worker process each (so peak RSS is that job's):

- `bpr`: load the Parquet files, random split, one BPR-MF epoch (dim 64, batch 4096; validation on
  at most 1,000 users so the epoch time is the training pass), then top-10 retrieval for 2,000 users:
  exact (blocked) against faiss HNSW, recall@10 of ANN against exact and the speed-up;
- `enhanced`: the GPT-2 model that scales (cached strategy, the smallest LM `minilm`; l3ae, the
  ML-100K headline, needs dense item x item matrices and refuses 10^5 items), text tables through
  the embedding cache (sentences repeat, so each distinct one is encoded once); its epoch time is
  extrapolated from 60 timed training steps (a full epoch at 10^7 is ~9 minutes on one core);
- `ann`: BPR-MF on 10^6 interactions over 10^5 items (its own catalog), ANN recall@10 and speed-up
  at HNSW search breadths 64, 128, 256;
- `encode` / `encode2` (first size only): `gpt2rec encode` throughput in 1 and 2 processes (torchrun);
- `ddp` (first size only): `gpt2rec train --model bpr` in 1 process and with `--nproc 2`: epoch time
  and test metrics (the same global batch, so the same trajectory up to float summation order).

Results go to `<out>/scale.json` (appended per job, so an interrupted run resumes), `<out>/scale.md`
and `<out>/scale.png` (log-log time and peak RSS against interactions, with the fitted exponent).
The synthetic files are written once under `$GPT2REC_HOME/bench-scale/`.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..utils.io import read_json, write_json, write_text

SIZES = ((100_000, 10_000, 10_000), (1_000_000, 100_000, 31_623), (10_000_000, 1_000_000, 100_000))
USER_TEMPLATE = "User profile: favourite genre is {favourite_genre}, age group is {age_group}, gender is {gender}."
ITEM_TEMPLATE = "Genres: {genres}."
LM = "minilm"
VALID_USERS = 1_000
BATCH = 4096
DDP_EPOCHS = 3
ANN_SIZE = (1_000_000, 100_000, 100_000)  # interactions, users, items of the ANN job
ANN_EFS = (64, 128, 256)
WARMUP, STEPS = 3, 60  # enhanced: steps timed (after warm-up) to extrapolate an epoch
ANN_USERS = 2_000

_log = logging.getLogger(__name__)


@dataclass
class ScaleConfig:
    quick: bool = False
    out_dir: str = "benchmarks/results"
    threads: int = 1
    models: tuple[str, ...] = ("bpr", "enhanced")
    encode: bool = True

    @property
    def sizes(self):
        return SIZES[:2] if self.quick else SIZES


def run_scale(cfg: ScaleConfig) -> dict:
    """Run every job not yet in `<out>/scale.json`, then write the report and the plot."""
    from ..data.home import home_dir

    out = Path(cfg.out_dir)
    path = out / "scale.json"
    data = read_json(path) if path.is_file() else {"records": []}
    data["machine"] = _machine()
    done = {(r["job"], r["interactions"]) for r in data["records"] if "error" not in r}
    work = home_dir() / "bench-scale"
    for n, users, items in cfg.sizes:
        folder = _synth(work, n, users, items)
        ann_folder = _synth(work, *ANN_SIZE) if n == SIZES[1][0] else None
        first = n == cfg.sizes[0][0]
        jobs = list(cfg.models) + (["encode", "encode2"] if cfg.encode and first else []) + (["ddp"] if first else [])
        if n == SIZES[1][0]:
            jobs.append("ann")  # on its own catalog: 10^6 interactions over 10^5 items
        for job in jobs:
            if (job, n) in done:
                continue
            _log.info("bench scale: %s at %s interactions ...", job, f"{n:,}")
            where, size = (ann_folder, ANN_SIZE) if job == "ann" else (folder, (n, users, items))
            record = _run_job(job, where, work, cfg.threads) | dict(zip(("interactions", "users", "items"), size))
            data["records"] = [r for r in data["records"] if (r["job"], r["interactions"]) != (job, n)] + [record]
            write_json(path, data)
    data["fits"] = fits(data["records"])
    write_json(path, data)
    write_text(out / "scale.md", report(data))
    plot(data, out / "scale.png")
    return {"json": path, "md": out / "scale.md", "png": out / "scale.png"}


def _synth(work: Path, n: int, users: int, items: int) -> Path:
    from ..data.synth import SynthConfig, write

    folder = work / f"synth-{n}-{users}-{items}"
    cfg = SynthConfig(users=users, items=items, interactions=n, seed=0)
    stamp = folder / "synth.json"
    if not stamp.is_file() or read_json(stamp).get("interactions") != n:
        write(cfg, folder)
    return folder


def _run_job(job: str, folder: Path, work: Path, threads: int) -> dict:
    """One measurement in a fresh process; its JSON result plus the process's peak RSS."""
    result = work / f"result-{job}-{folder.name}.json"
    result.unlink(missing_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-c", "from gpt2rec.bench.scale import worker; worker()", job, str(folder), str(result)]
    start = time.perf_counter()
    proc = subprocess.run([*cmd, str(threads)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    load = [round(x, 2) for x in os.getloadavg()]  # the machine is shared: timings need their load
    if proc.returncode != 0 or not result.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"job": job, "error": " | ".join(tail), "wall_s": wall, "load_avg_1_5_15": load}
    return read_json(result) | {"job": job, "wall_s": round(wall, 2), "load_avg_1_5_15": load}


# ---------------------------------------------------------------------------- worker side
def worker() -> None:
    job, folder, result, threads = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    import torch

    torch.set_num_threads(threads)
    out = {"encode": _encode_job, "encode2": _encode_job, "ddp": _ddp_job}.get(job, _train_job)(job, folder)
    out["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    out["threads"] = threads
    write_json(result, out)


def _load(folder: Path):
    from ..data.load import DataConfig, load_dataset
    from ..data.splits import SplitConfig, make_split

    start = time.perf_counter()
    ds = load_dataset(
        DataConfig(dataset=str(folder / "interactions.parquet"), users=str(folder / "users.parquet"),
                   items=str(folder / "items.parquet"))
    )  # fmt: skip
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    split = make_split(ds, SplitConfig(kind="random", seed=0))
    split_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    keep = rng.permutation(split.valid["user"].unique())[:VALID_USERS]
    split.valid = split.valid[split.valid["user"].isin(keep)].reset_index(drop=True)
    return ds, split, {"load_s": round(load_s, 2), "split_s": round(split_s, 2)}


def _train_job(job: str, folder: Path) -> dict:
    import torch

    from ..models.base import ModelContext
    from ..models.registry import get_spec
    from ..text.templates import TemplateConfig
    from ..train.loop import TrainConfig, fit

    ds, split, out = _load(folder)
    ctx = ModelContext(ds.n_users, ds.n_items, dataset=ds, train=split.train, device=torch.device("cpu"))
    spec = get_spec("bpr" if job == "ann" else job)
    if job == "enhanced":
        template = TemplateConfig(user_template=USER_TEMPLATE, item_template=ITEM_TEMPLATE)
        config = spec.config_cls(lm=LM, template=template)
    else:
        config = spec.config_cls(dim=64)
    start = time.perf_counter()
    model = spec.build(config, ctx)
    out["build_s"] = round(time.perf_counter() - start, 2)
    if job == "enhanced":  # an epoch takes hours at 10^7 here: time STEPS steps, extrapolate to the epoch
        out.update(_timed_steps(model, split, ctx))
        return out
    train = TrainConfig(epochs=1, batch_size=BATCH, lr=0.01, patience=0, device="cpu")
    result = fit(model, ctx, split, train, None)
    out["epoch_s"] = round(result.history[0]["seconds"], 2)
    out["loss"] = round(result.history[0]["loss"], 5)
    out["valid_ndcg@10"] = round(result.history[0]["ndcg@10"], 5)
    if job == "ann":  # the ANN trade-off at 10^5 items: recall and speed-up per search breadth
        for ef in ANN_EFS:
            out.update(_ann(model, split, ds.n_users, ds.n_items, ef, f"@ef{ef}"))
    else:
        out.update(_ann(model, split, ds.n_users, ds.n_items))
    return out


def _timed_steps(model, split, ctx) -> dict:
    """Seconds per training step (after WARMUP steps) x steps per epoch: the extrapolated epoch time."""
    import torch

    from ..data.sampling import NegativeSampler, training_batches
    from ..data.splits import interaction_matrix
    from ..train.loop import train_step
    from ..train.optim import make_optimizer

    sampler = NegativeSampler(interaction_matrix(split.train, ctx.n_users, ctx.n_items), ctx.n_items)
    optimizer = make_optimizer(model, 1e-3, 0.0, lazy=None)  # as the training loop does
    generator = torch.Generator().manual_seed(0)
    batches = training_batches(split.train, sampler, BATCH, np.random.default_rng(0))
    if hasattr(model, "on_epoch_start"):
        model.on_epoch_start(1, generator)
    model.train()
    losses, start = [], None
    for step, (users, pos, neg) in enumerate(batches):
        if step == WARMUP:
            start = time.perf_counter()
        losses.append(train_step(model, optimizer, users, pos, neg, generator=generator))
        if step + 1 == WARMUP + STEPS:
            break
    per_step = (time.perf_counter() - start) / max(1, len(losses) - WARMUP) if start else float("nan")
    n_steps = -(-len(split.train) // BATCH)
    return {"epoch_s": round(per_step * n_steps, 2), "step_s": round(per_step, 4), "steps_timed": len(losses) - WARMUP,
            "steps_per_epoch": n_steps, "extrapolated": True, "loss": round(float(np.mean(losses)), 5)}  # fmt: skip


def _ann(model, split, n_users: int, n_items: int, ef_search: int = 256, suffix: str = "") -> dict:
    """Top-10 of ANN_USERS users: exact (blocked) vs HNSW; recall of ANN against exact, speed-up."""
    from ..data.splits import interaction_matrix
    from ..retrieval import RetrievalConfig, Retriever

    model.eval()
    users = np.random.default_rng(1).permutation(n_users)[:ANN_USERS]
    seen = interaction_matrix(split.train, n_users, n_items)[users]
    exact = Retriever(model, RetrievalConfig(mode="exact"))
    start = time.perf_counter()
    want, _ = exact.topk(users, 10, seen)
    exact_s = time.perf_counter() - start
    start = time.perf_counter()
    ann = Retriever(model, RetrievalConfig(mode="ann", ef_search=ef_search))
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    got, _ = ann.topk(users, 10, seen)
    ann_s = time.perf_counter() - start
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)]))
    out = {
        "ann_recall@10": round(recall, 4),
        "exact_search_s": round(exact_s, 3),
        "ann_search_s": round(ann_s, 3),
        "ann_build_s": round(build_s, 2),
        "ann_speedup": round(exact_s / max(ann_s, 1e-9), 2),
    }
    return {k + suffix: v for k, v in out.items()}


def _encode_job(job: str, folder: Path) -> dict:
    """`gpt2rec encode` of the users and items (fields pooling, fresh cache) in 1 or 2 processes."""
    import tempfile

    nproc = 2 if job == "encode2" else 1
    with tempfile.TemporaryDirectory() as home:
        out = Path(home) / "out"
        args = ["encode", "--dataset", str(folder / "interactions.parquet"), "--users", str(folder / "users.parquet"),
                "--items", str(folder / "items.parquet"), "--lm", LM, "--pooling", "fields", "--no-limit",
                "--out", str(out)]  # fmt: skip
        env = dict(os.environ, GPT2REC_HOME=home)
        if nproc > 1:
            args += ["--nproc", str(nproc)]
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gpt2rec", *args], env=env, check=True, capture_output=True)
        wall = time.perf_counter() - start
        rep = read_json(out / "encode.json")
    return {
        "processes": nproc,
        "texts": rep["texts"],
        "unique_texts": rep["unique_texts"],
        "encode_s": rep["seconds"],
        "texts_per_s": rep["texts_per_s"],
        "unique_per_s": round(rep["unique_texts"] / rep["seconds"], 2),
        "command_wall_s": round(wall, 2),
    }


def _ddp_job(job: str, folder: Path) -> dict:
    """`gpt2rec train --model bpr` in 1 process and with `--nproc 2` (same seed, same global batch):
    seconds per epoch and the test metrics of both."""
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in (1, 2):
            run = Path(tmp) / f"run{nproc}"
            args = ["train", "--model", "bpr", "--dataset", str(folder / "interactions.parquet"),
                    "--users", str(folder / "users.parquet"), "--items", str(folder / "items.parquet"),
                    "--epochs", str(DDP_EPOCHS), "--batch-size", str(BATCH), "--lr", "0.01", "--patience", "0",
                    "--dim", "64", "--device", "cpu", "--quiet", "--out", str(run)]  # fmt: skip
            if nproc > 1:
                args += ["--nproc", str(nproc)]
            subprocess.run([sys.executable, "-m", "gpt2rec", *args], check=True, capture_output=True)
            history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
            test = read_json(run / "metrics.json")["test"]
            out[f"p{nproc}_epoch_s"] = round(float(np.mean([h["seconds"] for h in history])), 2)
            out[f"p{nproc}_losses"] = [round(h["loss"], 6) for h in history]
            out[f"p{nproc}_test_ndcg@10"] = round(test["ndcg@10"], 5)
            out[f"p{nproc}_test_recall@10"] = round(test["recall@10"], 5)
    return out


# ---------------------------------------------------------------------------- analysis
def growth_exponent(xs, ys) -> float | None:
    """Slope of log y against log x (least squares): y ~ x^slope."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if len(xs) < 2 or (ys <= 0).any():
        return None
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def fits(records: list[dict]) -> dict:
    out = {}
    for job in ("bpr", "enhanced"):
        rs = sorted((r for r in records if r["job"] == job and "epoch_s" in r), key=lambda r: r["interactions"])
        xs = [r["interactions"] for r in rs]
        for key in ("epoch_s", "peak_rss_gib"):
            slope = growth_exponent(xs, [r[key] for r in rs])
            out[f"{job}.{key}"] = None if slope is None else round(slope, 3)
    return out


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()]}


def report(data: dict) -> str:
    recs = data["records"]
    lines = ["# Scale benchmark (`gpt2rec bench scale`)", "",
             f"Synthetic catalogs (`gpt2rec data synth`), one worker process per job, torch threads "
             f"{recs[0].get('threads', '?') if recs else '?'}; machine {data['machine']['cpus']} CPUs, load "
             f"average at the end {data['machine']['load_avg_1_5_15']} (a shared machine: timings are noisy).", "",
             "| job | interactions | users | items | load s | epoch s | peak RSS GiB | load avg after | notes |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]  # fmt: skip
    for r in sorted(recs, key=lambda r: (r["job"], r["interactions"])):
        if "error" in r:
            lines.append(f"| {r['job']} | {r['interactions']:,} | {r['users']:,} | {r['items']:,} | | | | | "
                         f"failed: {r['error'][:120]} |")  # fmt: skip
            continue
        notes = ""
        if r["job"] == "ann":
            notes = "; ".join(f"ef {ef}: recall@10 {r[f'ann_recall@10@ef{ef}']:.3f}, speed-up "
                              f"{r[f'ann_speedup@ef{ef}']:.1f}x" for ef in ANN_EFS if f"ann_recall@10@ef{ef}" in r)  # fmt: skip
            notes += f" (exact {r.get('exact_search_s@ef256', '?')}s for {ANN_USERS} users)"
        if "ann_recall@10" in r:
            notes = (f"ANN recall@10 {r['ann_recall@10']:.3f}, speed-up {r['ann_speedup']:.1f}x "
                     f"(exact {r['exact_search_s']:.2f}s, ANN {r['ann_search_s']:.2f}s + build {r['ann_build_s']:.1f}s)")  # fmt: skip
        if "texts_per_s" in r:
            notes = (f"{r['processes']} process(es): {r['texts']:,} texts ({r['unique_texts']:,} distinct) in "
                     f"{r['encode_s']:.1f}s = {r['texts_per_s']:,.0f} texts/s, {r['unique_per_s']:.0f} distinct/s")  # fmt: skip
        if r["job"] == "ddp":
            notes = (f"bpr, {DDP_EPOCHS} epochs, global batch {BATCH}: 1 process {r['p1_epoch_s']}s/epoch, test "
                     f"ndcg@10 {r['p1_test_ndcg@10']}; 2 processes (gloo) {r['p2_epoch_s']}s/epoch, test ndcg@10 "
                     f"{r['p2_test_ndcg@10']}; losses {r['p1_losses']} vs {r['p2_losses']}")  # fmt: skip
        if "build_s" in r and r["job"] == "enhanced":
            notes = (f"build (render + encode through the cache) {r['build_s']:.1f}s; epoch extrapolated from "
                     f"{r.get('steps_timed', '?')} steps of {r.get('steps_per_epoch', '?')}")  # fmt: skip
        lines.append(
            f"| {r['job']} | {r['interactions']:,} | {r['users']:,} | {r['items']:,} | {r.get('load_s', '')} | "
            f"{r.get('epoch_s', '')} | {r['peak_rss_gib']:.2f} | {_load_text(r)} | {notes} |"
        )
    lines += ["", "Fitted growth exponents (log-log slope against interactions; target: epoch time <= 1.1):", ""]
    lines += [f"- {k}: {v}" for k, v in data.get("fits", {}).items()]
    return "\n".join(lines) + "\n"


def _load_text(record: dict) -> str:
    load = record.get("load_avg_1_5_15")
    return "" if not load else "/".join(f"{x:.1f}" for x in load)


def plot(data: dict, path: Path) -> bool:
    from .plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "epoch_s", "seconds per epoch"), (axes[1], "peak_rss_gib", "peak RSS (GiB)")):
        for job in ("bpr", "enhanced"):
            rs = sorted((r for r in data["records"] if r["job"] == job and key in r), key=lambda r: r["interactions"])
            if not rs:
                continue
            slope = data.get("fits", {}).get(f"{job}.{key}")
            tag = f"{job} (slope {slope:.2f})" if slope is not None else job
            ax.loglog([r["interactions"] for r in rs], [r[key] for r in rs], "o-", label=tag)
        ax.set_xlabel("interactions")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("gpt2rec bench scale: synthetic catalogs")
    _save(fig, path)
    plt.close(fig)
    return True
