"""Reading requests and writing answers for the control API: bounded bodies and JSON errors.

Every control endpoint is wrapped by `endpoint` (operations.run does it),
which turns the platform's errors into JSON answers with one status per kind
of mistake, so a handler raises and never builds an error response itself:

| raised | status | code |
|---|---|---|
| `ApiError(status, code, message)` | as given | as given |
| InvalidJSONError | 400 | `InvalidJSON` (with `line` and `column` for a syntax error) |
| InvalidPatternError | 400 | `InvalidPattern` (with `path`) |
| other InvalidInputError, InvalidNameError | 400 | `InvalidInput` |
| FunctionNotFoundError | 404 | `FunctionNotFound` |
| KeyNotFoundError | 404 | `KeyNotFound` |
| ThrottledError | 429 | `TooManyRequestsException` (with `Retry-After`) |
| StoreFullError | 507 | `StoreFull`: nothing was stored |
| other StoreError | 503 | `StoreUnavailable` (with `Retry-After`): nothing was stored |
| anything else | 500 | `InternalError` (the traceback goes to the log, not to the client) |
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from triggerfish._json import dumps, loads
from triggerfish.errors import (
    FunctionNotFoundError,
    InvalidEventError,
    InvalidInputError,
    InvalidJSONError,
    InvalidNameError,
    InvalidPatternError,
    KeyNotFoundError,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
    ThrottledError,
)
from triggerfish.events import tracecontext
from triggerfish.server.errors import error_response
from triggerfish.server.platform import Platform

log = logging.getLogger("triggerfish.server")

#: The largest request body a control endpoint reads, except invoke (see control.py).
MAX_BODY = 2 * 1024 * 1024
#: Seconds a request body may take to arrive in full (408 after), unless the app's state says otherwise.
DEFAULT_BODY_TIMEOUT = 30.0
#: How many names an error message lists before it says how many more there are.
_NAMES_SHOWN = 20

Endpoint = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """An answer other than success: its HTTP status, a machine-readable code, a message, and details."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, **details: Any
    ) -> None:
        super().__init__(message)
        self.headers = headers
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def endpoint(handler: Endpoint) -> Endpoint:
    """Wrap a control endpoint so that every error it raises becomes a JSON answer (see the module docstring)."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return error_answer(exc, f"{request.method} {request.url.path}")

    return run


def error_answer(exc: Exception, request: str) -> Response:
    """The JSON answer to an error an endpoint raised (see the module docstring); `request` ("POST /-/events")
    names the request in the log when the error is not one of the platform's."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers, **exc.details)
    if isinstance(exc, InvalidJSONError):
        where: dict[str, Any] = {} if exc.line is None else {"line": exc.line, "column": exc.column}
        return error_response(400, "InvalidJSON", str(exc), **where)
    if isinstance(exc, InvalidPatternError):
        return error_response(400, "InvalidPattern", str(exc), path=exc.path)
    if isinstance(exc, InvalidEventError):
        return error_response(400, "InvalidEvent", str(exc), attribute=exc.attribute)
    if isinstance(exc, InvalidInputError | InvalidNameError):
        return error_response(400, "InvalidInput", str(exc))
    if isinstance(exc, FunctionNotFoundError):
        return error_response(404, "FunctionNotFound", str(exc))
    if isinstance(exc, KeyNotFoundError):
        return error_response(404, "KeyNotFound", str(exc))
    if isinstance(exc, ThrottledError):
        headers = {"Retry-After": "1"}
        return error_response(429, "TooManyRequestsException", str(exc), headers=headers, function=exc.function)
    if isinstance(exc, StoreError):
        return store_error_response(exc)
    # Whatever went wrong stays in the server's log; the client learns only that it did.
    log.error("control API: %s failed", request, exc_info=exc)
    return error_response(500, "InternalError", "the platform failed on this request; its log has the details")


def valid_traceparent(header: str | None) -> str | None:
    """A request's `traceparent` header when it is well formed; a malformed one is ignored, as W3C Trace Context
    says (what the request starts begins a new trace)."""
    return header if header is not None and tracecontext.is_valid(header) else None


def platform_of(request: Request) -> Platform:
    """The platform of the app a request is about.

    Under `triggerfish dev`, the one app's; under `triggerfish serve`, the app
    named by the URL (`/-/api/v1/apps/{app}/...`), or 404 `AppNotFound`.
    """
    host = getattr(request.app.state, "host", None)
    if host is None:
        platform: Platform = request.app.state.platform
        return platform
    app = request.path_params.get("app", "")
    found: Platform | None = host.apps.get(app)
    if found is None:
        raise ApiError(404, "AppNotFound", f"no app named {app!r} is deployed here", app=app)
    return found


def json_response(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(value), status_code=status, headers=dict(headers or {}), media_type="application/json")


def listed(names: Iterable[str]) -> str:
    """Names for an error message: `a, b, c`, cut short with a count when there are many, or `none`."""
    ordered = sorted(names)
    if not ordered:
        return "none"
    shown = ", ".join(ordered[:_NAMES_SHOWN])
    more = len(ordered) - _NAMES_SHOWN
    return f"{shown} (and {more} more)" if more > 0 else shown


# --- bodies ----------------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 past `limit` bytes: by Content-Length before reading, or as it streams.

    A body that has not arrived in full within the app's `state.body_timeout` seconds (30 by default) is 408.
    """
    timeout = getattr(request.app.state, "body_timeout", DEFAULT_BODY_TIMEOUT)
    try:
        async with asyncio.timeout(timeout):
            return await _read_body(request, limit)
    except TimeoutError:
        raise body_timed_out(timeout) from None


def body_timed_out(timeout: float) -> ApiError:
    """408: the body did not arrive in full within `timeout` seconds (the connection is closed after)."""
    return ApiError(
        408, "RequestTimeout", f"the request body did not arrive within {timeout:g} s", headers={"connection": "close"}
    )


async def _read_body(request: Request, limit: int) -> bytes:
    cached: bytes | None = getattr(request, "_body", None)
    if cached is not None:
        if len(cached) > limit:
            raise body_too_large(_named(request), f"{len(cached)} bytes", limit)
        return cached
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise body_too_large(_named(request), f"{int(declared)} bytes", limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise body_too_large(_named(request), "larger than that", limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "ClientDisconnected", "the client closed the connection before the body arrived") from None
    body = b"".join(chunks)
    # Starlette's own cache: a later `request.body()` or `read_body` gets it again instead of an empty stream.
    request._body = body
    return body


def _named(request: Request) -> str:
    return f"{request.method} {request.url.path}"


def body_too_large(request: str, size: str, limit: int) -> ApiError:
    """413: `request` ("POST /-/api/v1/...") has a body of `size` ("123 bytes"), over its `limit`."""
    return ApiError(
        413, "RequestTooLarge", f"the request body is {size}; {request} takes at most {limit} bytes", limit=limit
    )


async def json_body(request: Request, *, limit: int = MAX_BODY, required: bool = True) -> Any:
    """The body parsed as strict JSON; an empty body is an error when `required`, else None."""
    body = await read_body(request, limit)
    if not body.strip():
        if required:
            raise ApiError(400, "MissingBody", f"{request.method} {request.url.path} needs a JSON body")
        return None
    return loads(body, where="body")


def fields(document: Any, known: Sequence[str], *, where: str = "body") -> Mapping[str, Any]:
    """`document` as an object with no fields but `known` (None counts as `{}`)."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ApiError(400, "InvalidInput", f"{where} must be a JSON object, not {_json_type(document)}")
    unknown = sorted(set(document) - set(known))
    if unknown:
        raise ApiError(
            400, "InvalidInput", f"{where}: unknown field {unknown[0]!r}; the fields are: {', '.join(known)}"
        )
    return document


def store_error_response(exc: StoreError) -> Response:
    """The answer to a store that failed: 507 when it is full, else 503 with `Retry-After`; nothing was stored."""
    if isinstance(exc, StoreFullError):
        log.error("the store is full: %s", exc)
        return error_response(507, "StoreFull", "the store is full: nothing was stored; free disk space, then retry")
    retry_after = exc.retry_after if isinstance(exc, StoreUnavailableError) else 1.0
    log.error("the store failed: %s", exc)
    return error_response(
        503,
        "StoreUnavailable",
        "the store cannot write just now: nothing was stored; try again shortly",
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
