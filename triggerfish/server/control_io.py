"""Reading requests and writing answers for the control API: bounded JSON bodies, checked fields, JSON errors.

Every control endpoint is wrapped by `endpoint`, which turns the platform's
errors into JSON answers with one status per kind of mistake, so a handler
raises and never builds an error response itself:

| raised | status | code |
|---|---|---|
| `ApiError(status, code, message)` | as given | as given |
| InvalidJSONError | 400 | `InvalidJSON` (with `line` and `column` for a syntax error) |
| InvalidPatternError | 400 | `InvalidPattern` (with `path`) |
| other InvalidInputError, InvalidNameError | 400 | `InvalidInput` |
| FunctionNotFoundError | 404 | `FunctionNotFound` |
| KeyNotFoundError | 404 | `KeyNotFound` |
| ThrottledError | 429 | `TooManyRequestsException` (with `Retry-After`) |
| anything else | 500 | `InternalError` (the traceback goes to the log, not to the client) |
"""

from __future__ import annotations

import datetime
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
    ThrottledError,
)
from triggerfish.server.errors import error_response
from triggerfish.server.platform import Platform

log = logging.getLogger("triggerfish.server")

#: The largest request body a control endpoint reads, except invoke (see control.py).
MAX_BODY = 2 * 1024 * 1024
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
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message, headers=exc.headers, **exc.details)
        except InvalidJSONError as exc:
            where: dict[str, Any] = {} if exc.line is None else {"line": exc.line, "column": exc.column}
            return error_response(400, "InvalidJSON", str(exc), **where)
        except InvalidPatternError as exc:
            return error_response(400, "InvalidPattern", str(exc), path=exc.path)
        except InvalidEventError as exc:
            return error_response(400, "InvalidEvent", str(exc), attribute=exc.attribute)
        except (InvalidInputError, InvalidNameError) as exc:
            return error_response(400, "InvalidInput", str(exc))
        except FunctionNotFoundError as exc:
            return error_response(404, "FunctionNotFound", str(exc))
        except KeyNotFoundError as exc:
            return error_response(404, "KeyNotFound", str(exc))
        except ThrottledError as exc:
            headers = {"Retry-After": "1"}
            return error_response(429, "TooManyRequestsException", str(exc), headers=headers, function=exc.function)
        except Exception:
            # Whatever went wrong stays in the server's log; the client learns only that it did.
            log.exception("control API: %s %s failed", request.method, request.url.path)
            return error_response(500, "InternalError", "the platform failed on this request; its log has the details")

    return run


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
    """The whole body, refused with 413 past `limit` bytes: by Content-Length before reading, or as it streams."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(request, f"{int(declared)} bytes", limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(request, "larger than that", limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "ClientDisconnected", "the client closed the connection before the body arrived") from None
    return b"".join(chunks)


def _too_large(request: Request, size: str, limit: int) -> ApiError:
    return ApiError(
        413,
        "RequestTooLarge",
        f"the request body is {size}; {request.method} {request.url.path} takes at most {limit} bytes",
        limit=limit,
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


def number(
    document: Mapping[str, Any],
    name: str,
    *,
    low: float,
    high: float,
    default: float | None = None,
    whole: bool = False,
    where: str = "body",
) -> Any:
    """A number field within [low, high] (a whole one with `whole`), or `default` when absent or null."""
    value = document.get(name)
    if value is None:
        return default
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if ok and whole:
        ok = isinstance(value, int) or float(value).is_integer()
        value = int(value) if ok else value
    if not ok or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise ApiError(400, "InvalidInput", f"{where}: {name} must be {kind} from {low:g} to {high:g}, not {value!r}")
    return value


def text(document: Mapping[str, Any], name: str, *, where: str = "body") -> str | None:
    """A string field, or None when absent or null."""
    value = document.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ApiError(400, "InvalidInput", f"{where}: {name} must be a string, not {_json_type(value)}")


def string_map(document: Mapping[str, Any], name: str, *, where: str = "body") -> dict[str, str]:
    """An object of strings (message attributes), or `{}` when absent."""
    value = document.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ApiError(400, "InvalidInput", f"{where}: {name} must be an object of string values")
    return value


def moment(value: Any, what: str) -> float:
    """A time as epoch seconds: a number, or an ISO 8601 text with a time zone (`2024-05-01T12:00:00Z`)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise ApiError(
                400,
                "InvalidInput",
                f"{what} must be epoch seconds or an ISO 8601 time with a zone such as 2024-05-01T12:00:00Z,"
                f" not {value!r}",
            )
        return parsed.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, "InvalidInput", f"{what} must be epoch seconds or an ISO 8601 time, not {value!r}")
    return float(value)


# --- query strings ---------------------------------------------------------------------------


def query(request: Request, known: Sequence[str]) -> dict[str, str]:
    """The query parameters, each given at most once, none but `known`."""
    found: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in known:
            allowed = ", ".join(known) or "none"
            raise ApiError(400, "InvalidInput", f"unknown query parameter {name!r}; the parameters are: {allowed}")
        if name in found:
            raise ApiError(400, "InvalidInput", f"query parameter {name!r} is given twice; give it once")
        found[name] = value
    return found


def query_int(params: Mapping[str, str], name: str, *, low: int, high: int, default: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise ApiError(400, "InvalidInput", f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return int(value)


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
