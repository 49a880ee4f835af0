"""Run folders: everything needed to rebuild, evaluate and serve a trained model, no pickle.

    config.json        {"model": name, "model_config": {...}, "data": {...}, "split": {...}, "train": {...}, ...}
    model.safetensors  the model's state_dict
    user_ids.json      raw user IDs, position = internal index
    item_ids.json      raw item IDs, position = internal index
    metrics.json       {"valid": {...}, "test": {...}, ...}

Every write is atomic. Loading reads JSON and safetensors only (never `torch.load`) and rebuilds the
model through the registry: spec.build(config, ModelContext(...)), then load_state_dict(strict).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..models.base import ModelContext
from ..models.registry import get_spec
from ..utils.config import from_dict, to_dict
from ..utils.io import flat_tensors, save_tensors_meta, write_json
from . import runfolder

CONFIG = "config.json"
MODEL = "model.safetensors"
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
    return config


def save_model(run_dir: str | Path, model: torch.nn.Module) -> None:
    save_tensors_meta(Path(run_dir) / MODEL, flat_tensors("", model.state_dict()))


def save_id_maps(run_dir: str | Path, dataset) -> None:
    write_json(Path(run_dir) / USER_IDS, np.asarray(dataset.user_ids).tolist())
    write_json(Path(run_dir) / ITEM_IDS, np.asarray(dataset.item_ids).tolist())


def read_id_maps(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    run_dir = Path(run_dir)
    return _id_list(_require(run_dir, USER_IDS)), _id_list(_require(run_dir, ITEM_IDS))


def _id_list(path: Path) -> np.ndarray:
    ids = runfolder.read_json_file(path, list)
    if not ids or not all(isinstance(x, (int, str)) and not isinstance(x, bool) for x in ids):
        raise runfolder.damaged(path, "does not hold a list of raw IDs")
    return np.asarray(ids)


def save_metrics(run_dir: str | Path, metrics: dict) -> None:
    write_json(Path(run_dir) / METRICS, metrics)


def read_metrics(run_dir: str | Path) -> dict:
    return runfolder.read_json_file(_require(Path(run_dir), METRICS), dict)


def build_model(config: dict, n_users: int, n_items: int, dataset=None, train=None, device=None) -> torch.nn.Module:
    """A fresh model from a run config dict (`model`, `model_config`)."""
    spec = get_spec(config["model"])
    model_config = from_dict(spec.config_cls, config.get("model_config") or {})
    ctx = ModelContext(n_users, n_items, dataset, train, device or torch.device("cpu"))
    return spec.build(model_config, ctx)


def load_model(run_dir: str | Path, dataset=None, device: torch.device | None = None) -> torch.nn.Module:
    """Rebuild the run's model from config.json + ID maps and load model.safetensors (strict)."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    user_ids, item_ids = read_id_maps(run_dir)
    if dataset is not None and (dataset.n_users, dataset.n_items) != (len(user_ids), len(item_ids)):
        raise DataError(
            f"{run_dir} was trained on {len(user_ids)} users / {len(item_ids)} items but the dataset has "
            f"{dataset.n_users} / {dataset.n_items}; load the dataset the run was trained on"
        )
    model = build_model(config, len(user_ids), len(item_ids), dataset, None, device)
    state, _ = runfolder.read_safetensors(_require(run_dir, MODEL), device=str(device or "cpu"))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"{run_dir / MODEL} does not match model {config['model']!r} ({first}); retrain it") from None
    model.eval()
    return model


def model_config_dict(model: torch.nn.Module) -> dict:
    return to_dict(model.config)
