"""Reaching the optional services (PostgreSQL, Redis, NATS, ...) that some tests need.

A test that needs a service skips, with the reason, when the service cannot be
reached, except under CI (`CI=true`), where the service must be there and an
unreachable one fails the test.
"""

from __future__ import annotations

import os
import socket

import pytest

#: The PostgreSQL the tests use (trust auth); TRIGGERFISH_TEST_POSTGRES overrides it.
POSTGRES_URL = os.environ.get("TRIGGERFISH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def require_service(name: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        reason = f"{name} is not reachable at {host}:{port} ({exc})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(reason)


def require_postgres() -> None:
    """Skip (or under CI fail) unless the test PostgreSQL answers, and its driver is installed."""
    from urllib.parse import urlsplit

    parts = urlsplit(POSTGRES_URL)
    require_service("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError:
        if os.environ.get("CI") == "true":
            pytest.fail("psycopg is not installed; CI=true requires it (pip install 'triggerfish[postgres]')")
        pytest.skip("psycopg is not installed: pip install 'triggerfish[postgres]'")


async def drop_schema(schema: str) -> None:
    """Drop a schema a test made, with everything in it.

    A session left inside a transaction on the schema's tables (by a platform that did not close all its
    connections) would hold the DROP forever: a hung test, which CI reports only as a crashed worker. So the
    DROP waits for locks at most DROP_LOCK_WAIT seconds (stretched by load); then the sessions holding them are
    ended, the schema dropped all the same, and the test fails naming them."""
    import psycopg
    from psycopg import sql

    from tests.patience import scaled

    drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{max(1, round(scaled(DROP_LOCK_WAIT) * 1000))}ms"))
        )
        try:
            await conn.execute(drop)
            return
        except psycopg.errors.LockNotAvailable:
            cursor = await conn.execute(_HOLDERS, (schema,))
            holders = await cursor.fetchall()
        for pid, *_ in holders:
            await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await conn.execute(drop)
    described = "; ".join(
        f"pid {pid} ({state}, application {application!r}, in a transaction for {age}): {query}"
        for pid, state, application, age, query in holders
    )
    raise AssertionError(f"dropping schema {schema} waited for sessions still holding its tables: {described}")


#: Seconds a test's DROP SCHEMA waits for locks before naming (and ending) the sessions that hold them.
DROP_LOCK_WAIT = 30.0

_HOLDERS = """
SELECT DISTINCT activity.pid, activity.state, activity.application_name, now() - activity.xact_start,
       left(activity.query, 300)
FROM pg_locks AS held
JOIN pg_class AS class ON class.oid = held.relation
JOIN pg_namespace AS namespace ON namespace.oid = class.relnamespace
JOIN pg_stat_activity AS activity ON activity.pid = held.pid
WHERE namespace.nspname = %s AND held.granted AND held.pid <> pg_backend_pid()
"""
