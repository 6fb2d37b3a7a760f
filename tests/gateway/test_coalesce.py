"""Writes held and sent together (gateway/coalesce.py) change no byte: whole answers, flowing streams, closes after."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from triggerfish.gateway import GatewayServer


class Streaming:
    """`/stream` sends "first", waits for `more`, then "second"; anything else answers "ok" with a length."""

    def __init__(self) -> None:
        self.more = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
            await self.more.wait()
            await send({"type": "http.response.body", "body": b"second"})
            return
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[GatewayServer, Streaming]]:
    app = Streaming()
    server = GatewayServer(app, port=0)
    await server.start()
    try:
        yield server, app
    finally:
        app.more.set()
        await server.stop()


async def test_every_answer_of_a_kept_alive_connection_arrives_whole() -> None:
    async with serving() as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for _ in range(3):  # kept alive: every response of the connection, not only the first
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            async with asyncio.timeout(5):
                first_read = await reader.read(65536)
            assert first_read.startswith(b"HTTP/1.1 200 ")
            assert first_read.endswith(b"\r\n\r\nok")
        writer.close()


async def test_a_streamed_response_reaches_the_client_before_it_ends() -> None:
    async with serving() as (server, app):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        async with asyncio.timeout(5):
            head_and_first = await reader.readuntil(b"first\r\n")
        assert head_and_first.startswith(b"HTTP/1.1 200 ")
        assert not app.more.is_set()  # the app is still holding the rest back
        app.more.set()
        async with asyncio.timeout(5):
            rest = await reader.readuntil(b"0\r\n\r\n")
        assert b"second" in rest
        writer.close()


async def test_a_response_on_a_closing_connection_is_sent_whole_before_the_close() -> None:
    async with serving() as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(5):
            everything = await reader.read()  # until the server closes
        writer.close()
    assert everything.startswith(b"HTTP/1.1 200 ")
    assert everything.endswith(b"\r\n\r\nok")
