"""The GPT-2 recommenders through training runs and the CLI: the text cache between builds, the
recommend CLI's text options, the hybrid strategy in the training loop (and its resume), and the
train CLI's --lm / --strategy shortcuts."""

from __future__ import annotations

import pandas as pd
import torch

from gpt2_fixtures import ctx_for, enhanced, meta_data
from gpt2rec.models.basic import BasicConfig
from gpt2rec.models.basic import build as build_basic


def test_text_cache_is_used(tiny_lm, tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path))
    dataset, train = meta_data()
    a = build_basic(BasicConfig(lm=tiny_lm, dim=8), ctx_for(dataset, train))
    assert list((tmp_path / "embeddings").rglob("*.safetensors"))
    b = build_basic(BasicConfig(lm=tiny_lm, dim=8), ctx_for(dataset, train))
    assert torch.equal(a.user_text, b.user_text) and torch.equal(a.item_text, b.item_text)


def test_cli_recommend_explain_profile_items(tiny_lm, tmp_path, monkeypatch, capsys):
    """Train an enhanced run through the library, then the recommend CLI's text options."""
    import json

    from gpt2rec.cli import main
    from gpt2rec.pipeline import RunConfig, train_run

    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path / "home"))
    dataset, _ = meta_data()
    inter = dataset.interactions.assign(user_id=lambda d: d["user"] + 1, item_id=lambda d: d["item"] + 1)
    # more interactions (each user's items shifted by one) so the random split keeps a few per user
    more = inter.assign(item_id=inter["item_id"] % dataset.n_items + 1, rating=2.0, timestamp=1)
    inter = pd.concat([inter, more]).drop_duplicates(["user_id", "item_id"])[
        ["user_id", "item_id", "rating", "timestamp"]
    ]
    inter.to_csv(tmp_path / "ratings.csv", index=False)
    dataset.users.to_csv(tmp_path / "users.csv", index=False)
    items = dataset.items.assign(genres=dataset.items["genres"].map("|".join))
    items.to_csv(tmp_path / "items.csv", index=False)
    data = {
        "dataset": str(tmp_path / "ratings.csv"),
        "users": str(tmp_path / "users.csv"),
        "items": str(tmp_path / "items.csv"),
    }
    config = RunConfig.create(
        model="enhanced",
        model_config={"lm": tiny_lm, "dim": 8, "n_heads": 2},
        data=data,
        train={"epochs": 2, "batch_size": 16, "patience": 0},
    )
    train_run(config, tmp_path / "run", verbose=False)

    # user 2 has 4 of the 6 items (user 1 all 6: none is recommended back, whichever part it lies in)
    assert main(["recommend", str(tmp_path / "run"), "--user", "2", "-k", "2", "--explain", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and all(abs(sum(r["user_fields"].values()) - 1) < 1e-5 for r in rows)
    assert all(r["reason"].endswith("weighed most.") for r in rows)
    # raw IDs only (internal indices "item": 215, "similar": [201] sat next to item_id 216): IDs are index + 1 here
    trained = set(pd.read_csv(tmp_path / "run" / "split" / "train.tsv", sep="\t").query("user_id == 2")["item_id"])
    assert all("item" not in r and "similar_ids" not in r and set(r["similar"]) <= trained for r in rows)
    assert any(r["similar"] for r in rows)
    profile = json.dumps({"gender": "F", "age": 31, "occupation": "writer"})
    assert main(["recommend", str(tmp_path / "run"), "--profile", profile, "-k", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3
    known = len(pd.read_csv(tmp_path / "run" / "split" / "train.tsv", sep="\t")["user_id"].unique())
    for r in rows:  # every known user is a neighbour here (fewer than cold_user_k): the reason counts them all
        held = round(r["score"] * known)
        assert r["reason"] == f"{held} of all {known} users had it (too few users to pick neighbours by profile)"
        assert held >= 1
    (tmp_path / "new.csv").write_text("title,genres\nBlade Runner (1982),Sci-Fi|Thriller\nClue (1985),Comedy\n")
    assert (
        main(["recommend", str(tmp_path / "run"), "--user", "1", "--items", str(tmp_path / "new.csv"), "--json"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert {r["title"] for r in rows} == {"Blade Runner (1982)", "Clue (1985)"}
    # no item_id column: no made-up IDs 0, 1 (they clashed with the catalogue's), the file's row instead
    assert {(r["item_id"], r["row"], r["title"][:4]) for r in rows} == {(None, 1, "Blad"), (None, 2, "Clue")}
    assert main(["recommend", str(tmp_path / "run"), "--user", "1", "--items", str(tmp_path / "new.csv")]) == 0
    assert sorted(line.split()[1:3] for line in capsys.readouterr().out.splitlines()) == [["row", "1"], ["row", "2"]]
    # IDs as written: "007" stays text (it was 7), a missing one is null (it was NaN, not JSON)
    (tmp_path / "ids.csv").write_text("item_id,title,genres\n007,Alien (1979),Sci-Fi\n,Heat (1995),Drama\n")
    assert (
        main(["recommend", str(tmp_path / "run"), "--user", "1", "--items", str(tmp_path / "ids.csv"), "--json"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert {(r["item_id"], r["row"]) for r in rows} == {("007", 1), (None, 2)}
    (tmp_path / "twice.csv").write_text("item_id,title\n70,Alien (1979)\n70,Heat (1995)\n")
    (tmp_path / "clash.csv").write_text("item_id,title\n3,Alien (1979)\n")  # 3 is a catalogue item
    # combinations that were silently ignored, and a hint without the --encoding recommend lacks
    (tmp_path / "u16.csv").write_bytes("title\nClue\n".encode("utf-16"))
    (tmp_path / "untitled.csv").write_text("title,genres\nClue (1985),Comedy\n,Drama\n")  # row 2 was shown as "nan"
    for argv, needle in (
        (["--profile", profile, "--items", str(tmp_path / "new.csv")], "with --profile only the catalogue"),
        (["--user", "1", "--blend", "0.9"], "--blend works only with --query"),
        (["--query", "comedy", "--blend", "0.9"], "give --user ID too"),
        (["--user", "1", "--items", str(tmp_path / "u16.csv")], "re-save it as UTF-8"),
        (["--user", "1", "--items", str(tmp_path / "untitled.csv")], "row 2 has no title"),
        (["--user", "1", "--items", str(tmp_path)], "is a directory"),  # was "does not exist"
        (["--user", "1", "--items", str(tmp_path / "twice.csv")], "item_id 70 is given in rows 1 and 2"),
        (["--user", "1", "--items", str(tmp_path / "clash.csv")], "item_id 3 (row 1) is already the catalogue's item"),
    ):
        assert main(["recommend", str(tmp_path / "run"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1 and "--encoding" not in err, err
    assert main(["recommend", str(tmp_path / "run"), "--profile", '{"hobby": "chess"}']) == 2
    assert "valid fields" in capsys.readouterr().err


def test_hybrid_through_the_training_loop_and_resume(tiny_lm, tmp_path):
    from gpt2rec.data.splits import Split, SplitConfig
    from gpt2rec.train.loop import TrainConfig, fit

    model, dataset, train = enhanced(
        tiny_lm, strategy="hybrid", hybrid_cached_epochs=1, hybrid_end2end_epochs=1, top_n_blocks=1
    )
    held = train.groupby("user").head(1)
    split = Split(
        train.drop(held.index).reset_index(drop=True),
        held.reset_index(drop=True),
        held.reset_index(drop=True),
        SplitConfig(),
    )
    before = {n: p.detach().clone() for n, p in model.text.lm.named_parameters()}
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.01, patience=0)
    changed = {}

    def after_epoch(epoch, record):  # (the loop restores the best epoch's weights at the end)
        changed[epoch] = any(not torch.equal(before[n], p) for n, p in model.text.lm.named_parameters())

    fit(model, ctx_for(dataset, split.train), split, cfg, tmp_path, on_epoch_end=after_epoch)
    assert model.text.encoder_calls > 0  # epoch 2 encoded dynamically
    assert changed == {1: False, 2: True}  # LoRA trained in the dynamic epoch only
    # resume: a third epoch continues from the saved state (adapters included) and goes back to the cache
    again, _, _ = enhanced(tiny_lm, strategy="hybrid", hybrid_cached_epochs=1, hybrid_end2end_epochs=1, top_n_blocks=1)
    result = fit(
        again, ctx_for(dataset, split.train), split, TrainConfig(epochs=3, batch_size=8, lr=0.01, patience=0), tmp_path
    )
    assert result.epochs_run == 3 and again.use_cache and again.text.encoder_calls == 0


def test_cli_train_lm_and_strategy_shortcuts(tiny_lm, tmp_path, monkeypatch, capsys):
    """`gpt2rec train --model enhanced --lm NAME --strategy hybrid` is --set lm=... --set strategy=..."""
    import json

    from conftest import write_ml100k_folder
    from gpt2rec.cli import main

    monkeypatch.setenv("GPT2REC_HOME", str(tmp_path / "home"))
    folder = tmp_path / "ml"
    folder.mkdir()
    write_ml100k_folder(folder)
    run = tmp_path / "run"
    argv = [
        "train",
        "--model",
        "enhanced",
        "--dataset",
        str(folder),
        "--lm",
        tiny_lm,
        "--strategy",
        "hybrid",
        "--set",
        "dim=8",
        "--set",
        "n_heads=2",
        "--set",
        "hybrid_cached_epochs=1",
        "--set",
        "hybrid_end2end_epochs=1",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--out",
        str(run),
        "--quiet",
    ]
    assert main(argv) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model_config"]["lm"] == tiny_lm and config["model_config"]["strategy"] == "hybrid"
