"""The HTTP API (FastAPI) over a `Service`, and the web page at `/`.

    app = create_app(load_service("runs/enhanced"), api_key=None)   # uvicorn.run(app, ...)

Every error is JSON `{"error": "<one line>", "field": "<name>"}` with a 4xx status: 422 invalid
input, 404 unknown user/item, 409 conflict, 401 missing/wrong API key, 413 body too large,
415 a POST that is not JSON. Writes need the `X-API-Key` header when the server has a key.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from pathlib import Path

import orjson
import pandas as pd
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from ..errors import UserError
from ..run import UnknownIdError
from .batcher import MicroBatcher
from .schemas import BatchRequest, Interaction, K, NewItem, ProfileRequest, QueryRequest
from .service import Conflict, Service

STATIC = Path(__file__).parent / "static"
MAX_BODY = 64 * 1024  # bytes


class JSONBytes(Response):
    """JSON rendered by orjson (fast; numpy-free rows of Python values)."""

    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None):
        self.status, self.message, self.field = status, message, field


_UNION_TAG = re.compile(r"int|str|float|bool|.*[-\[].*")


def _error(status: int, message: str, field: str | None = None) -> JSONBytes:
    return JSONBytes({"error": message, "field": field}, status_code=status)


def _mapped(exc: UserError, field: str) -> ApiError:
    """A library error as an HTTP error naming the request field it concerns."""
    if isinstance(exc, UnknownIdError):
        return ApiError(404, str(exc), field)
    return ApiError(409 if isinstance(exc, Conflict) else 422, str(exc), field)


async def _call(field: str, fn, *args):
    """Run a blocking library call in a worker thread; its UserError becomes a 4xx naming `field`."""
    try:
        return await asyncio.to_thread(fn, *args)
    except UserError as exc:
        raise _mapped(exc, field) from None


class BodyLimit:
    """ASGI middleware: refuse bodies over `limit` bytes (413) and POSTs that are not JSON (415)."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":  # also keeps HTML forms on other sites from posting here
            return await _error(415, "send the body as JSON (Content-Type: application/json)", "body")(
                scope, receive, send
            )
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _error(413, f"the body is over {self.limit} bytes", "body")(scope, receive, send)
        seen = 0

        async def bounded():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ApiError(413, f"the body is over {self.limit} bytes", "body")
            return message

        return await self.app(scope, bounded, send)


def create_app(service: Service, api_key: str | None = None) -> FastAPI:
    app = FastAPI(
        title="gpt2rec",
        version=service.health()["version"],
        description="Recommendations that read metadata with a language model: known users, new users, "
        "new items and requests in plain words, with explanations.",
        default_response_class=JSONBytes,
    )
    batcher = MicroBatcher(service.recommend_many)
    app.state.service, app.state.batcher = service, batcher

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return _error(exc.status, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
        # union members add type tags to the location ("int", "constrained-int"); they are not fields
        loc = [str(p) for p in first.get("loc", ()) if not _UNION_TAG.fullmatch(str(p))]
        field = ".".join(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc) or "body"
        return _error(422, f"{field}: {first.get('msg', 'invalid value')}", field)

    def writer(x_api_key: str | None = Header(default=None)) -> None:
        if api_key is not None and not (x_api_key and hmac.compare_digest(x_api_key, api_key)):
            raise ApiError(401, "this write needs the server's API key in the X-API-Key header", "X-API-Key")

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

    @app.get("/v1/health", summary="model, LM, counts, version")
    async def health():
        return {**service.health(), "batches": batcher.calls, "batched_requests": batcher.requests}

    @app.get("/v1/users", summary="some known user IDs with their profile (for pickers)")
    async def users(limit: int = Query(20, ge=1, le=200)):
        table = service.run.dataset.users.head(limit)
        return [{k: _plain(v) for k, v in row.items()} for row in table.to_dict("records")]

    @app.get("/v1/users/{user_id}/recommendations", summary="top-k unseen items of a known user")
    async def user_recommendations(
        user_id: str = PathParam(min_length=1, max_length=64), k: K = 10, explain: bool = False
    ):
        user = user_index(user_id)
        rows = await batcher.submit(user, k)
        if explain:
            rows = await _call("explain", service.explain_rows, user, rows)
        return _with_note({"user_id": service.run.user_ids[user], "items": rows}, user)

    @app.post("/v1/recommendations", summary="several known users at once (one scoring call)")
    async def batch(body: BatchRequest):
        users = [user_index(u, f"user_ids.{n}") for n, u in enumerate(body.user_ids)]
        rows = await _call("user_ids", service.recommend_many, users, body.k)
        if body.explain:
            rows = [await _call("explain", service.explain_rows, u, r) for u, r in zip(users, rows)]
        return {
            "results": [_with_note({"user_id": service.run.user_ids[u], "items": r}, u) for u, r in zip(users, rows)]
        }

    @app.post("/v1/recommendations/profile", summary="a new user: profile fields and/or liked items")
    async def profile(body: ProfileRequest):
        if not body.profile and not body.liked:
            raise ApiError(422, "give a profile, liked items, or both", "profile")
        for n, raw in enumerate(body.liked):
            item_index(raw, f"liked.{n}")
        return {"items": await _call("profile", service.profile, body.profile, body.liked, body.k)}

    @app.post("/v1/recommendations/query", summary="a request in plain words, optionally for a user")
    async def query(body: QueryRequest):
        user = None if body.user_id is None else user_index(body.user_id)
        return {"items": await _call("query", service.query, body.query, body.k, user, body.blend)}

    @app.get("/v1/items/{item_id}/similar", summary="items like this one (text + collaborative)")
    async def similar(item_id: str = PathParam(min_length=1, max_length=64), k: K = 10):
        return {"item_id": item_id, "items": await _call("item_id", service.similar, item_index(item_id), k)}

    @app.post("/v1/items", status_code=201, dependencies=[Depends(writer)], summary="add an item from its metadata")
    async def add_item(body: NewItem):
        meta = {"title": body.title, "genres": body.genres} | ({"year": body.year} if body.year else {})
        return await _call("item_id", service.add_item, body.item_id, meta)

    @app.post("/v1/interactions", status_code=201, dependencies=[Depends(writer)], summary="record an interaction")
    async def add_interaction(body: Interaction):
        user_index(body.user_id)
        item_index(body.item_id)
        return await _call("item_id", service.add_interaction, body.user_id, body.item_id, body.rating)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit)
    return app


def _plain(value):
    """A table cell as JSON: numpy scalars as Python values, missing values as null."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value
