"""`gpt2rec serve`: /openapi.json describes the bodies really sent, and every error, FastAPI's and
Starlette's own included, has the documented shape {"error": "<problem; fix>", "field": ...}."""

from __future__ import annotations

import orjson
import pytest

pytest.importorskip("fastapi")
import jsonschema_rs  # noqa: E402  (a dev dependency; also schemathesis' own)

from serve_fixtures import served_copy  # noqa: E402

KEY = "k" * 24
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(served_run_dir, tmp_path_factory):
    return served_copy(served_run_dir, tmp_path_factory.mktemp("errors") / "run")


@pytest.fixture(scope="module")
def spec(client):
    return client.get("/openapi.json").json()


def conforms(spec: dict, method: str, route: str, answer) -> None:
    """`answer`'s body is valid against the schema /openapi.json gives for its route and status."""
    documented = spec["paths"][route][method]["responses"]
    assert str(answer.status_code) in documented, f"{method} {route}: {answer.status_code} undocumented"
    schema = documented[str(answer.status_code)]["content"]["application/json"]["schema"]
    jsonschema_rs.validator_for({**schema, "components": spec["components"]}).validate(answer.json())


def test_every_route_documents_its_bodies_and_the_error_shape(spec):
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for route, methods in spec["paths"].items():
        for method, op in methods.items():
            ok = next(v for c, v in op["responses"].items() if c.startswith("2"))
            assert ok["content"]["application/json"]["schema"] != {"type": "string"}, (method, route)
            assert op["responses"]["422"]["content"]["application/json"]["schema"] == error, (method, route)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert spec["paths"]["/v1/items"]["post"]["responses"]["401"]["content"]["application/json"]["schema"] == error


REAL = [  # (method, route in the spec, url, body): successes and errors of every route
    ("get", "/v1/health", "/v1/health", None),
    ("get", "/v1/users", "/v1/users?limit=3", None),
    ("get", "/v1/users", "/v1/users?limit=0", None),
    ("get", "/v1/users/{user_id}/recommendations", "/v1/users/1/recommendations?k=2&explain=true", None),
    ("get", "/v1/users/{user_id}/recommendations", "/v1/users/99/recommendations", None),
    ("post", "/v1/recommendations", "/v1/recommendations", {"user_ids": [1, 7], "k": 2, "explain": True}),
    ("post", "/v1/recommendations", "/v1/recommendations", {"user_ids": []}),
    ("post", "/v1/recommendations/profile", "/v1/recommendations/profile", {"profile": {"age": 30}, "liked": [1]}),
    ("post", "/v1/recommendations/profile", "/v1/recommendations/profile", {"liked": [99]}),
    ("post", "/v1/recommendations/query", "/v1/recommendations/query", {"query": "Comedy", "user_id": 1, "k": 2}),
    ("get", "/v1/items/{item_id}/similar", "/v1/items/1/similar?k=2", None),
    ("get", "/v1/items/{item_id}/similar", "/v1/items/99/similar", None),
    ("post", "/v1/items", "/v1/items", {"title": "Funny Film 13 (1999)", "genres": ["Comedy"]}),
    ("post", "/v1/items", "/v1/items", {"title": "X", "item_id": 3}),
    ("post", "/v1/interactions", "/v1/interactions", {"user_id": 1, "item_id": 2}),
    ("post", "/v1/interactions", "/v1/interactions", {"user_id": 1}),
]


@pytest.mark.parametrize("method, route, url, body", REAL)
def test_real_answers_match_the_openapi_spec(client, spec, method, route, url, body):
    conforms(spec, method, route, client.get(url) if method == "get" else client.post(url, json=body))


def test_writes_refused_for_the_key_match_the_spec(served_run_dir, tmp_path, spec):
    locked = served_copy(served_run_dir, tmp_path / "run", api_key=KEY)
    conforms(spec, "post", "/v1/items", locked.post("/v1/items", json={"title": "X"}))


def shape(answer, status: int, field, *words: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error", "field"} and body["field"] == field, body
    assert all(w in body["error"] for w in words), body["error"]


def test_unknown_route_and_wrong_method_have_the_error_shape(client):
    shape(client.get("/v1/foo"), 404, None, "no route GET /v1/foo", "/docs")
    wrong = client.get("/v1/items")
    shape(wrong, 405, None, "GET is not allowed on /v1/items", "POST")
    assert wrong.headers["allow"] == "POST"


def test_the_method_is_judged_before_the_body(client):
    """A PUT without a JSON body was a 415 ("send the body as JSON"), as if PUT were allowed."""
    wrong = client.put("/v1/health")
    shape(wrong, 405, None, "PUT is not allowed on /v1/health", "GET")
    shape(client.request("PATCH", "/v1/items", content=b"x"), 405, None, "PATCH is not allowed on /v1/items")
    shape(client.request("PATCH", "/nope", content=b"x"), 404, None, "no route PATCH /nope")
    shape(client.post("/v1/items", content=b"title=x"), 415, "body", "send the body as JSON")  # a real POST route


def test_head_answers_where_get_does_for_uptime_checks(client):
    for url in ("/", "/v1/health"):
        answer = client.head(url)
        assert answer.status_code == 200 and answer.content == b"", url


@pytest.mark.parametrize(
    "method, url, body, field, words",
    [
        ("get", "/v1/users/1/recommendations?k=abc", None, "k", "k: must be a whole number, got abc"),
        ("get", "/v1/users/1/recommendations?k=0", None, "k", "k: must be at least 1, got 0"),
        ("get", "/v1/users/1/recommendations?explain=maybe", None, "explain", "must be true or false, got maybe"),
        ("post", "/v1/recommendations", {"user_ids": [1], "k": 10**6}, "k", "must be at most 100, got 1000000"),
        ("post", "/v1/recommendations", {"user_ids": "1"}, "user_ids", 'must be a list in [ ], got "1"'),
        ("post", "/v1/recommendations", {"user_ids": [1.5]}, "user_ids.0", "a whole number or text in quotes, got 1.5"),
        ("post", "/v1/recommendations", {}, "user_ids", "user_ids: is required; add it"),
        ("post", "/v1/recommendations", {"user_ids": [1], "x": 1}, "x", "not a field of this request; remove it"),
        ("post", "/v1/recommendations", [1], "body", "must be a JSON object in { }, got a list"),
        ("post", "/v1/recommendations/query", {"query": ""}, "query", "query: is empty; write some words"),
        ("post", "/v1/recommendations/query", {"query": "x" * 501}, "query", "too long (501 characters; at most 500)"),
        ("post", "/v1/interactions", {"user_id": {}, "item_id": 2}, "user_id", "text in quotes, got an object"),
    ],
)
def test_validation_errors_say_what_to_send_in_plain_words(client, method, url, body, field, words):
    """pydantic's own wording ("Input should be a valid integer, unable to parse string as an integer")
    named neither the value sent nor, for IDs, that text is accepted too."""
    answer = client.get(url) if method == "get" else client.post(url, json=body)
    shape(answer, 422, field, words)


def test_unreadable_bodies_say_why(client):
    def post(content: bytes):
        return client.post("/v1/recommendations/query", content=content, headers=JSON)

    shape(post(b'{"query": "x",}'), 422, None, "the body is not valid JSON (at character 14)")
    shape(post(b'{"query": "\xff"}'), 400, "body", "not UTF-8")
    shape(post(b"[" * 20000 + b"]" * 20000), 400, "body", "nests too deeply")


def test_a_chunked_body_over_the_limit_is_a_413(client):
    def chunks():  # no Content-Length: the size is only known as the body arrives
        for _ in range(40):
            yield b" " * 2048

    shape(client.post("/v1/recommendations/query", content=chunks(), headers=JSON), 413, "body", "over 65536 bytes")


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"profile": {"occupation": "x" * 5000}}, "profile.occupation", ["too long (5000 characters; at most 200)"]),
        ({"profile": {"occupation": None}}, "profile.occupation", ["is null", "the run reads every field"]),
        ({"profile": {"gender": ["F"]}}, "profile.gender", ["must be a string or a number, not a list"]),
        ('{"profile": {"age": NaN}}', "profile.age", ["must be a finite number"]),  # Python's json reads NaN
        ('{"profile": {"age": -Infinity}}', "profile.age", ["must be a finite number"]),
    ],
)
def test_profile_values_name_the_real_problem(client, body, field, words):
    content = body.encode() if isinstance(body, str) else orjson.dumps(body)
    shape(client.post("/v1/recommendations/profile", content=content, headers=JSON), 422, field, *words)


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"2", b"true"])
def test_blend_must_be_a_finite_number_in_0_1(client, raw):
    answer = client.post("/v1/recommendations/query", content=b'{"query": "x", "blend": ' + raw + b"}", headers=JSON)
    shape(answer, 422, "blend", "must be a finite number in [0, 1]")


@pytest.mark.parametrize(
    "route, field, text, words",
    [
        ("/v1/recommendations/query", "query", "\u200b\ufeff", "no visible character"),
        ("/v1/recommendations/query", "query", "funny\u0000film", "control character U+0000"),
        ("/v1/items", "title", "\u00a0\u200b", "no visible character"),
        ("/v1/items", "title", "Film \u202eevil", "control character U+202E"),
    ],
)
def test_text_a_reader_cannot_see_is_refused(client, route, field, text, words):
    shape(client.post(route, json={field: text}), 422, field, words)


def test_a_wrong_key_is_a_401_whatever_the_body(served_run_dir, tmp_path):
    locked = served_copy(served_run_dir, tmp_path / "run", api_key=KEY)
    for headers, words in (({}, "X-API-Key header"), ({"X-API-Key": "wrong"}, "not this server's key")):
        answer = locked.post("/v1/interactions", content=b"{garbage", headers=JSON | headers)
        shape(answer, 401, "X-API-Key", words)
    good = locked.post("/v1/interactions", content=b"{garbage", headers=JSON | {"X-API-Key": KEY})
    shape(good, 422, None, "not valid JSON")


def test_a_model_that_cannot_explain_or_add_items_says_so_and_names_the_fix(tmp_path):
    """EASE: explain=true used to answer 200 with null explanations, and POST /v1/items blamed item_id."""
    from gpt2rec.pipeline import RunConfig, train_run
    from serve_fixtures import write_data

    config = RunConfig.create(model="ease", model_config={"reg": 1.0}, data=write_data(tmp_path), split={"kind": "loo"})
    train_run(config, tmp_path / "run", verbose=False)
    client = served_copy(tmp_path / "run", tmp_path / "copy")
    assert client.get("/v1/health").json()["can_explain"] is False
    assert client.get("/v1/users/1/recommendations").status_code == 200
    fix = "--model l3ae or --model enhanced"
    shape(client.get("/v1/users/1/recommendations?explain=true"), 422, "explain", "cannot explain", fix)
    shape(client.post("/v1/recommendations", json={"user_ids": [1], "explain": True}), 422, "explain", fix)
    shape(client.post("/v1/items", json={"title": "New (1999)"}), 422, None, "cannot score new items", fix)


def test_a_basic_run_explains_as_the_cli_does(tmp_path, tiny_lm):
    """The CLI explains the basic model (by its LM vectors of the items); the server refused it."""
    from serve_fixtures import train_tiny_run

    client = served_copy(train_tiny_run(tmp_path, tiny_lm, "basic", {"dim": 8}), tmp_path / "copy")
    assert client.get("/v1/health").json()["can_explain"] is True
    rows = client.get("/v1/users/1/recommendations?explain=true&k=2").json()["items"]
    assert len(rows) == 2 and all(r["explanation"]["reason"] for r in rows)
