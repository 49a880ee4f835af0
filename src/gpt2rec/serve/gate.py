"""What every request meets before a route: the API key of writes, the body's size and type, and the
one error shape `{"error": "<what is wrong; how to fix it>", "field": "<name> or null"}` for every
4xx, including FastAPI's and Starlette's own (unknown route, wrong method, unreadable body)."""

from __future__ import annotations

import hmac
import json
import re

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

MAX_BODY = 64 * 1024  # bytes
KEY_MESSAGE = "this write needs the server's API key in the X-API-Key header"


class JSONBytes(JSONResponse):
    """JSON rendered by orjson (fast; numpy-free rows of Python values). A JSONResponse, so that
    OpenAPI takes the documented models as the bodies (any other class is documented as a string)."""

    def render(self, content) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None):
        self.status, self.message, self.field = status, message, field


def error(status: int, message: str, field: str | None = None, headers: dict | None = None) -> JSONBytes:
    return JSONBytes({"error": message, "field": field}, status_code=status, headers=headers)


def key_ok(given: str | None, api_key: str | None) -> bool:
    return api_key is None or bool(given) and hmac.compare_digest(given.encode(), api_key.encode())


class RequestGate:
    """ASGI middleware for a POST to one of the routes `posts`, in this order: a write without the right key (401, before the body is read, so a
    garbage body with a wrong key is a 401, not a 422), a POST that is not JSON (415), a body over `limit`
    bytes (413, counted as it arrives, so a chunked body cannot pass); then the buffered body goes on."""

    def __init__(self, app, posts: set[str], writes: set[str], api_key: str | None = None, limit: int = MAX_BODY):
        self.app, self.posts, self.writes, self.api_key, self.limit = app, posts, writes, api_key, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.posts:
            return await self.app(scope, receive, send)  # the router answers: no such route (404), method (405)
        headers = dict(scope["headers"])
        given = _text(headers.get(b"x-api-key"))
        if scope["path"] in self.writes and not key_ok(given, self.api_key):
            message = KEY_MESSAGE if not given else "the X-API-Key given is not this server's key; check it"
            return await error(401, message, "X-API-Key")(scope, receive, send)
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":  # also keeps HTML forms on other sites from posting here
            return await error(415, "send the body as JSON (Content-Type: application/json)", "body")(
                scope, receive, send
            )
        length = headers.get(b"content-length")
        too_big = error(413, f"the body is over {self.limit} bytes; send a smaller request", "body")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await too_big(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await too_big(scope, receive, send)
            more = message.get("more_body", False)
        body = b"".join(chunks)

        async def replay():
            nonlocal body
            if body is None:
                return await receive()  # after the body: wait for a disconnect as Starlette expects
            message, body = {"type": "http.request", "body": body, "more_body": False}, None
            return message

        return await self.app(scope, replay, send)


async def known_params_only(request: Request) -> None:
    """An app-wide dependency: a query parameter an API route does not take (q=, page=, K=) is a 422.
    Ignored, it would look like a filter or a setting that had worked. The web page keeps any (?utm=).
    Async on purpose: a sync dependency runs in a thread pool and staggers the micro-batcher's requests."""
    route = request.scope.get("route")
    if not request.url.path.startswith("/v1/") or not hasattr(route, "dependant"):
        return
    known = _query_names(route.dependant)
    extra = sorted(set(request.query_params) - known)
    if extra:
        takes = f"only {', '.join(sorted(known))}" if known else "no query parameters"
        raise ApiError(422, f"{extra[0]}: unknown parameter; {request.url.path} takes {takes}", extra[0])


def _query_names(dependant) -> set[str]:
    """The query parameters a route and its dependencies declare (FastAPI's flattening helpers are private)."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("latin-1")


_UNION_TAG = re.compile(r"int|str|float|bool|.*[-\[].*")


def _place(err: dict) -> list[str]:
    """An error's location without the type tags union members add ("int", "constrained-int")."""
    return [str(p) for p in err.get("loc", ()) if not _UNION_TAG.fullmatch(str(p))]


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return error(exc.status, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
        if first.get("type") == "json_invalid":  # the location is a character offset, not a field
            at, why = first["loc"][-1], first.get("ctx", {}).get("error", "")
            return error(422, f"the body is not valid JSON (at character {at}): {why}; send a JSON object", None)
        loc = _place(first)
        field = ".".join(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc) or "body"
        same = [e for e in exc.errors() if _place(e) == _place(first)]  # a union's members: one error each
        return error(422, f"{field}: {plain_words(same or [first])}", field)

    @app.exception_handler(Exception)
    async def _fault(request: Request, exc: Exception):
        # a bug, not the client's input: the same JSON shape (the page shows `error`); Starlette
        # still raises it on after this answer, so the traceback reaches the server's log
        what = f"{request.method} {request.url.path}"
        return error(500, f"the server failed on {what} ({type(exc).__name__}); its log has the details", None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        method, path = request.method, request.url.path
        if exc.status_code == 404:
            what = "no file" if path.startswith("/static/") else f"no route {method}"
            return error(404, f"{what} {path}; see /docs for the routes", None)
        if exc.status_code == 405:
            allow = (exc.headers or {}).get("Allow", "")
            return error(405, f"{method} is not allowed on {path}; use {allow or 'another method'}", None, exc.headers)
        if exc.status_code == 400:  # FastAPI could not read the body: say why
            return error(400, _unreadable(exc.__cause__), "body")
        return error(exc.status_code, str(exc.detail), None, exc.headers)


# pydantic's error types in words: what a value of the wrong type must be, and broken limits
_KINDS = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text in quotes",
    "list_type": "a list in [ ]",
    "dict_type": "a JSON object in { }",
    "model_type": "a JSON object in { }",
    "model_attributes_type": "a JSON object in { }",
}
_LIMITS = {
    "missing": "is required; add it",
    "extra_forbidden": "is not a field of this request; remove it (see /docs for the fields)",
    "greater_than_equal": "must be at least {ge}, got {got}",
    "less_than_equal": "must be at most {le}, got {got}",
    "greater_than": "must be above {gt}, got {got}",
    "less_than": "must be below {lt}, got {got}",
    "string_too_short": "is empty; write some words",
    "string_too_long": "is too long ({n} characters; at most {max_length})",
    "too_short": "must have at least {min_length} entries, got {n}",
    "too_long": "has too many entries ({n}; at most {max_length})",
    "finite_number": "must be a finite number, got {got}",
}


def plain_words(errors: list[dict]) -> str:
    """The first field's validation errors (pydantic's dicts, several for a union such as an ID that
    is a number or text) in words that say what to send; pydantic's message for other kinds (the
    validators of `schemas` write their own)."""
    first = errors[0]
    got = _shown(first.get("input"), quoted=first.get("loc", ("body",))[0] == "body")
    kinds = [_KINDS.get(e.get("type", "")) for e in errors]
    if all(kinds):  # the value has none of the accepted types
        return f"must be {' or '.join(dict.fromkeys(kinds))}, got {got}"
    limit = next((e for e in errors if e.get("type") in _LIMITS), None)
    if limit is None:  # a union's own check (an ID's text with a control character), not "not an integer"
        own = next((e for e in errors if e.get("type") not in _KINDS), first)
        return own.get("msg", "invalid value")
    value = limit.get("input")
    try:
        n = len(value) if isinstance(value, (str, list, dict)) else "?"
        return _LIMITS[limit["type"]].format(got=got, n=n, **limit.get("ctx", {}))
    except (KeyError, IndexError):  # a context this version of pydantic names otherwise
        return limit.get("msg", "invalid value")


def _shown(value, quoted: bool) -> str:
    """A sent value as the reader wrote it: JSON for a body's values, bare for query and path text."""
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    if isinstance(value, str) and not quoted:
        return value[:60]
    return json.dumps(value)[:60] if isinstance(value, (str, bool, int, float, type(None))) else repr(value)[:60]


def _unreadable(cause: BaseException | None) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return "the body is not UTF-8 text; send JSON encoded as UTF-8"
    if isinstance(cause, RecursionError):
        return "the body nests too deeply to read; send a JSON object a few levels deep"
    return "the body could not be read; send a JSON object (see /docs)"
