"""The PostgreSQL store's common lease commits without waiting for the disk, and nothing else does: on a real server.

A lease lost to a server crash comes back as a lease that ran out (the message is delivered again), so its commit
need not wait for the write-ahead log's flush; an acknowledgement or a record must, and they run on the same pooled
connections, so the lease's setting must end with its own statement."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tests.services import POSTGRES_URL
from triggerfish.store import OutgoingMessage, open_store
from triggerfish.store import _pg_queues as q
from triggerfish.store.atomic import Ack, Put
from triggerfish.store.postgres import PostgresStore


@pytest.fixture
async def store(schema: str) -> AsyncIterator[PostgresStore]:
    opened = await open_store(f"{POSTGRES_URL}?schema={schema}&pool_size=2")
    assert isinstance(opened, PostgresStore)
    try:
        await opened.queues.send_many("q", [OutgoingMessage(f"m{i}".encode()) for i in range(5)])
        yield opened
    finally:
        await opened.close()


async def _synchronous_commit(store: PostgresStore) -> list[str]:
    """The setting on each of the pool's connections, outside any transaction."""
    settings = []
    pool = store.engine.pool
    held = [await pool.getconn() for _ in range(pool.get_stats()["pool_size"])]
    try:
        for conn in held:
            cursor = await conn.execute("SHOW synchronous_commit")
            row = await cursor.fetchone()
            assert row is not None
            settings.append(str(row[0]))
    finally:
        for conn in held:
            await pool.putconn(conn)
    return settings


async def test_the_lease_commits_without_waiting_for_the_disk_and_the_settle_after_it_waits(
    store: PostgresStore,
) -> None:
    async with store.engine.pool.connection() as conn, conn.transaction():
        leased = await q.receive_at_once(conn, "q", 2, 30.0, time.time())
        cursor = await conn.execute("SHOW synchronous_commit")
        # Within the lease's own transaction (the statement's, when it runs alone as the store runs it).
        assert await cursor.fetchone() == ("off",)
    assert leased is not None
    assert [m.body for m in leased] == [b"m0", b"m1"]
    assert [m.receive_count for m in leased] == [1, 1]
    # Through the store (the statement alone, autocommitted): the rest leased, the setting gone with it.
    leased += await store.queues.receive("q", max_messages=5, visibility_timeout=30.0)
    assert len(leased) == 5
    # Every pooled connection (the lease's among them) is back to the server's setting...
    assert set(await _synchronous_commit(store)) == {"on"}
    # ...so the settle that records and acknowledges, on any of them, is durable when it returns.
    await store.atomic([Put("invocations", "r/1", b"record"), Ack("q", [m.receipt for m in leased])])
    assert set(await _synchronous_commit(store)) == {"on"}
    stats = await store.queues.stats("q")
    assert (stats.visible, stats.in_flight) == (0, 0)
    record = await store.kv.get("invocations", "r/1")
    assert record is not None
    assert record.value == b"record"
