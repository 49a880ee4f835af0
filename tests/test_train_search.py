"""`gpt2rec train --tune`: a closed-form model's grid and a gradient model's axes, searched on validation."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from conftest import pairs_frame
from gpt2rec.data.splits import Split, SplitConfig
from gpt2rec.errors import UserError
from gpt2rec.models.base import ModelContext, ModelSpec
from gpt2rec.train.config import TrainConfig
from gpt2rec.train.search import GRID_MODELS, RUN_MODELS, axis_search, coordinate_search, grid_search, with_value


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


def test_models_without_a_search_are_refused_and_the_message_names_those_with_one():
    spec = ModelSpec("gradient", PickConfig, lambda cfg, ctx: None)  # fit None, no axes
    with pytest.raises(UserError, match="--tune searches ease, itemknn, l3ae .* gradient has no search"):
        grid_search(spec, PickConfig(), None, None, TrainConfig())
    with pytest.raises(UserError, match="gradient has no search"):
        axis_search(spec, PickConfig(), None, None, TrainConfig(), budget=3)
    from gpt2rec.models.registry import get_spec, model_names

    specs = {name: get_spec(name) for name in model_names()}
    assert {n for n, sp in specs.items() if sp.fit is not None and sp.tune_grid} == set(GRID_MODELS)
    assert {n for n, sp in specs.items() if sp.fit is None and sp.tune_axes} == set(RUN_MODELS)


def test_coordinate_search_finds_the_best_point_of_a_separable_grid_and_scores_each_once():
    # score = -(dim - 128)^2 / 1e4 - (log10 lr + 2)^2: best at dim 128, lr 1e-2, reached in one round
    calls = []

    def score(c):
        calls.append(c)
        import math

        return -((c["model"]["dim"] - 128) ** 2) / 1e4 - (math.log10(c["train"]["lr"]) + 2) ** 2

    start = {"model": {"dim": 64}, "train": {"lr": 1e-3}}
    best, tried = coordinate_search(score, start, {"train.lr": (1e-3, 1e-2, 1e-1), "model.dim": (64, 128, 256)})
    assert best == {"model": {"dim": 128}, "train": {"lr": 1e-2}}
    # round 1: start, lr 1e-2, lr 1e-1, then at lr 1e-2: dim 128, dim 256 (dim 64 known);
    # round 2 at dim 128: lr 1e-3 and 1e-1 are new, nothing moves, so it stops: 7 points, each scored once
    assert len(tried) == len(calls) == 7
    assert start == {"model": {"dim": 64}, "train": {"lr": 1e-3}}  # not mutated


def test_coordinate_search_keeps_the_current_point_on_a_tie():
    best, tried = coordinate_search(lambda c: 1.0, {"model": {"k": 1}}, {"model.k": (2, 3)})
    assert best == {"model": {"k": 1}} and len(tried) == 3
    with pytest.raises(ValueError, match="model.NAME or train.NAME"):
        with_value({}, "dim", 3)


def two_groups() -> tuple[Split, ModelContext]:
    """Users 0-5 like items 0-3, users 6-11 items 4-7; each holds out one more item of its group."""
    train, valid = [], []
    for u in range(12):
        group = range(0, 4) if u < 6 else range(4, 8)
        liked = [i for i in group if i != group[u % 4]]
        train += [(u, i) for i in liked]
        valid.append((u, group[u % 4]))
    train, valid = pairs_frame(train), pairs_frame(valid)
    return Split(train, valid, valid.iloc[:0], SplitConfig()), ModelContext(12, 8, None, train, torch.device("cpu"))


def test_axis_search_keeps_the_learning_rate_that_learns_within_the_budget():
    """Two groups of users with disjoint items: at lr 1e-7 BPR-MF stays at its random start, at 0.05
    it ranks the held-out item of the user's own group high; lr 1e30 diverges and scores -inf.
    Every point trains at most the budget; the run's other settings are the start."""
    from dataclasses import replace

    from gpt2rec.models.bpr import SPEC, BPRConfig

    split, ctx = two_groups()
    spec = replace(SPEC, tune_axes={"train.lr": (1e-7, 0.05, 1e30)})
    train = TrainConfig(epochs=50, batch_size=16, metric="ndcg@10", lr=1e-7, patience=50, seed=1)
    result = axis_search(spec, BPRConfig(dim=8), ctx, split, train, budget=4, progress=False)
    assert result.train == {"lr": 0.05} and result.point == {"model": {}, "train": {"lr": 0.05}}
    assert result.chosen == {**vars(BPRConfig(dim=8))} and result.settings() == {"lr": 0.05}
    scores = {t["settings"]["train"]["lr"]: t["valid"]["ndcg@10"] for t in result.tried}
    assert scores[1e30] is None and scores[0.05] > scores[1e-7] + 0.1  # None: diverged (JSON has no -inf)
    assert [t["epochs"] for t in result.tried] == [4, 4, None]  # the diverged run records no epochs
    assert result.to_dict()["budget_epochs"] == 4


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
    assert re.search(rf"tuned on validation \(search [\d.]+s\): reg={first_best['reg']:g}\n", capsys.readouterr().out)
    assert main(argv) == 0  # the same command again: the same choice, the same run
    capsys.readouterr()
    # another run's folder is refused before the grid's minutes (it was refused after them)
    monkeypatch.setattr("gpt2rec.pipeline.grid_search", lambda *a, **k: pytest.fail("searched the grid"))
    assert main([*argv, "--seed", "3"]) == 2
    assert "already holds a different run" in capsys.readouterr().err
    assert (
        main(["train", "--model", "popularity", "--dataset", str(folder), "--tune", "--out", str(tmp_path / "b")]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.endswith("popularity has no search: set its values with --set") and len(err.splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_cli_tune_of_a_gradient_model_runs_short_points_then_the_chosen_one_in_full(tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    from conftest import write_ml100k_folder
    from gpt2rec.cli import main
    from gpt2rec.models import bpr

    monkeypatch.setattr(bpr, "SPEC", replace(bpr.SPEC, tune_axes={"train.lr": (1e-7, 0.05), "model.dim": (4, 8)}))
    folder = tmp_path / "ml"
    folder.mkdir()
    write_ml100k_folder(folder)
    run = tmp_path / "run"
    argv = ["train", "--model", "bpr", "--dataset", str(folder), "--tune", "--tune-epochs", "2", "--epochs", "6",
            "--patience", "6", "--batch-size", "16", "--lr", "1e-7", "--dim", "8", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    tuning = json.loads((run / "tuning.json").read_text())
    assert tuning["budget_epochs"] == 2 and all(t["epochs"] <= 2 for t in tuning["tried"])
    assert tuning["tried"][0]["settings"] == {"model": {"dim": 8}, "train": {"lr": 1e-7}}  # the run's own first
    best = max(t["valid"]["ndcg@10"] for t in tuning["tried"])  # the first point reaching it wins
    point = next(t["settings"] for t in tuning["tried"] if t["valid"]["ndcg@10"] == best)
    assert tuning["point"] == point and tuning["train"] == point["train"]
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["lr"] == point["train"]["lr"] and config["model_config"]["dim"] == point["model"]["dim"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"]["epochs_run"] == 6  # the chosen settings trained in full, not 2 epochs
    shown = f"lr={point['train']['lr']:g}, dim={point['model']['dim']}"
    assert re.search(rf"tuned on validation \(search [\d.]+s\): {shown}\n", capsys.readouterr().out)
    # the same command again (e.g. after an interrupted final training) resumes without searching again
    monkeypatch.setattr("gpt2rec.pipeline.axis_search", lambda *a, **k: pytest.fail("searched again"))
    assert main(argv) == 0
    assert json.loads((run / "config.json").read_text()) == config
    # reruns made otherwise are refused before any search (the search is patched to fail above):
    # a setting the search does not choose (was dropped silently), another budget
    for extra, why in ((["--set", "init_std=0.5"], "already holds a different run"),
                       (["--tune-epochs", "3"], "was tuned with --tune-epochs 2, not 3; pass --tune-epochs 2")):  # fmt: skip
        assert main([*argv, *extra]) == 2 and why in capsys.readouterr().err
    plain = [a for a in argv if a not in ("--tune", "--tune-epochs", "2")]
    assert main([*plain[:-1], str(tmp_path / "plain")]) == 0
    assert main([*argv[:-1], str(tmp_path / "plain")]) == 2
    assert "holds a run trained without --tune" in capsys.readouterr().err
    saved = json.loads((run / "tuning.json").read_text())
    (run / "tuning.json").write_text(json.dumps({**saved, "chosen": {**saved["chosen"], "dim": "abc"}}))
    assert main(argv) == 2 and "tuning.json holds settings the model refuses" in capsys.readouterr().err
    (run / "tuning.json").write_text(json.dumps({**saved, "tried": "x"}))
    assert main(argv) == 2 and "tuning.json is not a tuning record" in capsys.readouterr().err
    (run / "tuning.json").write_text('{"point": {}}')
    assert main(argv) == 2 and "tuning.json is not a tuning record" in capsys.readouterr().err
    for extra, why in ((["--tune-epochs", "0"], "--tune-epochs must be >= 1"), (["--tune-epochs", "3"], "add --tune")):
        bad = [a for a in argv if a != "--tune"] if why == "add --tune" else argv
        assert main([*bad[: bad.index("--tune-epochs")], *extra, "--out", str(tmp_path / "x")]) == 2
        assert why in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_tuning_a_gradient_model_under_torchrun_is_one_line_before_any_work(tmp_path, monkeypatch):
    from gpt2rec.pipeline import RunConfig, train_run

    monkeypatch.setattr("gpt2rec.distributed.world_size", lambda: 2)
    config = RunConfig.create("bpr", data={"dataset": str(tmp_path / "none.csv")})
    with pytest.raises(UserError, match="tune without --nproc"):
        train_run(config, tmp_path / "run", tune=True)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("model", "axis"), [("l3ae_mf", "backbone_weight"), ("enhanced", "id_dropout")])
def test_the_lm_models_are_tuned_by_short_runs(tmp_path, tiny_lm, model, axis):
    from conftest import write_ml100k_folder
    from gpt2rec.cli import main
    from gpt2rec.models.registry import get_spec

    (tmp_path / "ml").mkdir()
    folder = write_ml100k_folder(tmp_path / "ml")
    run = tmp_path / "run"
    argv = ["train", "--model", model, "--dataset", str(folder), "--set", f"lm={tiny_lm}", "text_cache=false",
            "--tune", "--tune-epochs", "1", "--epochs", "2", "--out", str(run), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    tuning = json.loads((run / "tuning.json").read_text())
    tried = [t["settings"] for t in tuning["tried"]]
    assert {t["model"][axis] for t in tried} == set(get_spec(model).tune_axes[f"model.{axis}"])
    assert all(t["epochs"] == 1 for t in tuning["tried"])
    config = json.loads((run / "config.json").read_text())
    assert {k: config["model_config"][k] for k in tuning["point"]["model"]} == tuning["point"]["model"]
    assert config["train"]["lr"] == tuning["point"]["train"]["lr"]
