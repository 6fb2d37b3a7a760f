"""Connection limits on a real server over real sockets: head timeouts, a cap that evicts idle connections, 503s."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from triggerfish.errors import InvalidInputError
from triggerfish.gateway import GatewayServer
from triggerfish.gateway.connections import FD_RESERVE, ConnectionLimits, plan_descriptors
from triggerfish.gateway.log_limit import LogLimiter
from triggerfish.gateway.server import PARSER_VARIABLE


@pytest.fixture(autouse=True, params=["httptools", "h11"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every guarantee holds on both parsers the server can serve with."""
    monkeypatch.setenv(PARSER_VARIABLE, request.param)
    return str(request.param)


class Holding:
    """An ASGI app: `/hold` waits until released (a busy request), anything else answers 200 at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.holding = 0
        self._arrived = asyncio.Condition()

    async def until_holding(self, count: int) -> None:
        async with self._arrived, asyncio.timeout(10):
            await self._arrived.wait_for(lambda: self.holding >= count)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/hold":
            async with self._arrived:
                self.holding += 1
                self._arrived.notify_all()
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


@contextlib.asynccontextmanager
async def serving(**limits: Any) -> AsyncIterator[tuple[GatewayServer, Holding]]:
    app = Holding()
    server = GatewayServer(app, port=0, limits=ConnectionLimits(**limits))
    await server.start()
    try:
        yield server, app
    finally:
        app.release.set()
        await server.stop()


async def read_all(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything until the server closes the connection, failing if it does not within `within` seconds."""
    async with asyncio.timeout(within):
        return await reader.read()


async def test_a_head_sent_a_byte_at_a_time_is_cut_off_with_408() -> None:
    async with serving(header_timeout=0.5) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        began = time.monotonic()
        head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 1000
        closed = False
        for byte in head:  # the bytes keep coming; the deadline does not move
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            if reader.at_eof() or reader._buffer:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
        try:
            answer = await read_all(reader, 5)
        except ConnectionError:  # the server closed while a byte was on its way: the write's error surfaces here
            answer, closed = b"", True
        writer.close()
        elapsed = time.monotonic() - began
    assert answer.startswith(b"HTTP/1.1 408 ") or closed
    if answer:
        body = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert body["error"]["code"] == "RequestTimeout"
    assert elapsed < 5, "slow bytes must not extend the head's deadline"


async def test_a_connection_that_sends_nothing_is_closed_silently() -> None:
    async with serving(header_timeout=0.3) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        answer = await read_all(reader, 5)
        writer.close()
    assert answer == b""


async def test_the_second_head_on_a_kept_alive_connection_is_bounded_too() -> None:
    async with serving(header_timeout=0.5, keep_alive_timeout=30) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        first = await reader.readuntil(b"0\r\n\r\n")  # the chunked body's end
        assert first.startswith(b"HTTP/1.1 200 ")
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n")  # never finished
        answer = await read_all(reader, 5)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_whole_head_is_served_however_long_the_app_takes() -> None:
    async with serving(header_timeout=0.3) as (server, app), httpx.AsyncClient(base_url=server.url) as client:
        held = asyncio.ensure_future(client.get("/hold"))
        await app.until_holding(1)
        await asyncio.sleep(0.6)  # past the head timeout: the request is the app's now
        app.release.set()
        assert (await held).status_code == 200


async def test_idle_connections_over_the_cap_make_room_instead_of_blocking() -> None:
    async with serving(max_connections=8) as (server, _):
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(40)]
        try:
            async with httpx.AsyncClient(base_url=server.url) as client:
                answer = await client.get("/")
            assert answer.status_code == 200
            assert server.guard is not None
            assert len(server.guard.open) <= 8
            assert server.guard.evicted >= 32
            assert server.guard.refused == 0
        finally:
            for _, writer in idle:
                writer.close()


async def test_when_every_connection_is_busy_a_new_one_gets_503_with_retry_after() -> None:
    async with (
        serving(max_connections=2, retry_after=3) as (server, app),
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        held = [asyncio.ensure_future(client.get("/hold")) for _ in range(2)]
        await app.until_holding(2)
        async with httpx.AsyncClient(base_url=server.url) as other:
            refused = await other.get("/")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "3"
        assert refused.json()["error"]["code"] == "TooManyConnections"
        app.release.set()
        assert [(await h).status_code for h in held] == [200, 200]
        # Room again: the busy ones finished.
        async with httpx.AsyncClient(base_url=server.url) as later:
            assert (await later.get("/")).status_code == 200


async def test_a_flood_of_refusals_is_one_log_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="triggerfish.gateway")
    async with serving(max_connections=1) as (server, app):
        async with httpx.AsyncClient(base_url=server.url) as client:
            held = asyncio.ensure_future(client.get("/hold"))
            await app.until_holding(1)
            for _ in range(100):
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                assert (await read_all(reader, 5)).startswith(b"HTTP/1.1 503 ")
                writer.close()
            app.release.set()
            await held
        assert server.guard is not None
        assert server.guard.refused == 100
    refusals = [r for r in caplog.records if "busy with requests" in r.getMessage()]
    assert 1 <= len(refusals) <= 2, [r.getMessage() for r in refusals]
    # the count of the rest is said when the server stops (or the interval ends)
    assert any("more like it" in r.getMessage() for r in refusals)


def test_the_log_limiter_counts_what_it_holds_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limiter = LogLimiter(logging.getLogger("tests.limiter"), interval=10, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="tests.limiter")
    for _ in range(50):
        limiter.warning("a", "refused %d", 1)
    limiter.warning("b", "another kind")
    now[0] = 11.0
    limiter.warning("a", "refused %d", 2)
    assert [r.getMessage() for r in caplog.records] == [
        "refused 1",
        "another kind",
        "refused 1 (and 48 more like it in the last 10 s)",
        "refused 2",
    ]


# --- file descriptors ---------------------------------------------------------------------------

UNLIMITED = resource.RLIM_INFINITY


@pytest.mark.parametrize(
    ("soft", "hard", "expected_soft", "expected_cap", "warns"),
    [
        (100_000, UNLIMITED, 100_000, 1024, False),  # already enough: untouched
        (1024, 20_000, 50 + FD_RESERVE + 1024 + 64, 1024, False),  # raised to what the cap needs
        (1024, UNLIMITED, 50 + FD_RESERVE + 1024 + 64, 1024, False),
        (1024, 1024, 1024, 1024 - 50 - FD_RESERVE - 64, True),  # the hard limit lowers the cap, saying so
        (UNLIMITED, UNLIMITED, UNLIMITED, 1024, False),
    ],
)
def test_descriptors_are_planned_for_the_cap_beside_a_reserve(
    soft: int, hard: int, expected_soft: int, expected_cap: int, warns: bool
) -> None:
    plan = plan_descriptors(ConnectionLimits(max_connections=1024), open_now=50, soft=soft, hard=hard)
    assert (plan.soft_limit, plan.max_connections) == (expected_soft, expected_cap)
    assert (plan.warning is not None) == warns
    if warns:
        assert "--max-connections" in str(plan.warning)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_connections", 0),
        ("max_connections", 1.5),
        ("max_connections", True),
        ("header_timeout", 0),
        ("header_timeout", "10"),
        ("keep_alive_timeout", -1),
        ("retry_after", 2.5),
    ],
)
def test_limits_out_of_range_are_refused_by_name(setting: str, value: Any) -> None:
    with pytest.raises(InvalidInputError, match=setting):
        ConnectionLimits(**{setting: value})
