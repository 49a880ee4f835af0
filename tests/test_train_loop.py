"""The gradient loop: early stopping, best-state restore, history file, and exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from conftest import pairs_frame
from gpt2rec.data.splits import Split, SplitConfig
from gpt2rec.errors import UserError
from gpt2rec.models.base import ModelContext
from gpt2rec.models.registry import get_spec
from gpt2rec.train.loop import TrainConfig, fit
from gpt2rec.utils.config import from_dict

N_USERS, N_ITEMS, BLOCK = 16, 16, 8  # users 0-7 use items 0-7, users 8-15 items 8-15


def block_split() -> Split:
    parts = {"train": [], "valid": [], "test": []}
    for u in range(N_USERS):
        block = range((u // BLOCK) * BLOCK, (u // BLOCK + 1) * BLOCK)
        for j, item in enumerate(block):
            part = "valid" if j == u % BLOCK else "test" if j == (u + 1) % BLOCK else "train"
            parts[part].append((u, item))
    frames = {k: pairs_frame(v) for k, v in parts.items()}
    return Split(frames["train"], frames["valid"], frames["test"], SplitConfig())


CTX = ModelContext(N_USERS, N_ITEMS)


class PhaseModel(nn.Module):
    """Scores like an oracle in epoch 2 only (set by on_epoch_start) and backwards otherwise."""

    def __init__(self):
        super().__init__()
        self.config, self.n_users, self.n_items = None, N_USERS, N_ITEMS
        self.w = nn.Parameter(torch.zeros(()))
        self.register_buffer("phase", torch.zeros(()))

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        self.phase.fill_(epoch)

    def score_users(self, users):
        same = (users[:, None] // BLOCK) == (torch.arange(N_ITEMS)[None, :] // BLOCK)  # (B, I)
        sign = 1.0 if int(self.phase) == 2 else -1.0
        return sign * same.float() + 0 * self.w

    def score_pairs(self, users, items):
        return self.score_users(users)[torch.arange(len(users)), items] + self.w


def test_early_stopping_and_best_state_and_history(tmp_path):
    model = PhaseModel()
    cfg = TrainConfig(epochs=20, patience=3, batch_size=16, lr=0.01, seed=0)
    result = fit(model, CTX, block_split(), cfg, tmp_path)
    # epoch 2 is the only good one; 3 worse epochs after it -> stop after epoch 5
    assert (result.best_epoch, result.epochs_run) == (2, 5)
    assert int(model.phase) == 2, "the best epoch's state must be restored"
    lines = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4, 5]
    assert result.best_valid["ndcg@10"] == lines[1]["ndcg@10"] > 0.8  # recall@10 = 1 in-block
    assert max(r["ndcg@10"] for r in lines if r["epoch"] != 2) < 0.5
    assert all("loss" in r and "recall@10" in r for r in lines)
    state = json.loads((tmp_path / "train_state.json").read_text())
    assert (state["epoch"], state["best_epoch"], state["stopped_early"]) == (5, 2, True)


def test_patience_zero_runs_every_epoch(tmp_path):
    result = fit(PhaseModel(), CTX, block_split(), TrainConfig(epochs=4, patience=0, batch_size=16), None)
    assert result.epochs_run == 4 and result.best_epoch == 2


def _build(name: str, model_config: dict, seed: int):
    spec = get_spec(name)
    torch.manual_seed(seed)
    return spec.build(from_dict(spec.config_cls, model_config), CTX)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize(
    "name, model_config", [("bpr", {"dim": 8}), ("neumf", {"dim": 4, "mlp_layers": (8, 4), "dropout": 0.3})]
)
def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, name, model_config):
    cfg = TrainConfig(epochs=5, patience=0, batch_size=8, lr=0.02, seed=7, num_neg=2 if name == "neumf" else 1)
    split = block_split()
    full = _build(name, model_config, seed=1)
    reference = fit(full, CTX, split, cfg, tmp_path / "a")

    def stop_after_2(epoch, record):
        if epoch == 2:
            raise Interrupt

    run = tmp_path / "b"
    with pytest.raises(Interrupt):
        fit(_build(name, model_config, seed=1), CTX, split, cfg, run, on_epoch_end=stop_after_2)
    assert json.loads((run / "train_state.json").read_text())["epoch"] == 2

    seen = []
    resumed = _build(name, model_config, seed=99)  # different init: everything must come from disk
    result = fit(resumed, CTX, split, cfg, run, on_epoch_end=lambda e, r: seen.append(e))
    assert seen == [3, 4, 5]
    assert result.best_epoch == reference.best_epoch and result.epochs_run == 5
    drop = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert drop(result.history) == drop(reference.history)
    for key, value in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_resume_refuses_other_settings(tmp_path):
    split = block_split()
    fit(_build("bpr", {"dim": 4}, 0), CTX, split, TrainConfig(epochs=1, batch_size=8), tmp_path)
    with pytest.raises(UserError, match="lr"):
        fit(_build("bpr", {"dim": 4}, 0), CTX, split, TrainConfig(epochs=2, batch_size=8, lr=0.5), tmp_path)


@pytest.mark.parametrize(
    "field, value", [("epochs", 0), ("lr", -1.0), ("patience", -1), ("metric", "ndcg"), ("num_neg", 0)]
)
def test_train_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field if field != "metric" else "name@K"):
        TrainConfig(**{field: value})  # inside the library: a ValueError
    with pytest.raises(UserError, match="TrainConfig"):
        from_dict(TrainConfig, {field: value})  # at the edge (JSON, command line): one-line UserError


def test_a_resumed_bar_shows_the_last_epoch_metrics_from_the_start(tmp_path, capsys):
    """A new run resumes after its first epoch (its first checkpoint); the bar then opened at '1/3'
    with no numbers beside it until epoch 2 ended."""
    split, cfg = block_split(), TrainConfig(epochs=3, patience=0, batch_size=16, seed=0)
    first = fit(PhaseModel(), CTX, split, cfg, tmp_path, stop_after=1)
    capsys.readouterr()

    def show_bar(epoch, record):
        raise Interrupt  # stop at the end of epoch 2, before the bar moves on

    with pytest.raises(Interrupt):
        fit(PhaseModel(), CTX, split, cfg, tmp_path, progress=True, on_epoch_end=show_bar)
    draws = [d for d in capsys.readouterr().err.split("\r") if "1/3" in d]  # tqdm's lines before epoch 2 ends
    assert f"ndcg@10={first.history[0]['ndcg@10']:.4f}, loss={first.history[0]['loss']:.4f}" in draws[-1]
