"""Train / valid / test splits of a Dataset's interactions, seeded and vectorized.

Kinds (explicit registry `SPLITTERS`, kind -> function):
- `random`: per user, a random `ratios` share of the user's interactions goes to train/valid/test
  (counts rounded half up; every user with interactions keeps at least one in train).
- `loo`: leave-one-out by time: each user's last interaction to test, second-last to valid (ties on
  timestamp broken by item index, then by row order). Users with 2 interactions give none to
  valid, users with 1 keep it in train. The seed is not used.
- `temporal`: one global time cut: train holds timestamps before the `ratios[0]` quantile, valid
  those up to the `ratios[0] + ratios[1]` quantile, test the rest. Equal timestamps never straddle
  a cut, so the shares are approximate. The seed is not used.
- `cold-item` / `cold-user`: `cold_fraction` of the items (users) that have interactions are held
  out entirely, half of them (rounded down) to valid and the rest to test, with all their
  interactions; train has none of them. `ratios` is not used.
- `mixed`: a live catalogue. The items of a `cold-item` draw are new (all their interactions in valid
  or test), and then each training interaction moves to valid or test with probability `ratios[1]` or
  `ratios[2]` (its own seeded stream): known items to find beside the new ones. Evaluated with the
  known items and the part's new items ranked together (`eval.protocols.evaluate_part`).

Each part keeps the dataset's row order and its columns (internal indices).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError
from ..utils.config import check_field_types
from .dataset import Dataset

log = logging.getLogger(__name__)

PARTS = ("train", "valid", "test")
FILE_HEADER = ("user_id", "item_id", "rating", "timestamp")

# part codes used while assigning rows
_TRAIN, _VALID, _TEST = 0, 1, 2


@dataclass
class SplitConfig:
    kind: str = field(default="random", metadata={"help": "random | loo | temporal | cold-item | cold-user | mixed"})
    ratios: tuple[float, ...] = field(
        default=(0.8, 0.1, 0.1),
        metadata={"help": "train, valid, test shares (random, temporal; mixed: of the known items' interactions)"},
    )
    seed: int = field(default=0, metadata={"help": "random seed (random, cold-item, cold-user, mixed)"})
    cold_fraction: float = field(
        default=0.2, metadata={"help": "share of items/users held out (cold kinds; mixed: the new items)"}
    )

    def __post_init__(self):  # validation only: typed conversion is utils.config.from_dict's job
        check_field_types(self, "SplitConfig")  # built directly (the README builds it so), not by from_dict
        if self.kind not in SPLITTERS:
            raise ValueError(f"unknown split kind {self.kind!r}; choose one of: {', '.join(SPLITTERS)}")
        if isinstance(self.ratios, list):  # ratios=[0.8, 0.1, 0.1] means the same; saved configs stay tuples
            self.ratios = tuple(self.ratios)
        ratios = self.ratios
        if not isinstance(ratios, tuple) or not all(isinstance(r, (int, float)) for r in ratios):
            raise ValueError(f"split ratios {ratios!r} are not a tuple of numbers; give three, e.g. 0.8 0.1 0.1")
        if len(ratios) != 3:
            raise ValueError(f"split ratios {ratios} must be three numbers (train valid test), e.g. 0.8 0.1 0.1")
        if not all(math.isfinite(r) for r in ratios) or any(r < 0 for r in ratios) or ratios[0] <= 0:
            raise ValueError(f"split ratios {ratios} must be >= 0 with a positive train share, e.g. 0.8 0.1 0.1")
        if abs(sum(ratios) - 1.0) > 1e-6:
            raise ValueError(
                f"split ratios {ratios} sum to {sum(ratios):.6g}, not 1; "
                "give train valid test shares that sum to 1, e.g. 0.8 0.1 0.1"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"split seed {self.seed!r} must be an integer >= 0, e.g. 0")
        if not 0.0 < self.cold_fraction < 1.0:
            raise ValueError(f"cold_fraction {self.cold_fraction} must lie strictly between 0 and 1, e.g. 0.2")


@dataclass
class Split:
    """Three interaction frames (columns as Dataset.interactions, internal indices) and cold sets.

    cold_users / cold_items: sorted internal indices that appear in valid or test but never in train
    (set for the cold-user / cold-item kinds, None otherwise).
    """

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    config: SplitConfig
    cold_users: np.ndarray | None = None
    cold_items: np.ndarray | None = None

    def sizes(self) -> dict:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}


# the loo split as both commands name it (train --split, data split --kind)
_KIND_LOO = "a loo split (train --split loo; data split --kind loo)"


def interaction_matrix(df: pd.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary (n_users, n_items) CSR matrix of the (user, item) pairs in `df`; indices sorted."""
    users = df["user"].to_numpy(dtype=np.int64)
    items = df["item"].to_numpy(dtype=np.int64)
    mat = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items))
    mat.sum_duplicates()
    mat.data[:] = 1.0
    mat.sort_indices()
    return mat


def make_split(dataset: Dataset, config: SplitConfig | None = None) -> Split:
    """Split `dataset.interactions` as `config` says (deterministic for a given config)."""
    config = config or SplitConfig()
    inter = dataset.interactions
    if len(inter) == 0:
        raise DataError(f"dataset {dataset.name!r} has no interactions to split; check its rating threshold")
    part = SPLITTERS[config.kind](inter, config)  # (N,) codes 0/1/2
    _check_parts(part, inter, config)
    return _assemble(inter, part, config, dataset.n_users, dataset.n_items)


def _check_parts(part: np.ndarray, inter: pd.DataFrame, config: SplitConfig) -> None:
    """An empty valid or test part is an error: every metric on it would read 0.0000 as if real."""
    counts = np.bincount(part, minlength=3)
    empty = [name for name, code in (("valid", _VALID), ("test", _TEST)) if counts[code] == 0]
    if not empty:
        return
    what = f"a {config.kind} split of {len(inter)} interactions left {' and '.join(empty)} empty"
    if config.kind == "random":
        shares = {"valid": config.ratios[1], "test": config.ratios[2]}
        zero = [name for name in empty if shares[name] == 0]
        if zero == empty:  # asked for on purpose (e.g. train on everything to serve): said, not refused
            log.warning(
                "%s by --ratios %s: there is nothing to validate or test on, and metrics on it read 0",
                what,
                " ".join(f"{r:g}" for r in config.ratios),
            )
            return
        if zero:
            cause = f"--ratios {' '.join(f'{r:g}' for r in config.ratios)} give {' and '.join(zero)} a 0 share"
            fix = f"give valid and test shares > 0, e.g. --ratios 0.8 0.1 0.1, or use {_KIND_LOO}"
        else:
            most = int(np.bincount(inter["user"].to_numpy()).max())
            cause = (
                f"users have too few interactions (at most {most}) for --ratios "
                f"{' '.join(f'{r:g}' for r in config.ratios)} to round a held-out share to one"
            )
            fix = f"use more data, larger valid/test --ratios, or {_KIND_LOO}"
    elif config.kind == "loo":
        cause = "no user has the 3 interactions (2 for test) leave-one-out needs"
        fix = "use more data, or a random split (train --split random; data split --kind random)"
    elif config.kind == "temporal":
        cause = "too few distinct timestamps or a 0 share in --ratios"
        fix = "use valid/test --ratios > 0, or a loo or random split (train --split; data split --kind)"
    else:
        cause = "the held-out users/items have no interactions"
        fix = "raise --cold-fraction or use more data"
    raise DataError(f"{what}: {cause}; {fix}")


def _assemble(inter: pd.DataFrame, part: np.ndarray, config: SplitConfig, n_users: int, n_items: int) -> Split:
    frames = [inter[part == code].reset_index(drop=True) for code in (_TRAIN, _VALID, _TEST)]
    split = Split(*frames, config=config)
    set_cold(split, n_users, n_items)
    return split


def set_cold(split: Split, n_users: int, n_items: int) -> None:
    """Cold sets = users/items seen in valid or test but never in train (cold kinds only)."""
    col = {"cold-item": "item", "mixed": "item", "cold-user": "user"}.get(split.config.kind)
    if col is None:
        return
    held = np.union1d(split.valid[col].to_numpy(), split.test[col].to_numpy())
    cold = np.setdiff1d(held, split.train[col].to_numpy()).astype(np.int64)
    if col == "item":
        split.cold_items = cold
    else:
        split.cold_users = cold


# ---------------------------------------------------------------- split kinds


def _rank_within(groups: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows visited in `order` (grouped: equal `groups` contiguous), each row's position within
    its group and its group's size, both indexed by original row."""
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(g)])
    pos_sorted = np.arange(len(g)) - np.repeat(starts, sizes)
    pos = np.empty(len(g), dtype=np.int64)
    size = np.empty(len(g), dtype=np.int64)
    pos[order] = pos_sorted
    size[order] = np.repeat(sizes, sizes)
    return pos, size


def _split_random(inter: pd.DataFrame, config: SplitConfig) -> np.ndarray:
    rng = np.random.default_rng(config.seed)
    users = inter["user"].to_numpy()
    shuffled = rng.permutation(len(users))
    order = shuffled[np.argsort(users[shuffled], kind="stable")]  # grouped by user, random within
    pos, n = _rank_within(users, order)
    n_test = np.floor(n * config.ratios[2] + 0.5).astype(np.int64)
    n_valid = np.floor(n * config.ratios[1] + 0.5).astype(np.int64)
    over = np.maximum(0, n_test + n_valid - (n - 1))  # keep at least one in train
    cut = np.minimum(over, n_valid)
    n_valid -= cut
    n_test -= over - cut
    return np.where(pos < n_test, _TEST, np.where(pos < n_test + n_valid, _VALID, _TRAIN))


def _split_loo(inter: pd.DataFrame, config: SplitConfig) -> np.ndarray:
    users = inter["user"].to_numpy()
    # lexsort: last key is primary -> user, then timestamp, then item, then row order
    ts = inter["timestamp"].to_numpy()
    if len(ts) > 1 and ts.min() == ts.max():  # no timestamps (all 0): the item tie-break decides alone
        log.warning(
            "leave-one-out without timestamps (all equal): each user's held-out item is the one with the highest "
            "item ID, not the latest; give a timestamp column (--timestamp-col) or use a random split (--split / --kind random)"
        )
    order = np.lexsort((np.arange(len(users)), inter["item"].to_numpy(), ts, users))
    pos, n = _rank_within(users, order)
    from_end = n - 1 - pos  # 0 = latest
    part = np.full(len(users), _TRAIN)
    part[(from_end == 0) & (n >= 2)] = _TEST
    part[(from_end == 1) & (n >= 3)] = _VALID
    return part


def _split_temporal(inter: pd.DataFrame, config: SplitConfig) -> np.ndarray:
    ts = inter["timestamp"].to_numpy()
    sorted_ts = np.sort(ts)
    n = len(ts)
    # cut k: rows from sorted position k on fall after the cut; k == n means nothing does
    cuts = [int(np.floor(n * r + 0.5)) for r in (config.ratios[0], config.ratios[0] + config.ratios[1])]
    t_valid, t_test = (sorted_ts[k] if k < n else np.iinfo(np.int64).max for k in cuts)
    part = np.where(ts < t_valid, _TRAIN, np.where(ts < t_test, _VALID, _TEST))
    if not (part == _TRAIN).any():
        raise DataError(
            "a temporal split left train empty: too few distinct timestamps "
            f"(cut at {t_valid}); use a random or loo split (train --split; data split --kind) for data without real timestamps"
        )
    return part


def _split_cold(inter: pd.DataFrame, config: SplitConfig, col: str) -> np.ndarray:
    values = inter[col].to_numpy()
    present = np.unique(values)
    n_cold = int(np.floor(len(present) * config.cold_fraction + 0.5))
    if n_cold < 2 or n_cold >= len(present):
        raise DataError(
            f"cold_fraction {config.cold_fraction} of {len(present)} {col}s holds out {n_cold}; "
            f"need at least 2 and fewer than all; change --cold-fraction"
        )
    rng = np.random.default_rng(config.seed)
    cold = rng.permutation(present)[:n_cold]
    n_valid = n_cold // 2
    code = np.full(int(present.max()) + 1, _TRAIN)
    code[cold[:n_valid]] = _VALID
    code[cold[n_valid:]] = _TEST
    return code[values]


def _split_mixed(inter: pd.DataFrame, config: SplitConfig) -> np.ndarray:
    code = _split_cold(inter, config, "item")
    known = np.flatnonzero(code == _TRAIN)
    rng = np.random.default_rng([config.seed, 10_10])
    _, valid, test = config.ratios
    moved = rng.random(len(known)) < valid + test
    to_test = rng.random(len(known)) < (test / (valid + test) if valid + test > 0 else 0.0)
    code[known[moved & ~to_test]] = _VALID
    code[known[moved & to_test]] = _TEST
    return code


SPLITTERS: dict[str, Callable[[pd.DataFrame, SplitConfig], np.ndarray]] = {
    "random": _split_random,
    "loo": _split_loo,
    "temporal": _split_temporal,
    "cold-item": lambda inter, config: _split_cold(inter, config, "item"),
    "cold-user": lambda inter, config: _split_cold(inter, config, "user"),
    "mixed": _split_mixed,
}
