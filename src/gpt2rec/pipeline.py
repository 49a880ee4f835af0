"""A whole run as three library calls: `train_run`, `evaluate_run`, `recommend`.

train_run: load data -> split (or read a saved split) -> build -> fit (closed form or the gradient
loop) -> evaluate valid and test -> save the run folder (see `gpt2rec.train.checkpoint`). The split
is saved inside the run folder (`split/`), so evaluation and recommendation use exactly the same
training interactions. Running train_run again on an unfinished folder resumes it.
"""

from __future__ import annotations

import logging
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import distributed as dist
from .data.load import DataConfig, absolute_paths, check_paths, load_dataset, pin_feedback
from .data.split_files import read_split, read_split_config, write_split
from .data.splits import Split, SplitConfig, make_split
from .errors import NonFiniteLossError, UserError
from .models.base import ModelContext, new_users_blind
from .models.registry import get_spec
from .run import Run, recommend_items  # noqa: F401 (recommend_items: public here since before Run)
from .train import checkpoint as ckpt
from .train import runfolder
from .train.config import TUNE_EPOCHS, TrainConfig, default_train
from .train.loop import fit
from .train.out_folder import (
    SPLIT_DIR,
    TUNING,
    SearchRecord,
    check_same_run,
    check_same_search,
    saved_search,
    split_digest,
)  # fmt: skip
from .train.search import axis_search, check_searchable, grid_search
from .utils.config import check_k, from_dict, to_dict
from .utils.device import pick_device
from .utils.io import write_json

log = logging.getLogger(__name__)

EVAL_KS = (5, 10, 20)
MAX_WIDTH = 16384  # widest sane embedding / layer; larger values are typos that would exhaust memory
WIDTH_FIELDS = ("dim", "hidden", "mlp_layers", "n_heads", "lora_r")


@dataclass
class RunConfig:
    """A whole run's settings. Build one with `RunConfig.create` (the converter: sections as dicts of
    JSON values or CLI strings, the model's training defaults filled in); the constructor only checks."""

    model: str
    model_config: dict  # the model's settings as JSON values, every default filled in
    data: DataConfig
    split: SplitConfig
    train: TrainConfig
    split_dir: str | None = None

    @classmethod
    def create(cls, model: str, model_config=None, data=None, split=None, train=None, split_dir=None) -> RunConfig:
        """A RunConfig from dicts (or typed configs); `train` starts from the model's spec.train_defaults.
        Any bad value is one UserError naming it."""
        if not isinstance(model, str):
            raise UserError(f"model must be a model name, got {model!r}")
        data = data if isinstance(data, DataConfig) else from_dict(DataConfig, _section("data", data))
        split = split if isinstance(split, SplitConfig) else from_dict(SplitConfig, _section("split", split))
        train = train if isinstance(train, TrainConfig) else default_train(model, _section("train", train))
        typed = _model_config(model, model_config if model_config is not None else {})
        return cls(model, to_dict(typed), data, split, train, split_dir)

    def __post_init__(self):  # validation only
        for name, cls in (("data", DataConfig), ("split", SplitConfig), ("train", TrainConfig), ("model_config", dict)):
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"RunConfig.{name} must be a {cls.__name__}; build from dicts with RunConfig.create")

    def model_config_obj(self):
        return _model_config(self.model, self.model_config)


def _section(name: str, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{name} must be a JSON object of settings, got {value!r}")
    return value


def _model_config(model: str, model_config):
    """`model_config` (a dict of JSON values, or the typed config) as the model's typed config, widths checked."""
    cls = get_spec(model).config_cls
    if isinstance(model_config, cls):
        config = model_config
    elif not isinstance(model_config, dict):
        raise UserError(f"model_config must be a JSON object of {model} settings, got {model_config!r}")
    else:
        config = from_dict(cls, dict(model_config))
    check_widths(config)
    return config


def check_widths(model_config) -> None:
    """Layer widths within MAX_WIDTH, so a typo (--dim 10000000000) fails before allocating anything."""
    for name in WIDTH_FIELDS:
        value = getattr(model_config, name, None)
        for width in value if isinstance(value, (tuple, list)) else [value]:
            if isinstance(width, int) and not 1 <= width <= MAX_WIDTH:
                raise UserError(f"{name} {width} is outside 1..{MAX_WIDTH}; give a layer width such as --dim 64")


def fit_model(
    spec, model, ctx: ModelContext, split: Split, train: TrainConfig, run_dir, verbose: bool = True, stop_after=None
) -> dict:
    """Closed-form fit (spec.fit) or the gradient loop (to `stop_after` epochs, if given); returns
    what to record about training."""
    start = time.perf_counter()
    if spec.fit is not None:
        spec.fit(model, ctx)
        return {"kind": "closed-form", "seconds": time.perf_counter() - start}
    result = fit(model, ctx, split, train, run_dir, progress=verbose, stop_after=stop_after)
    return {
        "kind": "gradient",
        "seconds": result.seconds,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
    }


def evaluate_model(model, split: Split, n_users: int, n_items: int, train: TrainConfig, spec=None) -> dict:
    """Metrics on valid (seen: train) and test (seen: train + valid): full ranking, or among the
    part's new items on a cold-item split (`eval.protocols.evaluate_part`). With the model's `spec`,
    held-out users it cannot place (no training interactions, `new_users_blind`) are named."""
    from .eval.protocols import evaluate_part

    ks = tuple(sorted(set(EVAL_KS) | set(train.eval_ks)))
    pop = np.bincount(split.train["item"].to_numpy(np.int64), minlength=n_items)
    parts = ("valid", "test")
    out = {p: evaluate_part(model, split, p, n_users, n_items, ks, train.eval_batch_size, pop) for p in parts}
    if getattr(split.config, "kind", None) == "mixed":
        log.info("mixed split: each part ranks the known items and its own new items together")
    elif split.cold_items is not None:
        log.info("cold-item split: each part is ranked among its own new items, not the whole catalogue")
    if spec is not None:
        _warn_blind_spots(split, spec, model)
    return out


def _warn_blind_spots(split: Split, spec, model) -> None:
    """Held-out users the model scores from nothing (`new_users_blind`), and a cold-item split's new
    items, which a history-only model scores from nothing too."""
    known = np.unique(split.train["user"].to_numpy())
    counts = []
    for part in ("valid", "test"):
        users = np.unique(getattr(split, part)["user"].to_numpy())
        new = len(np.setdiff1d(users, known))
        if new:
            counts.append(f"{new} of the {len(users)} {part} users")
    why = new_users_blind(spec, model)
    if counts and why:
        log.warning(
            "%s have no training interactions; %s, so their lists say nothing (ties, which can even look good): "
            "use a model that reads profiles (l3ae, enhanced) with a users table, or popularity for them, or a "
            "split that keeps every user in training (random, loo)",
            " and ".join(counts),
            why,
        )
    if spec.history_only and split.cold_items is not None and len(split.cold_items):
        log.warning(
            "%s split: %s scores an item from its interactions alone, so its ranking of the %d new items "
            "says nothing; models that read item metadata (l3ae, enhanced, genre_content) can rank them",
            getattr(split.config, "kind", None) or "cold-item",
            spec.name,
            len(split.cold_items),
        )


def train_run(
    config: RunConfig, out_dir: str | Path, verbose: bool = True, tune: bool = False, tune_epochs: int = TUNE_EPOCHS
) -> dict:
    """Train, evaluate and save a run into `out_dir`; returns {"valid", "test", "train"} metrics.

    One process at a time writes `out_dir` (a second one gets a UserError). A new run is built in a
    staging sibling folder and appears at `out_dir` only once it can be resumed (after its first
    epoch; closed-form models once complete), so a failed or interrupted start leaves nothing.
    `tune`: first search the model's settings on validation (`train.search`: a closed-form model's
    `tune_grid`, a gradient model's `tune_axes` by runs of at most `tune_epochs` epochs); the run
    keeps the chosen settings, and `tuning.json` every point tried (which the same command reuses to
    resume the run without searching again). Until then each scored point is recorded beside `out`
    (`out_folder.SearchRecord`), so the same command resumes an interrupted search at its next point.
    """
    out = Path(out_dir)
    # reloads of this run see the same feedback, and find its files from any directory
    config = with_written_split(replace(config, data=absolute_paths(pin_feedback(config.data))))
    spec = get_spec(config.model)
    if tune:
        check_searchable(spec, dist.world_size())  # before any work
    main = dist.is_main()  # under torchrun rank 0 locks, writes and evaluates; the others only train
    with runfolder.lock(out) if main else nullcontext():
        tuned_train, tuned_model = searched_settings(spec, config.split.kind) if tune else ([], [])
        # a tuned run: again once its settings are chosen
        check_same_run(out, to_dict(config), tune, tuned_train, tuned_model)
        budget = None if spec.fit is not None else tune_epochs
        record, done = SearchRecord(out, to_dict(config), tuned_train, tuned_model, budget), []
        if tune:
            check_same_search(out, budget)
        dataset = load_dataset(config.data)
        # a run in `out` (unfinished or done) keeps the split it was started on: splitting the data
        # again (rows in another order, rows added) would train on, or score against, other parts
        resuming = dist.broadcast_object((out / ckpt.CONFIG).is_file())
        if resuming:
            split = read_split(dataset, out / SPLIT_DIR, run=out)
        else:
            split = read_split(dataset, config.split_dir) if config.split_dir else make_split(dataset, config.split)
        if len(split.train) == 0:
            raise UserError("the split left no training interactions; choose another split or ratios")
        if tune and len(split.valid) == 0:  # every point would score 0 and the first would be "chosen"
            raise UserError("--tune chooses on validation, but the split's valid part is empty; give it a share "
                            "(e.g. --ratios 0.8 0.1 0.1) or drop --tune")  # fmt: skip
        if tune and not resuming:  # a new run: its search may have been interrupted
            done = record.load(split_digest(dataset, split))  # (every rank reads it before rank 0 writes)
        device = pick_device(config.train.device)
        torch.manual_seed(config.train.seed)
        ctx = ModelContext(dataset.n_users, dataset.n_items, dataset, split.train, device, new_items=split.cold_items)
        search = saved_search(out, budget) if tune else None
        fresh, start = tune and search is None, time.perf_counter()  # (a resumed run reuses its tuning.json)
        recorded = {"done": done, "on_point": record.save if main else None}
        if fresh and spec.fit is not None:
            search = grid_search(spec, config.model_config_obj(), ctx, split, config.train, verbose, **recorded)
        elif fresh:
            search = axis_search(spec, config.model_config_obj(), ctx, split, config.train, budget, verbose,
                                 **recorded)  # fmt: skip
        tune_seconds = time.perf_counter() - start  # reported beside the final fit's own time
        if search is not None:
            try:
                chosen = _model_config(config.model, search.chosen)
            except UserError as exc:  # a hand-edited tuning.json: say which file, not just the value
                raise runfolder.damaged(out / TUNING, f"holds settings the model refuses ({exc})") from None
            config = replace(config, model_config=to_dict(chosen), train=replace(config.train, **search.train))
            check_same_run(out, to_dict(config))
        cfg = to_dict(config)
        model = _build(spec, config.model_config_obj(), ctx)  # before writing: a model that cannot be
        created = False
        with runfolder.staging(out) if main else nullcontext(None) as work:  # built leaves no run
            work = Path(dist.broadcast_object(str(work)))  # every rank reads (resumes from) rank 0's folder
            verbose = verbose and main
            if work == out and (out / ckpt.CONFIG).is_file():
                log.debug("resuming the unfinished run in %s", out)
            else:  # a new run (or a folder of other files)
                if main:
                    ckpt.save_config(work, cfg)
                    ckpt.save_id_maps(work, dataset)
                    write_split(split, dataset, work / SPLIT_DIR)
                    if search is not None:
                        write_json(work / TUNING, search.to_dict())
                if spec.fit is None and config.train.epochs > 1:  # the first checkpoint, then resume
                    # (no bar of its own: the resumed fit's bar starts at epoch 1, one bar per run)
                    fit_model(spec, model, ctx, split, config.train, work, verbose=False, stop_after=1)
                    check_finite(model, config.train)
                    work = runfolder.publish(work, out) if main else out
                    created = main
                    if main:
                        _drop_record(record, tune)
                    dist.barrier()  # published before any rank looks for its checkpoint
            try:
                fit_info = fit_model(spec, model, ctx, split, config.train, work, verbose=verbose)
                check_finite(model, config.train)
            except NonFiniteLossError:
                if created:  # a run started by this call that diverged is a failed start: leave nothing
                    shutil.rmtree(out, ignore_errors=True)
                raise
            if search is not None:
                fit_info["tuned"] = search.settings()
                if fresh:
                    fit_info["tune_seconds"] = tune_seconds
            if not main:
                return {"train": fit_info}
            metrics = evaluate_model(model, split, dataset.n_users, dataset.n_items, config.train, spec)
            metrics["train"] = fit_info
            if resuming:  # resumed with other epochs / patience / device: config.json says what it ran with
                _record_train_settings(work, cfg["train"])
            ckpt.save_model(work, model)
            ckpt.save_metrics(work, metrics)
            runfolder.publish(work, out)
            _drop_record(record, tune)
    return metrics


def _drop_record(record: SearchRecord, tune: bool) -> None:
    """A run is published in `out`: an interrupted search's record beside it is done with (a tuned
    run's tuning.json holds the search; beside an untuned run it can never resume)."""
    if record.remove() and not tune:
        log.info("removed %s: the interrupted --tune search into %s cannot resume beside a run trained "
                 "without --tune", record.path, record.out)  # fmt: skip


def _record_train_settings(run_dir: Path, train: dict) -> None:
    """The run's config.json with the training settings of the command that resumed it (those that
    may change on resume, `train.config.RESUMABLE_CHANGES`), so a retrain from it runs as this run did."""
    path = run_dir / ckpt.CONFIG
    saved = runfolder.read_json_file(path, dict)
    if saved.get("train") != train:
        ckpt.save_config(run_dir, {**saved, "train": train})


def with_written_split(config: RunConfig) -> RunConfig:
    """A run on a written split (`split_dir`): the folder as an absolute path (a retrain finds it from
    any directory) and `split` as its split.json records it (the kind the run really used)."""
    if not config.split_dir:
        return config
    if config.data.feedback:
        raise UserError("--feedback adds the served interactions, which a written split (split_dir) does not "
                        "hold; split here instead: drop --split-dir (or split_dir from the config file)")  # fmt: skip
    folder = Path(config.split_dir).resolve()
    return replace(config, split_dir=str(folder), split=read_split_config(folder))


def searched_settings(spec, split_kind: str) -> tuple[list[str], list[str]]:
    """The training and model settings `--tune` chooses for `spec` on a split of `split_kind`."""
    axes = [a.partition(".") for a in spec.tune_axes]
    train = [name for kind, _, name in axes if kind == "train"]
    model = {name for kind, _, name in axes if kind == "model"} | {k for p in spec.tune_points(split_kind) for k in p}
    return train, sorted(model)


def check_finite(model: torch.nn.Module, train: TrainConfig) -> None:
    """Refuse weights that hold NaN or infinity (never saved, never served as a run)."""
    for name, value in model.named_parameters():  # buffers may hold -inf on purpose (masks)
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise NonFiniteLossError(
                f"training diverged: {name} holds NaN/inf values (learning rate {train.lr:g} too high, or "
                "non-finite data); lower --lr and train into a new --out"
            )


def _build(spec, model_config, ctx: ModelContext):
    """spec.build, with a size the machine cannot hold as one line instead of an allocator trace."""
    try:
        return spec.build(model_config, ctx)
    except ValueError as exc:  # the settings do not fit this data (e.g. a catalog too big for a dense model)
        raise UserError(str(exc)) from None
    except MemoryError:
        raise UserError(f"not enough memory to build {spec.name} with {model_config}; use a smaller dim") from None
    except RuntimeError as exc:
        if "alloc" not in str(exc).lower():
            raise
        raise UserError(f"not enough memory to build {spec.name} with {model_config}; use a smaller dim") from None


def load_run(run_dir: str | Path, device=None):
    run_dir = Path(run_dir)
    cfg = ckpt.read_config(run_dir)
    try:
        config = RunConfig.create(**cfg)
    except TypeError as exc:  # sections this gpt2rec does not know, or a wrong shape
        raise runfolder.damaged(run_dir / ckpt.CONFIG, f"is not a run config ({exc})") from None
    except UserError as exc:  # a value edited by hand: say which file holds it
        raise runfolder.damaged(run_dir / ckpt.CONFIG, f"holds a setting gpt2rec refuses ({exc})") from None
    check_paths(config.data, run_dir / ckpt.CONFIG)
    dataset = load_dataset(config.data)
    device = pick_device(device if device is not None else config.train.device)
    model = ckpt.load_model(run_dir, dataset, device)
    try:
        check_finite(model, config.train)
    except NonFiniteLossError:  # written by hand or by an older gpt2rec: scores would all be NaN
        raise runfolder.damaged(run_dir / ckpt.MODEL, "holds NaN/inf weights") from None
    if not (run_dir / SPLIT_DIR / "split.json").is_file():  # its own parts, not a split to write anew
        raise runfolder.damaged(run_dir / SPLIT_DIR, "is missing or incomplete (the run's own train/valid/test parts)")
    split = read_split(dataset, run_dir / SPLIT_DIR, run=run_dir)
    return config, dataset, model, split


def evaluate_run(run_dir: str | Path, device=None) -> dict:
    """Reload a run folder and evaluate it again on its own split: {"valid": {...}, "test": {...}}."""
    config, dataset, model, split = load_run(run_dir, device)
    return evaluate_model(model, split, dataset.n_users, dataset.n_items, config.train, get_spec(config.model))


def open_run(run_dir: str | Path, device=None) -> Run:
    """The run folder loaded once, as a `Run` (raw IDs, seen items, top-k rows)."""
    return Run(Path(run_dir), *load_run(run_dir, device))


def recommend(run_dir: str | Path, raw_user_id, k: int = 10, device=None) -> list[dict]:
    """Top-k items for a raw user ID, excluding the user's training items: [{item_id, title, score}]."""
    k = check_k(k)  # before the run is loaded
    return open_run(run_dir, device).recommend(raw_user_id, k)
