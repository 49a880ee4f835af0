"""An interrupted `gpt2rec train --tune` search resumes: the points scored before Ctrl-C (recorded
beside the run folder, `out_folder.SearchRecord`) are not scored again, and the rerun ends with the
choice and tuning.json of an uninterrupted search. The search used to start over."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from conftest import write_ml100k_folder
from gpt2rec.cli import main
from gpt2rec.train.out_folder import SearchRecord, partial_search_path


@pytest.fixture
def ml(tmp_path):
    (tmp_path / "ml").mkdir()
    return write_ml100k_folder(tmp_path / "ml")


def counting(monkeypatch, target: str, real, stop_at: int | None = None) -> list:
    """Replace `target` by `real` counting its calls; the `stop_at`-th call raises KeyboardInterrupt."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == stop_at:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(target, wrapper)
    return calls


def ease_with_fit(monkeypatch, stop_at: int | None = None) -> list:
    """The registry's ease, its fits counted (a grid point's and the final one's)."""
    from gpt2rec.models import ease

    calls, real = [], ease.SPEC.fit

    def fit(model, ctx):
        calls.append(1)
        if len(calls) == stop_at:
            raise KeyboardInterrupt
        return real(model, ctx)

    monkeypatch.setattr(ease, "SPEC", replace(ease.SPEC, fit=fit))
    return calls


def test_an_interrupted_grid_search_scores_only_the_rest_and_chooses_as_an_unbroken_one(ml, tmp_path, capsys,
                                                                                        monkeypatch):  # fmt: skip
    from gpt2rec.models.ease import SPEC

    n = len(SPEC.tune_grid)  # 7 regs
    argv = ["train", "--model", "ease", "--dataset", str(ml), "--tune", "--quiet", "--out"]
    assert main([*argv, str(tmp_path / "whole")]) == 0
    whole = json.loads((tmp_path / "whole" / "tuning.json").read_text())
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        ease_with_fit(m, stop_at=4)  # Ctrl-C while fitting the 4th point
        assert main([*argv, str(run)]) == 130
    assert not run.exists()  # no run yet, but the 3 points scored are kept beside it
    record = json.loads(partial_search_path(run).read_text())
    assert record["tried"] == whole["tried"][:3]
    capsys.readouterr()
    fits = ease_with_fit(monkeypatch)
    assert main([*argv, str(run)]) == 0
    assert len(fits) == n - 3 + 1  # the 4 points left, then the chosen one in full
    assert f"gpt2rec: resuming the search: 3 of {n} points already scored\n" in capsys.readouterr().err
    assert json.loads((run / "tuning.json").read_text()) == whole  # the same points, scores and choice
    assert not partial_search_path(run).exists()  # folded into tuning.json: nothing stale beside the run
    config = json.loads((run / "config.json").read_text())
    assert config["model_config"] == json.loads((tmp_path / "whole" / "config.json").read_text())["model_config"]


def test_a_search_interrupted_in_the_final_fit_is_not_searched_again(ml, tmp_path, capsys, monkeypatch):
    """The run folder appears only once the chosen settings are fitted: the search is kept until then."""
    from gpt2rec.models.ease import SPEC

    n = len(SPEC.tune_grid)
    argv = ["train", "--model", "ease", "--dataset", str(ml), "--tune", "--quiet", "--out", str(tmp_path / "run")]
    with monkeypatch.context() as m:
        ease_with_fit(m, stop_at=n + 1)
        assert main(argv) == 130
    capsys.readouterr()
    fits = ease_with_fit(monkeypatch)
    assert main(argv) == 0 and len(fits) == 1
    assert f"resuming the search: {n} of {n} points already scored" in capsys.readouterr().err


def test_an_interrupted_axis_search_takes_the_same_path_without_training_its_points_again(ml, tmp_path, capsys,
                                                                                         monkeypatch):  # fmt: skip
    from gpt2rec.models import bpr
    from gpt2rec.train import search

    monkeypatch.setattr(bpr, "SPEC", replace(bpr.SPEC, tune_axes={"train.lr": (1e-7, 0.05), "model.dim": (4, 8, 16)}))
    argv = ["train", "--model", "bpr", "--dataset", str(ml), "--tune", "--tune-epochs", "2", "--epochs", "3",
            "--batch-size", "16", "--lr", "1e-7", "--dim", "8", "--device", "cpu", "--quiet", "--out"]  # fmt: skip
    with monkeypatch.context() as m:
        runs = counting(m, "gpt2rec.train.search.fit", search.fit)
        assert main([*argv, str(tmp_path / "whole")]) == 0
    whole = json.loads((tmp_path / "whole" / "tuning.json").read_text())
    # it moves away from the start (on CPU, to dim 16, then lr 0.05, then dim 4: 6 points): a path to follow again
    assert len(runs) == len(whole["tried"]) >= 5 and whole["point"] != whole["tried"][0]["settings"]
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        counting(m, "gpt2rec.train.search.fit", search.fit, stop_at=4)  # Ctrl-C in the 4th short run
        assert main([*argv, str(run)]) == 130
    assert json.loads(partial_search_path(run).read_text())["tried"] == whole["tried"][:3]
    capsys.readouterr()
    runs = counting(monkeypatch, "gpt2rec.train.search.fit", search.fit)
    assert main([*argv, str(run)]) == 0
    assert len(runs) == len(whole["tried"]) - 3
    assert "gpt2rec: resuming the search: 3 points already scored\n" in capsys.readouterr().err
    assert json.loads((run / "tuning.json").read_text()) == whole
    assert not partial_search_path(run).exists()


def test_a_record_of_another_search_or_a_damaged_one_is_one_line_before_any_fit(ml, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    argv = ["train", "--model", "ease", "--dataset", str(ml), "--tune", "--quiet", "--out", str(run)]
    with monkeypatch.context() as m:
        ease_with_fit(m, stop_at=3)
        assert main(argv) == 130
    capsys.readouterr()
    path = partial_search_path(run)
    fits = ease_with_fit(monkeypatch)
    # another command into the same folder: refused like a folder holding another run, naming the difference
    assert main([*argv, "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "holds an interrupted --tune search" in err
    assert "train.seed: 0 there, 3 here" in err and f"delete {path} to start the search over" in err
    path.write_text(path.read_text()[:40])  # truncated
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{path}, the points of an interrupted --tune search" in err
    assert "is not valid JSON (truncated?); delete" in err
    path.write_text(json.dumps({"search": {}, "tried": [{"settings": {}}]}))
    assert main(argv) == 2 and "is damaged (point 1 has no 'settings' and 'valid' objects)" in capsys.readouterr().err
    assert not fits and not run.exists()
    path.unlink()  # the fix the lines name
    assert main(argv) == 0 and not path.exists()


def test_a_search_s_record_ignores_only_what_cannot_change_a_point_s_score(tmp_path):
    """The settings the search sets, eval_batch_size, and epochs beyond the budget; not patience."""
    config = {"model": "bpr", "model_config": {"dim": 8, "init_std": 0.1},
              "train": {"lr": 1e-3, "metric": "ndcg@10", "epochs": 50, "patience": 5, "eval_batch_size": 512}}  # fmt: skip

    def record(**train):
        changed = {**config, "train": {**config["train"], **train}}
        return SearchRecord(tmp_path / "run", changed, ["lr"], ["dim"], budget=30)

    first = record()
    first.data = "digest"  # (`load` sets it from the split before the search saves)
    first.save([{"settings": {"model": {"dim": 8}, "train": {"lr": 1e-3}}, "valid": {"ndcg@10": 0.5}}])
    assert record(lr=0.1, epochs=80, eval_batch_size=64).load("digest") == record().load("digest")
    assert len(record().load("digest")) == 1
    with pytest.raises(Exception, match=r"train.epochs: 30 there, 20 here"):
        record(epochs=20).load("digest")
    with pytest.raises(Exception, match=r"train.patience: 5 there, 9 here"):
        record(patience=9).load("digest")
    with pytest.raises(Exception, match=r"made on other data .*; delete .* to start the search over"):
        record().load("other")


def test_a_search_on_changed_data_is_not_resumed(ml, tmp_path, capsys, monkeypatch):
    """Rows cut from the interactions file between the two commands: the old scores were resumed and
    mixed with scores on the new data."""
    argv = ["train", "--model", "ease", "--dataset", str(ml), "--tune", "--quiet", "--out", str(tmp_path / "run")]
    with monkeypatch.context() as m:
        ease_with_fit(m, stop_at=3)
        assert main(argv) == 130
    ratings = ml / "u.data"
    rows = ratings.read_text().splitlines(keepends=True)
    ratings.write_text("".join(rows[: len(rows) - 40]))
    capsys.readouterr()
    fits = ease_with_fit(monkeypatch)
    assert main(argv) == 2 and not fits
    assert "made on other data (the interactions, their split or the users / items tables have changed)" in (
        capsys.readouterr().err
    )


def test_out_dot_records_beside_the_folder_and_a_plain_run_there_drops_the_record(ml, tmp_path, capsys,
                                                                                  monkeypatch):  # fmt: skip
    """--out . wrote '..tuning.json' (and '..lock') inside the folder, which --out with the folder's
    own path never found; a run trained without --tune into the folder left the record behind."""
    folder = tmp_path / "here"
    folder.mkdir()
    monkeypatch.chdir(folder)
    argv = ["train", "--model", "ease", "--dataset", str(ml), "--quiet", "--out"]
    with monkeypatch.context() as m:
        ease_with_fit(m, stop_at=3)
        assert main([*argv, ".", "--tune"]) == 130
    assert (tmp_path / ".here.tuning.json").is_file() and not list(folder.iterdir())
    capsys.readouterr()
    assert main([*argv, str(folder)]) == 0  # the folder's own path, no --tune
    assert not (tmp_path / ".here.tuning.json").exists()
    assert "removed" in capsys.readouterr().err
