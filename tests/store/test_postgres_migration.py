"""Moving a PostgreSQL store's schema to this version with messages in it: none is lost, leases and receipts hold."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.services import POSTGRES_URL
from triggerfish.store import OutgoingMessage, open_store
from triggerfish.store import _pg_queues as q
from triggerfish.store._pg_schema import MIGRATIONS, SCHEMA_VERSION

#: Versions before this one whose tables the queue's statements still work on: version 3 swapped the index
#: acknowledgements use, version 4 changed no table (it marks the records' newer forms), version 5 gave log records
#: their keys.
EARLIER_VERSIONS = [2, 3, 4]


@pytest.mark.parametrize("earlier", EARLIER_VERSIONS)
async def test_messages_waiting_delayed_and_leased_at_the_earlier_version_all_come_through(
    schema: str, earlier: int
) -> None:
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as c:
        await c.execute(f"CREATE SCHEMA {schema}")
        await c.execute(f"SET search_path TO {schema}")
        for step in range(1, earlier + 1):
            await c.execute(MIGRATIONS[step].encode())
        await c.execute("INSERT INTO meta (name, value) VALUES ('schema_version', %s)", (earlier,))
        # An earlier node's work: ten messages, three of them leased, one delayed an hour.
        now = time.time()
        sent = [
            result.message_id
            for result in (await q.write_sends(c, [("q", [OutgoingMessage(b"%d" % n) for n in range(10)], now)]))[0]
        ]
        (delayed,) = (await q.write_sends(c, [("q", [OutgoingMessage(b"later", delay=3600)], now)]))[0]
        leased = await q.receive_at_once(c, "q", 3, 300.0, now)
        assert leased is not None
        assert [m.message_id for m in leased] == sent[:3]

    store = await open_store(f"{POSTGRES_URL}?schema={schema}")  # migrates
    try:
        assert store.schema_version == SCHEMA_VERSION == EARLIER_VERSIONS[-1] + 1
        stats = await store.queues.stats("q")
        assert (stats.visible, stats.delayed, stats.in_flight) == (7, 1, 3)
        # The leases taken before the move still hold (nobody else gets those messages) and their receipts work.
        rest = await store.queues.receive("q", max_messages=10)
        assert [m.message_id for m in rest] == sent[3:]  # in the order sent
        assert await store.queues.ack_many("q", [m.receipt for m in leased + rest]) == [True] * 10
        stats = await store.queues.stats("q")
        assert (stats.visible, stats.delayed, stats.in_flight) == (0, 1, 0)
        assert stats.next_visible_at == pytest.approx(now + 3600, abs=1)
        assert delayed.message_id not in sent
    finally:
        await store.close()


async def test_log_records_of_the_earlier_version_stay_and_new_ones_are_found_by_their_keys(schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as c:
        await c.execute(f"CREATE SCHEMA {schema}")
        await c.execute(f"SET search_path TO {schema}")
        for step in range(1, SCHEMA_VERSION):
            await c.execute(MIGRATIONS[step].encode())
        await c.execute("INSERT INTO meta (name, value) VALUES ('schema_version', %s)", (SCHEMA_VERSION - 1,))
        await c.execute("INSERT INTO streams VALUES ('s', 3, 100.0, 2)")
        await c.execute(
            "INSERT INTO log_records (stream, \"offset\", time, size, data) VALUES ('s', 1, 100.0, 1, 'a'),"
            " ('s', 2, 100.0, 1, 'b')"
        )
    store = await open_store(f"{POSTGRES_URL}?schema={schema}")  # migrates
    try:
        assert [r.data for r in await store.log.read("s")] == [b"a", b"b"]
        assert await store.log.find("r/") == []
        (record,) = await store.log.append_many("s", [b"c"], keys=[("r/c/1", "t/x/c")])
        assert record.offset == 3
        assert [(key, r.data) for key, r in await store.log.find("t/x/")] == [("t/x/c", b"c")]
    finally:
        await store.close()
