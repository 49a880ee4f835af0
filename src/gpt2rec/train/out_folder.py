"""What `train_run` finds in its --out folder before it writes: another run (refused, naming the first
setting that differs), a tuned run's search (reused by the same command), an interrupted search's
points (`SearchRecord`: resumed by the same command), or a folder of the user's own files (never
written over)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..data.load import DataConfig, absolute_paths
from ..errors import DataError, UserError
from ..utils.config import from_dict, to_dict
from ..utils.io import read_json, write_json
from . import checkpoint as ckpt
from . import runfolder
from .config import resumable_view
from .search import SearchResult

SPLIT_DIR = "split"
TUNING = "tuning.json"  # a tuned run's search: every point tried, its validation metric
# what a run writes into its folder: a folder without a run that holds one of these is not written over
RUN_FILES = (ckpt.CONFIG, ckpt.MODEL, ckpt.ADAPTER, ckpt.USER_IDS, ckpt.ITEM_IDS, ckpt.METRICS, SPLIT_DIR, TUNING,
             "history.jsonl", "last.safetensors", "best.safetensors", "train_state.json")  # fmt: skip


def _absolute(data: dict | None) -> dict | None:
    try:
        return to_dict(absolute_paths(from_dict(DataConfig, data or {})))
    except (TypeError, ValueError):  # not a data section this gpt2rec reads: compared as it is
        return data


def check_same_run(out: Path, config: dict, tuned: bool = False, tuned_train=(), tuned_model=()) -> None:
    """A folder holding another run is refused. `tuned`: the settings the search chooses (the model
    settings `tuned_model`, the training settings `tuned_train`) are not chosen yet, so compare the
    rest (before the search's minutes, not after them)."""
    path = out / ckpt.CONFIG
    if not path.is_file():
        clash = sorted(name for name in RUN_FILES if (out / name).exists()) if out.is_dir() else []
        if clash:  # a folder of the user's own files: never written over
            raise UserError(f"{out} is not a gpt2rec run (it has no {ckpt.CONFIG}) but holds {', '.join(clash)}, "
                            "which training would write over; choose another --out folder")  # fmt: skip
        return
    try:
        old = ckpt.read_config(out)
    except DataError:
        raise UserError(f"{out} holds a {ckpt.CONFIG} that is not a gpt2rec run's (it names no model, or is not "
                        "JSON); choose another --out folder") from None  # fmt: skip
    config = json.loads(json.dumps(config))  # tuples -> lists, as read back from JSON
    # a run saved before data paths were made absolute still resumes from the same directory
    strip = lambda c: {  # noqa: E731
        **c,
        "train": {k: v for k, v in resumable_view(c.get("train") or {}).items() if k not in tuned_train},
        "data": _absolute(c.get("data")),
        **({"model_config": {k: v for k, v in c["model_config"].items() if k not in tuned_model}} if tuned else {}),
    }
    if strip(old) != strip(config):
        what = _first_difference(strip(old), strip(config))
        fix = f"choose a new --out folder or delete {out}"
        if not tuned and (out / TUNING).is_file():  # (after a search its settings are the run's: no hint)
            fix = f"its settings were chosen by --tune ({TUNING}): add --tune to resume or re-evaluate it, or {fix}"
        raise UserError(f"{out} already holds a different run ({what}); {fix}")


def _first_difference(old, new, path: str = "") -> str:
    """The first setting that differs between two configs, as 'model_config.dim: 32 there, 64 here'."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
    return f"{path or 'config'}: {json.dumps(old)[:40]} there, {json.dumps(new)[:40]} here"


def check_same_search(out: Path, budget: int | None) -> None:
    """A folder with a run made otherwise than this `--tune` (none, or another budget) is refused
    before searching, not after the search's minutes."""
    if not (out / ckpt.CONFIG).is_file():
        return
    if not (out / TUNING).is_file():
        raise UserError(f"{out} holds a run trained without --tune (it has no {TUNING}); choose a new --out folder "
                        "or drop --tune to resume it")  # fmt: skip
    saved = saved_search(out, budget)
    if saved is None:
        had = runfolder.read_json_file(out / TUNING, dict).get("budget_epochs")
        raise UserError(f"{out} was tuned with --tune-epochs {had}, not {budget}; pass --tune-epochs {had} to resume "
                        "it, or choose a new --out folder")  # fmt: skip


def saved_search(out: Path, budget: int | None) -> SearchResult | None:
    """The search a tuned run in `out` already made with this budget (None: a grid), so the same
    command resumes (or re-evaluates) it without searching again; None when there is none."""
    path = out / TUNING
    if not (path.is_file() and (out / ckpt.CONFIG).is_file()):
        return None
    try:
        saved = SearchResult.from_dict(runfolder.read_json_file(path, dict))
    except (KeyError, TypeError, ValueError):
        raise runfolder.damaged(path, "is not a tuning record") from None
    return saved if saved.budget == budget else None


def partial_search_path(out: Path) -> Path:
    """Where a `--tune` search into `out` records its points as it goes: beside the folder (like its
    lock), because a new run's folder appears only after the search has chosen."""
    out = Path(out).resolve()  # "--out ." names the folder, not "" (the record would land inside it)
    return out.parent / f".{out.name}.{TUNING}"


def search_identity(config: dict, tuned_train, tuned_model, budget: int | None) -> dict:
    """What a point's validation score depends on: the run's settings (`to_dict(RunConfig)`) but those
    the search sets, eval_batch_size, and epochs beyond what a point trains (the budget; none for a grid)."""
    config = json.loads(json.dumps(config))  # tuples -> lists, as read back from JSON
    train = config.get("train") or {}
    short = {k: v for k, v in train.items() if k not in (*tuned_train, "eval_batch_size", "epochs")}
    if budget is not None:
        short["epochs"] = min(train.get("epochs", budget), budget)
    model = {k: v for k, v in (config.get("model_config") or {}).items() if k not in tuned_model}
    return {**config, "model_config": model, "train": short, "budget_epochs": budget}


class SearchRecord:
    """The points a `--tune` search into `out` has scored so far, rewritten whole and atomically after
    each (`partial_search_path`), so that the same command run again after an interruption scores only
    the rest; removed once the run's own tuning.json holds the finished search."""

    def __init__(self, out: Path, config: dict, tuned_train=(), tuned_model=(), budget: int | None = None):
        self.out, self.path = out, partial_search_path(out)
        self.search = search_identity(config, tuned_train, tuned_model, budget)
        self.data: str | None = None  # `split_digest` of the data searched on, set by `load`

    def load(self, data: str) -> list[dict]:
        """The points this search already scored (rows of `SearchResult.tried`; [] when none) on the
        data whose `split_digest` is `data`. A record of a search made otherwise is refused, naming the
        first setting that differs, like a run folder holding another run; one made on other data or
        damaged is refused too (never read as half a search)."""
        self.data = data
        if not self.path.is_file():
            return []
        fix = f"delete {self.path} to start the search over"
        try:
            saved = read_json(self.path)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise DataError(f"{self.path}, the points of an interrupted --tune search, is not valid JSON "
                            f"(truncated?); {fix}") from None  # fmt: skip
        problem = _record_problem(saved)
        if problem is None and saved["search"] != self.search:
            what = _first_difference(saved["search"], self.search)
            raise UserError(f"{self.path} holds an interrupted --tune search into {self.out} made with other "
                            f"settings ({what}); run that command again to resume it, or {fix}")  # fmt: skip
        metric = self.search["train"].get("metric")
        if problem is None:
            problem = next((f"point {i} has no valid {metric}" for i, row in enumerate(saved["tried"], start=1)
                            if not _is_score(row["valid"].get(metric))), None)  # fmt: skip
        if problem is not None:  # edited by hand, or another program's file
            raise DataError(f"{self.path}, the points of an interrupted --tune search, is damaged ({problem}); {fix}")
        if saved.get("data") != self.data:  # its scores were made on other rows: mixing them would mislead
            raise UserError(f"{self.path} holds an interrupted --tune search into {self.out} made on other data "
                            f"(the interactions, their split or the users / items tables have changed); {fix}")  # fmt: skip
        return saved["tried"]

    def save(self, tried: list[dict]) -> None:
        write_json(self.path, {"search": self.search, "data": self.data, "tried": tried})

    def remove(self) -> bool:
        """Once a run in `out` is published (its tuning.json holds the search, or it is not tuned and
        the search can no longer resume there): nothing stale left beside the run. Whether there was one."""
        there = self.path.is_file()
        self.path.unlink(missing_ok=True)
        return there


def split_digest(dataset, split) -> str:
    """sha256 of what a search point's score depends on in the data: the split's parts (users, items,
    their order) and the users / items tables."""
    digest = hashlib.sha256()
    for part in (split.train, split.valid, split.test):
        for column in ("user", "item"):
            digest.update(np.ascontiguousarray(part[column].to_numpy(np.int64)).tobytes())
        digest.update(b"|")
    for table in (dataset.items, dataset.users):
        digest.update(b"-" if table is None else table.to_csv(index=False).encode())
    return digest.hexdigest()


def _is_score(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _record_problem(data) -> str | None:
    """What makes `data` no record `SearchRecord.save` wrote, or None."""
    if not (isinstance(data, dict) and isinstance(data.get("search"), dict) and isinstance(data.get("tried"), list)):
        return "no 'search' object and 'tried' list"
    for i, row in enumerate(data["tried"], start=1):
        if not (isinstance(row, dict) and isinstance(row.get("settings"), dict) and isinstance(row.get("valid"), dict)):
            return f"point {i} has no 'settings' and 'valid' objects"
    return None
