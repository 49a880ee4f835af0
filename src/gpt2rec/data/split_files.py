"""A split as files: train.tsv / valid.tsv / test.tsv with raw IDs, and split.json (how it was made,
row counts, checksums), so a split can be reused by later runs (`gpt2rec data split`, `--split-dir`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, UserError
from ..utils.config import from_dict, to_dict
from ..utils.io import read_json, write_bytes, write_json
from .dataset import INTERACTION_COLUMNS, Dataset
from .splits import FILE_HEADER, PARTS, Split, SplitConfig, set_cold
from .tables import float_column, int_column, read_delimited

_SPLIT_FIX = "write one with: gpt2rec data split DATASET --kind KIND --out DIR"


def write_split(split: Split, dataset: Dataset, out_dir: str | Path) -> Path:
    """Write train.tsv / valid.tsv / test.tsv (raw IDs) and split.json (config, row counts and the
    sha256 of each file, checked by `read_split`) into `out_dir`, atomically."""
    out = Path(out_dir)
    user_ids, item_ids = dataset.user_ids, dataset.item_ids
    digests = {}
    for name in PARTS:
        df = getattr(split, name)
        raw = pd.DataFrame(
            {
                "user_id": user_ids[df["user"].to_numpy()],
                "item_id": item_ids[df["item"].to_numpy()],
                "rating": df["rating"].to_numpy(),
                "timestamp": df["timestamp"].to_numpy(),
            }
        )
        data = raw.to_csv(sep="\t", index=False, lineterminator="\n").encode("utf-8")
        write_bytes(out / f"{name}.tsv", data)
        digests[name] = hashlib.sha256(data).hexdigest()
    meta = {"dataset": dataset.name, "config": to_dict(split.config), "sizes": split.sizes(), "sha256": digests}
    write_json(out / "split.json", meta)
    return out


def read_split(dataset: Dataset, split_dir: str | Path, run: str | Path | None = None) -> Split:
    """Read a split written by `write_split`, mapping raw IDs back to `dataset`'s indices.

    Each file must match the row count (and sha256, when recorded) in split.json: a truncated or
    edited file is an error, never a silently smaller test set. `run`: the run folder whose own split
    this is (evaluate, a resumed train): a bad file there is mended by restoring the folder or
    retraining, not by writing a new split, and data that no longer fit it changed since training."""
    folder = Path(split_dir)
    fix = _SPLIT_FIX if run is None else f"restore run folder {run} from a copy, or retrain into a new --out"
    config, sizes, digests = _split_meta(folder, fix)
    _check_same_data(dataset, folder, sum(sizes.values()), run)
    frames = [_read_part(dataset, folder / f"{name}.tsv", sizes[name], digests.get(name), fix, run) for name in PARTS]
    split = Split(*frames, config=config)
    set_cold(split, dataset.n_users, dataset.n_items)
    return split


def _data_changed(run: str | Path) -> str:
    return (f"the data files changed since run folder {run} was trained; put them back as they were (its "
            "config.json's data entries), or retrain on these data into a new --out")  # fmt: skip


def _check_same_data(dataset: Dataset, folder: Path, written: int, run: str | Path | None = None) -> None:
    """Every split kind puts each interaction in one part, so a split of these data holds all of
    them: another count means the split was made from other data (or another implicit threshold),
    whose extra interactions would be dropped without a word, or whose IDs would not read."""
    have = len(dataset.interactions)
    if have == written:
        return
    if run is not None:
        raise DataError(f"the split in {folder} holds {written:,} interactions but {dataset.name} now has {have:,}: "
                        f"{_data_changed(run)}")  # fmt: skip
    try:
        source = str(read_json(folder / "split.json").get("dataset"))
    except (ValueError, OSError, AttributeError):
        source = "?"
    raise DataError(
        f"the split in {folder} holds {written:,} interactions (written from dataset '{source}') but "
        f"{dataset.name} has {have:,}: it was made from other data or another --implicit-threshold; give "
        f"the data it was made from (--dataset, the same flags), or write the split again from these data"
    )


def read_split_config(split_dir: str | Path) -> SplitConfig:
    """The settings a written split was made with (its split.json), without reading its parts."""
    return _split_meta(Path(split_dir), _SPLIT_FIX)[0]


def _split_meta(folder: Path, fix: str) -> tuple[SplitConfig, dict[str, int], dict]:
    """(config, row count of each part, sha256 of each part) from `folder`/split.json."""
    meta_path = folder / "split.json"
    if not meta_path.is_file():
        raise DataError(f"no split found at {folder} (missing split.json); {fix}")
    try:
        meta = read_json(meta_path)
        config = from_dict(SplitConfig, meta["config"])
        sizes = {name: int(meta["sizes"][name]) for name in PARTS}
        digests = meta.get("sha256") or {}
    except (ValueError, KeyError, TypeError, AttributeError, UserError) as exc:
        raise DataError(f"{meta_path} is not a valid split.json ({exc}); {fix}") from None
    return config, sizes, digests


def _read_part(dataset: Dataset, path: Path, size: int, digest: str | None, fix: str, run=None) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"split file {path} is missing; {fix}")
    data = path.read_bytes()
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        rows = max(0, data.count(b"\n") - 1)
        raise DataError(
            f"{path} does not match the checksum in split.json ({rows} rows, {size} recorded): it was truncated or "
            f"edited; {'' if run else 'restore it or '}{fix}"
        )
    header, _, body = data.partition(b"\n")
    if header.decode("utf-8", "replace").rstrip("\r").split("\t") != list(FILE_HEADER):
        raise DataError(f"{path} does not start with the header {' '.join(FILE_HEADER)}; {fix}")
    if not body.strip():
        raw = pd.DataFrame({c: pd.Series(dtype=object) for c in FILE_HEADER})
    else:
        as_text = dataset.user_ids.dtype.kind not in "iu" or dataset.item_ids.dtype.kind not in "iu"
        raw = read_delimited(path, "\t", header=True, as_text=as_text, fix=fix)
        if tuple(raw.columns) != FILE_HEADER:
            raise DataError(f"{path} has columns {list(raw.columns)}; expected {list(FILE_HEADER)}; {fix}")
    if len(raw) != size:
        raise DataError(
            f"{path} holds {len(raw)} rows but split.json records {size}: it was truncated or edited; {fix}"
        )
    out = {}
    for col, ids, kind in (("user_id", dataset.user_ids, "user"), ("item_id", dataset.item_ids, "item")):
        values = raw[col] if ids.dtype.kind not in "iu" or not len(raw) else int_column(raw, col, path, fix)
        out[kind] = _to_index(np.asarray(values), ids, kind, path, dataset.name, run)
    empty = not len(raw)
    rating = np.zeros(0) if empty else float_column(raw, "rating", path, fix)
    ts = np.zeros(0, dtype=np.int64) if empty else int_column(raw, "timestamp", path, fix)
    df = pd.DataFrame({"user": out["user"], "item": out["item"], "rating": rating.astype(np.float32), "timestamp": ts})
    return df[list(INTERACTION_COLUMNS)]


def _to_index(raw: np.ndarray, ids: np.ndarray, kind: str, path: Path, name: str, run=None) -> np.ndarray:
    """Raw IDs -> internal indices (`ids` is sorted); unknown IDs are a DataError."""
    if len(raw) == 0:
        return np.zeros(0, dtype=np.int64)
    try:
        raw = raw.astype(ids.dtype)
    except (TypeError, ValueError):
        raise DataError(f"{path} has {kind} IDs that are not {ids.dtype} values like {ids[0]!r}") from None
    pos = np.minimum(np.searchsorted(ids, raw), len(ids) - 1)
    bad = ids[pos] != raw
    if bad.any():
        examples = ", ".join(str(x) for x in np.unique(raw[bad])[:5])
        why = ("the split was made from another dataset: split this one again with gpt2rec data split"
               if run is None else _data_changed(run))  # fmt: skip
        raise DataError(
            f"{path} has {int(bad.sum())} rows with {kind} IDs not in dataset {name!r} (e.g. {examples}); {why}"
        )
    return pos.astype(np.int64)
