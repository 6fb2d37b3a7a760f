"""The tests' own PostgreSQL schemas: dropped after each test, and a session that would hold the drop forever is
named and ended instead of hanging the run."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql

from tests import services


async def test_a_session_left_in_a_transaction_on_the_schema_is_named_ended_and_the_schema_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services.require_postgres()
    monkeypatch.setattr(services, "DROP_LOCK_WAIT", 0.5)
    monkeypatch.setenv("TRIGGERFISH_TEST_PATIENCE", "1")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    table = sql.Identifier(schema, "records")
    leaked = await psycopg.AsyncConnection.connect(services.POSTGRES_URL, application_name="a leaked platform")
    try:
        await leaked.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        await leaked.execute(sql.SQL("CREATE TABLE {} (id int)").format(table))
        await leaked.commit()
        await leaked.execute(sql.SQL("SELECT count(*) FROM {}").format(table))  # a transaction opens, and holds
        with pytest.raises(AssertionError) as failure:
            await services.drop_schema(schema)
        message = str(failure.value)
        assert f"dropping schema {schema} waited for sessions still holding its tables" in message
        assert f"pid {leaked.info.backend_pid} (idle in transaction, application 'a leaked platform'" in message
        assert "SELECT count(*)" in message
        async with await psycopg.AsyncConnection.connect(services.POSTGRES_URL) as check:
            cursor = await check.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            assert await cursor.fetchone() is None
        with pytest.raises(psycopg.OperationalError):  # ended by the drop
            await leaked.execute("SELECT 1")
    finally:
        await leaked.close()
        await services.drop_schema(schema)


async def test_a_schema_nobody_holds_is_dropped_at_once() -> None:
    services.require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(services.POSTGRES_URL, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        await conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(schema, "records")))
        await services.drop_schema(schema)
        cursor = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        assert await cursor.fetchone() is None
