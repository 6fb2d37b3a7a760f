"""The PostgreSQL the benchmarks run Triggerfish on: a fresh schema per run, and why it cannot run when it cannot.

    reason = unavailable()            # None when postgresql:// store URLs work here
    with fresh_schema() as url:       # postgresql://...?schema=bench_1a2b3c4d5e, dropped after
        ...
    with fresh_database() as url:     # postgresql://.../bench_db_1a2b3c4d5e (a peer that wants a database)
        ...

The server is TRIGGERFISH_BENCH_POSTGRES (default the local one,
postgresql://postgres@127.0.0.1:5432/postgres, trust auth). A benchmark that
needs it reports the reason and skips that part when the store has no
PostgreSQL backend in this tree, its driver is not installed, or the server
cannot be reached.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

SERVER = os.environ.get("TRIGGERFISH_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_schema(schema: str) -> str:
    return f"{SERVER}{'&' if '?' in SERVER else '?'}schema={schema}"


def _drop(schema: str) -> None:
    import psycopg

    with psycopg.connect(SERVER, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _probe(url: str) -> str | None:
    from triggerfish.errors import UnknownStoreURLError
    from triggerfish.store import open_store

    try:
        store = await open_store(url)
    except UnknownStoreURLError as exc:
        return f"this tree's store takes no postgresql:// URL yet ({exc})"
    except ImportError as exc:
        return f"the PostgreSQL driver is missing (pip install 'triggerfish[postgres]'): {exc}"
    except Exception as exc:
        return f"PostgreSQL at {SERVER} cannot be used: {type(exc).__name__}: {exc}"
    await store.close()
    return None


def unavailable() -> str | None:
    """Why Triggerfish cannot run on PostgreSQL here, or None when it can (a store was opened and closed)."""
    if importlib.util.find_spec("triggerfish.store.postgres") is None:
        return "this tree has no PostgreSQL store yet (`triggerfish/store/postgres.py`, postgresql:// store URLs)"
    schema = f"bench_probe_{uuid.uuid4().hex[:10]}"
    reason = asyncio.run(_probe(_with_schema(schema)))
    if reason is None:
        _drop(schema)
    return reason


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A store URL on a schema of its own, dropped (with everything in it) on the way out."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        yield _with_schema(schema)
    finally:
        _drop(schema)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A URL of a database of its own on the same server (for a peer that takes a database, not a schema), dropped
    on the way out, its connections closed first."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = f"bench_db_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(SERVER, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    parts = conninfo_to_dict(SERVER)
    user, host, port = parts.get("user", "postgres"), parts.get("host", "127.0.0.1"), parts.get("port", "5432")
    password = f":{parts['password']}" if parts.get("password") else ""
    try:
        yield f"postgresql://{user}{password}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(SERVER, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
