"""`POST /-/events` under `triggerfish dev`, as plain ASGI: the hot platform endpoint without a framework.

    route = PublishRoute(platform, full=operation_endpoint)
    await route(scope, receive, send)

At 1,000 events/s the publish request was half of the platform's event loop
per event, and most of that was the framework around the codec: a Starlette
`Request` with its header and query objects, the operation table's checks,
a `JSONResponse` through the standard library's encoder. A request whose
head is the common one takes the lean way here: CloudEvents in structured
or batch mode (`application/cloudevents+json`,
`application/cloudevents-batch+json`), a Content-Length within the limit,
no `ce-` header, no query or `bus=` a plain name. Such a head passes every
check the operation's way makes before the codec (the content type is
declared, the only query parameter is `bus`, the body is bounded), so the
answers are the same: the same codec reads the events (`from_http`), the
same function maps what it refuses (`publish.refusal`), the same function
maps what the store raises (`control_io.error_answer`), and the same
document is answered. Every other request (PutEvents, binary mode, a
chunked body, an odd query, an oversize one) goes to `full`, the
operation's own endpoint, which says precisely what is wrong with it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from triggerfish.errors import InvalidInputError, InvalidNameError
from triggerfish.events.http_binding import BATCH_CONTENT_TYPE, MAX_BATCH_BYTES, STRUCTURED_CONTENT_TYPE, from_http
from triggerfish.gateway.request_body import BodyTooLarge, ClientGone, body_within
from triggerfish.server.control_io import error_answer
from triggerfish.server.errors import error_response
from triggerfish.server.platform import Platform
from triggerfish.server.publish import PATH, accepted, refusal, too_large
from triggerfish.store.base import check_name

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_LEAN_TYPES = frozenset({STRUCTURED_CONTENT_TYPE, BATCH_CONTENT_TYPE})
# `?bus=NAME` with nothing to unquote; anything else is for the operation's parameter checks.
_PLAIN_BUS_QUERY = re.compile(rb"bus=([A-Za-z0-9._\-]+)\Z")
_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass(frozen=True, slots=True)
class LeanHead:
    """A publish request's head that the lean way serves: its Content-Type, bus and body length."""

    content_type: str
    bus: str
    length: int


def lean_head(scope: Scope, limit: int = MAX_BATCH_BYTES) -> LeanHead | None:
    """The head of a request the lean way can serve, or None for the operation's own endpoint (pure)."""
    query: bytes = scope.get("query_string", b"")
    if not query:
        bus = "default"
    else:
        plain = _PLAIN_BUS_QUERY.match(query)
        if plain is None:
            return None
        bus = plain.group(1).decode("ascii")
    content_type: bytes | None = None
    length: int | None = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            if content_type is not None:
                return None
            content_type = value
        elif name == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif name == b"transfer-encoding" or name.startswith(b"ce-"):
            return None
    if content_type is None or length is None or length > limit:
        return None
    text = content_type.decode("latin-1")
    if text.split(";", 1)[0].strip().lower() not in _LEAN_TYPES:
        return None
    return LeanHead(text, bus, length)


class PublishRoute:
    """Serves `POST /-/events` for `platform`: the common head the lean way, any other through `full`."""

    def __init__(self, platform: Platform, full: ASGIApp) -> None:
        self.platform = platform
        self.full = full

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = lean_head(scope)
        if head is None:
            await self.full(scope, receive, send)
            return
        platform = self.platform
        try:
            body = await body_within(scope, receive, MAX_BATCH_BYTES, platform.body_timeout)
        except TimeoutError:
            message = f"the request body did not arrive within {platform.body_timeout:g} s"
            await error_response(408, "RequestTimeout", message, headers={"connection": "close"})(scope, receive, send)
            return
        except BodyTooLarge:  # the server holds a body to its Content-Length; this is a second look
            await too_large(None, MAX_BATCH_BYTES)(scope, receive, send)
            return
        except ClientGone:
            return
        try:
            check_name("bus", head.bus)
            events = from_http(((("content-type", head.content_type)),), body)
        except (InvalidInputError, InvalidNameError) as exc:
            await refusal(exc)(scope, receive, send)
            return
        try:
            ids = await platform.publish(head.bus, events)
        except Exception as exc:  # what the operation's endpoint answers for it (publish.py raises it on)
            await error_answer(exc, f"POST {PATH}")(scope, receive, send)
            return
        answer = orjson.dumps(accepted(ids))
        headers = [(b"content-length", str(len(answer)).encode("ascii")), *_JSON_HEADERS]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
