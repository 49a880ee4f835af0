"""End to end through `gpt2rec.cli.main`: train, evaluate, recommend on a synthetic ML-100K folder."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import write_ml100k_folder
from gpt2rec.cli import main

N_USERS, N_ITEMS = 12, 16


@pytest.fixture(scope="module")
def ml_folder(tmp_path_factory):
    return write_ml100k_folder(tmp_path_factory.mktemp("ml-100k"), N_USERS, N_ITEMS)


@pytest.fixture(scope="module")
def bpr_run(ml_folder, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "bpr"
    argv = ["train", "--model", "bpr", "--dataset", str(ml_folder), "--epochs", "3", "--batch-size", "16",
            "--dim", "8", "--lr", "0.05", "--seed", "1", "--out", str(run), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    return run


def test_train_writes_a_complete_run(bpr_run, capsys):
    for name in ("config.json", "model.safetensors", "user_ids.json", "item_ids.json", "metrics.json",
                 "history.jsonl", "split/train.tsv"):  # fmt: skip
        assert (bpr_run / name).is_file(), name
    config = json.loads((bpr_run / "config.json").read_text())
    assert config["model"] == "bpr" and config["model_config"]["dim"] == 8
    assert config["train"]["epochs"] == 3 and config["train"]["seed"] == 1
    assert set(config) >= {"model", "model_config", "data", "split", "train"}
    assert json.loads((bpr_run / "user_ids.json").read_text()) == list(range(1, N_USERS + 1))
    metrics = json.loads((bpr_run / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["ndcg@10"] <= 1.0 and "recall@10" in metrics["valid"]
    assert len((bpr_run / "history.jsonl").read_text().splitlines()) == 3


def test_train_prints_test_metrics_and_set_is_typed(ml_folder, tmp_path, capsys):
    run = tmp_path / "ease"
    argv = ["train", "--model", "ease", "--dataset", str(ml_folder), "--set", "reg=5", "max_memory_gb=4"]
    assert main([*argv, "--out", str(run)]) == 0  # one --set takes several pairs, as the README writes them
    out = capsys.readouterr().out
    recall = out.split("test@10")[1].split()[1]
    assert "ndcg" in out and recall == "1.0000"  # the printed test recall@10: see below
    config = json.loads((run / "config.json").read_text())
    assert config["model_config"] == {"reg": 5.0, "max_memory_gb": 4.0}
    # the obvious answer: every held-out item is in the user's block, so EASE finds them
    assert json.loads((run / "metrics.json").read_text())["test"]["recall@10"] == pytest.approx(1.0)


def test_a_cold_item_split_is_evaluated_among_its_new_items(ml_folder, tmp_path, capsys):
    """Ranked among all 16 items, items without a training interaction never surfaced (every metric
    0). Among the few new items each part holds (16 x 0.2 -> 3, fewer than 10), every user with a
    held-out new item has it in a top 10, whatever the scores."""
    run = tmp_path / "pop"
    argv = ["train", "--model", "popularity", "--dataset", str(ml_folder), "--split", "cold-item", "--out", str(run)]
    assert main(argv) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    train = pd.read_csv(run / "split" / "train.tsv", sep="\t")
    for part in ("valid", "test"):
        held = pd.read_csv(run / "split" / f"{part}.tsv", sep="\t")
        new = held[~held["item_id"].isin(train["item_id"])]
        assert 0 < new["item_id"].nunique() <= 10
        assert metrics[part]["hit@10"] == 1.0 and metrics[part]["n_users"] == new["user_id"].nunique()
    err = capsys.readouterr().err
    assert "ranked among its own new items" in err and "scores an item from its interactions alone" not in err
    ease = [
        "train",
        "--model",
        "ease",
        "--dataset",
        str(ml_folder),
        "--split",
        "cold-item",
        "--out",
        str(tmp_path / "e"),
    ]
    assert main(ease) == 0  # EASE gives every new item 0: its ranking of them says nothing, and it is told
    assert "cold-item split: ease scores an item from its interactions alone" in capsys.readouterr().err


def test_new_users_of_a_history_only_model_are_named(ml_folder, tmp_path, capsys):
    """The folder's timestamps grow with the user ID, so a temporal cut holds the last users out whole."""
    for model, warned in (("ease", True), ("popularity", False)):
        argv = ["train", "--model", model, "--dataset", str(ml_folder), "--split", "temporal"]
        assert main([*argv, "--out", str(tmp_path / model), "--quiet"]) == 0
        err = capsys.readouterr().err
        assert (
            "test users have no training interactions; ease scores a user from their interactions alone" in err
        ) == warned


def test_evaluate_reproduces_saved_metrics(bpr_run, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(bpr_run), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    saved = json.loads((bpr_run / "metrics.json").read_text())
    assert again["test"] == saved["test"] and again["valid"] == saved["valid"]


def test_recommend_json_excludes_training_items(bpr_run, capsys):
    capsys.readouterr()
    assert main(["recommend", str(bpr_run), "--user", "3", "-k", "4", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 4 and all(set(r) == {"item_id", "title", "score"} for r in recs)
    assert all(r["title"] == f"Movie {r['item_id']} (199{r['item_id'] % 10})" for r in recs)
    assert [r["score"] for r in recs] == sorted((r["score"] for r in recs), reverse=True)
    train = pd.read_csv(bpr_run / "split" / "train.tsv", sep="\t")
    seen = set(train.loc[train["user_id"] == 3, "item_id"])
    assert seen and not seen & {r["item_id"] for r in recs}


def test_recommend_plain_text(bpr_run, capsys):
    capsys.readouterr()
    assert main(["recommend", str(bpr_run), "--user", "7", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].lstrip().startswith("1.") and "Movie" in lines[0]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["recommend", "RUN", "--user", "999"], "unknown user"),
        (["recommend", "RUN", "--user", "3", "-k", "0"], "k must be"),
        (["recommend", "RUN", "--user", "3", "-k", "-5"], "k must be"),
        (["evaluate", "NOWHERE"], "not a complete run folder"),
        (["train", "--model", "bpr", "--set", "depth=3", "--out", "X"], "no such field"),
        (["train", "--model", "bpr", "--set", "dim=big", "--out", "X"], "not a valid int"),
        (["train", "--model", "bpr", "--epochs", "0", "--out", "X"], "error: TrainConfig: epochs must be >= 1"),
        (["train", "--model", "bpr", "--set", "dim=0", "--out", "X"], "error: BPRConfig: bpr dim must be >= 1, got 0;"),
        (["train", "--model", "ease", "--lm", "minilm", "--out", "X"], "model 'ease' has no lm setting; drop --lm"),
    ],
)
def test_user_errors_exit_2_with_one_line(bpr_run, tmp_path, capsys, argv, needle):
    argv = [str(bpr_run) if a == "RUN" else str(tmp_path / a) if a in ("NOWHERE", "X") else a for a in argv]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gpt2rec: error:") and needle in err


def test_rerunning_a_finished_run_resumes_without_retraining(bpr_run, ml_folder, capsys):
    before = (bpr_run / "model.safetensors").read_bytes()
    argv = ["train", "--model", "bpr", "--dataset", str(ml_folder), "--epochs", "3", "--batch-size", "16",
            "--dim", "8", "--lr", "0.05", "--seed", "1", "--out", str(bpr_run), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert (bpr_run / "model.safetensors").read_bytes() == before
    assert len((bpr_run / "history.jsonl").read_text().splitlines()) == 3
    other = [a if a != "0.05" else "0.01" for a in argv]
    assert main(other) == 2 and "different run" in capsys.readouterr().err


def test_train_reads_own_files_with_data_flags(tmp_path, capsys):
    """`train` takes the same file options as `data info` (--sep, --items, ...); a model that cannot be
    built from the data (genre_content without genres) fails with one line and leaves no run behind."""
    rows = [(u, i) for u in range(1, 9) for i in range(1, 13) if (u + i) % 3]
    (tmp_path / "inter.tsv").write_text("user_id\titem_id\n" + "".join(f"{u}\t{i}\n" for u, i in rows))
    base = ["train", "--model", "genre_content", "--dataset", str(tmp_path / "inter.tsv"), "--sep", "\\t", "--quiet"]
    assert main(base + ["--out", str(tmp_path / "bare")]) == 2
    assert "no item genres" in capsys.readouterr().err and not (tmp_path / "bare").exists()
    items = pd.DataFrame({"item_id": range(1, 13), "genres": ["Drama|Comedy", "Action"] * 6})
    items.to_csv(tmp_path / "items.tsv", sep="\t", index=False)  # --sep applies to every file
    assert main(base + ["--items", str(tmp_path / "items.tsv"), "--out", str(tmp_path / "bare")]) == 0
    data = json.loads((tmp_path / "bare" / "config.json").read_text())["data"]
    assert data["sep"] == "\t" and data["items"] == str(tmp_path / "items.tsv")


def test_a_run_trained_on_relative_paths_opens_from_anywhere(tmp_path, capsys, monkeypatch):
    """config.json kept `--dataset inter.csv` as given, so `recommend RUN` elsewhere said file not found."""
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir(), elsewhere.mkdir()
    rows = [(u, i) for u in range(1, 9) for i in range(1, 13) if (u + i) % 3]
    (data / "inter.csv").write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in rows))
    (data / "items.csv").write_text("item_id,title\n" + "".join(f"{i},Film {i}\n" for i in range(1, 13)))
    monkeypatch.chdir(data)
    argv = ["train", "--model", "popularity", "--dataset", "inter.csv", "--items", "items.csv", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0  # the same run: resumed, not "different"
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    assert (saved["dataset"], saved["items"]) == (str(data / "inter.csv"), str(data / "items.csv"))
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["recommend", str(tmp_path / "run"), "--user", "1", "-k", "2"]) == 0
    (data / "inter.csv").rename(data / "moved.csv")
    assert main(["recommend", str(tmp_path / "run"), "--user", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "config.json: data.dataset" in err and "put the file back" in err


def test_a_run_saved_before_per_table_separators_still_opens_and_resumes(tmp_path, capsys):
    """config.json of a run made before --users-sep / --items-sep has no such keys: it must still
    open (evaluate, recommend), read every file as it did (--sep, else the suffix), and resume."""
    from gpt2rec.pipeline import open_run

    rows = [(u, i) for u in range(1, 9) for i in range(1, 13) if (u + i) % 3]
    (tmp_path / "inter.txt").write_text("user_id;item_id\n" + "".join(f"{u};{i}\n" for u, i in rows))
    (tmp_path / "items.txt").write_text("item_id;title\n" + "".join(f"{i};Film {i}\n" for i in range(1, 13)))
    run = tmp_path / "run"
    argv = ["train", "--model", "popularity", "--dataset", str(tmp_path / "inter.txt"), "--items",
            str(tmp_path / "items.txt"), "--sep", ";", "--quiet", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["data"].pop("users_sep"), config["data"].pop("items_sep")) == (None, None)
    (run / "config.json").write_text(json.dumps(config))  # as written before the keys existed
    data = open_run(run).config.data
    assert (data.sep, data.users_sep, data.items_sep) == (";", None, None)
    assert main(["evaluate", str(run)]) == 0
    capsys.readouterr()
    assert main(["recommend", str(run), "--user", "1", "-k", "1", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["title"] == f"Film {row['item_id']}"  # the items table read in ';' still
    assert main(argv) == 0  # the same command: the same run (resumed), not "a different run"


@pytest.mark.parametrize("verbose", [False, True])
def test_one_progress_bar_per_run_and_epoch_lines_only_with_v(ml_folder, tmp_path, capsys, verbose):
    argv = ["train", "--model", "bpr", "--dataset", str(ml_folder), "--epochs", "3", "--batch-size", "16",
            "--dim", "4", "--patience", "0", "--out", str(tmp_path / "run")] + (["-v"] if verbose else [])  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    bar = err.replace("\r", "\n")
    assert "training" in bar and "3/3" in bar and "ndcg@10=" in bar  # the bar, its postfix the metric
    epochs = [line for line in err.splitlines() if line.startswith("gpt2rec: epoch ")]
    assert [line.split()[2].split("/")[0] for line in epochs] == (["1", "2", "3"] if verbose else [])
    assert verbose or "resuming" not in err  # the run's own first checkpoint is no resume to report
    assert len((tmp_path / "run" / "history.jsonl").read_text().splitlines()) == 3  # kept either way


def test_version(capsys):
    import gpt2rec

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"gpt2rec {gpt2rec.__version__}"


def test_library_warnings_are_one_line_and_others_keep_their_form(capsys):
    import os
    import warnings

    from gpt2rec.cli import _logging

    with warnings.catch_warnings(record=True) as passed_on:
        warnings.simplefilter("always")
        with _logging(False):
            warnings.warn_explicit("texts are truncated", UserWarning, os.path.join("x", "gpt2rec", "text", "e.py"), 9)
            warnings.warn_explicit("deprecated thing", FutureWarning, os.path.join("x", "torch", "nn.py"), 3)
    err = capsys.readouterr().err
    assert err == "gpt2rec: texts are truncated\n"  # one line: no file path, no source line
    assert [str(w.message) for w in passed_on] == ["deprecated thing"]  # to the usual display


def test_quiet_switches_off_the_hugging_face_bars():
    import huggingface_hub.utils as hub
    import transformers

    from gpt2rec.cli.train import quiet_hub_progress

    try:
        quiet_hub_progress()
        assert not transformers.utils.logging.is_progress_bar_enabled() and hub.are_progress_bars_disabled()
    finally:
        hub.enable_progress_bars()
        transformers.utils.logging.enable_progress_bar()


@pytest.mark.parametrize(
    "argv", [["recommend", "RUN", "--user", "1"], ["evaluate", "RUN"], ["serve", "RUN"], ["bench"]]
)
def test_short_model_loads_show_no_hugging_face_bars(argv, tmp_path, monkeypatch, capsys):
    """recommend / evaluate / serve (and bench writing to a log) printed transformers' "Loading
    weights: 100%|..." bars; only `train --quiet` switched them off."""
    import huggingface_hub.utils as hub
    import transformers

    import gpt2rec.bench.datasets

    monkeypatch.setattr(gpt2rec.bench.datasets, "datasets_to_run", lambda base, dataset: [])  # bench: no work
    try:
        main([str(tmp_path / "missing") if a == "RUN" else a for a in argv])  # stderr is captured: not a TTY
        assert not transformers.utils.logging.is_progress_bar_enabled() and hub.are_progress_bars_disabled()
    finally:
        hub.enable_progress_bars()
        transformers.utils.logging.enable_progress_bar()


def test_metrics_table_shows_every_cutoff_metric_in_its_column():
    """@20's hit and mrr were in metrics.json but missing from the printed lines."""
    from gpt2rec.cli.train import metrics_table

    part = {"ndcg@10": 0.25, "recall@10": 0.5, "hit@10": 1.0, "mrr@10": 0.125, "precision@10": 0.1, "hit@20": 0.75}
    lines = metrics_table({"valid": part, "test": {"ndcg@10": 0.3}}).splitlines()
    assert lines[0].split() == ["ndcg", "recall", "hit", "mrr", "precision"]
    assert lines[1].split() == ["valid@10", "0.2500", "0.5000", "1.0000", "0.1250", "0.1000"]
    assert lines[2].split() == ["valid@20", "-", "-", "0.7500", "-", "-"]
    assert lines[3].split() == ["test@10", "0.3000", "-", "-", "-", "-"] and len(lines) == 4  # no test@20 row
    assert len({len(line) for line in lines}) == 1  # columns line up


def test_a_mixed_split_trains_evaluates_and_tunes_the_new_items_scale(ml_folder, tmp_path, tiny_lm):
    """`--split mixed`: new items and held-out known interactions, ranked together; `--tune` on it also
    tries l3ae's new_item_scale (it matters only where new and known items meet)."""
    run = tmp_path / "l3ae"
    argv = ["train", "--model", "l3ae", "--dataset", str(ml_folder), "--split", "mixed", "--cold-fraction", "0.25",
            "--ratios", "0.7", "0.15", "0.15", "--set", f"lm={tiny_lm}", "text_cache=false", "--tune",
            "--out", str(run), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    split = json.loads((run / "config.json").read_text())["split"]
    assert split["kind"] == "mixed" and split["cold_fraction"] == 0.25 and split["ratios"] == [0.7, 0.15, 0.15]
    tried = json.loads((run / "tuning.json").read_text())["tried"]
    scales = {t["settings"].get("new_item_scale") for t in tried}
    assert scales == {None, 1.0, 2.0, 5.0, 10.0}  # None: the base grid at the default
    valid = pd.read_csv(run / "split" / "valid.tsv", sep="\t")
    train = pd.read_csv(run / "split" / "train.tsv", sep="\t")
    new = set(valid["item_id"]) - set(train["item_id"])
    assert new and set(valid["item_id"]) - new  # both new items and known ones to find
    assert 0.0 <= json.loads((run / "metrics.json").read_text())["test"]["ndcg@10"] <= 1.0
