"""`gpt2rec serve` as a new user with their own data meets it: text IDs ("u1", "007"), items added
with IDs of the catalogue's type, explanations of lists that hold only added items, a server fault
answered in the error shape, and the wording of refusals (see serve_fixtures for the tiny runs)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from serve_fixtures import served_copy, text_id, write_data  # noqa: E402

JSON = {"content-type": "application/json"}


def ids(rows):
    return [r["item_id"] for r in rows]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A popularity run (no LM) on the comedy/horror data with users "u1".."u12" and items "001".."012"."""
    from gpt2rec.pipeline import RunConfig, train_run

    folder = tmp_path_factory.mktemp("text_ids")
    config = RunConfig.create(model="popularity", data=write_data(folder, text_ids=True), split={"kind": "loo"})
    train_run(config, folder / "run", verbose=False)
    return folder / "run"


@pytest.fixture
def client(served_run_dir, tiny_lm, tmp_path):
    return served_copy(served_run_dir, tmp_path / "run")


def test_text_ids_come_back_as_written(text_run, tmp_path):
    """Users "u1".., items "001"..: "007" stays "007" (not 7) on every route, and u1's own comedies
    (001, 003, 004 trained on; 005, 006 held out) never come back."""
    client = served_copy(text_run, tmp_path / "copy")
    answer = client.get("/v1/users/u1/recommendations", params={"k": 100}).json()
    owned = {text_id("item", i) for i in (1, 3, 4, 5, 6)}
    assert answer["user_id"] == "u1" and not set(ids(answer["items"])) & owned
    assert set(ids(answer["items"])) == {text_id("item", i) for i in (2, *range(7, 13))}
    similar = client.get("/v1/items/007/similar", params={"k": 2}).json()
    assert similar["item_id"] == "007" and all(isinstance(i, str) and len(i) == 3 for i in ids(similar["items"]))
    assert client.get("/v1/items/7/similar").status_code == 404  # "7" is not "007" in a run of text IDs
    liked = client.post("/v1/recommendations/profile", json={"liked": ["007"], "k": 3}).json()["items"]
    assert "007" not in ids(liked) and all(isinstance(i, str) for i in ids(liked))


def test_a_whole_number_item_id_sent_as_text_is_the_catalogues_integer(client):
    """On a run of integer IDs "500" was refused ("must be an integer like the catalogue's IDs") though
    every lookup reads "7" as item 7; "0003" clashes with item 3 as 3 does."""
    added = client.post("/v1/items", json={"title": "Funny Film 500 (1999)", "genres": ["Comedy"], "item_id": "500"})
    assert added.status_code == 201 and added.json()["item_id"] == 500
    assert client.post("/v1/items", json={"title": "X", "item_id": 500}).status_code == 409
    clash = client.post("/v1/items", json={"title": "X", "item_id": "0003"})
    assert clash.status_code == 409 and clash.json()["field"] == "item_id"
    assert client.post("/v1/items", json={"title": "X", "item_id": "abc"}).status_code == 422
    assert client.post("/v1/interactions", json={"user_id": 1, "item_id": 500}).json()["item_id"] == 500


@pytest.mark.parametrize("raw", ["a\tb", "c\nd", "x\u0000y", "u\u202ex", "\u200b"])
def test_a_new_item_id_must_be_readable_text(client, raw):
    """A tab, line break, NUL or bidi override in an item ID was stored for good (and shown on the
    page, and written to the next run's TSV files); titles already refused them."""
    answer = client.post("/v1/items", json={"title": "Funny Film (1999)", "item_id": raw})
    assert answer.status_code == 422 and answer.json()["field"] == "item_id"
    assert "control character" in answer.json()["error"] or "no visible character" in answer.json()["error"]
    assert "valid integer" not in answer.json()["error"]  # the union's int member spoke before


def test_explaining_a_list_of_added_items_only(client):
    """explain=true on rows that hold only items added while serving (k=1 with a new item first) called
    `explain` with no catalogue item: IndexError, a plain-text 500."""
    assert client.post("/v1/items", json={"title": "Funny Film 13 (1999)", "genres": ["Comedy"]}).status_code == 201
    service = client.app.state.service
    row = service.row(service.item_index(13), 1.0)
    (out,) = service.explain_rows(service.run.user_index(1), [row])
    assert out["explanation"]["reason"].startswith("New in the catalogue, scored from its metadata")


def test_a_server_fault_is_a_500_in_the_error_shape(served_run_dir, tiny_lm, tmp_path, monkeypatch):
    """An unexpected exception answered the text "Internal Server Error", which the page and clients
    cannot read as {"error": ...}."""
    from fastapi.testclient import TestClient

    app = served_copy(served_run_dir, tmp_path / "run").app

    def broken(*_):
        raise RuntimeError("boom")

    monkeypatch.setattr(app.state.service, "similar", broken)
    answer = TestClient(app, raise_server_exceptions=False).get("/v1/items/1/similar")
    assert answer.status_code == 500 and answer.json()["field"] is None
    assert "GET /v1/items/1/similar (RuntimeError)" in answer.json()["error"] and "log" in answer.json()["error"]


@pytest.mark.parametrize(
    "url, body, field",
    [
        ("/v1/interactions", b'{"user_id": 1, "item_id": 2, "rating": "NaN"}', "rating"),
        ("/v1/recommendations", b'{"user_ids": [1], "k": 1e400}', "k"),
    ],
)
def test_a_number_that_is_not_finite_is_named_in_plain_words(client, url, body, field):
    """pydantic's "Input should be a finite number" named neither the value nor the rule's wording."""
    answer = client.post(url, content=body, headers=JSON)
    assert answer.status_code == 422 and answer.json()["field"] == field
    assert answer.json()["error"].startswith(f"{field}: must be a finite number, got ")


def test_an_empty_host_is_named(served_run_dir, capsys):
    from gpt2rec.cli import main

    assert main(["serve", str(served_run_dir), "--host", ""]) == 2
    err = capsys.readouterr().err
    assert "--host is empty; give an address like 127.0.0.1" in err and len(err.strip().splitlines()) == 1


def test_a_request_in_words_on_items_known_by_id_alone_is_refused(tiny_lm, tmp_path, capsys):
    """Without an items table l3ae read "Item: 7." for every item: the plain-words ranking was noise
    shown as an answer, in the CLI and on the server. Once an item with a title is added, words match it."""
    from gpt2rec.cli import main
    from gpt2rec.pipeline import RunConfig, train_run

    files = write_data(tmp_path)
    config = RunConfig.create(model="l3ae", model_config={"lm": tiny_lm, "text_cache": False},
                              data={"dataset": files["dataset"]}, split={"kind": "loo"})  # fmt: skip
    train_run(config, tmp_path / "run", verbose=False)
    assert main(["recommend", str(tmp_path / "run"), "--query", "a funny film", "-k", "2"]) == 2
    err = capsys.readouterr().err
    assert "this run's items have nothing but their IDs" in err and "--items FILE" in err
    client = served_copy(tmp_path / "run", tmp_path / "served")
    answer = client.post("/v1/recommendations/query", json={"query": "a funny film", "k": 2})
    assert answer.status_code == 422 and "nothing but their IDs" in answer.json()["error"]
    assert client.post("/v1/items", json={"title": "Funny Film 13 (1999)"}).status_code == 201
    assert client.post("/v1/recommendations/query", json={"query": "a funny film", "k": 2}).status_code == 200


def test_automatic_text_ids_count_only_their_own():
    """'new-N' follows the last automatic ID: client IDs in between took numbers ('new-1', then 'new-4')."""
    from gpt2rec.serve.new_ids import fresh_item_id

    catalogue, added = ["m1", "new-2"], []
    in_use = lambda x: x in catalogue or x in added  # noqa: E731
    for client_ids in ([], ["x", "y"], ["new-7"], []):
        added += client_ids
        added.append(fresh_item_id(catalogue, added, in_use))
    assert added == ["new-1", "x", "y", "new-3", "new-7", "new-8", "new-9"]  # new-2 is the catalogue's
