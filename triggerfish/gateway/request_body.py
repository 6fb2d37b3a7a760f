"""Reading a request's body from ASGI `receive`, bounded: the one way the gateway and the lean publish route read.

try:
    body = await read_body(receive, limit)
except BodyTooLarge: ...   # stopped reading past `limit` bytes
except ClientGone: ...     # the client disconnected before the body ended

    body = await body_within(scope, receive, limit, seconds)   # raises TimeoutError past `seconds`

A body that has not arrived in time is refused, so reading one is bounded by a
timer; but most bodies come with their head, and the server's protocol
(`gateway/httptools_guard.py`) marks a request whose whole message was parsed
before its app ran (`BODY_RECEIVED` in the scope). Its body is read without the
timer: `receive` then returns at once, and a timer set and cancelled per request
(a handle, a heap push and a cancel on the event loop) is work for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

#: The scope key the server sets (True) once a request's whole message has arrived: reading its body cannot wait.
BODY_RECEIVED = "triggerfish.body_received"

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class BodyTooLarge(Exception):
    """The body ran past the limit; reading stopped there."""


class ClientGone(Exception):
    """The client went away before the body ended: nobody is left to answer."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body of the request, at most `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            # One chunk (the common body) is returned as it came, without a copy.
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def body_within(scope: MutableMapping[str, Any], receive: Receive, limit: int, seconds: float) -> bytes:
    """`read_body`, raising TimeoutError when the body has not arrived within `seconds` (not timed when the server
    marked the whole request as received: see the module)."""
    if scope.get(BODY_RECEIVED) is True:
        return await read_body(receive, limit)
    async with asyncio.timeout(seconds):
        return await read_body(receive, limit)
