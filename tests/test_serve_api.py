"""`gpt2rec serve`: every endpoint through FastAPI's TestClient on a tiny run with obvious answers
(see serve_fixtures: comedy fans and horror fans, each with three unseen films of their block)."""

from __future__ import annotations

import asyncio
import re

import pytest

pytest.importorskip("fastapi")

from serve_fixtures import served_copy  # noqa: E402

COMEDIES, HORRORS = set(range(1, 7)), set(range(7, 13))
TRAIN = {1: {1, 3, 4}, 7: {7, 9, 10}}  # leave-one-out: the three earliest of each user's five films
HELD = {1: {5, 6}, 7: {11, 12}}  # the valid and test films: the user has them too
SEEN = {u: TRAIN[u] | HELD[u] for u in TRAIN}
UNSEEN = {1: 2, 7: 8}  # the one film of their block a user does not have (serve_fixtures.missing)
KEY = "k" * 24


@pytest.fixture
def run_dir(served_run_dir, tiny_lm):
    return served_run_dir  # tiny_lm: the LM stays registered however tests are ordered


@pytest.fixture
def client(run_dir, tmp_path):
    return served_copy(run_dir, tmp_path / "run")


FEW_USERS = r"\d+ of all 12 users had it \(too few users to pick neighbours by profile\)"


def ids(rows):
    return [r["item_id"] for r in rows]


def test_health_names_model_lm_and_counts(client):
    h = client.get("/v1/health").json()
    assert (h["model"], h["lm"], h["users"], h["items"]) == ("enhanced", "tiny-gpt2", 12, 12)
    assert h["new_items"] == h["new_interactions"] == 0 and h["user_fields"] == ["gender", "age", "occupation"]
    assert h["item_fields"] == [] and h["reads_genres"] is True  # title, genres: an added item needs no `fields`


def test_user_gets_the_unseen_film_of_their_block_first(client):
    for user in (1, 7):
        rows = client.get(f"/v1/users/{user}/recommendations", params={"k": 3}).json()["items"]
        assert ids(rows)[0] == UNSEEN[user] and not set(ids(rows)) & SEEN[user]  # the obvious answer
        assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    all_rows = client.get("/v1/users/1/recommendations", params={"k": 100}).json()["items"]
    assert len(all_rows) == 7 and not set(ids(all_rows)) & SEEN[1]


def test_held_out_films_are_not_recommended_back(client):
    """The split's valid and test films are the user's own too: they came back as recommendations
    (user 1 got 5 and 6, films they had), on every route that excludes what a user has."""
    got = ids(client.get("/v1/users/1/recommendations", params={"k": 100}).json()["items"])
    batch = client.post("/v1/recommendations", json={"user_ids": [1], "k": 100}).json()["results"][0]
    words = {"query": "Comedy", "user_id": 1, "k": 100}
    query = ids(client.post("/v1/recommendations/query", json=words).json()["items"])
    for answer in (got, ids(batch["items"]), query):
        assert not set(answer) & SEEN[1] and UNSEEN[1] in answer


def test_explanations_have_field_weights_similar_liked_items_and_a_reason(client):
    rows = client.get("/v1/users/1/recommendations", params={"k": 2, "explain": True}).json()["items"]
    for r in rows:
        ex = r["explanation"]
        assert abs(sum(ex["user_fields"].values()) - 1) < 1e-5 and abs(sum(ex["item_fields"].values()) - 1) < 1e-5
        assert (
            set(ex["similar"]) <= TRAIN[1] and len(ex["similar"]) == 2 and ex["reason"].startswith("Because you liked")
        )


def test_item_item_model_explains_and_serves_new_profiles(tiny_lm, tmp_path):
    """An l3ae run (no TextSource) is explained too: the reason names liked films of the user's block;
    a new user's profile is scored by its nearest known profiles."""
    from serve_fixtures import train_tiny_run

    run = train_tiny_run(tmp_path, tiny_lm, "l3ae", {"reg": 1.0, "text_weight": 1.0})
    client = served_copy(run, tmp_path / "copy")
    assert client.get("/v1/health").json()["lm_loaded"] is False  # loaded on first need
    rows = client.get("/v1/users/1/recommendations", params={"k": 2, "explain": True}).json()["items"]
    assert ids(rows)[0] == UNSEEN[1] and not set(ids(rows)) & SEEN[1]
    for r in rows:
        ex = r["explanation"]
        assert set(ex["similar"]) <= TRAIN[1] and len(ex["similar"]) == 2
        assert ex["reason"].startswith("Because you liked") and ex["user_fields"] == {}
    # and it serves brand-new users from their profile alone (the nearest known profiles' items)
    assert client.get("/v1/health").json()["user_fields"] == ["gender", "age", "occupation"]
    profile = {"gender": "F", "age": 30, "occupation": "writer"}
    rows = client.post("/v1/recommendations/profile", json={"profile": profile, "k": 3}).json()["items"]
    # 12 users, fewer than cold_user_k: every user is a neighbour, and the reason says so (it claimed "nearest")
    assert len(rows) == 3 and all(re.fullmatch(FEW_USERS, r["reason"]) for r in rows)
    bad = client.post("/v1/recommendations/profile", json={"profile": {"hobby": "chess"}})
    assert bad.status_code == 422 and "valid fields" in bad.text
    # and requests in plain words, matched against its item vectors
    for words, block in (("Horror", HORRORS), ("Comedy", COMEDIES)):
        rows = client.post("/v1/recommendations/query", json={"query": words, "k": 6}).json()["items"]
        assert set(ids(rows)) == block
    assert client.get("/v1/health").json()["lm_loaded"] is True  # was false after l3ae loaded it for queries
    # and items added while serving, scored through its text route: the new comedy above the new
    # horror film for the comedy fan (user 1), and the other way round for the horror fan (user 7)
    assert client.get("/v1/health").json()["can_add_items"] is True
    for title, genre in (("Funny Film 13 (1999)", "Comedy"), ("Scary Film 14 (1999)", "Horror")):
        added = client.post("/v1/items", json={"title": title, "genres": [genre]})
        assert added.status_code == 201 and "note" not in added.json()  # l3ae places new items among known ones
    for user, first in ((1, 13), (7, 14)):
        rows = client.get(f"/v1/users/{user}/recommendations", params={"k": 100, "explain": True}).json()["items"]
        score = {r["item_id"]: r["score"] for r in rows}
        assert score[first] > score[27 - first]
        (new,) = [r for r in rows if r["item_id"] == first]
        assert new["explanation"]["reason"].startswith("New in the catalogue, scored from its metadata")


def test_batch_is_one_scoring_call_and_matches_single_answers(client):
    single = {u: client.get(f"/v1/users/{u}/recommendations", params={"k": 3}).json()["items"] for u in (1, 7)}
    out = client.post("/v1/recommendations", json={"user_ids": [1, "7"], "k": 3}).json()["results"]
    assert [r["user_id"] for r in out] == [1, 7]
    assert [ids(r["items"]) for r in out] == [ids(single[1]), ids(single[7])]


def test_concurrent_requests_share_one_model_call(client):
    import httpx

    app = client.app
    before = app.state.batcher.calls

    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(*(http.get(f"/v1/users/{u}/recommendations?k=1") for u in range(1, 13)))

    answers = asyncio.run(burst())
    assert all(a.status_code == 200 for a in answers)
    assert [a.json()["items"][0]["item_id"] in (COMEDIES if u <= 6 else HORRORS) for u, a in enumerate(answers, 1)]
    assert app.state.batcher.calls - before == 1  # twelve users waiting -> one model call


def test_profile_liked_items_and_fields(client):
    rows = client.post("/v1/recommendations/profile", json={"liked": [1, 3], "k": 4}).json()["items"]
    assert set(ids(rows)) == COMEDIES - {1, 3}  # an anonymous session that liked comedies gets comedies
    profile = {"gender": "F", "age": 30, "occupation": "writer"}
    rows = client.post("/v1/recommendations/profile", json={"profile": profile, "k": 3}).json()["items"]
    # 12 users, fewer than cold_user_k: every user is a neighbour, and the reason says so (it claimed "nearest")
    assert len(rows) == 3 and all(re.fullmatch(FEW_USERS, r["reason"]) for r in rows)
    both = client.post("/v1/recommendations/profile", json={"profile": profile, "liked": [7], "k": 3}).json()
    assert 7 not in ids(both["items"])


def test_query_in_plain_words(client):
    for words, block in (("Horror", HORRORS), ("Comedy", COMEDIES)):
        rows = client.post("/v1/recommendations/query", json={"query": words, "k": 6}).json()["items"]
        assert set(ids(rows)) == block  # the genre named in the request ranks its six films first
    # blend=1: the user's own scores alone, the user's films excluded
    rows = client.post("/v1/recommendations/query", json={"query": "Horror", "user_id": 1, "blend": 1.0, "k": 3})
    assert ids(rows.json()["items"])[0] == UNSEEN[1] and not set(ids(rows.json()["items"])) & SEEN[1]


def test_similar_items_text_and_collaborative(client):
    answer = client.get("/v1/items/1/similar", params={"k": 3}).json()
    assert answer["item_id"] == 1  # the raw ID's own type (it echoed the path's text, "1")
    rows = answer["items"]
    # comedies 2, 3, 4 share users with comedy 1 in training (5 and 6 only by text)
    assert set(ids(rows)) == {2, 3, 4} and all(r["collaborative"] > 0 for r in rows)


def test_new_item_is_recommendable_at_once_and_after_restart(client, run_dir, tmp_path):
    added = client.post("/v1/items", json={"title": "Funny Film 13 (1999)", "genres": ["Comedy"]})
    assert added.status_code == 201
    answer = added.json()
    assert (answer["item_id"], answer["title"]) == (13, "Funny Film 13 (1999)")
    # enhanced's new items rank below known ones on real data (bench `mixed`): the answer says so
    assert set(answer) == {"item_id", "title", "note"} and "serve an l3ae run" in answer["note"]
    ranking = ids(client.get("/v1/users/1/recommendations", params={"k": 100}).json()["items"])
    assert 13 in ranking and ranking.index(13) < min(ranking.index(h) for h in HORRORS)  # a comedy for a comedy fan
    again = served_copy(run_dir, tmp_path / "run")  # a restart reloads the item from the database
    assert again.get("/v1/health").json()["items"] == 13
    assert 13 in ids(again.get("/v1/users/1/recommendations", params={"k": 100}).json()["items"])
    assert ids(again.get("/v1/items/13/similar", params={"k": 12}).json()["items"])


def test_a_huge_client_item_id_leaves_the_automatic_ids_alone(client):
    """A client ID near 2**63 made the next automatic ID 2**63-1 and every later add a 422 ("no free
    integer item_id"), for good (the database replays it), and the page cannot send IDs."""
    assert client.post("/v1/items", json={"title": "Funny Film (1999)", "item_id": 2**63 - 2}).status_code == 201
    fresh = [client.post("/v1/items", json={"title": f"Funny Film {n} (1999)"}).json()["item_id"] for n in (2, 3)]
    assert fresh == [13, 14]  # after the catalogue's 12
    assert client.post("/v1/items", json={"title": "Taken (1999)", "item_id": 15}).status_code == 201
    assert client.post("/v1/items", json={"title": "Funny Film 4 (1999)"}).json()["item_id"] == 16
    assert client.post("/v1/interactions", json={"user_id": 1, "item_id": 2**63 - 2}).status_code == 201


def test_interaction_is_excluded_at_once_and_survives_a_restart(client, run_dir, tmp_path):
    first = ids(client.get("/v1/users/1/recommendations", params={"k": 1}).json()["items"])[0]
    done = client.post("/v1/interactions", json={"user_id": 1, "item_id": first, "rating": 5})
    assert done.status_code == 201
    assert first not in ids(client.get("/v1/users/1/recommendations", params={"k": 100}).json()["items"])
    again = served_copy(run_dir, tmp_path / "run")
    assert first not in ids(again.get("/v1/users/1/recommendations", params={"k": 100}).json()["items"])
    assert again.get("/v1/health").json()["new_interactions"] == 1


def test_writes_need_the_api_key_when_the_server_has_one(run_dir, tmp_path):
    locked = served_copy(run_dir, tmp_path / "run", api_key=KEY)
    body = {"user_id": 1, "item_id": 2}
    refused = locked.post("/v1/interactions", json=body)
    assert refused.status_code == 401 and refused.json()["field"] == "X-API-Key"
    assert locked.post("/v1/interactions", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
    assert locked.post("/v1/interactions", json=body, headers={"X-API-Key": KEY}).status_code == 201
    assert locked.get("/v1/users/1/recommendations").status_code == 200  # reads stay open


@pytest.mark.parametrize(
    "method, path, body, status, field",
    [
        ("get", "/v1/users/1/recommendations?k=0", None, 422, "k"),
        ("get", "/v1/users/1/recommendations?k=101", None, 422, "k"),
        ("get", "/v1/users/1/recommendations?k=ten", None, 422, "k"),
        ("get", "/v1/users/99/recommendations", None, 404, "user_id"),
        ("get", "/v1/items/99/similar", None, 404, "item_id"),
        ("post", "/v1/recommendations", {"user_ids": []}, 422, "user_ids"),
        ("post", "/v1/recommendations", {"user_ids": [1, 99]}, 404, "user_ids.1"),
        ("post", "/v1/recommendations/profile", {}, 422, "profile"),
        ("post", "/v1/recommendations/profile", {"profile": {"hobby": "chess"}}, 422, "profile"),
        ("post", "/v1/recommendations/profile", {"liked": [99]}, 404, "liked.0"),
        ("post", "/v1/recommendations/query", {"query": " "}, 422, "query"),
        ("post", "/v1/recommendations/query", {"query": "x", "blend": 2}, 422, "blend"),
        ("post", "/v1/recommendations/query", {"query": "x", "blend": 0.3}, 422, "blend"),  # no user: was ignored
        ("post", "/v1/items", {"genres": ["Comedy"]}, 422, "title"),
        ("post", "/v1/items", {"title": "X", "colour": "red"}, 422, "colour"),
        ("post", "/v1/items", {"title": "X", "item_id": 3}, 409, "item_id"),
        ("post", "/v1/items", {"title": "X", "item_id": "abc"}, 422, "item_id"),
        ("post", "/v1/items", {"title": "X", "item_id": 2**64}, 422, "item_id"),  # beyond int64: orjson crashed
        ("post", "/v1/items", {"title": "X", "item_id": 2**63 - 1}, 422, "item_id"),  # max + 1 would not fit
        ("post", "/v1/interactions", {"user_id": 1, "item_id": 99}, 404, "item_id"),
        ("post", "/v1/interactions", {"user_id": 1, "item_id": 2, "rating": "NaN"}, 422, "rating"),
        # ratings beyond the run's scale (0..5 here) and true/false as numbers used to be accepted
        ("post", "/v1/interactions", {"user_id": 1, "item_id": 2, "rating": -1000000}, 422, "rating"),
        ("post", "/v1/interactions", {"user_id": 1, "item_id": 2, "rating": 6}, 422, "rating"),
        ("post", "/v1/interactions", {"user_id": 1, "item_id": 2, "rating": True}, 422, "rating"),
        ("post", "/v1/recommendations", {"user_ids": [1], "k": True}, 422, "k"),
        ("post", "/v1/recommendations/query", {"query": "x", "k": False}, 422, "k"),
        ("post", "/v1/items", {"title": "X", "year": True}, 422, "year"),
        ("get", "/v1/users?q=writer", None, 422, "q"),  # was ignored: looked like a filter
        ("get", "/v1/users?offset=-1", None, 422, "offset"),
        # unknown parameters on the other routes were ignored too: a misspelt k gave 10 items
        ("get", "/v1/users/1/recommendations?K=3", None, 422, "K"),
        ("get", "/v1/items/2/similar?limit=3", None, 422, "limit"),
        ("get", "/v1/health?verbose=1", None, 422, "verbose"),
        ("post", "/v1/recommendations/query?k=3", {"query": "x"}, 422, "k"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(client, method, path, body, status, field):
    answer = client.get(path) if method == "get" else client.post(path, json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field and answer.json()["error"]


def test_users_come_a_page_at_a_time(client):
    first = [u["user_id"] for u in client.get("/v1/users", params={"limit": 5}).json()]
    second = [u["user_id"] for u in client.get("/v1/users", params={"limit": 5, "offset": 5}).json()]
    assert first == [1, 2, 3, 4, 5] and second == [6, 7, 8, 9, 10]  # offset was ignored: page 1 again
    assert client.get("/v1/users", params={"offset": 12}).json() == []


def test_bodies_are_bounded_and_must_be_json(client):
    big = client.post("/v1/items", content=b"[" + b"1," * 40000 + b"1]", headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["field"] == "body"
    form = client.post("/v1/items", content=b"title=x", headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415


def test_page_and_docs_are_served(client):
    page = client.get("/", params={"utm_source": "mail"})  # links carry such parameters: the page ignores them
    assert (
        page.status_code == 200 and "<title>gpt2rec</title>" in page.text and "http" not in page.text.split("<body")[1]
    )
    assert client.get("/static/app.js").status_code == 200
    assert "/v1/recommendations/query" in client.get("/openapi.json").json()["paths"]
    # the API docs load no CDN (the server may have no internet): their script and style come from it
    docs = client.get("/docs").text
    assert "https://" not in docs and "/openapi.json" in docs
    for asset in re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css))"', docs):
        assert client.get(asset).status_code == 200, asset


def test_a_history_only_model_notes_users_without_training_items(tmp_path):
    """User 13 is in the users table but has no interaction: EASE can only give it an arbitrary list,
    and the answer says so; users with training items get no note."""
    from gpt2rec.pipeline import RunConfig, train_run
    from serve_fixtures import write_data

    data = write_data(tmp_path)
    with open(data["users"], "a") as fh:
        fh.write("13,F,40,writer\n")
    config = RunConfig.create(model="ease", model_config={"reg": 1.0}, data=data, split={"kind": "loo"})
    train_run(config, tmp_path / "run", verbose=False)
    client = served_copy(tmp_path / "run", tmp_path / "copy")
    answer = client.get("/v1/users/13/recommendations", params={"k": 2}).json()
    assert answer["note"].startswith("no training interactions in this run, and ease scores a user")
    assert "note" not in client.get("/v1/users/1/recommendations", params={"k": 2}).json()
    out = client.post("/v1/recommendations", json={"user_ids": [1, 13], "k": 2}).json()["results"]
    assert ["note" in r for r in out] == [False, True]
