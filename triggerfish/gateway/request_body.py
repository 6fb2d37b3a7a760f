"""Reading a request's body from ASGI `receive`, bounded: the one way the gateway and the lean publish route read.

try:
    body = await read_body(receive, limit)
except BodyTooLarge: ...   # stopped reading past `limit` bytes
except ClientGone: ...     # the client disconnected before the body ended
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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
