"""Speed figures, each measured in the same run as its reference.

- encoding: `TextEncoder.encode` over the user and item sentences vs the bare-forward limit (the
  backbone's forward alone over the same pre-tokenized, pre-padded batches); best of `repeats`
  alternating passes each, on the same random subset of texts.
- epoch: seconds of one training epoch (the loop's BPR step, timed without the validation pass) of
  every gradient model on the warm split (first seed), and the closed-form fit time of the others;
  ratio to BPR-MF's epoch measured here. Expensive dynamic modes are timed on `DYNAMIC_BATCHES`
  batches after `WARMUP_BATCHES` and extrapolated to an epoch.
- end2end: the enhanced model's cached and end2end steps and the naive dynamic forward (every
  row's text through the whole LM each step: no dedupe, no reuse of frozen lower-block states), on
  the same batches.
- latency: top-10 over all items for one user, in process (`pipeline.recommend_items`).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from . import plan
from .measure import Timer, percentiles_ms
from .summary import label

REPEATS, QUICK_REPEATS = 3, 1
ENCODE_SUBSET, QUICK_ENCODE_SUBSET = 1024, 256
LATENCY_CALLS, QUICK_LATENCY_CALLS = 200, 30
DYNAMIC_BATCHES, WARMUP_BATCHES, QUICK_DYNAMIC_BATCHES = 3, 1, 1
NAIVE_ROWS = 256


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- encoding


def measure_encoding(run, lms: list[str]) -> None:
    """texts/s of the encoder and of the bare forward, per LM (skips LMs already measured; an LM
    that fails to load is noted, and its models fail in turn)."""
    from ..errors import UserError

    done = dict(run.store.section("speed").get("encoding", {}))
    for lm in lms:
        if lm in done and "error" not in done[lm]:
            continue
        run.log(f"speed: encoding with {lm}")
        try:
            done[lm] = encoding_speed(run.dataset, lm, run.device, run.config.quick, seed=0)
        except UserError as exc:
            done[lm] = {"error": str(exc)}
            run.log(f"speed: encoding with {lm} failed: {exc}")
        run.store.put("speed", "encoding", done)


def encoding_speed(dataset, lm: str, device: torch.device, quick: bool = False, seed: int = 0) -> dict:
    from ..models.text_features import LMSettings, make_encoder, render, resolve_lm_name

    settings = LMSettings(lm=lm)
    with Timer() as load:
        encoder = make_encoder(settings, resolve_lm_name(lm), device, "mean")
    users, items = render(settings, dataset)
    texts = [r.text for r in users + items]
    n = min(len(texts), QUICK_ENCODE_SUBSET if quick else ENCODE_SUBSET)
    texts = [texts[i] for i in np.random.default_rng(seed).permutation(len(texts))[:n]]
    prepared = encoder.prepare(texts)
    padded = [encoder.pad([prepared.input_ids[j] for j in rows]) for rows in prepared.batches]
    encoder.eval()
    encoder.encode(texts[: min(8, n)], progress=False)  # warm-up (thread pools, allocator)
    enc_best, bare_best = math.inf, math.inf
    for _ in range(QUICK_REPEATS if quick else REPEATS):
        _sync(device)
        start = time.perf_counter()
        encoder.encode(texts, progress=False)
        _sync(device)
        enc_best = min(enc_best, time.perf_counter() - start)
        start = time.perf_counter()
        with torch.no_grad():
            for ids, mask in padded:
                encoder.backbone(input_ids=ids, attention_mask=mask)
        _sync(device)
        bare_best = min(bare_best, time.perf_counter() - start)
    return {
        "texts": n, "unique": prepared.n_unique, "batch_size": encoder.config.batch_size, "pooling": "mean",
        "seconds": enc_best, "texts_per_s": n / enc_best, "limit_seconds": bare_best,
        "limit_texts_per_s": n / bare_best, "ratio_to_limit": bare_best / enc_best, "load_seconds": load.seconds,
        "mean_tokens": float(np.mean([len(x) for x in prepared.input_ids])),
    }  # fmt: skip


# ---------------------------------------------------------------- training steps


def time_steps(
    model,
    split,
    n_users: int,
    n_items: int,
    batch_size: int,
    lr: float,
    seed: int,
    max_batches: int | None = None,
    warmup: int = 0,
    epoch: int = 1,
) -> dict:
    """Seconds of the training loop's BPR step (loss, extra_loss, backward, Adam) over one epoch's
    batches, or over `max_batches` after `warmup` untimed ones, extrapolated to a whole epoch."""
    from ..data.sampling import NegativeSampler, training_batches
    from ..data.splits import interaction_matrix
    from ..eval.protocols import model_device
    from ..train.loop import train_step

    device = model_device(model)
    sampler = NegativeSampler(interaction_matrix(split.train, n_users, n_items), n_items)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    if hasattr(model, "on_epoch_start"):
        model.on_epoch_start(epoch, generator)
    model.train()
    times = []
    n_batches = -(-len(split.train) // batch_size)
    for b, (users, pos, neg) in enumerate(training_batches(split.train, sampler, batch_size, rng)):
        if max_batches is not None and b >= warmup + max_batches:
            break
        users, pos, neg = users.to(device), pos.to(device), neg.to(device)
        _sync(device)
        start = time.perf_counter()
        train_step(model, optimizer, users, pos, neg, generator=generator)
        _sync(device)
        if b >= warmup:
            times.append(time.perf_counter() - start)
    per_batch = float(np.mean(times)) if times else float("nan")
    full = max_batches is None
    return {"seconds": float(np.sum(times)) if full else per_batch * n_batches, "seconds_per_batch": per_batch,
            "batches_timed": len(times), "batches_per_epoch": n_batches,
            "how": "one full epoch" if full else f"{len(times)} batches after {warmup} warm-up, x{n_batches}"}  # fmt: skip


def _fresh(run, name: str, lm, overrides: dict | None = None, split=None):
    """A freshly built model of bench entry `name` (plus `overrides`) on the warm first-seed split."""
    from ..models.base import ModelContext
    from ..utils.device import seed_everything
    from .training import model_config

    entry = plan.entry_named(name, run.best)
    spec, cfg = model_config(entry, {"model": dict(overrides or {})}, lm)
    split = split if split is not None else run.split(plan.WARM, 0)
    seed_everything(0)
    ctx = ModelContext(run.dataset.n_users, run.dataset.n_items, run.dataset, split.train, run.device)
    return entry, spec, spec.build(cfg, ctx), ctx


def _warm_entries(run):
    """(entry, its primary LM or None) for each bench entry run on warm whose LM is available."""
    for entry in plan.entries(run.config):
        elm = plan.primary_lm(entry, run.lms)
        if plan.WARM in entry.protocols and not (entry.lm and elm is None):
            yield entry, elm


def measure_epochs(run) -> dict:
    """Seconds per epoch of each main model on warm (closed form: the fit) and the ratio to BPR."""
    split = run.split(plan.WARM, 0)
    repeats = QUICK_REPEATS if run.config.quick else REPEATS
    out = {}
    for entry, elm in _warm_entries(run):
        name = label(entry.name, elm)
        _, spec, model, ctx = _fresh(run, entry.name, elm)
        if spec.fit is not None:
            with Timer() as t:
                spec.fit(model, ctx)
            out[name] = {"seconds": t.seconds, "how": "closed-form fit"}
            continue
        batch, lr = int(plan.train_settings(entry)["batch_size"]), float(plan.train_settings(entry)["lr"])
        strategy = entry.overrides.get("strategy")
        if strategy not in plan.DYNAMIC_STRATEGIES:
            n_users, n_items = run.dataset.n_users, run.dataset.n_items
            out[name] = fastest_epoch(
                [time_steps(model, split, n_users, n_items, batch, lr, e, epoch=e + 1) for e in range(repeats)]
            )
        else:  # hybrid: an epoch of its dynamic phase
            epoch = int(model.config.hybrid_cached_epochs) + 1 if strategy == "hybrid" else 1
            model.on_epoch_start(epoch, torch.Generator().manual_seed(0))
            primed = prime(model)
            out[name] = time_steps(model, split, run.dataset.n_users, run.dataset.n_items, batch, lr, 0,
                                   *dynamic_batches(run), epoch=epoch)  # fmt: skip
            out[name]["how"] += f" (epoch {epoch}; after a one-off {primed:.1f}s pass over all texts)"
        del model
    bpr = out.get("bpr", {}).get("seconds")
    for value in out.values():
        value["ratio_to_bpr"] = value["seconds"] / bpr if bpr else None
    return out


def fastest_epoch(runs: list[dict]) -> dict:
    """The fastest of epochs timed in a row (`time_steps` dicts), with every epoch's seconds: one
    epoch of 1-2 s on a shared 2-core VM varied by +-25% between runs, more than the changes the
    ratios are read for."""
    out = dict(min(runs, key=lambda r: r["seconds"]))
    out["epoch_seconds"] = [round(r["seconds"], 4) for r in runs]
    out["how"] = f"fastest of {len(runs)} full epochs" if len(runs) > 1 else "one full epoch"
    return out


def prime(model) -> float:
    """One-off pass of a dynamic model before timing steady-state steps: `text.refresh` runs every
    text once, which fills the fast encoder's frozen lower-block states. Returns its seconds."""
    if not getattr(getattr(model, "config", None), "dynamic", False) or not hasattr(model, "text"):
        return 0.0
    with Timer() as t:
        model.text.refresh()
    return t.seconds


def naive_steps(model, split, n_items: int, batch_size: int, seed: int, max_batches: int, warmup: int) -> dict:
    """The naive dynamic forward on the same batches: the text of every row (user, positive, negative:
    3B texts, no dedupe) tokenized and run through the WHOLE LM each step (no reuse of frozen lower
    states), mean-pooled, with a backward pass into the model's trainable LM weights (the same LoRA
    top blocks). The fusion layers are left out, so this is a lower bound of a naive step's cost.
    Without dedupe the cost is linear in the rows (fixed chunks of the encoder's batch size), so
    only the first `NAIVE_ROWS` rows of each batch are run and the time is scaled to the batch."""
    from ..data.sampling import NegativeSampler, training_batches
    from ..data.splits import interaction_matrix
    from ..text.encoder import mean_pool

    enc = model.text.ensure_lm()
    device = enc.device
    texts = {kind: [r.text for r in model.text.rendered[kind]] for kind in ("user", "item")}
    sampler = NegativeSampler(interaction_matrix(split.train, model.n_users, n_items), n_items)
    rng = np.random.default_rng(seed)
    enc.train()
    times = []
    for b, (users, pos, neg) in enumerate(training_batches(split.train, sampler, batch_size, rng)):
        if b >= warmup + max_batches:
            break
        _sync(device)
        start = time.perf_counter()
        rows = min(NAIVE_ROWS, len(users))
        scale = len(users) / rows
        users, pos, neg = users[:rows], pos[:rows], neg[:rows]
        batch = ([texts["user"][u] for u in users.tolist()] + [texts["item"][i] for i in pos.tolist()]
                 + [texts["item"][i] for i in neg.tolist()])  # fmt: skip
        ids = enc.tokenizer(batch, truncation=True, max_length=enc.config.max_length)["input_ids"]
        total = None
        for s in range(0, len(ids), enc.config.batch_size):
            input_ids, mask = enc.pad(ids[s : s + enc.config.batch_size])
            pooled = mean_pool(enc.hidden(input_ids, mask).float(), mask)  # (b, D)
            part = pooled.square().mean()
            total = part if total is None else total + part
        total.backward()
        model.zero_grad(set_to_none=True)
        _sync(device)
        if b >= warmup:
            times.append((time.perf_counter() - start) * scale)
    per_batch = float(np.mean(times))
    n_batches = -(-len(split.train) // batch_size)
    return {"seconds_per_batch": per_batch, "seconds_per_epoch": per_batch * n_batches, "batches_timed": len(times)}


def measure_dynamic(run) -> dict:
    """cached vs end2end vs the naive dynamic forward of the enhanced model, on the same batches."""
    lm = plan.primary_lm(plan.entry_named("enhanced-end2end"), run.lms)
    if lm is None or not any(e.model == "enhanced" for e in plan.entries(run.config)):
        return {"skipped": "no enhanced model (or no LM) in this run"}
    split = run.split(plan.WARM, 0)
    batches, warmup = dynamic_batches(run)
    out = {"note": (f"enhanced model, lm {lm}, warm split (first seed): {batches} timed batches after {warmup} "
                    "warm-up, the same batches (same sampling seed) in each mode, extrapolated to an epoch. "
                    "end2end is timed after its one-off pass over all texts (`prime_seconds`). naive: "
                    + " ".join(naive_steps.__doc__.split(": ", 1)[1].split()))}  # fmt: skip
    for mode in ("cached", "end2end", "naive"):
        entry, _, model, _ = _fresh(
            run, "enhanced-end2end", lm, {"strategy": "cached" if mode == "cached" else "end2end"}
        )
        batch, lr = int(plan.train_settings(entry)["batch_size"]), float(plan.train_settings(entry)["lr"])
        n = (run.dataset.n_users, run.dataset.n_items)
        if mode == "naive":
            out[mode] = naive_steps(model, split, n[1], batch, 0, batches, warmup)
        else:
            primed = prime(model)
            r = time_steps(model, split, *n, batch, lr, 0, batches, warmup)
            out[mode] = {"seconds_per_batch": r["seconds_per_batch"], "seconds_per_epoch": r["seconds"],
                         "prime_seconds": primed}  # fmt: skip
        del model
    for v in out.values():
        if isinstance(v, dict):
            for ref in ("cached", "naive"):
                v[f"ratio_to_{ref}"] = v["seconds_per_epoch"] / out[ref]["seconds_per_epoch"]
    return out


def dynamic_batches(run) -> tuple[int, int]:
    return (QUICK_DYNAMIC_BATCHES, 0) if run.config.quick else (DYNAMIC_BATCHES, WARMUP_BATCHES)


# ---------------------------------------------------------------- latency


def recommend_latency(model, split, n_users: int, n_items: int, calls: int, seed: int = 0) -> dict:
    from ..data.splits import interaction_matrix
    from ..pipeline import recommend_items

    train = interaction_matrix(split.train, n_users, n_items)
    users = np.flatnonzero(np.diff(train.indptr) > 0)
    users = np.random.default_rng(seed).choice(users, size=calls, replace=True)
    seen = lambda u: train.indices[train.indptr[u] : train.indptr[u + 1]]  # noqa: E731
    for u in users[:3]:  # warm-up
        recommend_items(model, int(u), 10, seen(u))
    times = []
    for u in users:
        start = time.perf_counter()
        recommend_items(model, int(u), 10, seen(u))
        times.append(time.perf_counter() - start)
    return percentiles_ms(times)


def measure_latency(run) -> dict:
    from .training import ensure_trained

    calls = QUICK_LATENCY_CALLS if run.config.quick else LATENCY_CALLS
    split = run.split(plan.WARM, 0)
    out = {}
    for entry, elm in _warm_entries(run):
        trained = ensure_trained(run, entry.name, elm)
        name = label(entry.name, elm)
        if trained is None:  # resumed run: not retrained for this (it scores like enhanced-cached)
            continue
        out[name] = recommend_latency(trained.model, split, run.dataset.n_users, run.dataset.n_items, calls)
    return out


def measure_training_and_latency(run) -> None:
    """The epoch, end2end and latency sections (each skipped when already in the results)."""
    for key, fn in (("epoch", measure_epochs), ("end2end", measure_dynamic), ("latency", measure_latency)):
        if key in run.store.section("speed") and "error" not in run.store.section("speed")[key]:
            continue
        run.log(f"speed: {key}")
        try:
            value = fn(run)
        except Exception as exc:  # noqa: BLE001 - noted in the report; the next run retries it
            value = {"error": f"{type(exc).__name__}: {exc}"}
            run.log(f"speed: {key} failed: {value['error']}")
        run.store.put("speed", key, value)
