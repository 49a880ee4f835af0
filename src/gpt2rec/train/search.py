"""Searching a model's settings on validation (`gpt2rec train --tune`); the test part is never read.

Closed-form models (`grid_search`): each point of `ModelSpec.tune_grid` is laid over the run's model
settings, fitted, and scored on the split's validation part under the split's own protocol
(`eval.protocols.evaluate_part`); the best point wins (the first of equals, so the grid's order breaks
ties). A fit takes about a second on ML-100K, so the whole grid costs tens of seconds.

Gradient models (`axis_search`): a coordinate search over `ModelSpec.tune_axes` (one axis at a time,
the others held at the best point so far, until a round moves nothing), each point a short run of at
most `budget` epochs with the run's early stopping, scored by its best validation epoch. A budget
favours settings that learn fast (a higher learning rate); the chosen settings then train in full.

Both take the points an interrupted search already scored (`done`, rows of `tried`) and report each
new one (`on_point`, every row so far), so `train_run` can record a search point by point and resume
it: a recorded point is not scored again, and the search ends as an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.splits import Split
from ..errors import NonFiniteLossError, UserError
from ..eval.protocols import evaluate_part
from ..models.base import ModelContext, ModelSpec
from ..utils.config import to_dict
from ..utils.progress import progress_bar
from .config import TrainConfig, metric_k
from .loop import fit

log = logging.getLogger(__name__)
Candidate = dict  # {"model": {...}, "train": {...}}: settings laid over a run's own
GRID_MODELS = ("ease", "itemknn", "l3ae")  # the registry's searchable models, named in errors and help
RUN_MODELS = ("bpr", "neumf", "l3ae_mf", "basic", "enhanced")


@dataclass
class SearchResult:
    """The chosen point's full model settings, and every point tried with its validation metrics."""

    chosen: dict
    point: dict  # the settings the search set: a grid point; {"model": {...}, "train": {...}} for axes
    metric: str
    tried: list[dict]  # [{"settings": {...the point...}, "valid": {metric: value, ...}}]
    train: dict = dataclasses.field(default_factory=dict)  # training settings the search chose
    budget: int | None = None  # epochs per point (axis search)

    def settings(self) -> dict:
        """The settings the search set, flat: {"reg": 300.0}; {"lr": 0.003, "dim": 128}."""
        return dict(self.point) if self.budget is None else {**self.point["train"], **self.point["model"]}

    def to_dict(self) -> dict:
        out = {"metric": self.metric, "point": self.point, "chosen": self.chosen, "tried": self.tried}
        return out | ({"train": self.train, "budget_epochs": self.budget} if self.budget is not None else {})

    @classmethod
    def from_dict(cls, data: dict) -> SearchResult:
        """A search as `to_dict` wrote it (a run's tuning.json); KeyError / TypeError if it is not one."""
        if not (isinstance(data["chosen"], dict) and isinstance(data["tried"], list)
                and isinstance(data.get("train", {}), dict)):  # fmt: skip
            raise TypeError("chosen, tried and train must be an object, a list and an object")
        return cls(dict(data["chosen"]), data["point"], str(data["metric"]), list(data["tried"]),
                   dict(data.get("train", {})), data.get("budget_epochs"))  # fmt: skip


TUNE_ALONE = (
    "--tune runs its short trainings in one process; tune without --nproc (or torchrun), then train the chosen "
    "settings (the run's config.json: --config RUN/config.json) with --nproc"
)


def check_searchable(spec: ModelSpec, processes: int = 1) -> None:
    """`--tune` of `spec` in `processes` processes is possible, or a UserError saying why not."""
    if not (spec.tune_grid if spec.fit is not None else spec.tune_axes):
        raise UserError(
            f"--tune searches {', '.join(GRID_MODELS)} (a grid of closed-form fits) and {', '.join(RUN_MODELS)} "
            f"(short runs); {spec.name} has no search: set its values with --set"
        )
    if spec.fit is None and processes > 1:
        raise UserError(TUNE_ALONE)


OnPoint = Callable[[list[dict]], None]  # called with every row of `tried` so far, after each new point


def recorded_value(row: dict, metric: str) -> float:
    """A recorded point's validation `metric` (None, a diverged run: -inf, as when it was scored)."""
    value = row["valid"][metric]
    return -np.inf if value is None else float(value)


def grid_search(
    spec: ModelSpec, model_config, ctx: ModelContext, split: Split, train: TrainConfig, progress: bool = True,
    done: Sequence[dict] = (), on_point: OnPoint | None = None,
) -> SearchResult:  # fmt: skip
    """Fit `spec` at every point of its grid for this split kind (`ModelSpec.tune_points`) over
    `model_config` (a typed config) and keep the point with the best `train.metric` on `split.valid`.
    `done`: points already scored (rows of `tried`), not fitted again; `on_point`: told of each new one."""
    check_searchable(spec)
    base = to_dict(model_config)
    ks = tuple(sorted({10, metric_k(train.metric)}))
    pop = np.bincount(split.train["item"].to_numpy(np.int64), minlength=ctx.n_items)
    tried, best, best_value = [], None, -np.inf
    points = spec.tune_points(split.config.kind)
    known = {candidate_key(row["settings"]): row for row in done}
    resumed = sum(candidate_key(dict(point)) in known for point in points)
    if resumed:
        log.info("resuming the search: %d of %d points already scored", resumed, len(points))
    for point in progress_bar(points, desc=f"tuning {spec.name}", unit="fit", show=progress, leave=False):
        row = known.get(candidate_key(dict(point)))
        if row is None:
            config = dataclasses.replace(model_config, **point)
            model = spec.build(config, ctx)
            spec.fit(model, ctx)
            valid = evaluate_part(model, split, "valid", ctx.n_users, ctx.n_items, ks, train.eval_batch_size, pop)
            del model
            tried.append({"settings": dict(point), "valid": {train.metric: float(valid[train.metric]),
                                                             "n_users": valid["n_users"]}})  # fmt: skip
            log.debug("tune %s %s: valid %s %.4f", spec.name, point, train.metric, tried[-1]["valid"][train.metric])
            if on_point is not None:
                on_point(tried)
        else:
            tried.append({"settings": dict(point), "valid": dict(row["valid"])})
        value = recorded_value(tried[-1], train.metric)
        if value > best_value:
            best, best_value = point, value
    if best is None:
        raise UserError(f"no point of {spec.name}'s grid gave a finite validation {train.metric}; check the data")
    log.info("tuned %s on validation over %d points: %s (%s %.4f)", spec.name, len(tried), best, train.metric,
             best_value)  # fmt: skip
    return SearchResult({**base, **best}, dict(best), train.metric, tried)


def candidate_key(candidate: Candidate) -> str:
    """One string per candidate (its dicts in any order), to memoise and look up its score."""
    return json.dumps(candidate, sort_keys=True)


def with_value(candidate: Candidate, axis: str, value) -> Candidate:
    """`candidate` with `axis` ("model.dim", "train.lr") set to `value` (a new dict)."""
    section, _, name = axis.partition(".")
    if section not in ("model", "train") or not name:
        raise ValueError(f"axis {axis!r} must look like model.NAME or train.NAME")
    out = {k: dict(v) for k, v in candidate.items()}
    out.setdefault(section, {})[name] = value
    return out


def coordinate_search(
    score: Callable[[Candidate], float], start: Candidate, axes: Mapping[str, tuple], max_rounds: int = 3
) -> tuple[Candidate, list[dict]]:
    """Maximise `score` one axis at a time from `start`; returns (best candidate, every point tried
    in order as {"candidate", "valid"}). Ties keep the current point (no move without a gain)."""
    tried: dict[str, dict] = {}

    def value(candidate: Candidate) -> float:
        key = candidate_key(candidate)
        if key not in tried:
            tried[key] = {"candidate": candidate, "valid": float(score(candidate))}
        return tried[key]["valid"]

    best, best_score = start, value(start)
    for _ in range(max_rounds):
        moved = False
        for axis, values in axes.items():
            for v in values:
                cand = with_value(best, axis, v)
                s = value(cand)
                if s > best_score:
                    best, best_score, moved = cand, s, True
        if not moved:
            break
    return best, list(tried.values())


def axis_search(
    spec: ModelSpec, model_config, ctx: ModelContext, split: Split, train: TrainConfig, budget: int,
    progress: bool = True, done: Sequence[dict] = (), on_point: OnPoint | None = None,
) -> SearchResult:  # fmt: skip
    """Coordinate search over `spec.tune_axes` from the run's own settings, each point a run of at
    most `budget` epochs (same seed) scored by its best validation `train.metric`; a point whose
    loss diverges scores -inf. `done`: points already scored (rows of `tried`), not trained again
    (the search takes the same path through them); `on_point`: told of each new one."""
    check_searchable(spec)
    if budget < 1:
        raise UserError(f"the tuning budget must be >= 1 epoch, got {budget}; e.g. --tune-epochs 30")
    own = {"model": to_dict(model_config), "train": to_dict(train)}
    start: Candidate = {"model": {}, "train": {}}
    for axis in spec.tune_axes:  # the run's own value on each axis, so it is not trained twice
        section, _, name = axis.partition(".")
        start = with_value(start, axis, own[section][name])
    known = {candidate_key(row["settings"]): row for row in done}
    if known:
        log.info("resuming the search: %d point%s already scored", len(known), "s" if len(known) != 1 else "")
    rows: dict[str, dict] = {}  # candidate_key -> its row of `tried`, in the order scored
    bar = progress_bar(
        desc=f"tuning {spec.name} ({budget} epoch{'s' if budget != 1 else ''} a point)",
        unit="run",
        show=progress,
        leave=False,
    )

    def score(candidate: Candidate) -> float:
        key = candidate_key(candidate)
        if key in known:  # scored before the search was interrupted
            rows[key] = {"settings": candidate, "epochs": known[key].get("epochs"), "valid": dict(known[key]["valid"])}
            return recorded_value(rows[key], train.metric)
        config = dataclasses.replace(model_config, **candidate["model"])
        short = dataclasses.replace(train, **candidate["train"], epochs=min(train.epochs, budget))
        torch.manual_seed(train.seed)
        model = spec.build(config, ctx)
        try:
            result = fit(model, ctx, split, short, None)
            value, epochs = float(result.best_valid[train.metric]), result.epochs_run
            log.debug("tune %s %s: valid %s %.4f (%d epochs)", spec.name, candidate, train.metric, value, epochs)
        except NonFiniteLossError:
            log.info("tune %s %s: diverged", spec.name, candidate)
            value, epochs = -np.inf, None  # the diverged run records no epochs
        finally:
            bar.update()
        # None: diverged (JSON has no -inf)
        rows[key] = {"settings": candidate, "epochs": epochs,
                     "valid": {train.metric: value if np.isfinite(value) else None}}  # fmt: skip
        if on_point is not None:
            on_point(list(rows.values()))
        return value

    with bar:
        best, tried = coordinate_search(score, start, spec.tune_axes)
    if not np.isfinite(max(t["valid"] for t in tried)):
        raise UserError(f"every {spec.name} run of the search diverged; lower --lr or check the data")
    tried_rows = [rows[candidate_key(t["candidate"])] for t in tried]
    log.info("tuned %s on validation over %d short runs: %s", spec.name, len(tried_rows), best)
    return SearchResult({**own["model"], **best["model"]}, best, train.metric, tried_rows, dict(best["train"]),
                        budget)  # fmt: skip
