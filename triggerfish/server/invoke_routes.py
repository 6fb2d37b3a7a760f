"""The control API's two ways of queueing async invocations under `triggerfish dev`, as plain ASGI, as
publish_route.py serves `POST /-/events`:

- `POST /-/api/v1/functions/{name}/invoke-batch` (`InvokeBatchRoute`): a producer's batch of events;
- `POST /-/api/v1/functions/{name}/invoke` with `X-Amz-Invocation-Type: Event` (`InvokeEventRoute`): one
  event, Lambda's asynchronous Invoke.

    route = InvokeBatchRoute(platform, full=platform_endpoints_app)
    await route(scope, receive, send)

At a few thousand durable async invocations a second, the framework around
such a request (Starlette's middleware, router and mount, its `Request` with
header and query objects, the operation table's checks, a `Response`) was a
third of the work the event loop did for a batch of 50, and most of it for
one event. A request whose head is the common one takes the lean way here:
`Content-Type: application/json`, a Content-Length within the operation's
limit, no query, at most one `traceparent`, a function name that is one plain
path segment, and for Invoke `X-Amz-Invocation-Type: Event` once and no
`X-Amz-Log-Type`. Such a head passes every check the operation's way makes
before its handler (the content type is the declared one, no query is given,
the headers it declares are valid, the body is bounded, the path parameter is
non-empty text), so the answers are the same: the same functions check the
function, read and check the body and queue (`control.function_spec`,
`control.event_of`, `operations.parse_body`, `control_batch.queue_batch`: a
202 only once every invocation is durably queued), and the same function maps
what they raise (`control_io.error_answer`). Every other request (another
content type or invocation type, a chunked or oversize body, a query, an
escaped or odd name) goes to `full`, the platform's endpoints, which say
precisely what is wrong with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from triggerfish._json import dumps
from triggerfish.gateway.request_body import BodyTooLarge, ClientGone, read_body
from triggerfish.runtime.invoke import new_request_id
from triggerfish.server.control import MAX_ASYNC_PAYLOAD, REQUEST_ID_HEADER, event_of, function_spec
from triggerfish.server.control_batch import OPERATIONS, queue_batch
from triggerfish.server.control_io import body_timed_out, body_too_large, error_answer, valid_traceparent
from triggerfish.server.operations import JSON, Body, parse_body
from triggerfish.server.platform import Platform

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where `triggerfish dev` mounts the control API (server/http.py).
API_ROOT = "/-/api/v1"
(_BATCH,) = OPERATIONS
if _BATCH.body is None or _BATCH.body.media_types != (JSON,):  # what json_head's checks stand for
    raise ImportError("invoke_routes serves a JSON body only; the invoke-batch operation's declaration changed")
_BATCH_BODY: Body = _BATCH.body
# The operations' paths around their one parameter: "/-/api/v1/functions/", then "/invoke-batch" or "/invoke".
PREFIX, _, BATCH_SUFFIX = (API_ROOT + _BATCH.path).partition("{name}")
EVENT_SUFFIX = "/invoke"
_JSON_HEADERS = [(b"content-type", JSON.encode("ascii"))]
_REQUEST_ID_HEADER = REQUEST_ID_HEADER.encode("ascii")


@dataclass(frozen=True, slots=True)
class LeanHead:
    """A request's head that a lean way serves: the function, the traceparent, the body's length."""

    function: str
    traceparent: str | None
    length: int


def function_of(path: str, suffix: str = BATCH_SUFFIX) -> str | None:
    """The function a path of PREFIX, a name and `suffix` names when it is one plain segment, else None (pure)."""
    if not (path.startswith(PREFIX) and path.endswith(suffix)):
        return None
    name = path[len(PREFIX) : len(path) - len(suffix)]
    return name if name and "/" not in name else None


def json_head(
    scope: Scope, suffix: str, limit: int, extra: tuple[bytes, ...] = ()
) -> tuple[LeanHead, dict[bytes, bytes]] | None:
    """The head of a request to PREFIX, a function and `suffix` a lean way can serve (no query; one JSON
    Content-Type; one Content-Length within `limit`; not chunked; at most one `traceparent` and one of each of
    the `extra` headers, whose values are returned), or None for the platform's endpoints (pure)."""
    function = function_of(scope.get("path", ""), suffix)
    if function is None or scope.get("query_string", b""):
        return None
    content_type: bytes | None = None
    length: int | None = None
    traceparent: bytes | None = None
    found: dict[bytes, bytes] = {}
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
        elif name in extra:
            if name in found:
                return None
            found[name] = value
    if content_type is None or length is None or length > limit:
        return None
    if content_type.decode("latin-1").split(";", 1)[0].strip().lower() != JSON:
        return None
    return LeanHead(function, None if traceparent is None else traceparent.decode("latin-1"), length), found


def lean_head(scope: Scope) -> LeanHead | None:
    """The head of an invoke-batch request the lean way can serve, or None (pure)."""
    head = json_head(scope, BATCH_SUFFIX, _BATCH_BODY.limit)
    return None if head is None else head[0]


def event_head(scope: Scope) -> LeanHead | None:
    """The head of an Invoke request of type Event the lean way can serve, or None (pure)."""
    head = json_head(scope, EVENT_SUFFIX, MAX_ASYNC_PAYLOAD, (b"x-amz-invocation-type", b"x-amz-log-type"))
    if head is None:
        return None
    lean, found = head
    # `?type=` is a query (not lean); a log tail is the operation's; any other type is not queued.
    if found.get(b"x-amz-invocation-type", b"").lower() != b"event" or b"x-amz-log-type" in found:
        return None
    return lean


class _LeanRoute:
    """Serves one operation for `platform`: the common head the lean way (`_serve`), any other through `full`."""

    def __init__(self, platform: Platform, full: ASGIApp) -> None:
        self.platform = platform
        self.full = full

    def _head(self, scope: Scope) -> LeanHead | None:
        raise NotImplementedError

    async def _serve(self, head: LeanHead, receive: Receive, request: str) -> tuple[Any, list[tuple[bytes, bytes]]]:
        """The 202's document and its extra headers; raises what the operation's handler would."""
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = self._head(scope)
        if head is None:
            await self.full(scope, receive, send)
            return
        request = f"POST {scope['path']}"
        try:
            document, headers = await self._serve(head, receive, request)
        except ClientGone:
            return
        except Exception as exc:  # what the operation's way answers for it (control_io's endpoint wrapper)
            await error_answer(exc, request)(scope, receive, send)
            return
        answer = dumps(document)
        headers += [(b"content-length", str(len(answer)).encode("ascii")), *_JSON_HEADERS]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def _body(self, receive: Receive, request: str, limit: int) -> bytes:
        """The request's body, or the ApiError control_io.read_body raises (ClientGone: nobody is left to answer)."""
        timeout = self.platform.body_timeout
        try:
            async with asyncio.timeout(timeout):
                return await read_body(receive, limit)
        except TimeoutError:
            raise body_timed_out(timeout) from None
        except BodyTooLarge:  # the server holds a body to its Content-Length; this is a second look
            raise body_too_large(request, "larger than that", limit) from None


class InvokeBatchRoute(_LeanRoute):
    """`POST .../functions/{name}/invoke-batch`: every event queued in one durable write, their request ids."""

    def _head(self, scope: Scope) -> LeanHead | None:
        return lean_head(scope)

    async def _serve(self, head: LeanHead, receive: Receive, request: str) -> tuple[Any, list[tuple[bytes, bytes]]]:
        body = parse_body(_BATCH_BODY, await self._body(receive, request, _BATCH_BODY.limit), request)
        return {"request_ids": await queue_batch(self.platform, head.function, body, head.traceparent)}, []


class InvokeEventRoute(_LeanRoute):
    """`POST .../functions/{name}/invoke` of type Event: the event durably queued, its request id."""

    def _head(self, scope: Scope) -> LeanHead | None:
        return event_head(scope)

    async def _serve(self, head: LeanHead, receive: Receive, request: str) -> tuple[Any, list[tuple[bytes, bytes]]]:
        platform = self.platform
        function_spec(platform.current, head.function)  # 404 before the body is read, as the handler does
        event = event_of(await self._body(receive, request, MAX_ASYNC_PAYLOAD))
        request_id = new_request_id()
        await platform.invoke_async(
            head.function, event, request_id=request_id, traceparent=valid_traceparent(head.traceparent)
        )
        return {"request_id": request_id}, [(_REQUEST_ID_HEADER, request_id.encode("ascii"))]
