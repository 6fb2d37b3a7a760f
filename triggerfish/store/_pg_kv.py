"""Key-value statements for PostgreSQL; each runs in the caller's transaction.

Versions come from one sequence for the whole schema, so they are unique and
never reused (a sequence never hands a number out twice, even after a crash).
Conditional writes are single statements (`INSERT ... ON CONFLICT ... WHERE`,
`UPDATE ... WHERE version = ...`): PostgreSQL re-checks the condition on the
newest row version, so of two nodes racing for one key exactly one wins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection

from triggerfish.store._pg_arrays import bytea_array, float8_array, int4_array, text_array
from triggerfish.store.base import ABSENT, KVRecord

Conn = AsyncConnection[Any]

_LIVE = "(expires_at IS NULL OR expires_at > %s)"


async def get(c: Conn, namespace: str, key: str, now: float) -> KVRecord | None:
    cursor = await c.execute(
        f"SELECT value, version, expires_at FROM kv WHERE namespace = %s AND key = %s AND {_LIVE}",
        (namespace, key, now),
    )
    row = await cursor.fetchone()
    return None if row is None else KVRecord(namespace, key, bytes(row[0]), int(row[1]), row[2])


async def put(
    c: Conn, namespace: str, key: str, value: bytes, expires_at: float | None, if_version: int | None, now: float
) -> KVRecord | None:
    if if_version is None:
        return (await put_many(c, [(namespace, [(key, value)], expires_at)]))[0][0]
    if if_version == ABSENT:
        # Created, or taking the place of an expired record (which counts as absent).
        cursor = await c.execute(
            "INSERT INTO kv (namespace, key, value, version, expires_at) VALUES (%s, %s, %s, nextval('kv_version'), %s)"
            " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,"
            " expires_at = excluded.expires_at WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= %s"
            " RETURNING version",
            (namespace, key, value, expires_at, now),
        )
    else:
        cursor = await c.execute(
            "UPDATE kv SET value = %s, version = nextval('kv_version'), expires_at = %s"
            f" WHERE namespace = %s AND key = %s AND version = %s AND {_LIVE} RETURNING version",
            (value, expires_at, namespace, key, if_version, now),
        )
    row = await cursor.fetchone()
    return None if row is None else KVRecord(namespace, key, value, int(row[0]), expires_at)


async def put_many(c: Conn, puts: list[tuple[str, list[tuple[str, bytes]], float | None]]) -> list[list[KVRecord]]:
    """Unconditional puts, in order, in one statement; a key written twice keeps its last value."""
    return await (await start_puts(c, puts))()


async def start_puts(
    c: Conn, puts: list[tuple[str, list[tuple[str, bytes]], float | None]]
) -> Callable[[], Awaitable[list[list[KVRecord]]]]:
    """Send the statement of `put_many` without waiting for its result; returns what reads the records.

    The versions come from the sequence inside the statement (in the puts' order: the numbers drawn are sorted
    and the n-th put takes the n-th), so in a pipelined transaction the puts cost no round trip of their own."""
    flat = [(namespace, key, value, expires_at) for namespace, items, expires_at in puts for key, value in items]
    if not flat:
        return _no_records(len(puts))
    latest: dict[tuple[str, str], int] = {}
    for i, (namespace, key, _, _) in enumerate(flat):
        latest[(namespace, key)] = i
    # ON CONFLICT cannot touch one row twice in one statement; key order makes concurrent
    # merged puts lock their rows in one order, so they never deadlock.
    rows = [flat[i] + (i + 1,) for _, i in sorted(latest.items())]
    cursor = await c.execute(
        "WITH drawn AS MATERIALIZED (SELECT array_agg(v ORDER BY v) AS versions"
        " FROM (SELECT nextval('kv_version') AS v FROM generate_series(1, %s)) AS t),"
        " written AS (INSERT INTO kv (namespace, key, value, version, expires_at)"
        " SELECT p.namespace, p.key, p.value, drawn.versions[p.place], p.expires_at FROM drawn,"
        " unnest(%b::text[], %b::text[], %b::bytea[], %b::float8[], %b::int[]) AS p(namespace, key, value, expires_at,"
        " place) ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,"
        " expires_at = excluded.expires_at)"
        " SELECT versions FROM drawn",
        (
            len(flat),
            text_array([r[0] for r in rows]),
            text_array([r[1] for r in rows]),
            bytea_array([r[2] for r in rows]),
            float8_array([r[3] for r in rows]),
            int4_array([r[4] for r in rows]),
        ),
    )

    async def records() -> list[list[KVRecord]]:
        row = await cursor.fetchone()
        assert row is not None
        versions = iter(int(v) for v in row[0])
        return [
            [KVRecord(namespace, key, value, next(versions), expires_at) for key, value in items]
            for namespace, items, expires_at in puts
        ]

    return records


def _no_records(count: int) -> Callable[[], Awaitable[list[list[KVRecord]]]]:
    async def records() -> list[list[KVRecord]]:
        return [[] for _ in range(count)]

    return records


async def delete(c: Conn, namespace: str, key: str, if_version: int | None, now: float) -> bool:
    # RETURNING, not rowcount: this runs in pipelined transactions too (the store's atomic writes).
    cursor = await c.execute(
        f"DELETE FROM kv WHERE namespace = %s AND key = %s AND {_LIVE} AND (%s::bigint IS NULL OR version = %s)"
        " RETURNING true",
        (namespace, key, now, if_version, if_version),
    )
    return await cursor.fetchone() is not None


async def scan(c: Conn, namespace: str, prefix: str, end: str | None, limit: int, now: float) -> list[KVRecord]:
    # Keys are COLLATE "C": byte order, which for UTF-8 is code-point order, so a prefix is a key range.
    cursor = await c.execute(
        "SELECT key, value, version, expires_at FROM kv WHERE namespace = %s AND key >= %s"
        + ("" if end is None else " AND key < %s")
        + f" AND {_LIVE} ORDER BY key LIMIT %s",
        (namespace, prefix, *(() if end is None else (end,)), now, limit),
    )
    return [
        KVRecord(namespace, key, bytes(value), int(version), expires)
        for key, value, version, expires in await cursor.fetchall()
    ]
