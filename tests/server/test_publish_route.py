"""`POST /-/events` the lean way (server/publish_route.py): the same answers as the operation's way, for less."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.server.conftest import Served
from tests.server.test_publish import STRUCTURED, event, stored
from triggerfish.events.http_binding import MAX_BATCH_BYTES
from triggerfish.gateway.request_body import BODY_RECEIVED
from triggerfish.names import bus_stream
from triggerfish.server.http import PlatformASGI
from triggerfish.server.publish_route import LeanHead, PublishRoute, lean_head

BATCH = {"content-type": "application/cloudevents-batch+json"}


def scope(query: bytes = b"", **headers: str) -> dict[str, Any]:
    pairs = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"type": "http", "method": "POST", "path": "/-/events", "query_string": query, "headers": pairs}


@pytest.mark.parametrize(
    ("request_scope", "expected"),
    [
        (scope(content_type="application/cloudevents+json", content_length="10"), ("default", 10)),
        (scope(content_type="Application/CloudEvents+JSON; charset=utf-8", content_length="10"), ("default", 10)),
        (
            scope(b"bus=orders.eu-1", content_type="application/cloudevents-batch+json", content_length="0"),
            ("orders.eu-1", 0),
        ),
        (scope(b"bus=orders", content_type="application/cloudevents+json", content_length="7"), ("orders", 7)),
        # Everything else is the operation's: PutEvents, binary mode, chunked, oversize, odd or unknown queries.
        (scope(content_type="application/json", content_length="10"), None),
        (scope(content_type="application/cloudevents+json", ce_id="x", content_length="10"), None),
        (scope(content_type="application/cloudevents+json", transfer_encoding="chunked"), None),
        (scope(content_type="application/cloudevents+json", content_length=str(MAX_BATCH_BYTES + 1)), None),
        (scope(b"bus=no%20spaces", content_type="application/cloudevents+json", content_length="10"), None),
        (scope(b"bus=a&bus=b", content_type="application/cloudevents+json", content_length="10"), None),
        (scope(b"other=1", content_type="application/cloudevents+json", content_length="10"), None),
        (scope(b"bus=", content_type="application/cloudevents+json", content_length="10"), None),
        (scope(content_length="10"), None),
    ],
)
def test_only_a_common_cloudevents_head_takes_the_lean_way(
    request_scope: dict[str, Any], expected: tuple[str, int] | None
) -> None:
    head = lean_head(request_scope)
    assert (None if head is None else (head.bus, head.length)) == expected
    if isinstance(head, LeanHead):
        assert head.content_type == dict(request_scope["headers"])[b"content-type"].decode()


@pytest.fixture
async def both_ways(recorder: Served) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients of the served platform's publish route, and of the operation's way it falls back to."""
    route = PlatformASGI(recorder.platform)._publish
    assert isinstance(route, PublishRoute)
    lean = httpx.AsyncClient(transport=httpx.ASGITransport(app=route), base_url="http://127.0.0.1")
    full = httpx.AsyncClient(transport=httpx.ASGITransport(app=route.full), base_url="http://127.0.0.1")
    async with lean, full:
        yield lean, full


@pytest.mark.parametrize(
    ("query", "headers", "body"),
    [
        ("", STRUCTURED, orjson.dumps(event("same-1"))),
        ("?bus=other", STRUCTURED, orjson.dumps(event("same-2", subject="s", time="2026-12-07T06:00:00Z"))),
        ("", BATCH, orjson.dumps([event("same-3"), event("same-4", data=None)])),
        ("", STRUCTURED, b'{"specversion": "1.0", "id": }'),
        ("", STRUCTURED, orjson.dumps(event(id=""))),
        ("", STRUCTURED, orjson.dumps(event(specversion="0.3"))),
        ("", STRUCTURED, orjson.dumps([event()])),
        ("", {"content-type": "application/cloudevents+json; charset=latin-1"}, orjson.dumps(event())),
        ("", BATCH, orjson.dumps([event("ok-1"), event("bad", type=None)])),
        ("", BATCH, orjson.dumps(event())),
        ("", BATCH, b"[]"),
        ("", STRUCTURED, orjson.dumps(event(data={"blob": "x" * (300 * 1024)}))),
        ("?bus=" + "b" * 300, STRUCTURED, orjson.dumps(event())),
        ("?bus=-leading", STRUCTURED, orjson.dumps(event())),
    ],
)
async def test_the_lean_way_answers_and_stores_as_the_operation_does(
    recorder: Served,
    both_ways: tuple[httpx.AsyncClient, httpx.AsyncClient],
    query: str,
    headers: dict[str, str],
    body: bytes,
) -> None:
    lean, full = both_ways
    bus = query.removeprefix("?bus=") or "default"
    answers = []
    for client in (lean, full):
        answer = await client.post(f"/-/events{query}", content=body, headers=headers)
        answers.append((answer.status_code, answer.headers.get("content-type"), answer.json()))
    assert answers[0] == answers[1]
    if answers[0][0] == 202:
        records = await recorder.platform.store.log.read(bus_stream(bus), after=0, limit=100)
        # Each way stored the same bytes for the same events.
        half = len(records) // 2
        assert [r.data for r in records[:half]] == [r.data for r in records[half:]]
        assert half == len(answers[0][2]["ids"])
    else:
        assert answers[0][2]["error"]["message"]


async def test_a_structured_publish_builds_no_framework_request(
    recorder: Served, framework_requests: list[str]
) -> None:
    built = framework_requests
    async with httpx.AsyncClient(base_url=recorder.url, timeout=10) as http:
        answer = await http.post("/-/events", content=orjson.dumps(event("lean-1")), headers=STRUCTURED)
        assert (answer.status_code, answer.json()) == (202, {"ids": ["lean-1"]})
        answer = await http.post("/-/events", content=orjson.dumps([event("lean-2")]), headers=BATCH)
        assert (answer.status_code, answer.json()) == (202, {"ids": ["lean-2"]})
        assert built == []
        # Binary mode is the operation's, and still published.
        headers = {"ce-specversion": "1.0", "ce-id": "full-1", "ce-source": "tests", "ce-type": "Tested"}
        answer = await http.post("/-/events", json={"n": 1}, headers=headers)
        assert (answer.status_code, answer.json()) == (202, {"ids": ["full-1"]})
        assert built == ["/-/events"]
    assert await stored(recorder) == ["lean-1", "lean-2", "full-1"]


async def raw_publish(served: Served, *parts: bytes, pause: float = 0.0) -> bytes:
    """`parts` of one request written on a fresh connection, `pause` s apart; the answer, whole or up to 5 s."""
    host, port = served.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        for index, part in enumerate(parts):
            if index:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read(65536)
    finally:
        writer.close()


async def test_a_body_sent_apart_from_its_head_is_read_and_one_that_stops_is_408(recorder: Served) -> None:
    # The server marks a request whose whole message arrived before its app ran (BODY_RECEIVED), and the lean
    # way reads that body without a timer; a body still to come is read under the body timeout (0.5 s here).
    body = orjson.dumps(event("apart-1"))
    head = b"POST /-/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/cloudevents+json\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n".encode()
    answer = await raw_publish(recorder, head, body, pause=0.2)
    assert answer.startswith(b"HTTP/1.1 202 ")
    answer = await raw_publish(recorder, head + body[:10])
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"did not arrive within 0.5 s" in answer
    assert await stored(recorder) == ["apart-1"]


async def test_the_lean_way_times_a_body_the_server_did_not_mark_as_received(recorder: Served) -> None:
    # A scope without the mark (another server, or a body still arriving): the body timeout holds.
    route = PlatformASGI(recorder.platform)._publish
    sent: list[Any] = []

    async def never() -> dict[str, Any]:
        await asyncio.sleep(10)
        raise AssertionError("the route waited past its body timeout")

    async def send(message: Any) -> None:
        sent.append(message)

    await route(scope(content_type="application/cloudevents+json", content_length="20"), never, send)
    assert sent[0]["status"] == 408
    marked = {**scope(content_type="application/cloudevents+json", content_length="20"), BODY_RECEIVED: True}

    async def whole() -> dict[str, Any]:
        return {"type": "http.request", "body": orjson.dumps(event("marked-1")), "more_body": False}

    await route(marked, whole, send)
    assert sent[2]["status"] == 202
    assert await stored(recorder) == ["marked-1"]
