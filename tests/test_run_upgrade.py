"""Run folders saved by an older gpt2rec: a setting added since reads the value the run was fitted
with, not today's default (`ModelSpec.legacy_defaults`, `train.checkpoint.upgrade_config`)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import write_ml100k_folder
from gpt2rec import coldstart
from gpt2rec.cli import main
from gpt2rec.errors import UserError
from gpt2rec.pipeline import open_run
from gpt2rec.train.checkpoint import upgrade_config


def test_a_missing_setting_reads_its_legacy_value_and_saved_ones_are_kept():
    old = {"model": "l3ae", "model_config": {"reg": 30.0, "side_weight": 10.0}, "data": {}}
    got = upgrade_config(old)
    # side_weight was saved: kept; new_item_scale and cold_users were not: the values before they existed
    assert got["model_config"] == {"reg": 30.0, "side_weight": 10.0, "new_item_scale": 1.0, "cold_users": "none"}
    assert old["model_config"] == {"reg": 30.0, "side_weight": 10.0}  # the caller's dict is not changed
    assert upgrade_config({"model": "bpr", "model_config": {"dim": 8}})["model_config"] == {"dim": 8}  # none moved
    unknown = {"model": "no-such-model", "model_config": {}}
    assert upgrade_config(unknown) == unknown  # left for building it to name the model


def test_an_l3ae_run_saved_before_new_item_scale_shows_and_retrains_as_it_was_fitted(tmp_path, tiny_lm):
    """Before new_item_scale existed a brand-new item's column was mu / (reg + mu) C[:, j] (scale 1);
    today's default is 3. A run whose config.json lacks the key shows scale 1, keeps scoring by the map
    it saved, and `train --config` of it fits at scale 1 (new items a third as high as at 3)."""
    (tmp_path / "ml").mkdir()
    folder = write_ml100k_folder(tmp_path / "ml", 12, 16)
    run, again = tmp_path / "run", tmp_path / "again"
    argv = ["train", "--model", "l3ae", "--dataset", str(folder), "--set", f"lm={tiny_lm}", "text_cache=false",
            "pooling=mean", "--out", str(run), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    now = open_run(run)
    row = now.dataset.items.iloc[[0]]  # an item's metadata, offered as a new one
    today = coldstart.score_new_items(now.model, 0, row)
    assert now.model.config.new_item_scale == 3.0 and float(today.abs().max()) > 0
    path = run / "config.json"
    config = json.loads(path.read_text())
    del config["model_config"]["new_item_scale"]
    path.write_text(json.dumps(config))
    old = open_run(run)
    assert old.model.config.new_item_scale == 1.0 and old.config.model_config["new_item_scale"] == 1.0
    torch.testing.assert_close(coldstart.score_new_items(old.model, 0, row), today)  # its saved map scores
    assert main(["train", "--config", str(path), "--out", str(again), "--quiet"]) == 0
    refit = open_run(again)
    assert json.loads((again / "config.json").read_text())["model_config"]["new_item_scale"] == 1.0
    torch.testing.assert_close(coldstart.score_new_items(refit.model, 0, row), today / 3.0)
    # a hand-written config (no run beside it) means today's defaults for what it leaves out
    own = tmp_path / "mine.json"
    own.write_text(json.dumps({key: config[key] for key in ("model", "model_config", "data")}))
    assert main(["train", "--config", str(own), "--out", str(tmp_path / "mine"), "--quiet"]) == 0
    assert json.loads((tmp_path / "mine" / "config.json").read_text())["model_config"]["new_item_scale"] == 3.0


def test_a_saved_setting_is_never_replaced(tmp_path, tiny_lm):
    (tmp_path / "ml").mkdir()
    folder = write_ml100k_folder(tmp_path / "ml", 12, 16)
    run = tmp_path / "run"
    argv = ["train", "--model", "l3ae", "--dataset", str(folder), "--set", f"lm={tiny_lm}", "text_cache=false",
            "new_item_scale=7", "cold_users=neighbours", "--out", str(run), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    loaded = open_run(run).model.config
    assert (loaded.new_item_scale, loaded.cold_users, loaded.side_weight) == (7.0, "neighbours", 10.0)
    with pytest.raises(UserError, match="unknown model 'gone'"):  # a run of a model this gpt2rec lacks
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, "model": "gone"}))
        open_run(run)
