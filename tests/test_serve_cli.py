"""The serve-related CLI: `recommend --query`, `serve`'s binding rules, and `train --feedback`."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")

from gpt2rec.cli import main  # noqa: E402
from serve_fixtures import served_copy  # noqa: E402


@pytest.fixture
def run_dir(served_run_dir, tiny_lm):
    return served_run_dir  # tiny_lm: the LM stays registered however tests are ordered


def test_recommend_query_ranks_the_named_genre_first(run_dir, capsys):
    assert main(["recommend", str(run_dir), "--query", "Horror", "-k", "6", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["item_id"] for r in rows} == set(range(7, 13))
    # blend 1: the user's own scores; user 1 likes comedies, and has 5 of the 6 (held-out ones too)
    assert main(["recommend", str(run_dir), "--query", "Horror", "--user", "1", "--blend", "1", "-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [int(line.split()[1]) for line in lines] == [2] and "Funny" in lines[0]
    assert main(["recommend", str(run_dir), "--query", " "]) == 2
    assert "non-empty" in capsys.readouterr().err


def test_serve_refuses_a_public_address_without_a_key(run_dir, capsys, monkeypatch):
    assert main(["serve", str(run_dir), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0 without an API key" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("SHORT_KEY", "abc")
    assert main(["serve", str(run_dir), "--api-key-env", "SHORT_KEY"]) == 2
    assert "at least 16 characters" in capsys.readouterr().err


def test_serve_on_a_port_in_use_is_one_line(run_dir, capsys):
    """It printed "serving http://..." and then uvicorn's [Errno 98], exit 3."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(run_dir), "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and f"port {port} is in use; pick another --port" in captured.err
    assert "serving" not in captured.out + captured.err


def test_train_with_feedback_includes_new_items_and_interactions(run_dir, tmp_path, capsys):
    client = served_copy(run_dir, tmp_path / "served")
    assert client.post("/v1/items", json={"title": "Funny Film 13 (1999)", "genres": ["Comedy"]}).status_code == 201
    for user in (1, 2, 3):
        assert client.post("/v1/interactions", json={"user_id": user, "item_id": 13}).status_code == 201
    served = tmp_path / "served"
    argv = ["train", "--config", str(served / "config.json"), "--feedback", str(served), "--epochs", "1",
            "--out", str(tmp_path / "next"), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((tmp_path / "next" / "item_ids.json").read_text())[-1] == 13
    parts = [(tmp_path / "next" / "split" / f"{p}.tsv").read_text() for p in ("train", "valid", "test")]
    held = {tuple(line.split("\t")[:2]) for part in parts for line in part.splitlines()[1:]}
    assert {("1", "13"), ("2", "13"), ("3", "13")} <= held
    # writes after training do not change what the new run reloads
    client.post("/v1/items", json={"title": "Scary Film 14 (1999)", "genres": ["Horror"]})
    assert main(["recommend", str(tmp_path / "next"), "--user", "1", "-k", "2"]) == 0


def test_train_feedback_with_added_items_and_no_interactions(run_dir, tmp_path, capsys):
    """An empty interactions frame turned the integer IDs into objects: IndexError traceback."""
    client = served_copy(run_dir, tmp_path / "served")
    assert client.post("/v1/items", json={"title": "Funny Film 13 (1999)", "genres": ["Comedy"]}).status_code == 201
    served = tmp_path / "served"
    argv = ["train", "--config", str(served / "config.json"), "--feedback", str(served), "--epochs", "1",
            "--out", str(tmp_path / "next"), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((tmp_path / "next" / "item_ids.json").read_text())[-1] == 13


def test_train_feedback_with_an_id_beyond_int64_is_one_line(run_dir, tmp_path, capsys):
    """An older server stored item 2**63; merging it crashed with OverflowError."""
    from gpt2rec.data.feedback import FeedbackStore

    served_copy(run_dir, tmp_path / "served")
    store = FeedbackStore(tmp_path / "served")
    store.add_item(2**63, {"title": "Too Big (1999)", "genres": ["Comedy"]})
    store.add_interaction(1, 2**63)
    store.close()
    served = tmp_path / "served"
    argv = ["train", "--config", str(served / "config.json"), "--feedback", str(served), "--out", str(tmp_path / "n")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(2**63) in err and "64-bit" in err


def test_recommend_never_gives_back_a_users_held_out_items(run_dir, capsys):
    """Only the training items were left out: user 1's valid and test films (5, 6), which are theirs
    in the data file, came back as recommendations."""
    assert main(["recommend", str(run_dir), "--user", "1", "-k", "100", "--json"]) == 0
    got = {r["item_id"] for r in json.loads(capsys.readouterr().out)}
    assert not got & {1, 3, 4, 5, 6} and got == {2, *range(7, 13)}


def test_a_damaged_feedback_database_is_called_damaged(tmp_path):
    """It said "file is not a database; check the folder's permissions", a fix that fixes nothing."""
    from gpt2rec.data.feedback import DB_NAME, FeedbackStore
    from gpt2rec.errors import DataError

    (tmp_path / DB_NAME).write_bytes(b"not sqlite " * 500)
    with pytest.raises(DataError, match=r"\(file is not a database\); it is damaged or not gpt2rec's: move it away"):
        FeedbackStore(tmp_path)
