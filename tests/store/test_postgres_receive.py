"""The PostgreSQL store's receives and acknowledgements on a real server: a batch costs the same behind any backlog,
even on a table the planner has no statistics of (every new schema, until autovacuum's first ANALYZE), and the
store gives such a table statistics once a lease finds a backlog."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.services import POSTGRES_URL
from triggerfish.store import OutgoingMessage, open_store
from triggerfish.store import _pg_queues as q
from triggerfish.store.postgres import PostgresStore


class _Explaining:
    """A connection that runs the statements containing `fragment` under EXPLAIN ANALYZE (so executing them, settings
    and all, as the store would) and keeps their plans."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], fragment: str) -> None:
        self.conn, self.fragment = conn, fragment
        self.plans: list[dict[str, Any]] = []

    def pipeline(self) -> Any:
        return self.conn.pipeline()

    async def execute(self, query: str, params: Any = None, *, prepare: bool | None = None) -> Any:
        if self.fragment not in query:
            return await self.conn.execute(query, params, prepare=prepare)
        return _Plan(await self.conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", params), self.plans)


class _Plan:
    def __init__(self, cursor: psycopg.AsyncCursor[Any], plans: list[dict[str, Any]]) -> None:
        self.cursor, self.plans = cursor, plans

    async def fetchall(self) -> list[Any]:
        rows = await self.cursor.fetchall()
        self.plans.append(rows[0][0][0]["Plan"])
        return []


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _scans(plan: dict[str, Any]) -> list[tuple[str, str | None, int]]:
    """How the plan read the messages table: (node type, index, rows read, kept or not) of each scan."""
    return [
        (node["Node Type"], node.get("Index Name"), node["Actual Rows"] + node.get("Rows Removed by Filter", 0))
        for node in _nodes(plan)
        if (node.get("Relation Name") == "messages" and node["Node Type"] != "ModifyTable")
        or node["Node Type"] == "Bitmap Index Scan"
    ]


@pytest.fixture
async def backlog(schema: str) -> AsyncIterator[PostgresStore]:
    """A store whose queue `q` holds 2,000 messages, on a table without statistics."""
    store = await open_store(f"{POSTGRES_URL}?schema={schema}&pool_size=2")
    assert isinstance(store, PostgresStore)
    try:
        # Autovacuum kept off, so that no ANALYZE gives the planner a better guess while the test runs.
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as admin:
            await admin.execute(f"ALTER TABLE {schema}.messages SET (autovacuum_enabled = false)")
        for _ in range(20):
            await store.queues.send_many("q", [OutgoingMessage(b"x" * 100) for _ in range(100)])
        yield store
    finally:
        await store.close()


async def test_a_receive_reads_its_batch_not_the_backlog(backlog: PostgresStore) -> None:
    # Without statistics the planner expects a handful of candidates, and would rather fetch and sort every
    # visible message than read the index in order. (`receive`, the transaction; `receive_at_once` is left to
    # the planner, see _pg_queues.)
    async with backlog.engine.pool.connection() as conn, conn.transaction():
        explaining = _Explaining(conn, "FOR UPDATE SKIP LOCKED")
        await q.receive(explaining, "q", 50, 30.0, time.time())  # type: ignore[arg-type]
    (plan,) = explaining.plans
    scans = _scans(plan)
    # The head in the index's order, stopping at the batch.
    assert scans == [("Index Scan", "messages_ready", 50)], scans
    # The setting that chose the plan ended with the transaction: the pooled connection is as it was.
    async with backlog.engine.pool.connection() as conn:
        cursor = await conn.execute("SHOW enable_sort")
        assert await cursor.fetchone() == ("on",)


async def test_an_acknowledgement_reads_its_messages_not_the_backlog(backlog: PostgresStore) -> None:
    # Leased beside the store's `receive`, which would give the table statistics (see below).
    leased = await backlog.engine.read(q.receive_at_once, "q", 50, 30.0, time.time())
    assert leased is not None
    assert len(leased) == 50
    async with backlog.engine.pool.connection() as conn:
        explaining = _Explaining(conn, "DELETE FROM messages")
        await q.ack(explaining, "q", [m.receipt for m in leased], time.time())  # type: ignore[arg-type]
    (plan,) = explaining.plans
    # Each message by its id (the index still holds each leased message's entry from before its lease).
    assert plan["Actual Rows"] == 50
    assert all(rows <= 2 * 50 for _, _, rows in _scans(plan)), _scans(plan)
    stats = await backlog.queues.stats("q")
    assert (stats.visible, stats.in_flight) == (1950, 0)  # and the 50 are gone


async def _has_statistics(schema: str) -> bool:
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as admin:
        cursor = await admin.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = %s AND tablename = 'messages')", (schema,)
        )
        row = await cursor.fetchone()
        return bool(row and row[0])


async def test_a_full_lease_gives_a_new_table_statistics_and_the_common_lease_its_plan(
    backlog: PostgresStore, schema: str
) -> None:
    assert not await _has_statistics(schema)
    # Autovacuum is off on the table: only the store's own ANALYZE can give it statistics.
    assert len(await backlog.queues.receive("q", max_messages=50, visibility_timeout=30.0)) == 50
    deadline = time.monotonic() + 10
    while not await _has_statistics(schema):
        assert time.monotonic() < deadline, "no ANALYZE after a full lease"
        await asyncio.sleep(0.05)
    # The common one-statement lease now reads the head in the index's order and stops at its batch.
    async with backlog.engine.pool.connection() as conn:
        explaining = _Explaining(conn, "FOR UPDATE SKIP LOCKED")
        await q.receive_at_once(explaining, "q", 50, 30.0, time.time())  # type: ignore[arg-type]
    (plan,) = explaining.plans
    head = [scan for scan in _scans(plan) if scan[1] == "messages_ready"]
    assert head == [("Index Scan", "messages_ready", 50)], _scans(plan)
    assert not [node for node in _nodes(plan) if node["Node Type"] == "Sort"]
    # (How the update then finds the 50 rows, by key or by one pass over a table this small, is the planner's
    # costing with the statistics, not the backlog's toll.)
    stats = await backlog.queues.stats("q")
    assert (stats.visible, stats.in_flight) == (1900, 100)


async def test_a_lease_that_empties_the_queue_leaves_the_table_to_autovacuum(schema: str) -> None:
    store = await open_store(f"{POSTGRES_URL}?schema={schema}&pool_size=2")
    try:
        await store.queues.send_many("q", [OutgoingMessage(b"x") for _ in range(10)])
        assert len(await store.queues.receive("q", max_messages=50)) == 10
        await asyncio.sleep(0.5)
        assert not await _has_statistics(schema)
    finally:
        await store.close()


async def test_leases_of_every_size_take_that_many_in_order_and_the_server_keeps_their_plan(
    backlog: PostgresStore, schema: str
) -> None:
    # Each batch size is a statement of its own (its LIMIT written in): every size takes exactly its batch from the
    # head of the queue, in order, with nothing skipped or taken twice.
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as admin:
        await admin.execute(f"ANALYZE {schema}.messages")
        cursor = await admin.execute(f"SELECT id FROM {schema}.messages WHERE queue = 'q' ORDER BY seq")
        in_order = [message_id for (message_id,) in await cursor.fetchall()]
    taken: list[str] = []
    for size in [1, 2, 3, 17, 32, 50, 3, 1]:
        batch = await backlog.queues.receive("q", max_messages=size, visibility_timeout=30.0)
        assert len(batch) == size
        taken.extend(message.message_id for message in batch)
    assert taken == in_order[: len(taken)]
    # Prepared on its first run and planned for its parameters in its first five (as the server plans every prepared
    # statement), the lease of one size then runs from the plan the server keeps, rather than being planned every
    # time, and that plan still reads the head in the index's order.
    async with backlog.engine.pool.connection() as conn:
        for _ in range(8):
            leased = await q.receive_at_once(conn, "q", 20, 30.0, time.time())
            assert leased is not None
            assert len(leased) == 20
        cursor = await conn.execute(
            "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE '%%FOR UPDATE SKIP LOCKED%%' AND statement LIKE '%%LIMIT 20 %%'"
        )
        ((name, generic, custom),) = await cursor.fetchall()
        assert custom == 5
        assert generic >= 3
        plan = await conn.execute(
            sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {}('q', {}, {}, 30.0)").format(
                sql.Identifier(name), sql.Literal(q._DEFAULTS), sql.Literal(time.time())
            )
        )
        ((document,),) = await plan.fetchall()
    head = [scan for scan in _scans(document[0]["Plan"]) if scan[1] == "messages_ready"]
    assert head == [("Index Scan", "messages_ready", 20)], _scans(document[0]["Plan"])
    assert not [node for node in _nodes(document[0]["Plan"]) if node["Node Type"] == "Sort"]


async def test_attributes_stored_as_earlier_versions_wrote_them_read_back_the_same(schema: str) -> None:
    # Earlier versions stored a message's attributes with `json.dumps` (spaces, non-ASCII escaped); now they are
    # orjson's compact UTF-8. A message queued by either reads back with the same attributes, through the
    # one-statement lease and the transactional receive alike.
    store = await open_store(f"{POSTGRES_URL}?schema={schema}&pool_size=2")
    assert isinstance(store, PostgresStore)
    attributes = {"triggerfish.invocation": '{"function": "f", "n": "välue ☃ \\u00e9"}', "ünï": "\U0001f600"}
    try:
        await store.queues.send("q", b"new", attributes=attributes)
        await store.queues.send("q", b"old", attributes={"placeholder": "x"})
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as admin:
            await admin.execute(
                f"UPDATE {schema}.messages SET attributes = %s WHERE body = 'old'", (json.dumps(attributes),)
            )
            cursor = await admin.execute(f"SELECT attributes FROM {schema}.messages ORDER BY seq")
            stored = [text for (text,) in await cursor.fetchall()]
        assert stored[0] != stored[1]  # the two forms differ as text
        (first,) = await store.queues.receive("q", max_messages=1)
        async with store.engine.pool.connection() as conn:
            (second,), _ = await q.receive(conn, "q", 1, 30.0, time.time())
        assert [(first.body, first.attributes), (second.body, second.attributes)] == [
            (b"new", attributes),
            (b"old", attributes),
        ]
    finally:
        await store.close()
