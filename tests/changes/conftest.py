"""A PostgreSQL place per test: its own schema, and every replication slot it made dropped after, even on failure.

The server is shared (max_replication_slots is 10 across every engineer's tests): a slot left behind keeps WAL
and takes a place, so each test's slots start with its own prefix and are all dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.services import POSTGRES_URL, drop_schema, require_postgres


@dataclass
class PgPlace:
    conn: Any
    #: The test's schema, and the start of the app names and slots it makes (`tf_<name>...`).
    name: str
    url: str = POSTGRES_URL

    async def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cursor = await self.conn.execute(query, params)
        return await cursor.fetchall() if cursor.description else []

    async def slots(self) -> dict[str, str]:
        """The test's slots and their confirmed positions."""
        rows = await self.sql(
            "SELECT slot_name, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name LIKE %s",
            (f"tf_{self.name}%",),
        )
        return dict(rows)

    async def ready(self, slot: str) -> bool:
        """Whether `slot` exists and decodes every change committed from now on.

        A slot is listed from the moment its making begins, but only once it reached a consistent point (after
        every transaction running then ended) does it have a confirmed position: a change committed before
        that is not in it. On a shared, busy server that wait is long enough for a test to write into it.
        """
        rows = await self.sql(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND confirmed_flush_lsn IS NOT NULL", (slot,)
        )
        return bool(rows)


async def require_logical(conn: Any) -> None:
    level = (await (await conn.execute("SHOW wal_level")).fetchone())[0]
    if level != "logical":
        reason = f"PostgreSQL's wal_level is {level!r}, change capture needs 'logical' (.ci/run sets it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(reason)


@pytest.fixture
async def pg() -> AsyncIterator[PgPlace]:
    require_postgres()
    import psycopg

    name = f"pgc{uuid.uuid4().hex[:8]}"
    conn = await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True)
    try:
        await require_logical(conn)
        await conn.execute(f"CREATE SCHEMA {name}")
        yield PgPlace(conn, name)
    finally:
        try:
            rows = await (
                await conn.execute(
                    "SELECT slot_name, active_pid FROM pg_replication_slots WHERE slot_name LIKE %s", (f"tf_{name}%",)
                )
            ).fetchall()
            for slot, pid in rows:
                if pid is not None:
                    await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                for _ in range(100):  # a terminated reader lets go of the slot a moment later
                    try:
                        await conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                        break
                    except psycopg.errors.ObjectInUse:
                        await asyncio.sleep(0.05)
        finally:
            await conn.close()
            await drop_schema(name)
