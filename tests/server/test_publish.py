"""`POST /-/events` on a served platform: every way to publish, every way to get it wrong."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.server.conftest import Served
from triggerfish.names import bus_stream

STRUCTURED = {"content-type": "application/cloudevents+json"}


def event(event_id: str = "e-1", **changes: Any) -> dict[str, Any]:
    document = {"specversion": "1.0", "id": event_id, "source": "tests", "type": "Tested", "data": {"n": 1}}
    document.update(changes)
    return {k: v for k, v in document.items() if v is not None}


async def delivered(served: Served, queue: str, count: int) -> list[str]:
    """The bodies of the first `count` messages the rules' functions sent to `queue`."""
    bodies: list[str] = []
    async with asyncio.timeout(15):
        while len(bodies) < count:
            for message in await served.platform.store.queues.receive(queue, max_messages=10, wait=0.2):
                bodies.append(message.body.decode())
                await served.platform.store.queues.ack(queue, message.receipt)
    return bodies


async def stored(served: Served, bus: str = "default") -> list[str]:
    records = await served.platform.store.log.read(bus_stream(bus), after=0, limit=1000)
    return [orjson.loads(r.data)["id"] for r in records]


@pytest.fixture
async def http(recorder: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=recorder.url, timeout=10) as client:
        yield client


async def test_a_structured_event_is_acknowledged_with_its_id_and_reaches_its_rule(
    recorder: Served, http: httpx.AsyncClient
) -> None:
    answer = await http.post("/-/events", content=orjson.dumps(event("s-1")), headers=STRUCTURED)
    assert answer.status_code == 202
    assert answer.json() == {"ids": ["s-1"]}
    assert await delivered(recorder, "seen", 1) == ["s-1"]


async def test_binary_mode_and_a_batch_are_published_too(recorder: Served, http: httpx.AsyncClient) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "b-1", "ce-source": "tests", "ce-type": "Tested"}
    answer = await http.post("/-/events", json={"n": 1}, headers=headers)
    assert answer.status_code == 202
    assert answer.json() == {"ids": ["b-1"]}
    batch = orjson.dumps([event("b-2"), event("b-3")])
    answer = await http.post("/-/events", content=batch, headers={"content-type": "application/cloudevents-batch+json"})
    assert answer.status_code == 202
    assert answer.json() == {"ids": ["b-2", "b-3"]}
    assert sorted(await delivered(recorder, "seen", 3)) == ["b-1", "b-2", "b-3"]


async def test_the_bus_query_parameter_picks_the_bus(recorder: Served, http: httpx.AsyncClient) -> None:
    answer = await http.post("/-/events?bus=other", content=orjson.dumps(event("o-1")), headers=STRUCTURED)
    assert answer.status_code == 202
    assert await delivered(recorder, "seen-other", 1) == ["o-1"]
    assert await stored(recorder, "default") == []


async def test_put_events_entries_go_to_their_buses_with_eventbridge_answers(
    recorder: Served, http: httpx.AsyncClient
) -> None:
    entries = [
        {"Source": "tests", "DetailType": "Tested", "Detail": json.dumps({"n": 1})},
        {"Source": "tests", "DetailType": "Tested", "Detail": "{}", "EventBusName": "other"},
    ]
    answer = await http.post("/-/events", json={"Entries": entries})
    assert answer.status_code == 202
    document = answer.json()
    assert document["FailedEntryCount"] == 0
    assert [e["EventId"] for e in document["Entries"]] == document["ids"]
    first, second = document["ids"]
    assert await delivered(recorder, "seen", 1) == [first]
    assert await delivered(recorder, "seen-other", 1) == [second]


@pytest.mark.parametrize("missing", ["ce-id", "ce-source", "ce-type", "ce-specversion"])
async def test_a_binary_event_missing_a_required_header_is_400_naming_it(
    recorder: Served, http: httpx.AsyncClient, missing: str
) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "x-1", "ce-source": "tests", "ce-type": "Tested"}
    del headers[missing]
    answer = await http.post("/-/events", json={"n": 1}, headers=headers)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "InvalidEvent"
    assert error["attribute"] == missing
    assert await stored(recorder) == []


@pytest.mark.parametrize(
    ("body", "headers", "attribute"),
    [
        (orjson.dumps(event(specversion="0.3")), STRUCTURED, "specversion"),
        (orjson.dumps(event(id="")), STRUCTURED, "id"),
        (b'{"n": 1}', {"content-type": "application/json"}, "Entries"),
        (
            orjson.dumps([event("ok-1"), event("bad", type=None)]),
            {"content-type": "application/cloudevents-batch+json"},
            "batch[1].type",
        ),
        (
            orjson.dumps({"Entries": [{"Source": "s", "DetailType": "t", "Detail": "[1]"}]}),
            {"content-type": "application/json"},
            "Entries[0].Detail",
        ),
    ],
)
async def test_malformed_events_are_400_naming_the_attribute_and_store_nothing(
    recorder: Served, http: httpx.AsyncClient, body: bytes, headers: dict[str, str], attribute: str
) -> None:
    answer = await http.post("/-/events", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["attribute"] == attribute, error
    assert error["message"]
    assert await stored(recorder) == []


async def test_invalid_json_is_400_saying_where(recorder: Served, http: httpx.AsyncClient) -> None:
    answer = await http.post("/-/events", content=b'{"specversion": "1.0", "id": }', headers=STRUCTURED)
    assert answer.status_code == 400
    assert "column" in answer.json()["error"]["message"]


async def test_too_many_put_events_entries_and_bad_bus_names_are_400(recorder: Served, http: httpx.AsyncClient) -> None:
    entries = [{"Source": "s", "DetailType": "t", "Detail": "{}"}] * 11
    answer = await http.post("/-/events", json={"Entries": entries})
    assert answer.status_code == 400
    assert answer.json()["error"]["attribute"] == "Entries"
    answer = await http.post("/-/events?bus=no%20spaces", content=orjson.dumps(event()), headers=STRUCTURED)
    assert answer.status_code == 400
    assert "bus" in answer.json()["error"]["message"]
    assert await stored(recorder) == []


async def test_an_event_over_256_kib_is_413(recorder: Served, http: httpx.AsyncClient) -> None:
    big = orjson.dumps(event(data={"blob": "x" * (300 * 1024)}))
    answer = await http.post("/-/events", content=big, headers=STRUCTURED)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "EventTooLarge"


async def test_a_body_over_the_limit_is_413_by_content_length_and_when_chunked(
    recorder: Served, http: httpx.AsyncClient
) -> None:
    answer = await http.post("/-/events", content=b"x" * (2 * 1024 * 1024), headers=STRUCTURED)
    assert answer.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * (64 * 1024)

    answer = await http.post("/-/events", content=chunks(), headers=STRUCTURED)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "RequestTooLarge"


async def test_a_body_that_stops_arriving_is_408(recorder: Served) -> None:
    host, port = recorder.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        "POST /-/events HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/cloudevents+json\r\n"
        "content-length: 100\r\n\r\n{"
    )
    writer.write(head.encode())
    await writer.drain()
    async with asyncio.timeout(10):
        status = await reader.readline()
    writer.close()
    assert status.startswith(b"HTTP/1.1 408")


async def test_platform_paths_answer_json_errors(http: httpx.AsyncClient) -> None:
    answer = await http.get("/-/events")
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "MethodNotAllowed"
    answer = await http.get("/-/nothing-here")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "NotFound"
    answer = await http.get("/-/health")
    assert answer.json()["functions"] == ["ping", "seen", "seen_other"]
    assert (await http.get("/ping")).json() == {"pong": True}
