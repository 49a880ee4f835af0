"""What makes a results file safe to resume: the output folder, the dataset it was made on (a
fingerprint of the interactions and of the items and users tables), the settings its records were made
under (`BenchConfig.signature`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.dataset import Dataset
from ..errors import UserError
from .plan import BenchConfig
from .store import ResultStore

PATH_OPTIONS = ("users", "items", "feedback")  # DataConfig fields that name a file or folder
# signature keys in the flags' words; `train` is the bench's own training defaults (plan.TRAIN)
FLAGS = {"quick": "--quick", "epochs": "--epochs", "train": "the bench's training defaults (plan.TRAIN)"}


def check_out_dir(out_dir: str | Path) -> None:
    """Refuse an --out that is (or lies under) a file, before anything is loaded or written."""
    out = Path(out_dir).expanduser()
    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            where = "is a file" if path == out else f"lies under the file {path}"
            raise UserError(f"--out {out_dir} {where}; pass a folder")


def _table_digest(table: pd.DataFrame) -> str:
    """sha256 of a metadata table as CSV text (lists such as genres included, as their repr)."""
    return hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()


def dataset_fingerprint(dataset: Dataset) -> dict:
    """Sizes and sha256s of the interactions and of the items and users tables: tells apart two
    datasets whose files share a name, or the same interactions read with other titles or genres."""
    digest = hashlib.sha256()
    for column in ("user", "item", "rating", "timestamp"):
        digest.update(np.ascontiguousarray(dataset.interactions[column].to_numpy()).tobytes())
    return {"users": dataset.n_users, "items": dataset.n_items, "interactions": len(dataset.interactions),
            "sha256": digest.hexdigest(), "items_sha256": _table_digest(dataset.items),
            "users_sha256": _table_digest(dataset.users)}  # fmt: skip


def check_dataset(store: ResultStore, dataset: Dataset) -> None:
    """Refuse to resume records made on another dataset (the results file is named after the
    dataset's file or folder only). Only the keys both fingerprints have are compared: a file written
    before fingerprints is checked on the sizes its last run recorded, one written before the tables
    were fingerprinted on its interactions; either then gets the full fingerprint."""
    new = dataset_fingerprint(dataset)
    meta = store.data.get("meta", {})
    old = meta.get("dataset_fingerprint")
    if old is None:
        last = (meta.get("last_run") or {}).get("dataset") or {}
        old = {k: last[k] for k in ("users", "items", "interactions") if k in last}
    differ = [k for k in old if k in new and old[k] != new[k]]
    if store.records and differ:
        show = lambda f: ", ".join(f"{k} {str(f[k])[:12]}" for k in differ)  # noqa: E731
        raise UserError(
            f"{store.path} holds results of another dataset ({show(old)}; this one: {show(new)}); "
            f"pass --out DIR to bench it elsewhere, or delete {store.path} to start afresh"
        )
    store.put("meta", "dataset_fingerprint", new)


def signature(config: BenchConfig) -> dict:
    """`config.signature()` as JSON stores it, with the data files' paths resolved (the same file
    typed as a relative or an absolute path is the same setting)."""
    return _resolved(json.loads(json.dumps(config.signature())))


def _resolved(sig: dict) -> dict:
    data = sig.get("data")
    if not isinstance(data, dict):
        return sig
    paths = {
        k: str(Path(v).expanduser().resolve()) for k, v in data.items() if k in PATH_OPTIONS and isinstance(v, str)
    }
    return {**sig, "data": {**data, **paths}}


def _flat(sig: dict) -> dict:
    """{flag: value}: the signature's keys in the flags' words, `data` spread into its file options."""
    out = {FLAGS.get(k, k): v for k, v in sig.items() if k != "data"}
    out.update({"--" + k.replace("_", "-"): v for k, v in (sig.get("data") or {}).items()})
    return out


def _show(value) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if value is None or isinstance(value, bool):  # (not a dict lookup: 1 == True)
        return "not set" if value is None else ("on" if value else "off")
    return str(value)


def setting_differences(old: dict, new: dict) -> list[str]:
    """'--epochs: 5 there, 3 here' for each setting that differs (paths compared resolved)."""
    old, new = _flat(_resolved(old)), _flat(_resolved(new))
    return [f"{k}: {_show(old.get(k))} there, {_show(new.get(k))} here"
            for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]  # fmt: skip


def check_signature(store: ResultStore, config: BenchConfig) -> None:
    """Refuse to mix records made under other settings (quick vs full, epoch cap, training defaults,
    the data files' options), naming each setting that differs. `bench tune` checks it too: its points
    go into a quality run's file (they carry their own settings: `tuning.settings`)."""
    sig = signature(config)
    old = store.data.get("meta", {}).get("signature")
    differ = setting_differences(old, sig) if isinstance(old, dict) else []
    if store.records and differ:
        raise UserError(
            f"{store.path} holds results made with other settings ({'; '.join(differ)}); "
            "rerun with the same settings to resume, or pass --out DIR (or delete the file) to start afresh"
        )
    store.put("meta", "signature", sig)
