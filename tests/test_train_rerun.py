"""`train` run again on its --out folder: the run keeps the split it started on, a resume's changed
settings are honoured and recorded, and a run folder's own split names the run folder's fix, not
`gpt2rec data split`."""

from __future__ import annotations

import json
import random
import shutil

import pytest
import torch

from gpt2rec.data.load import DataConfig, load_dataset
from gpt2rec.data.splits import SplitConfig, make_split
from gpt2rec.errors import DataError, UserError
from gpt2rec.models.base import ModelContext
from gpt2rec.models.registry import get_spec
from gpt2rec.pipeline import RunConfig, evaluate_run, train_run
from gpt2rec.train.config import TrainConfig
from gpt2rec.train.loop import fit

ROWS = [(u, i) for u in range(1, 13) for i in range(1, 11) if (u * i) % 4 != 1]


def write_rows(path, rows) -> None:
    path.write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in rows))


def valid_pairs(path) -> set:
    valid = make_split(load_dataset(DataConfig(dataset=str(path))), SplitConfig()).valid
    return set(zip(valid["user"], valid["item"]))


def config(path, **train) -> RunConfig:
    train = {"epochs": 2, "batch_size": 16, "patience": 0, **train}
    return RunConfig.create("bpr", {"dim": 8}, data={"dataset": str(path)}, train=train)


def test_the_same_command_on_reordered_data_keeps_the_run_s_split(tmp_path):
    """The split was made again from the data file on every run of the command: the same rows in
    another order split otherwise, so the finished run was re-scored on parts it had trained on
    (metrics.json valid ndcg@10 0.35 where `gpt2rec evaluate` said 0.23), and an interrupted run
    resumed its training on another split."""
    data = tmp_path / "inter.csv"
    write_rows(data, ROWS)
    first = train_run(config(data), tmp_path / "run", verbose=False)
    shuffled = ROWS[:]
    random.Random(3).shuffle(shuffled)
    write_rows(data, shuffled)
    write_rows(tmp_path / "before.csv", ROWS)
    assert valid_pairs(tmp_path / "before.csv") != valid_pairs(data)  # the data alone would split otherwise
    again = train_run(config(data), tmp_path / "run", verbose=False)
    assert again["valid"] == first["valid"] and again["test"] == first["test"]
    assert evaluate_run(tmp_path / "run")["test"] == first["test"]


def test_resuming_after_the_data_lost_rows_names_the_change(tmp_path):
    data = tmp_path / "inter.csv"
    write_rows(data, ROWS)
    train_run(config(data), tmp_path / "run", verbose=False)
    write_rows(data, ROWS[1:])
    for call in (lambda: train_run(config(data), tmp_path / "run", verbose=False),
                 lambda: evaluate_run(tmp_path / "run")):  # fmt: skip
        with pytest.raises(DataError, match="the data files changed since run folder .*run was trained") as info:
            call()
        assert "gpt2rec data split" not in str(info.value) and "--dataset" not in str(info.value)


def test_a_damaged_split_in_a_run_folder_is_not_mended_by_writing_a_new_split(tmp_path):
    """'write one with: gpt2rec data split ...' would give the run a split it was not trained on."""
    data = tmp_path / "inter.csv"
    write_rows(data, ROWS)
    train_run(config(data), tmp_path / "run", verbose=False)
    test = tmp_path / "run" / "split" / "test.tsv"
    test.write_text(test.read_text()[:-3])
    with pytest.raises(DataError, match="truncated or edited; restore run folder .* from a copy, or retrain") as info:
        evaluate_run(tmp_path / "run")
    assert "gpt2rec data split" not in str(info.value)
    test.unlink()
    with pytest.raises(DataError, match="test.tsv is missing; restore run folder"):
        evaluate_run(tmp_path / "run")


def test_a_resume_with_more_epochs_is_recorded_in_config_json(tmp_path):
    """config.json kept the first command's epochs, so `train --config RUN/config.json` trained a
    shorter run than the one in the folder."""
    data = tmp_path / "inter.csv"
    write_rows(data, ROWS)
    train_run(config(data, epochs=2), tmp_path / "run", verbose=False)
    metrics = train_run(config(data, epochs=3, patience=4), tmp_path / "run", verbose=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert (saved["epochs"], saved["patience"], metrics["train"]["epochs_run"]) == (3, 4, 3)
    shutil.rmtree(tmp_path / "run")  # a retrain from nothing with the same settings ends the same
    assert train_run(config(data, epochs=3, patience=4), tmp_path / "run", verbose=False)["test"] == metrics["test"]


def test_fewer_epochs_than_the_run_has_trained_are_refused(tmp_path):
    """Were accepted silently: a run of 70 epochs 'resumed' with --epochs 30 kept its 70 epochs' weights."""
    data = tmp_path / "inter.csv"
    write_rows(data, ROWS)
    train_run(config(data, epochs=3), tmp_path / "run", verbose=False)
    with pytest.raises(UserError, match="has already trained 3 epochs, more than epochs=2; resume it with --epochs 3"):
        train_run(config(data, epochs=2), tmp_path / "run", verbose=False)


def test_an_early_stopped_run_goes_on_with_patience_off(tmp_path):
    """A run stopped by patience 1 and resumed with patience 0 (off) trained nothing and logged
    'early stop: no ndcg@10 gain for 0 epochs'."""
    data = tmp_path / "inter.csv"
    write_rows(data, ROWS)
    dataset = load_dataset(DataConfig(dataset=str(data)))
    split = make_split(dataset, SplitConfig())
    flat = lambda model: {"ndcg@10": 0.5}  # noqa: E731 (never improves: patience decides)

    def run(patience: int):
        spec = get_spec("bpr")
        ctx = ModelContext(dataset.n_users, dataset.n_items, dataset, split.train, torch.device("cpu"))
        torch.manual_seed(0)
        model = spec.build(spec.config_cls(dim=8), ctx)
        cfg = TrainConfig(epochs=6, batch_size=16, patience=patience)
        return fit(model, ctx, split, cfg, tmp_path / "fit", validate=flat)

    assert run(patience=1).epochs_run == 2
    assert run(patience=0).epochs_run == 6
    assert run(patience=1).epochs_run == 6  # stopped again at once, nothing retrained


def test_a_tuned_run_reports_the_search_s_time_beside_the_fit_s(tmp_path, capsys):
    """'trained in 0.0s' was all a 13-minute --tune said about time: the search was not counted."""
    from gpt2rec.cli import main

    data = tmp_path / "inter.csv"
    write_rows(data, ROWS)
    argv = ["train", "--model", "ease", "--dataset", str(data), "--tune", "--quiet", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert "tuned on validation (search " in capsys.readouterr().out
    assert main(argv) == 0  # the same command again reuses tuning.json: no search to time
    assert "tuned on validation: reg=" in capsys.readouterr().out


def test_a_tuned_run_run_again_without_tune_says_to_add_it(tmp_path, capsys):
    """Said only 'already holds a different run (model_config.reg: 100.0 there, 300.0 here)', as if the
    folder held someone else's run."""
    from gpt2rec.cli import main

    data = tmp_path / "inter.csv"
    write_rows(data, ROWS)
    argv = ["train", "--model", "ease", "--dataset", str(data), "--quiet", "--out", str(tmp_path / "run")]
    assert main([*argv, "--tune"]) == 0
    capsys.readouterr()
    assert main(argv) == 2
    assert "its settings were chosen by --tune (tuning.json): add --tune to resume" in capsys.readouterr().err
