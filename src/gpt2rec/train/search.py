"""Grid search of a closed-form model's settings on validation (`gpt2rec train --tune`).

Each point of the model's `ModelSpec.tune_grid` is laid over the run's model settings, fitted, and
scored on the split's validation part under the split's own protocol (`eval.protocols.evaluate_part`);
the point with the best validation metric wins (the first of equals, so the grid's order breaks
ties). The test part is never looked at. Closed-form fits take about a second on ML-100K, so the
whole grid costs tens of seconds; gradient models are not searched (one run each would take minutes).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..data.splits import Split
from ..errors import UserError
from ..eval.protocols import evaluate_part
from ..models.base import ModelContext, ModelSpec
from ..utils.config import to_dict
from .config import TrainConfig, metric_k

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    """The chosen point's full model settings, and every point tried with its validation metrics."""

    chosen: dict
    point: dict  # the chosen grid point (the settings the search set)
    metric: str
    tried: list[dict]  # [{"settings": {...the point...}, "valid": {metric: value, ...}}]

    def to_dict(self) -> dict:
        return {"metric": self.metric, "point": self.point, "chosen": self.chosen, "tried": self.tried}


def check_searchable(spec: ModelSpec) -> None:
    if spec.fit is None or not spec.tune_grid:
        raise UserError(
            f"--tune searches the grid of a closed-form model (ease, itemknn, l3ae); {spec.name} has none: "
            "set its values with --set"
        )


def grid_search(
    spec: ModelSpec, model_config, ctx: ModelContext, split: Split, train: TrainConfig, progress: bool = True
) -> SearchResult:
    """Fit `spec` at every point of its grid for this split kind (`ModelSpec.tune_points`) over
    `model_config` (a typed config) and keep the point with the best `train.metric` on `split.valid`."""
    check_searchable(spec)
    base = to_dict(model_config)
    ks = tuple(sorted({10, metric_k(train.metric)}))
    pop = np.bincount(split.train["item"].to_numpy(np.int64), minlength=ctx.n_items)
    tried, best, best_value = [], None, -np.inf
    points = spec.tune_points(split.config.kind)
    for point in tqdm(points, desc=f"tuning {spec.name}", unit="fit", disable=not progress, leave=False):
        config = dataclasses.replace(model_config, **point)
        model = spec.build(config, ctx)
        spec.fit(model, ctx)
        valid = evaluate_part(model, split, "valid", ctx.n_users, ctx.n_items, ks, train.eval_batch_size, pop)
        value = float(valid[train.metric])
        tried.append({"settings": dict(point), "valid": {train.metric: value, "n_users": valid["n_users"]}})
        log.debug("tune %s %s: valid %s %.4f", spec.name, point, train.metric, value)
        if value > best_value:
            best, best_value = point, value
        del model
    if best is None:
        raise UserError(f"no point of {spec.name}'s grid gave a finite validation {train.metric}; check the data")
    log.info("tuned %s on validation over %d points: %s (%s %.4f)", spec.name, len(tried), best, train.metric,
             best_value)  # fmt: skip
    return SearchResult({**base, **best}, dict(best), train.metric, tried)
