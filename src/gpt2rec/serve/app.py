"""The HTTP API (FastAPI) over a `Service`, and the web page at `/`.

    app = create_app(load_service("runs/enhanced"), api_key=None)   # uvicorn.run(app, ...)

Every error is JSON `{"error": "<one line>", "field": "<name> or null"}` with a 4xx status: 422 invalid
input, 404 unknown user/item/route, 405 wrong method, 409 conflict, 401 missing/wrong API key, 413 body
too large, 415 a POST that is not JSON, 400 an unreadable body (see `gate.py`). Writes need the
`X-API-Key` header when the server has a key. The 2xx bodies are documented by `schemas.py`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
from fastapi import Depends, FastAPI, Header, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from ..errors import UserError
from ..run import UnknownIdError
from .batcher import MicroBatcher
from .gate import KEY_MESSAGE, ApiError, JSONBytes, RequestGate, install_handlers, key_ok, known_params_only
from .new_ids import Conflict
from .schemas import (
    AddedInteraction,
    AddedItem,
    BatchAnswer,
    BatchRequest,
    ErrorBody,
    Health,
    Interaction,
    K,
    NewItem,
    ProfileRequest,
    QueryRequest,
    Rows,
    SimilarAnswer,
    UserAnswer,
    UserRecord,
)
from .service import Service

STATIC = Path(__file__).parent / "static"
WRITES = {"/v1/items", "/v1/interactions"}  # POSTs that need the API key when the server has one
_ERRORS = {
    400: "a body that cannot be read (not UTF-8, nested too deeply)",
    401: "missing or wrong X-API-Key (writes, when the server has a key)",
    404: "unknown user, item or route",
    409: "conflicts with what the run holds (e.g. an item ID in use)",
    413: "body over 64 KiB",
    415: "a POST that is not JSON",
    422: "invalid input",
}


def _answers(model, *codes: int) -> dict:
    """OpenAPI `responses`: the 2xx body (documented, not re-validated: orjson renders the dicts as they
    are) and the error codes this route can answer, each with the error shape."""
    errors = {c: {"model": ErrorBody, "description": _ERRORS[c]} for c in (422, *codes)}
    return {200: {"model": model}, **errors}


def _created(model, *codes: int) -> dict:
    return {201: {"model": model}, **{c: v for c, v in _answers(model, *codes).items() if c != 200}}


def _mapped(exc: UserError, field: str | None) -> ApiError:
    """A library error as an HTTP error naming the request field it concerns."""
    if isinstance(exc, UnknownIdError):
        return ApiError(404, str(exc), field)
    return ApiError(409 if isinstance(exc, Conflict) else 422, str(exc), field)


async def _call(field: str | None, fn, *args):
    """Run a blocking library call in a worker thread; its UserError becomes a 4xx naming `field`."""
    try:
        return await asyncio.to_thread(fn, *args)
    except UserError as exc:
        raise _mapped(exc, field) from None


def create_app(service: Service, api_key: str | None = None) -> FastAPI:
    # /docs and /redoc from files shipped in fastapi-offline: FastAPI's own pages load a CDN
    app = FastAPIOffline(
        title="gpt2rec",
        version=service.health()["version"],
        description="Recommendations that read metadata with a language model: known users, new users, "
        "new items and requests in plain words, with explanations.",
        default_response_class=JSONBytes,
        dependencies=[Depends(known_params_only)],
    )
    install_handlers(app)
    batcher = MicroBatcher(service.recommend_many)
    app.state.service, app.state.batcher = service, batcher

    def writer(x_api_key: str | None = Header(default=None)) -> None:
        # RequestGate checks the key before the body is read; this documents the header and checks again
        if not key_ok(x_api_key, api_key):
            raise ApiError(401, KEY_MESSAGE, "X-API-Key")

    def user_index(raw, field: str = "user_id") -> int:
        try:
            return service.run.user_index(raw)
        except UserError as exc:
            raise _mapped(exc, field) from None

    def _with_note(answer: dict, user: int) -> dict:
        """`note`: why this user's list means nothing (a history-only model, no training items)."""
        note = service.run.history_note(user)
        return {**answer, "note": note} if note else answer

    def item_index(raw, field: str = "item_id") -> int:
        try:
            return service.item_index(raw)
        except UserError as exc:
            raise _mapped(exc, field) from None

    @app.get("/v1/health", responses=_answers(Health), summary="model, LM, counts, version")
    async def health():
        return {**service.health(), "batches": batcher.calls, "batched_requests": batcher.requests}

    # HEAD too (uptime checks); FastAPI's GET routes do not answer it by themselves
    app.add_api_route("/v1/health", health, methods=["HEAD"], include_in_schema=False)

    @app.get(
        "/v1/users",
        responses=_answers(list[UserRecord]),
        summary="known user IDs with their profile, a page at a time (for pickers)",
    )
    async def users(limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0)):
        table = service.run.dataset.users.iloc[offset : offset + limit]
        return [{k: _plain(v) for k, v in row.items()} for row in table.to_dict("records")]

    @app.get(
        "/v1/users/{user_id:path}/recommendations",
        responses=_answers(UserAnswer, 404),
        summary="top-k unseen items of a known user",
    )
    async def user_recommendations(
        user_id: str = PathParam(min_length=1, max_length=64), k: K = 10, explain: bool = False
    ):
        user = user_index(user_id)
        rows = await batcher.submit(user, k)
        if explain:
            rows = await _call("explain", service.explain_rows, user, rows)
        return _with_note({"user_id": service.run.user_ids[user], "items": rows}, user)

    @app.post(
        "/v1/recommendations",
        responses=_answers(BatchAnswer, 404, 400, 413, 415),
        summary="several known users at once (one scoring call)",
    )
    async def batch(body: BatchRequest):
        users = [user_index(u, f"user_ids.{n}") for n, u in enumerate(body.user_ids)]
        rows = await _call("user_ids", service.recommend_many, users, body.k)
        if body.explain:
            rows = [await _call("explain", service.explain_rows, u, r) for u, r in zip(users, rows)]
        return {
            "results": [_with_note({"user_id": service.run.user_ids[u], "items": r}, u) for u, r in zip(users, rows)]
        }

    @app.post(
        "/v1/recommendations/profile",
        responses=_answers(Rows, 404, 400, 413, 415),
        summary="a new user: profile fields and/or liked items",
    )
    async def profile(body: ProfileRequest):
        if not body.profile and not body.liked:
            raise ApiError(422, "give a profile, liked items, or both", "profile")
        for n, raw in enumerate(body.liked):
            item_index(raw, f"liked.{n}")
        return {"items": await _call("profile", service.profile, body.profile, body.liked, body.k)}

    @app.post(
        "/v1/recommendations/query",
        responses=_answers(Rows, 404, 400, 413, 415),
        summary="a request in plain words, optionally for a user",
    )
    async def query(body: QueryRequest):
        user = None if body.user_id is None else user_index(body.user_id)
        return {"items": await _call("query", service.query, body.query, body.k, user, body.blend)}

    @app.get(
        "/v1/items/{item_id:path}/similar",
        responses=_answers(SimilarAnswer, 404),
        summary="items like this one (text + collaborative)",
    )
    async def similar(item_id: str = PathParam(min_length=1, max_length=64), k: K = 10):
        item = item_index(item_id)  # the path is text: answer with the raw ID's own type, as other routes do
        return {"item_id": service.item_id(item), "items": await _call("item_id", service.similar, item, k)}

    @app.post(
        "/v1/items",
        status_code=201,
        dependencies=[Depends(writer)],
        responses=_created(AddedItem, 401, 409, 400, 413, 415),
        summary="add an item from its metadata",
    )
    async def add_item(body: NewItem):
        meta = {"title": body.title, "genres": body.genres} | ({"year": body.year} if body.year else {})
        field = "item_id" if service.can_add_items else None  # a run that cannot add items: no field is at fault
        if service.can_add_items:
            try:
                meta |= service.item_fields(body.fields or {})
            except UserError as exc:
                raise _mapped(exc, "fields") from None
            try:
                service.check_genres(body.genres)
            except UserError as exc:
                raise _mapped(exc, "genres") from None
        return await _call(field, service.add_item, body.item_id, meta)

    @app.post(
        "/v1/interactions",
        status_code=201,
        dependencies=[Depends(writer)],
        responses=_created(AddedInteraction, 401, 404, 400, 413, 415),
        summary="record an interaction",
    )
    async def add_interaction(body: Interaction):
        user_index(body.user_id)
        item_index(body.item_id)
        try:
            service.check_rating(body.rating)
        except UserError as exc:
            raise _mapped(exc, "rating") from None
        return await _call("item_id", service.add_interaction, body.user_id, body.item_id, body.rating)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)  # HEAD: uptime checks
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    posts = {route.path for route in app.routes if "POST" in getattr(route, "methods", ())}
    app.add_middleware(RequestGate, posts=posts, writes=WRITES, api_key=api_key)
    return app


def _plain(value):
    """A table cell as JSON: numpy scalars as Python values, missing values as null."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value
