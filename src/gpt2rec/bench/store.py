"""The results file: `{"records": [...], "selections": {...}, "speed": {...}, ...}`, rewritten whole
and atomically after every change, so an interrupted bench resumes from the last finished record.

A record is one (protocol, model, lm, seed). `lm` is null for models that read no text. Besides
`RECORD_KEYS`: `valid_metrics` (the protocol's validation at the kept epoch; its tuning half for the
headline candidates), `select_metrics` (theirs on the other half, null for the rest), `valid_curve` (that
validation metric per epoch), `seconds_per_epoch` (mean, including the loop's validation pass),
`build_seconds`, `job_seconds` (wall time of the whole job, grid included), `config` /
`train_config`, `group` (main | ablation), `peak_gpu_mb` (CUDA only). `encode_texts_per_s` is the
encoder throughput of the record's LM measured in the speed section (null without an LM).
Sections: `selections` (grid choices, ablation base), `speed`, `faithfulness`, `failures`, `meta`.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError
from ..utils.io import read_json, write_json

RECORD_KEYS = (
    "protocol", "model", "lm", "seed", "metrics", "train_seconds", "epochs", "best_epoch",
    "encode_texts_per_s", "eval_seconds", "peak_rss_mb",
)  # fmt: skip


def record_key(record: dict) -> tuple:
    return (record["protocol"], record["model"], record["lm"], record["seed"])


_KEY_TYPES = {"protocol": (str,), "model": (str,), "lm": (str, type(None)), "seed": (int,)}


def _shape_problem(data) -> str | None:
    """What makes `data` no results file the bench can resume from, or None."""
    if not isinstance(data, dict):
        return f"it holds a JSON {type(data).__name__}, not an object"
    if not isinstance(data.get("records"), list):
        return "no 'records' list"
    for i, record in enumerate(data["records"], start=1):
        if not isinstance(record, dict):
            return f"record {i} is not an object"
        for key, types in _KEY_TYPES.items():
            if not isinstance(record.get(key), types) or isinstance(record.get(key), bool):
                return f"record {i} has no valid {key!r}"
        if not isinstance(record.get("metrics"), dict):
            return f"record {i} has no 'metrics' object"
    for name, value in data.items():
        if name != "records" and not isinstance(value, dict):
            return f"its {name!r} is not an object"
    meta = data.get("meta", {})
    if not all(isinstance(meta.get(k) or {}, dict) for k in ("dataset_fingerprint", "last_run")):
        return "its 'meta' is not as the bench writes it"
    return None


class ResultStore:
    """Records plus named sections (selections, speed, faithfulness, meta) in one JSON file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.data: dict = {"records": []}
        if self.path.is_file():
            try:
                self.data = read_json(self.path)
            except json.JSONDecodeError as exc:
                raise DataError(f"{self.path} is not valid JSON ({exc}); delete it to start the bench afresh") from None
            problem = _shape_problem(self.data)
            if problem:  # edited by hand, or another program's file: never a traceback halfway through
                raise DataError(f"{self.path} is damaged ({problem}); delete it to start the bench afresh")
        self._keys = {record_key(r) for r in self.records}

    @property
    def records(self) -> list[dict]:
        return self.data["records"]

    def has(self, key: tuple) -> bool:
        return tuple(key) in self._keys

    def add(self, record: dict) -> None:
        missing = [k for k in RECORD_KEYS if k not in record]
        if missing:
            raise ValueError(f"record lacks {missing}")
        key = record_key(record)
        self.data["records"] = [r for r in self.records if record_key(r) != key] + [record]
        self._keys.add(key)
        self.save()

    def section(self, name: str) -> dict:
        return self.data.setdefault(name, {})

    def put(self, section: str, key: str, value) -> None:
        self.section(section)[key] = value
        self.save()

    def save(self) -> None:
        write_json(self.path, self.data)

    def select(self, **where) -> list[dict]:
        return [r for r in self.records if all(r.get(k) == v for k, v in where.items())]
