"""`POST /-/api/v1/functions/{name}/invoke-batch` under `triggerfish dev`, as plain ASGI, as publish_route.py
serves `POST /-/events`.

    route = InvokeBatchRoute(platform, full=platform_endpoints_app)
    await route(scope, receive, send)

At a few thousand durable async invocations a second in batches of 50, the
framework around a batch (Starlette's middleware, router and mount, its
`Request` with header and query objects, the operation table's checks, a
`Response`) was a third of the work the event loop did for the request: about
as much as building the batch's fifty messages. A request whose head is the
common one takes the lean way here: `Content-Type: application/json`, a
Content-Length within the operation's limit, no query, at most one
`traceparent`, and a function name that is one plain path segment. Such a
head passes every check the operation's way makes before the body (the
content type is the declared one, the operation takes no query, the body is
bounded, the path parameter is non-empty text), so the answers are the same:
the same function reads and checks the body against the same schema
(`operations.parse_body`), the same function queues the batch
(`control_batch.queue_batch`: a 202 only once every invocation is durably
queued), and the same function maps what either raises
(`control_io.error_answer`). Every other request (another content type, a
chunked or oversize body, a query, an escaped or odd name) goes to `full`,
the platform's endpoints, which say precisely what is wrong with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from triggerfish._json import dumps
from triggerfish.gateway.request_body import BodyTooLarge, ClientGone, read_body
from triggerfish.server.control_batch import OPERATIONS, queue_batch
from triggerfish.server.control_io import body_timed_out, body_too_large, error_answer
from triggerfish.server.operations import JSON, Body, parse_body
from triggerfish.server.platform import Platform

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where `triggerfish dev` mounts the control API (server/http.py).
API_ROOT = "/-/api/v1"
(_OPERATION,) = OPERATIONS
if _OPERATION.body is None or _OPERATION.body.media_types != (JSON,):  # what lean_head's checks stand for
    raise ImportError("invoke_batch_route serves a JSON body only; the operation's declaration changed")
_BODY: Body = _OPERATION.body
# The operation's path around its one parameter: "/-/api/v1/functions/" and "/invoke-batch".
PREFIX, _, _rest = (API_ROOT + _OPERATION.path).partition("{name}")
SUFFIX = _rest
_JSON_HEADERS = [(b"content-type", JSON.encode("ascii"))]


@dataclass(frozen=True, slots=True)
class LeanHead:
    """An invoke-batch request's head that the lean way serves: the function, the traceparent, the body's length."""

    function: str
    traceparent: str | None
    length: int


def function_of(path: str) -> str | None:
    """The function an invoke-batch path names when it is one plain segment, else None (pure)."""
    if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
        return None
    name = path[len(PREFIX) : len(path) - len(SUFFIX)]
    return name if name and "/" not in name else None


def lean_head(scope: Scope) -> LeanHead | None:
    """The head of a request the lean way can serve, or None for the platform's endpoints (pure)."""
    function = function_of(scope.get("path", ""))
    if function is None or scope.get("query_string", b""):
        return None
    content_type: bytes | None = None
    length: int | None = None
    traceparent: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            if content_type is not None:
                return None
            content_type = value
        elif name == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif name == b"traceparent":
            if traceparent is not None:
                return None
            traceparent = value
        elif name == b"transfer-encoding":
            return None
    if content_type is None or length is None or length > _BODY.limit:
        return None
    if content_type.decode("latin-1").split(";", 1)[0].strip().lower() != JSON:
        return None
    return LeanHead(function, None if traceparent is None else traceparent.decode("latin-1"), length)


class InvokeBatchRoute:
    """Serves invoke-batch for `platform`: the common head the lean way, any other through `full`."""

    def __init__(self, platform: Platform, full: ASGIApp) -> None:
        self.platform = platform
        self.full = full

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = lean_head(scope)
        if head is None:
            await self.full(scope, receive, send)
            return
        request = f"POST {scope['path']}"
        try:
            body = await self._body(receive, request)
            if body is None:
                return
            request_ids = await queue_batch(
                self.platform, head.function, parse_body(_BODY, body, request), head.traceparent
            )
        except Exception as exc:  # what the operation's way answers for it (control_io's endpoint wrapper)
            await error_answer(exc, request)(scope, receive, send)
            return
        answer = dumps({"request_ids": request_ids})
        headers = [(b"content-length", str(len(answer)).encode("ascii")), *_JSON_HEADERS]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def _body(self, receive: Receive, request: str) -> bytes | None:
        """The request's body (None: the client went away), or the ApiError control_io.read_body raises."""
        timeout = self.platform.body_timeout
        try:
            async with asyncio.timeout(timeout):
                return await read_body(receive, _BODY.limit)
        except TimeoutError:
            raise body_timed_out(timeout) from None
        except BodyTooLarge:  # the server holds a body to its Content-Length; this is a second look
            raise body_too_large(request, "larger than that", _BODY.limit) from None
        except ClientGone:
            return None
