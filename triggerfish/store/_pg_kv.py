"""Key-value statements for PostgreSQL; each runs in the caller's transaction.

Versions come from one sequence for the whole schema, so they are unique and
never reused (a sequence never hands a number out twice, even after a crash).
Conditional writes are single statements (`INSERT ... ON CONFLICT ... WHERE`,
`UPDATE ... WHERE version = ...`): PostgreSQL re-checks the condition on the
newest row version, so of two nodes racing for one key exactly one wins.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

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
    total = sum(len(items) for _, items, _ in puts)
    cursor = await c.execute("SELECT nextval('kv_version') FROM generate_series(1, %s)", (total,))
    versions = iter(sorted(int(v) for (v,) in await cursor.fetchall()))
    latest: dict[tuple[str, str], KVRecord] = {}
    everything: list[list[KVRecord]] = []
    for namespace, items, expires_at in puts:
        records = [KVRecord(namespace, key, value, next(versions), expires_at) for key, value in items]
        for record in records:
            latest[(namespace, record.key)] = record
        everything.append(records)
    # ON CONFLICT cannot touch one row twice in one statement; key order makes concurrent
    # merged puts lock their rows in one order, so they never deadlock.
    rows = sorted(latest.values(), key=lambda r: (r.namespace, r.key))
    await c.execute(
        "INSERT INTO kv (namespace, key, value, version, expires_at)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::bigint[], %s::float8[])"
        " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,"
        " expires_at = excluded.expires_at",
        (
            [r.namespace for r in rows],
            [r.key for r in rows],
            [r.value for r in rows],
            [r.version for r in rows],
            [r.expires_at for r in rows],
        ),
    )
    return everything


async def delete(c: Conn, namespace: str, key: str, if_version: int | None, now: float) -> bool:
    cursor = await c.execute(
        f"DELETE FROM kv WHERE namespace = %s AND key = %s AND {_LIVE} AND (%s::bigint IS NULL OR version = %s)",
        (namespace, key, now, if_version, if_version),
    )
    return cursor.rowcount == 1


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
