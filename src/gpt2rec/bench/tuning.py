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

from ..models import bpr
from ..train.search import Candidate, candidate_key, coordinate_search

# model -> (protocol, start, axes): what `gpt2rec bench tune` searches. BPR-MF starts from its old
# defaults (dim 64, reg 1e-3 chosen by the bench, lr 1e-3, one negative, the BPR loss) along the axes
# `train --tune` searches too (`ModelSpec.tune_axes`), in the order visited.
TUNING: dict[str, tuple[str, Candidate, Mapping[str, tuple]]] = {
    "bpr": ("warm", {"model": {"dim": 64, "reg": 1e-3}, "train": {"lr": 1e-3, "num_neg": 1, "loss": "bpr"}},
            bpr.SPEC.tune_axes),
}  # fmt: skip


def tune(run, model: str, protocol: str, start: Candidate, axes: dict[str, tuple], seed: int = 0) -> dict:
    """Coordinate search for bench entry `model` on `protocol`'s first-seed VALIDATION; stored
    under `tuning` as `protocol|model` (rerunning reuses the points already tried)."""
    from . import plan
    from .plan import Job
    from .training import _score, train_one

    entry = plan.entry_named(model)
    key = f"{protocol}|{model}"
    old = {candidate_key(t["candidate"]): t["valid"] for t in run.store.section("tuning").get(key, {}).get("tried", [])}
    job, split = Job(protocol, model, None, seed), run.split(protocol, seed)

    def score(candidate: Candidate) -> float:
        if candidate_key(candidate) in old:
            return old[candidate_key(candidate)]
        trained = train_one(run, entry, candidate, job, split)
        value = _score(trained.valid, protocol)
        run.log(f"tune {key}: {candidate} -> {value:.4f} ({trained.info['epochs']} epochs)")
        old[candidate_key(candidate)] = value
        done = [{"candidate": json.loads(k), "valid": v} for k, v in old.items()]
        partial = {"tried": done, "seed": seed, "start": start, "axes": {k: list(v) for k, v in axes.items()}}
        run.store.put("tuning", key, {**run.store.section("tuning").get(key, {}), **partial})  # resumable
        return value

    best, tried = coordinate_search(score, start, axes)
    result = {"chosen": best, "tried": tried, "seed": seed, "axes": {k: list(v) for k, v in axes.items()},
              "start": start, "metric": plan.PROTOCOLS[protocol].metric}  # fmt: skip
    run.store.put("tuning", key, result)
    return result
