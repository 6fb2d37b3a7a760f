"""The PostgreSQL store's receives on a real server: a batch costs the same behind any backlog."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest

from tests.services import POSTGRES_URL, drop_schema, require_postgres
from triggerfish.store import OutgoingMessage, open_store
from triggerfish.store import _pg_queues as q
from triggerfish.store.postgres import PostgresStore


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    require_postgres()
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    await drop_schema(name)


class _Explaining:
    """A connection that runs a receive's SELECT ... FOR UPDATE under EXPLAIN ANALYZE (so executing it, settings
    and all, as the store would) and keeps the plan."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.plans: list[dict[str, Any]] = []

    def pipeline(self) -> Any:
        return self.conn.pipeline()

    async def execute(self, query: str, params: Any = None) -> Any:
        if "FOR UPDATE SKIP LOCKED" not in query:
            return await self.conn.execute(query, params)
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


async def test_a_receive_reads_its_batch_not_the_backlog_on_a_table_without_statistics(schema: str) -> None:
    store = await open_store(f"{POSTGRES_URL}?schema={schema}&pool_size=2")
    assert isinstance(store, PostgresStore)
    try:
        # A new schema's queue table has no statistics until autovacuum analyzes it (kept off here): the planner
        # then expects a handful of candidates, and would rather fetch and sort every visible message.
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as admin:
            await admin.execute(f"ALTER TABLE {schema}.messages SET (autovacuum_enabled = false)")
        for _ in range(20):
            await store.queues.send_many("q", [OutgoingMessage(b"x" * 100) for _ in range(100)])
        async with store.engine.pool.connection() as conn:
            explaining = _Explaining(conn)
            await q.receive_at_once(explaining, "q", 50, 30.0, time.time())  # type: ignore[arg-type]
        (plan,) = explaining.plans
        scans = [
            (node["Node Type"], node.get("Index Name"), node["Actual Rows"])
            for node in _nodes(plan)
            if node.get("Relation Name") == "messages" and node["Node Type"] != "ModifyTable"
        ]
        # The head in the index's order, stopping at the batch; then each leased message by its key.
        assert ("Index Scan", "messages_ready", 50) in scans, scans
        assert not [scan for scan in scans if scan[0] in ("Bitmap Heap Scan", "Seq Scan")], scans
        # The setting that chose the plan is undone with the statement: the pooled connection is as it was.
        async with store.engine.pool.connection() as conn:
            cursor = await conn.execute("SHOW enable_sort")
            assert await cursor.fetchone() == ("on",)
    finally:
        await store.close()
