"""Run folders: everything needed to rebuild, evaluate and serve a trained model, no pickle.

    config.json        {"model": name, "model_config": {...}, "data": {...}, "split": {...}, "train": {...}, ...}
    model.safetensors  the model's state_dict (without LoRA adapters); its metadata "model_meta" holds
                       the model's `checkpoint_meta()` (sizes learned from the data: LM width, field names, ...)
    adapter.safetensors  only for a model whose LM has LoRA adapters: those adapters, named and
                       restored by peft (`get_peft_model_state_dict` / `set_peft_model_state_dict`)
    user_ids.json      raw user IDs, position = internal index
    item_ids.json      raw item IDs, position = internal index
    metrics.json       {"valid": {...}, "test": {...}, ...}

Every write is atomic. Loading reads JSON and safetensors only (never `torch.load`) and rebuilds the
model through the registry at the saved shape: spec.build(config, ModelContext(..., saved=model_meta)),
then a strict load (`train.weights.load_weights`: the model's tensors, then the adapters by peft).
Run folders written before adapters were saved apart (every tensor in model.safetensors) still load.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, UserError
from ..models.base import ModelContext
from ..models.registry import get_spec
from ..text.lora import ADAPTER_FORMAT
from ..utils.config import from_dict, to_dict
from ..utils.io import flat_tensors, save_tensors_meta, write_json
from . import runfolder
from .weights import load_error_line, load_weights, split_weights

CONFIG = "config.json"
MODEL = "model.safetensors"
ADAPTER = "adapter.safetensors"
USER_IDS = "user_ids.json"
ITEM_IDS = "item_ids.json"
METRICS = "metrics.json"


def _require(run_dir: Path, name: str) -> Path:
    path = run_dir / name
    if not path.is_file() and (run_dir / "last.safetensors").is_file():
        raise DataError(
            f"training in {run_dir} has not finished ({name} is missing); "
            "run the same gpt2rec train command again to resume it"
        )
    if not path.is_file():
        raise DataError(
            f"{run_dir} is not a complete run folder ({name} is missing); "
            "train one with: gpt2rec train --model MODEL --dataset DATASET --out DIR"
        )
    return path


def save_config(run_dir: str | Path, config: dict) -> None:
    write_json(Path(run_dir) / CONFIG, config)


def read_config(run_dir: str | Path) -> dict:
    config = runfolder.read_json_file(_require(Path(run_dir), CONFIG), dict)
    if not isinstance(config.get("model"), str):
        raise runfolder.damaged(Path(run_dir) / CONFIG, "names no model")
    return upgrade_config(config)


def upgrade_config(config: dict) -> dict:
    """A saved run config in today's terms: a model setting added since the run was saved reads the
    value the run was fitted with (its spec's `legacy_defaults`), not today's default."""
    model_config = config.get("model_config")
    if not isinstance(model_config, dict):
        return config
    try:
        legacy = get_spec(config["model"]).legacy_defaults
    except UserError:  # a model this gpt2rec does not know: building it says so
        return config
    return {**config, "model_config": {**legacy, **model_config}}


def save_model(run_dir: str | Path, model: torch.nn.Module) -> None:
    """model.safetensors (and adapter.safetensors when the LM has LoRA adapters; written first, so a
    model.safetensors, which marks the run complete, never goes without its adapters)."""
    run_dir = Path(run_dir)
    meta = model.checkpoint_meta() if hasattr(model, "checkpoint_meta") else {}
    own, adapter = split_weights(model)
    if adapter:
        save_tensors_meta(run_dir / ADAPTER, flat_tensors("", adapter), {"format": ADAPTER_FORMAT})
    else:
        (run_dir / ADAPTER).unlink(missing_ok=True)
    save_tensors_meta(run_dir / MODEL, flat_tensors("", own), {"model_meta": meta})


def read_adapter_file(run_dir: Path) -> dict:
    """The LoRA adapters saved next to model.safetensors ({} when there are none)."""
    path = run_dir / ADAPTER
    if not path.is_file():
        return {}
    tensors, meta = runfolder.read_safetensors(path)
    if meta.get("format") != json.dumps(ADAPTER_FORMAT):
        raise runfolder.damaged(path, "is not a gpt2rec LoRA adapter file")
    return tensors


def read_model_file(path: Path) -> tuple[dict, dict]:
    """(state_dict on CPU, the model's saved `checkpoint_meta()`; {} for files written before it existed)."""
    state, meta = runfolder.read_safetensors(path)
    try:
        return upgrade_state(state), json.loads(meta.get("model_meta", "{}"))
    except json.JSONDecodeError:
        raise runfolder.damaged(path, "has unreadable model metadata") from None


def upgrade_state(state: dict) -> dict:
    """A state_dict in today's layout. Files from before the text tables were deduplicated hold one
    `*_cache` row per entity and no `*_rows`: each entity reads its own row."""
    for key in [k for k in state if k.endswith(("user_cache", "item_cache"))]:
        rows = key.removesuffix("cache") + "rows"
        if rows not in state:
            state[rows] = torch.arange(state[key].shape[0])
    return state


def save_id_maps(run_dir: str | Path, dataset) -> None:
    write_json(Path(run_dir) / USER_IDS, np.asarray(dataset.user_ids).tolist())
    write_json(Path(run_dir) / ITEM_IDS, np.asarray(dataset.item_ids).tolist())


def read_id_maps(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    run_dir = Path(run_dir)
    return _id_list(_require(run_dir, USER_IDS)), _id_list(_require(run_dir, ITEM_IDS))


def _check_same_ids(run_dir: Path, dataset, user_ids: np.ndarray, item_ids: np.ndarray) -> None:
    """The dataset a run is loaded with must be the one it was trained on: the same users and items,
    in the same order (equal counts alone let another file's IDs through, scored as the run's)."""
    fix = (f"load the dataset the run was trained on (if it is, {USER_IDS} / {ITEM_IDS} in {run_dir} were "
           "changed: restore them or retrain)")  # fmt: skip
    if (dataset.n_users, dataset.n_items) != (len(user_ids), len(item_ids)):
        raise DataError(f"{run_dir} was trained on {len(user_ids)} users / {len(item_ids)} items but the dataset "
                        f"has {dataset.n_users} / {dataset.n_items}; {fix}")  # fmt: skip
    for kind, saved, have in (("user", user_ids, dataset.user_ids), ("item", item_ids, dataset.item_ids)):
        differ = np.flatnonzero(saved.astype(str) != np.asarray(have).astype(str))
        if len(differ):
            n = differ[0]
            raise DataError(f"{run_dir} was trained on other {kind}s than the dataset's: {kind} {n + 1} is "
                            f"'{saved[n]}' there, '{np.asarray(have)[n]}' here; {fix}")  # fmt: skip


def _id_list(path: Path) -> np.ndarray:
    ids = runfolder.read_json_file(path, list)
    if not ids or not all(isinstance(x, (int, str)) and not isinstance(x, bool) for x in ids):
        raise runfolder.damaged(path, "does not hold a list of raw IDs")
    return np.asarray(ids)


def save_metrics(run_dir: str | Path, metrics: dict) -> None:
    write_json(Path(run_dir) / METRICS, metrics)


def read_metrics(run_dir: str | Path) -> dict:
    return runfolder.read_json_file(_require(Path(run_dir), METRICS), dict)


def build_model(
    config: dict, n_users: int, n_items: int, dataset=None, train=None, device=None, saved: dict | None = None
) -> torch.nn.Module:
    """A fresh model from a run config dict (`model`, `model_config`); `saved`: a checkpoint's model_meta."""
    spec = get_spec(config["model"])
    model_config = from_dict(spec.config_cls, config.get("model_config") or {})
    ctx = ModelContext(n_users, n_items, dataset, train, device or torch.device("cpu"), saved)
    return spec.build(model_config, ctx)


def load_model(run_dir: str | Path, dataset=None, device: torch.device | None = None) -> torch.nn.Module:
    """Rebuild the run's model at its saved shape (config.json, ID maps, model.safetensors metadata)
    and load model.safetensors with a plain strict load_state_dict."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    user_ids, item_ids = read_id_maps(run_dir)
    if dataset is not None:
        _check_same_ids(run_dir, dataset, user_ids, item_ids)
    path = _require(run_dir, MODEL)
    state, meta = read_model_file(path)
    try:
        model = build_model(config, len(user_ids), len(item_ids), dataset, None, device, saved=meta)
    except ValueError as exc:  # e.g. a file from before the model recorded its shape
        raise DataError(f"{path}: {exc}") from None
    adapter = read_adapter_file(run_dir)
    try:
        load_weights(model, state, adapter)
    except RuntimeError as exc:
        raise DataError(
            f"{run_dir / MODEL} does not match model {config['model']!r} ({load_error_line(exc)}); retrain it"
        ) from None
    model.eval()
    return model


def model_config_dict(model: torch.nn.Module) -> dict:
    return to_dict(model.config)
