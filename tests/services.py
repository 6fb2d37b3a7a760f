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
    """Drop a schema a test made, with everything in it."""
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
