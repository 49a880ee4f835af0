"""Tuning a baseline as carefully as the GPT-2 models: a coordinate search over a grid, on VALIDATION.

The full product of the axes (dimension x L2 x learning rate x negatives x loss) is hundreds of
trainings; a coordinate search visits one axis at a time with the others held at the best point so
far, and repeats until a whole round moves nothing (each point trained once: results are memoised).
Every point tried and its validation score go to the results store (`tuning` section) and the report,
so the choice can be checked; the bench's own grid for the model (`plan.ENTRIES`) then keeps the
winner and its neighbours, re-chosen on each protocol's validation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ..errors import UserError
from ..models import bpr
from ..train.search import Candidate, candidate_key, coordinate_search

# model -> (protocol, start, axes): what `gpt2rec bench tune` searches. BPR-MF starts from its old
# defaults (dim 64, reg 1e-3 chosen by the bench, lr 1e-3, one negative, the BPR loss) along the axes
# `train --tune` searches too (`ModelSpec.tune_axes`), in the order visited.
TUNING: dict[str, tuple[str, Candidate, Mapping[str, tuple]]] = {
    "bpr": ("warm", {"model": {"dim": 64, "reg": 1e-3}, "train": {"lr": 1e-3, "num_neg": 1, "loss": "bpr"}},
            bpr.SPEC.tune_axes),
}  # fmt: skip


def targets(config, models: list[str], dataset) -> list[tuple[str, str]]:
    """(model, protocol) pairs to tune: each model on its `TUNING` protocol, or on each protocol of
    --protocols; one the model does not run on in the bench, or the data cannot split, is refused."""
    from . import plan
    from .protocols import split_problem, unusable_protocols

    out, unusable = [], unusable_protocols(dataset)
    for model in models:
        entry = plan.entry_named(model)
        for protocol in config.protocol_names or (TUNING[model][0],):
            hint = "leave it out of --protocols" if config.protocols else "name another with --protocols"
            if protocol not in entry.protocols:
                raise UserError(f"bench tune: {model} does not run on {protocol} in the bench (it runs on "
                                f"{', '.join(entry.protocols)}); name one of those with --protocols")  # fmt: skip
            why = unusable.get(protocol) or split_problem(dataset, protocol)
            if why:
                raise UserError(f"bench tune: protocol {protocol} cannot run on {dataset.name}: {why}; {hint}")
            out.append((model, protocol))
    return out


def settings(run, entry, seed: int) -> dict:
    """What changes a point's score besides the dataset (fingerprinted by the store) and the point:
    the epoch cap in force (--epochs, --quick), the bench's training defaults, the seed."""
    from . import plan

    return json.loads(json.dumps({"epochs": run.config.epochs_for(entry), "train": plan.TRAIN, "seed": seed}))


def tune(run, model: str, protocol: str, start: Candidate, axes: dict[str, tuple], seed: int = 0) -> dict:
    """Coordinate search for bench entry `model` on `protocol`'s first-seed VALIDATION; stored
    under `tuning` as `protocol|model` with the `settings` it was scored under (rerunning under the
    same settings reuses the points already tried; under others, trains them again)."""
    from . import plan
    from .plan import Job
    from .training import _score, train_one

    entry = plan.entry_named(model)
    key, now = f"{protocol}|{model}", settings(run, entry, seed)
    kept = run.store.section("tuning").get(key, {})
    # points stored before their settings were (the committed search) were scored by the full bench
    was = kept.get("settings", {**now, "epochs": plan.BenchConfig().epochs_for(entry)})
    if kept.get("tried") and was != now:
        differ = "not recorded" if not isinstance(was, dict) else ", ".join(
            f"{k} {was.get(k)} there, {v} here" for k, v in now.items() if was.get(k) != v)  # fmt: skip
        run.log(f"tune {key}: the {len(kept['tried'])} points stored were scored under other settings "
                f"({differ}); training them again")  # fmt: skip
        kept = {}
    old = {candidate_key(t["candidate"]): t["valid"] for t in kept.get("tried", [])}
    job, split = Job(protocol, model, None, seed), run.split(protocol, seed)
    fixed = {"seed": seed, "settings": now, "start": start, "axes": {k: list(v) for k, v in axes.items()}}

    def score(candidate: Candidate) -> float:
        if candidate_key(candidate) in old:
            return old[candidate_key(candidate)]
        trained = train_one(run, entry, candidate, job, split)
        value = _score(trained.valid, protocol)
        run.log(f"tune {key}: {candidate} -> {value:.4f} ({trained.info['epochs']} epochs)")
        old[candidate_key(candidate)] = value
        done = [{"candidate": json.loads(k), "valid": v} for k, v in old.items()]
        run.store.put("tuning", key, {**kept, **fixed, "tried": done, "chosen": None})  # resumable
        return value

    best, tried = coordinate_search(score, start, axes)
    result = {"chosen": best, "tried": tried, **fixed, "metric": plan.PROTOCOLS[protocol].metric}
    note = {"note": kept["note"]} if kept.get("note") else {}  # a hand-written note on these very points
    run.store.put("tuning", key, {**note, **result})
    return result
