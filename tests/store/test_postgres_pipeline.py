"""The PostgreSQL store's pipelined write transactions: what a pipeline defers must still fail, roll back and wake
as a plain transaction does."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.services import POSTGRES_URL
from triggerfish.errors import StoreError
from triggerfish.store import OutgoingMessage, open_store
from triggerfish.store import _pg_log as lg
from triggerfish.store._pg_engine import Conn
from triggerfish.store.atomic import Append, Put, Send
from triggerfish.store.postgres import PostgresStore


async def opened(schema: str, **options: object) -> PostgresStore:
    extra = "".join(f"&{key}={value}" for key, value in options.items())
    store = await open_store(f"{POSTGRES_URL}?schema={schema}&pool_size=2{extra}")
    assert isinstance(store, PostgresStore)
    return store


async def test_merged_appends_are_numbered_and_timed_by_the_database_as_the_records_say(schema: str) -> None:
    store = await opened(schema)
    try:
        await store.log.append("s", b"first")
        earlier = (await store.log.read("s"))[0].time
        later = earlier + 100
        # One merged transaction: two appends to s around one to t, the second to s with an older clock.
        written = await store.engine.run(
            lg.write_appends,
            [("s", [b"a"], later), ("t", [b"b"], earlier - 5), ("s", [b"c", b"d"], later - 50)],
            pipeline=True,
        )
        assert [[(r.stream, r.offset, r.time, r.data) for r in records] for records in written] == [
            [("s", 2, later, b"a")],
            [("t", 1, earlier - 5, b"b")],
            [("s", 3, later, b"c"), ("s", 4, later, b"d")],  # times never go back within a stream
        ]
        assert await store.log.read("s", after=1) == written[0] + written[2]
        assert await store.log.read("t") == written[1]
        assert await store.log.last_offset("s") == 4
    finally:
        await store.close()


async def test_a_statement_whose_result_was_never_read_still_fails_and_rolls_back_its_transaction(
    schema: str,
) -> None:
    store = await opened(schema)

    async def put_then_fail(c: Conn) -> None:
        await c.execute(
            "INSERT INTO kv (namespace, key, value, version) VALUES ('ns', 'k', 'v', nextval('kv_version'))"
        )
        await c.execute("SELECT 1 / 0")  # its error arrives only at COMMIT's sync

    try:
        with pytest.raises(StoreError, match="division by zero"):
            await store.engine.run(put_then_fail, pipeline=True)
        assert await store.kv.get("ns", "k") is None
        # Both pooled connections are clean again: writes on each go through.
        await asyncio.gather(*(store.kv.put("ns", f"after{i}", b"v") for i in range(4)))
        assert len(await store.kv.scan("ns")) == 4
    finally:
        await store.close()


async def test_a_wake_up_that_fails_after_its_commit_is_a_lost_hint_not_a_failed_write(schema: str) -> None:
    store = await opened(schema)

    async def put(c: Conn) -> str:
        await c.execute(
            "INSERT INTO kv (namespace, key, value, version) VALUES ('ns', 'k', 'v', nextval('kv_version'))"
        )
        return "written"

    try:
        # PostgreSQL refuses a payload of 8000 bytes or more: the NOTIFY after the COMMIT fails.
        assert await store.engine.run(put, pipeline=True, wakes=["q:" + "x" * 9000]) == "written"
        found = await store.kv.get("ns", "k")
        assert found is not None
        assert found.value == b"v"
    finally:
        await store.close()


async def test_an_atomic_append_and_send_wake_a_reader_and_a_receiver_on_another_node(schema: str) -> None:
    # A poll interval of a minute: only the NOTIFY sent in the write's own pipeline can wake them in time.
    a = await opened(schema, poll_interval=60)
    b = await opened(schema, poll_interval=60)
    try:
        receiver = asyncio.ensure_future(a.queues.receive("jobs", wait=30))
        reader = asyncio.ensure_future(a.log.read("bus", wait=30))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await b.atomic([Append("bus", [b"event"]), Send("jobs", [OutgoingMessage(b"job")]), Put("ns", "k", b"v")])
        assert [m.body for m in await asyncio.wait_for(receiver, 20)] == [b"job"]
        assert [r.data for r in await asyncio.wait_for(reader, 20)] == [b"event"]
        assert time.monotonic() - started < 10
    finally:
        await a.close()
        await b.close()


async def test_appends_racing_on_two_nodes_number_every_record_once_in_commit_order(schema: str) -> None:
    # Two nodes (two pools), each with merged appends in flight at once, to the same streams: the counters are locked
    # in name order, the records numbered from them and the counters moved in one transaction, so no offset is given
    # twice or skipped, and what each append answers is what is stored.
    a = await opened(schema, pool_size=6)
    b = await opened(schema, pool_size=6)
    try:

        async def appends(store: PostgresStore, node: str) -> list[list[Any]]:
            return await asyncio.gather(
                *(
                    store.log.append_many(stream, [f"{node}{i}.{j}".encode() for j in range(1 + i % 3)])
                    for i in range(60)
                    for stream in (["s", "t"] if i % 2 else ["s"])
                )
            )

        answered = [
            record
            for records in await asyncio.gather(appends(a, "a"), appends(b, "b"))
            for r in records
            for record in r
        ]
        for stream in ("s", "t"):
            stored = await a.log.read(stream, limit=1000)
            assert [record.offset for record in stored] == list(range(1, len(stored) + 1))
            assert sorted((r.offset, r.data) for r in answered if r.stream == stream) == [
                (r.offset, r.data) for r in stored
            ]
            assert [r.time for r in stored] == sorted(r.time for r in stored)
            assert await b.log.last_offset(stream) == len(stored)
        assert len(answered) == sum(1 + i % 3 for i in range(60)) * 2 + sum(1 + i % 3 for i in range(60) if i % 2) * 2
    finally:
        await a.close()
        await b.close()
