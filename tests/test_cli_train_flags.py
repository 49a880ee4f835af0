"""`gpt2rec train` flags around the run: a written split (`--split-dir`), `-v`'s epoch lines, `--threads`."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from gpt2rec.cli import main

FAST = ["--model", "ease", "--set", "reg=5", "--quiet"]
BPR = ["--model", "bpr", "--epochs", "2", "--batch-size", "16", "--dim", "8", "--lr", "0.05"]


@pytest.fixture(scope="module")
def loo_split(ml, tmp_path_factory):
    out = tmp_path_factory.mktemp("splits") / "loo"
    assert main(["data", "split", str(ml), "--kind", "loo", "--out", str(out)]) == 0
    return out


def test_a_written_split_is_recorded_as_made_and_found_from_anywhere(ml, loo_split, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(loo_split.parent)
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(ml), *FAST, "--split-dir", "loo", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["split"]["kind"] == "loo"  # split.json's kind, not the default random
    assert config["split_dir"] == str(loo_split.resolve())
    monkeypatch.chdir(tmp_path)  # a retrain from elsewhere reads the same split
    again = tmp_path / "again"
    assert main(["train", "--config", str(run / "config.json"), "--quiet", "--out", str(again)]) == 0
    first, second = (json.loads((r / "metrics.json").read_text())["test"] for r in (run, again))
    assert first == second


@pytest.mark.parametrize("flags", [["--split", "cold-item"], ["--split-seed", "3"], ["--ratios", "0.6", "0.2", "0.2"]])
def test_split_flags_with_a_written_split_are_refused(ml, loo_split, tmp_path, capsys, flags):
    argv = ["train", "--dataset", str(ml), *FAST, "--split-dir", str(loo_split), *flags, "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--split-dir reads a written split" in err and flags[0] in err
    assert not (tmp_path / "r").exists()


def test_a_split_of_other_data_is_refused_not_read_in_part(ml, tmp_path, capsys):
    """A split written with --implicit-threshold (or from another version of the file) was read
    against the whole data: the data's other interactions were dropped without a word."""
    split = tmp_path / "liked"
    assert main(["data", "split", str(ml), "--implicit-threshold", "4", "--kind", "loo", "--out", str(split)]) == 0
    base = ["train", "--dataset", str(ml), *FAST, "--split-dir", str(split)]
    assert main([*base, "--implicit-threshold", "4", "--out", str(tmp_path / "same")]) == 0
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "holds 39 interactions (written from dataset" in err and "--implicit-threshold" in err
    assert not (tmp_path / "other").exists()


def test_data_split_reads_your_own_files_with_the_data_flags(tmp_path, capsys):
    """`data split` had none of --user-col, --sep, --encoding... which its own errors told you to set."""
    rows = [f"u{u};i{(u * 3 + k) % 9}" for u in range(8) for k in range(4)]
    (tmp_path / "mine.csv").write_text("who;what\n" + "\n".join(rows) + "\n")
    flags = ["--user-col", "who", "--item-col", "what", "--sep", ";"]
    split = tmp_path / "split"
    assert main(["data", "split", str(tmp_path / "mine.csv"), *flags, "--kind", "loo", "--out", str(split)]) == 0
    assert json.loads((split / "split.json").read_text())["sizes"]["train"] > 0
    argv = ["train", "--dataset", str(tmp_path / "mine.csv"), *flags, *FAST, "--split-dir", str(split)]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0


def test_feedback_is_refused_with_a_written_split(ml, loo_split, tmp_path, capsys):
    served = tmp_path / "served"
    assert main(["train", "--dataset", str(ml), *FAST, "--out", str(served)]) == 0
    argv = ["train", "--dataset", str(ml), *FAST, "--split-dir", str(loo_split), "--feedback", str(served)]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    assert "--feedback adds the served interactions" in capsys.readouterr().err


def test_verbose_epoch_lines_count_the_whole_run(ml, tmp_path, caplog):
    """A new run checkpoints its first epoch before it appears under --out; -v still reads 1/2, 2/2."""
    with caplog.at_level(logging.DEBUG, logger="gpt2rec"):
        assert main(["train", "-v", "--dataset", str(ml), *BPR, "--quiet", "--out", str(tmp_path / "r")]) == 0
    epochs = [r.getMessage().split()[1] for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert epochs == ["1/2", "2/2"]


def test_threads_sets_torch_threads_and_is_checked(ml, tmp_path, capsys, monkeypatch):
    before = torch.get_num_threads()
    try:
        assert main(["train", "--dataset", str(ml), *FAST, "--threads", "1", "--out", str(tmp_path / "r")]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert main(["train", "--dataset", str(ml), *FAST, "--threads", "0", "--out", str(tmp_path / "z")]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


def test_tune_without_a_validation_part_is_refused(ml, tmp_path, capsys):
    """Every point scored 0 on 0 users and the first was printed as 'tuned on validation'."""
    argv = ["train", "--dataset", str(ml), *FAST, "--tune", "--ratios", "1", "0", "0", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "--tune chooses on validation, but the split's valid part is empty" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_folder_of_other_files_is_not_written_over(ml, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.json").write_text("my own numbers")
    assert main(["train", "--dataset", str(ml), *FAST, "--out", str(mine)]) == 2
    assert "is not a gpt2rec run (it has no config.json) but holds metrics.json" in capsys.readouterr().err
    assert (mine / "metrics.json").read_text() == "my own numbers" and sorted(p.name for p in mine.iterdir()) == [
        "metrics.json"
    ]
    (mine / "config.json").write_text('{"name": "my project"}')
    assert main(["train", "--dataset", str(ml), *FAST, "--out", str(mine)]) == 2
    assert "holds a config.json that is not a gpt2rec run's" in capsys.readouterr().err


def test_another_run_in_the_folder_is_named_by_its_first_different_setting(ml, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(ml), *FAST, "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--dataset", str(ml), *FAST, "--set", "reg=7", "--out", str(run)]) == 2
    assert "already holds a different run (model_config.reg: 5.0 there, 7.0 here)" in capsys.readouterr().err
