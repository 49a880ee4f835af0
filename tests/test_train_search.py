"""`gpt2rec train --tune`: the grid search of a closed-form model's settings on validation."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from conftest import pairs_frame
from gpt2rec.data.splits import Split, SplitConfig
from gpt2rec.errors import UserError
from gpt2rec.models.base import ModelContext, ModelSpec
from gpt2rec.train.config import TrainConfig
from gpt2rec.train.search import grid_search


@dataclass
class PickConfig:
    pick: int = 0


class Pick(torch.nn.Module):
    """Ranks item `pick` first for every user, then the others by index."""

    def __init__(self, config: PickConfig, n_users: int, n_items: int):
        super().__init__()
        self.config, self.n_users, self.n_items = config, n_users, n_items
        self.w = torch.nn.Parameter(torch.zeros(1))

    def score_users(self, users):
        scores = -torch.arange(self.n_items, dtype=torch.float32).repeat(len(users), 1)  # (B, I)
        scores[:, self.config.pick] = 1.0
        return scores

    def score_pairs(self, users, items):
        return self.score_users(users).gather(1, items.unsqueeze(1)).squeeze(1)


def pick_spec(grid) -> ModelSpec:
    build = lambda cfg, ctx: Pick(cfg, ctx.n_users, ctx.n_items)  # noqa: E731
    return ModelSpec("pick", PickConfig, build, fit=lambda model, ctx: None, tune_grid=grid)


# 3 users trained on item 0; each holds out item 2 in valid and item 3 in test
TRAIN = pairs_frame([(0, 0), (1, 0), (2, 0)])
VALID = pairs_frame([(0, 2), (1, 2), (2, 2)])
TEST = pairs_frame([(0, 3), (1, 3), (2, 3)])


def test_the_point_best_on_validation_wins_and_test_is_never_read():
    split = Split(TRAIN, VALID, TEST, SplitConfig())
    ctx = ModelContext(3, 5, None, TRAIN, torch.device("cpu"))
    grid = ({"pick": 1}, {"pick": 3}, {"pick": 2}, {"pick": 4})
    result = grid_search(pick_spec(grid), PickConfig(), ctx, split, TrainConfig(metric="hit@1"), progress=False)
    assert result.point == {"pick": 2} and result.chosen == {"pick": 2}  # pick 3 would win on test
    assert [t["settings"]["pick"] for t in result.tried] == [1, 3, 2, 4]
    assert [t["valid"]["hit@1"] for t in result.tried] == [0.0, 0.0, 1.0, 0.0]
    # equals: the grid's first point is kept
    tied = grid_search(pick_spec(({"pick": 4}, {"pick": 1})), PickConfig(), ctx, split, TrainConfig(metric="hit@1"))
    assert tied.point == {"pick": 4}


def test_a_split_kind_adds_its_extra_points():
    """`tune_extra` points run on their split kind only: on a mixed split (item 2 is new in valid,
    item 3 in test, so item 3 is no valid candidate) the extra point picking 2 wins."""
    spec = ModelSpec("pick", PickConfig, pick_spec(()).build, fit=lambda model, ctx: None,
                     tune_grid=({"pick": 1},), tune_extra={"mixed": ({"pick": 2},)})  # fmt: skip
    ctx = ModelContext(3, 5, None, TRAIN, torch.device("cpu"))
    mixed = Split(TRAIN, VALID, TEST, SplitConfig(kind="mixed"), cold_items=np.array([2, 3]))
    assert grid_search(spec, PickConfig(), ctx, mixed, TrainConfig(metric="hit@1"), progress=False).point == {"pick": 2}
    plain = grid_search(spec, PickConfig(), ctx, Split(TRAIN, VALID, TEST, SplitConfig()), TrainConfig(metric="hit@1"))
    assert [t["settings"] for t in plain.tried] == [{"pick": 1}]


def test_models_without_a_grid_are_refused():
    spec = ModelSpec("gradient", PickConfig, lambda cfg, ctx: None)  # fit None: trained by epochs
    with pytest.raises(UserError, match="--tune searches the grid of a closed-form model"):
        grid_search(spec, PickConfig(), None, None, TrainConfig())


def test_cli_tune_keeps_the_chosen_settings_and_lists_every_point(tmp_path, capsys, monkeypatch):
    from conftest import write_ml100k_folder
    from gpt2rec.cli import main
    from gpt2rec.models.ease import SPEC

    folder = tmp_path / "ml"
    folder.mkdir()
    write_ml100k_folder(folder)
    argv = ["train", "--model", "ease", "--dataset", str(folder), "--tune", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    tuning = json.loads((tmp_path / "run" / "tuning.json").read_text())
    assert [t["settings"] for t in tuning["tried"]] == [dict(p) for p in SPEC.tune_grid]
    best = max(t["valid"]["ndcg@10"] for t in tuning["tried"])
    first_best = next(t["settings"] for t in tuning["tried"] if t["valid"]["ndcg@10"] == best)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert tuning["point"] == first_best and config["model_config"]["reg"] == first_best["reg"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train"]["tuned"] == first_best
    assert f"tuned on validation: reg={first_best['reg']:g}" in capsys.readouterr().out
    assert main(argv) == 0  # the same command again: the same choice, the same run
    capsys.readouterr()
    # another run's folder is refused before the grid's minutes (it was refused after them)
    monkeypatch.setattr("gpt2rec.pipeline.grid_search", lambda *a, **k: pytest.fail("searched the grid"))
    assert main([*argv, "--seed", "3"]) == 2
    assert "already holds a different run" in capsys.readouterr().err
    assert main(["train", "--model", "bpr", "--dataset", str(folder), "--tune", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("bpr has none: set its values with --set") and len(err.splitlines()) == 1
    assert not (tmp_path / "b").exists()
