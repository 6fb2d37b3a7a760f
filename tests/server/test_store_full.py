"""A full store over real HTTP: every request gets a whole JSON answer (507), none dropped, none falsely acknowledged.

The store is a real SQLite file made full with `PRAGMA max_page_count` on the store's own writer connection,
which makes SQLite answer SQLITE_FULL exactly as a full disk does.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import Served, serve_app
from triggerfish.names import bus_stream
from triggerfish.store.sqlite import SqliteStore

APP = """
import triggerfish

app = triggerfish.App("full")


@app.http("POST", "/notes")
def note(event, context):
    context.send("notes", event["body"])
    return {"statusCode": 201, "body": "kept"}


@app.function()
def echo(event, context):
    return event


@app.on_queue("notes")
def read_notes(event, context):
    return None
"""
JSON = {"content-type": "application/json"}
CLOUDEVENT = {"content-type": "application/cloudevents+json"}


@pytest.fixture
async def full(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serve_app(tmp_path, APP):
        yield served


def full_store(served: Served) -> Any:
    """The SQLite store's engine, whose writer connection the test caps (the store has no public knob for it)."""
    store = served.platform.store
    assert isinstance(store, SqliteStore)
    return store._engine


async def fill_up(served: Served) -> None:
    """Cap the store file at the pages it has, plus a few: what comes next does not fit."""

    def cap(connection: sqlite3.Connection) -> None:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {pages + 2}")

    await full_store(served).writer.submit(cap)


def cloudevent(index: int) -> bytes:
    # Big enough that a handful fill the two spare pages, small enough to be one event.
    return json.dumps(
        {"specversion": "1.0", "id": f"e-{index}", "source": "tests", "type": "Filled", "data": {"pad": "x" * 20_000}}
    ).encode()


async def test_concurrent_publishes_to_a_full_store_each_get_a_whole_json_answer_and_no_false_ack(full: Served) -> None:
    await fill_up(full)
    async with httpx.AsyncClient(base_url=full.url, timeout=30, limits=httpx.Limits(max_connections=64)) as http:
        answers = await asyncio.gather(
            *(http.post("/-/events", content=cloudevent(i), headers=CLOUDEVENT) for i in range(60))
        )
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {202, 507}, statuses
    assert 507 in statuses
    for answer in answers:
        assert answer.headers["content-type"] == "application/json"
        if answer.status_code == 507:
            assert answer.json()["error"]["code"] == "StoreFull"
    acknowledged = {answer.json()["ids"][0] for answer in answers if answer.status_code == 202}
    stored = await full.platform.store.log.read(bus_stream("default"), after=0, limit=1000)
    assert acknowledged <= {json.loads(record.data)["id"] for record in stored}

    # Room again (the disk was cleared): the server writes again; nothing was left waiting behind the failures.
    await full_store(full).writer.submit(lambda connection: connection.execute("PRAGMA max_page_count = 1000000"))
    async with httpx.AsyncClient(base_url=full.url, timeout=30) as http:
        again = await http.post("/-/events", content=cloudevent(99), headers=CLOUDEVENT)
    assert again.status_code == 202


async def test_every_kind_of_endpoint_answers_a_full_store_with_507(full: Served) -> None:
    await fill_up(full)
    big = {"pad": "x" * 50_000}
    async with httpx.AsyncClient(base_url=full.url, timeout=30, headers=JSON) as http:
        answers = {
            "events": await http.post("/-/events", content=cloudevent(0), headers=CLOUDEVENT),
            "queue send": await http.post("/-/api/v1/queues/notes/messages", json={"body": big}),
            "async invoke": await http.post("/-/api/v1/functions/echo/invoke?type=Event", json=big),
            "subscribe": await http.post(
                "/-/api/v1/topics/alerts/subscriptions",
                json={"kind": "webhook", "endpoint": "https://example.com/hook", "secret": "s" * 50_000},
            ),
        }
        health = await http.get("/-/health")
    for what, answer in answers.items():
        assert answer.status_code == 507, (what, answer.text)
        assert answer.json()["error"]["code"] == "StoreFull", what
        assert "nothing was stored" in answer.json()["error"]["message"], what
    # Reads still work: the server stands, and says so.
    assert health.status_code == 200


async def test_a_store_that_fails_otherwise_is_503_with_retry_after(full: Served) -> None:
    def read_only(connection: sqlite3.Connection) -> None:
        connection.execute("PRAGMA query_only = ON")

    await full_store(full).writer.submit(read_only)
    async with httpx.AsyncClient(base_url=full.url, timeout=30) as http:
        answers = await asyncio.gather(
            *(http.post("/-/events", content=cloudevent(i), headers=CLOUDEVENT) for i in range(10))
        )
        for answer in answers:
            assert answer.status_code == 503
            assert answer.json()["error"]["code"] == "StoreUnavailable"
            assert int(answer.headers["retry-after"]) >= 1
