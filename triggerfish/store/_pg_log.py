"""Event-log and consumer-group statements for PostgreSQL; each runs in the caller's transaction.

Offsets come from a counter row per stream (`streams.next_offset`), locked and
moved in the append's transaction: offsets are contiguous and insert order is
commit order, which a sequence would not give (it leaves gaps, and hands out
numbers in an order other than commits). Merged appends lock their streams in
name order, so two of them never deadlock.

A consumer group's row is locked (`FOR UPDATE`) by every claim and commit,
which makes them atomic against every other node.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from psycopg import AsyncConnection

from triggerfish.store._pg_arrays import bytea_array, float8_array, int8_array, text_array
from triggerfish.store.base import LogClaim, LogRecord, RecordKeys

Conn = AsyncConnection[Any]


#: What one append is: its stream, its bodies, the time it is written at, and (optionally) each body's keys.
Appending = tuple[str, list[bytes], float] | tuple[str, list[bytes], float, "list[RecordKeys] | None"]


async def write_appends(c: Conn, appends: Sequence[Appending]) -> list[list[LogRecord]]:
    """Append each (stream, bodies, now[, keys]) in order; returns each one's records."""
    return await (await start_appends(c, appends))()


async def start_appends(c: Conn, appends: Sequence[Appending]) -> Callable[[], Awaitable[list[list[LogRecord]]]]:
    """Send the statements of `write_appends` without waiting for any result; returns what reads its records.

    The database numbers the records from each stream's locked counter row, so no statement waits for the one
    before it: in a pipelined transaction the whole append costs no round trip of its own, and the records'
    offsets and times are worked out here again, from the counters as they were, when they are read."""
    names = sorted({append[0] for append in appends})
    # Each body's place among its stream's bodies in this batch, and its time before the stream's last time
    # counts: times never decrease within a stream, so time ranges map to offset ranges.
    streams: list[str] = []
    places: list[int] = []
    times: list[float] = []
    bodies_in_order: list[bytes] = []
    # Each body's keys, by column (None: none), when any append of the batch has keys.
    keyed = any(len(append) > 3 and append[3] is not None for append in appends)
    first_keys: list[str | None] = []
    second_keys: list[str | None] = []
    totals: dict[str, list[Any]] = {name: [0, float("-inf"), 0] for name in names}
    for append in appends:
        stream, bodies, now = append[0], append[1], append[2]
        total = totals[stream]
        total[1] = max(total[1], now)
        for body in bodies:
            streams.append(stream)
            places.append(total[0])
            times.append(total[1])
            bodies_in_order.append(body)
            total[0] += 1
            total[2] += len(body)
        if keyed:
            keys = append[3] if len(append) > 3 else None
            for found in keys if keys is not None else [()] * len(bodies):
                first_keys.append(found[0] if found else None)
                second_keys.append(found[1] if len(found) > 1 else None)
    await c.execute(
        "INSERT INTO streams (name, next_offset, last_time, bytes)"
        " SELECT n, 1, '-Infinity', 0 FROM unnest(%b::text[]) n ON CONFLICT (name) DO NOTHING",
        (text_array(names),),
    )
    counters = await c.execute(
        "SELECT name, next_offset, last_time FROM streams WHERE name = ANY(%b::text[]) ORDER BY name FOR UPDATE",
        (text_array(names),),
    )
    if keyed:
        await c.execute(
            'INSERT INTO log_records (stream, "offset", time, size, data, key1, key2)'
            " SELECT v.stream, s.next_offset + v.place, greatest(s.last_time, v.time), length(v.data), v.data,"
            " v.key1, v.key2 FROM unnest(%b::text[], %b::bigint[], %b::float8[], %b::bytea[], %b::text[], %b::text[])"
            " AS v(stream, place, time, data, key1, key2) JOIN streams s ON s.name = v.stream",
            (
                text_array(streams),
                int8_array(places),
                float8_array(times),
                bytea_array(bodies_in_order),
                text_array(first_keys),
                text_array(second_keys),
            ),
        )
    else:
        await c.execute(
            'INSERT INTO log_records (stream, "offset", time, size, data)'
            " SELECT v.stream, s.next_offset + v.place, greatest(s.last_time, v.time), length(v.data), v.data"
            " FROM unnest(%b::text[], %b::bigint[], %b::float8[], %b::bytea[]) AS v(stream, place, time, data)"
            " JOIN streams s ON s.name = v.stream",
            (text_array(streams), int8_array(places), float8_array(times), bytea_array(bodies_in_order)),
        )
    await c.execute(
        "UPDATE streams SET next_offset = next_offset + v.n, last_time = greatest(last_time, v.t), bytes = bytes + v.b"
        " FROM unnest(%b::text[], %b::bigint[], %b::float8[], %b::bigint[]) AS v(name, n, t, b)"
        " WHERE streams.name = v.name",
        (
            text_array(names),
            int8_array([totals[n][0] for n in names]),
            float8_array([totals[n][1] for n in names]),
            int8_array([totals[n][2] for n in names]),
        ),
    )

    async def records() -> list[list[LogRecord]]:
        before = {name: (int(n), float(t)) for name, n, t in await counters.fetchall()}
        out: list[list[LogRecord]] = []
        placed = 0
        for append in appends:
            stream, bodies = append[0], append[1]
            first, last_time = before[stream]
            out.append(
                [
                    LogRecord(stream, first + places[i], max(last_time, times[i]), bodies_in_order[i])
                    for i in range(placed, placed + len(bodies))
                ]
            )
            placed += len(bodies)
        return out

    return records


async def find(c: Conn, low: str, high: str | None, limit: int) -> list[tuple[str, LogRecord]]:
    """Records with a key in [low, high) (None: no upper bound), in key order, each with the key: one range of each
    key column's index (each partial: only keyed records are in it)."""
    bound = "" if high is None else " AND {0} < %s"
    select = 'SELECT {0}, stream, "offset", time, data FROM log_records WHERE {0} >= %s' + bound
    arguments = (low, *(() if high is None else (high,)))
    cursor = await c.execute(
        f"({select.format('key1')}) UNION ALL ({select.format('key2')}) ORDER BY 1 LIMIT %s",
        (*arguments, *arguments, limit),
    )
    rows = await cursor.fetchall()
    return [(key, LogRecord(stream, offset, t, bytes(data))) for key, stream, offset, t, data in rows]


async def _first_offset_at(c: Conn, stream: str, at: float) -> int | None:
    """The first offset whose time is at or after `at` (times never decrease along offsets)."""
    cursor = await c.execute(
        'SELECT "offset" FROM log_records WHERE stream = %s AND time >= %s ORDER BY time, "offset" LIMIT 1',
        (stream, at),
    )
    row = await cursor.fetchone()
    return None if row is None else int(row[0])


async def read(
    c: Conn, stream: str, after: int, since: float | None, until: float | None, limit: int
) -> list[LogRecord]:
    if since is not None:
        first = await _first_offset_at(c, stream, since)
        if first is None:
            return []
        after = max(after, first - 1)
    end = None if until is None else await _first_offset_at(c, stream, until)
    cursor = await c.execute(
        'SELECT "offset", time, data FROM log_records WHERE stream = %s AND "offset" > %s AND "offset" < %s'
        ' ORDER BY "offset" LIMIT %s',
        (stream, after, 2**63 - 1 if end is None else end, limit),
    )
    return [LogRecord(stream, int(offset), float(t), bytes(data)) for offset, t, data in await cursor.fetchall()]


async def last_offset(c: Conn, stream: str) -> int:
    cursor = await c.execute("SELECT next_offset FROM streams WHERE name = %s", (stream,))
    row = await cursor.fetchone()
    return 0 if row is None else int(row[0]) - 1


async def trim(c: Conn, stream: str, before: float | None, max_bytes: int | None) -> int:
    cursor = await c.execute("SELECT bytes, next_offset FROM streams WHERE name = %s FOR UPDATE", (stream,))
    row = await cursor.fetchone()
    if row is None:
        return 0
    size, last = int(row[0]), int(row[1]) - 1
    cut = 0  # records with offset <= cut go
    if before is not None:
        end = await _first_offset_at(c, stream, before)
        cut = last if end is None else end - 1
    if max_bytes is not None:
        # The newest records whose sizes add up to at most max_bytes stay.
        cursor = await c.execute(
            'SELECT coalesce(max("offset"), 0) FROM (SELECT "offset", sum(size) OVER (ORDER BY "offset" DESC) AS tail'
            ' FROM log_records WHERE stream = %s AND "offset" > %s) t WHERE tail > %s',
            (stream, cut, max_bytes),
        )
        found = await cursor.fetchone()
        cut = max(cut, int(found[0]) if found else 0)
    cursor = await c.execute(
        'DELETE FROM log_records WHERE stream = %s AND "offset" <= %s RETURNING size', (stream, cut)
    )
    removed = await cursor.fetchall()
    if removed:
        await c.execute(
            "UPDATE streams SET bytes = %s WHERE name = %s", (size - sum(int(s) for (s,) in removed), stream)
        )
    return len(removed)


async def stream_names(c: Conn) -> list[str]:
    cursor = await c.execute("SELECT name FROM streams")
    return [name for (name,) in await cursor.fetchall()]


# --- consumer groups -------------------------------------------------------------------------


async def claimable(c: Conn, stream: str, group: str, now: float) -> bool:
    """Whether a claim would find something, read without locks (idle consumers poll with this)."""
    cursor = await c.execute(
        "SELECT coalesce((SELECT next_offset - 1 FROM streams WHERE name = %s), 0)"
        " > coalesce((SELECT claimed FROM log_groups WHERE stream = %s AND grp = %s), 0)"
        " OR EXISTS (SELECT 1 FROM log_claims WHERE stream = %s AND grp = %s AND NOT committed AND expires_at <= %s)",
        (stream, stream, group, stream, group, now),
    )
    row = await cursor.fetchone()
    return bool(row and row[0])


async def _lock_group(c: Conn, stream: str, group: str, *, create: bool) -> tuple[int, int] | None:
    """Lock the group's row; (position, claimed), or None when it has none and `create` is off."""
    query = "SELECT position, claimed FROM log_groups WHERE stream = %s AND grp = %s FOR UPDATE"
    cursor = await c.execute(query, (stream, group))
    row = await cursor.fetchone()
    if row is None and create:
        await c.execute(
            "INSERT INTO log_groups (stream, grp, position, claimed) VALUES (%s, %s, 0, 0) ON CONFLICT DO NOTHING",
            (stream, group),
        )
        cursor = await c.execute(query, (stream, group))
        row = await cursor.fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


async def claim(c: Conn, stream: str, group: str, limit: int, lease: float, now: float, token: str) -> LogClaim | None:
    if not await claimable(c, stream, group, now):
        return None  # nothing to claim: no lock, no row written
    locked = await _lock_group(c, stream, group, create=True)
    assert locked is not None
    _, claimed = locked
    expires_at = now + lease
    cursor = await c.execute(
        "UPDATE log_claims SET token = %s, expires_at = %s WHERE (stream, grp, first) = (SELECT stream, grp, first"
        " FROM log_claims WHERE stream = %s AND grp = %s AND NOT committed AND expires_at <= %s ORDER BY first LIMIT 1)"
        " RETURNING first, last",
        (token, expires_at, stream, group, now),
    )
    lapsed = await cursor.fetchone()
    if lapsed is not None:
        first, last = int(lapsed[0]), int(lapsed[1])
        records = [r for r in await read(c, stream, first - 1, None, None, last - first + 1) if r.offset <= last]
        return LogClaim(stream, group, first, last, token, records, expires_at)
    records = await read(c, stream, claimed, None, None, limit)
    if not records:
        return None
    first, last = claimed + 1, records[-1].offset
    await c.execute(
        "INSERT INTO log_claims (stream, grp, first, last, token, expires_at) VALUES (%s, %s, %s, %s, %s, %s)",
        (stream, group, first, last, token, expires_at),
    )
    await c.execute("UPDATE log_groups SET claimed = %s WHERE stream = %s AND grp = %s", (last, stream, group))
    return LogClaim(stream, group, first, last, token, records, expires_at)


async def commit(c: Conn, claim: LogClaim) -> bool:
    locked = await _lock_group(c, claim.stream, claim.group, create=False)
    if locked is None:
        return False
    position, _ = locked
    cursor = await c.execute(
        "UPDATE log_claims SET committed = true WHERE stream = %s AND grp = %s AND first = %s AND last = %s"
        " AND token = %s AND NOT committed RETURNING true",
        (claim.stream, claim.group, claim.first, claim.last, claim.token),
    )
    if await cursor.fetchone() is None:  # RETURNING, not rowcount: commits run in pipelined transactions
        return False
    cursor = await c.execute(
        "SELECT first, last FROM log_claims WHERE stream = %s AND grp = %s AND committed ORDER BY first",
        (claim.stream, claim.group),
    )
    start = position
    for first, last in await cursor.fetchall():
        if int(first) != position + 1:
            break
        position = int(last)
    if position != start:
        await c.execute(
            "DELETE FROM log_claims WHERE stream = %s AND grp = %s AND first <= %s",
            (claim.stream, claim.group, position),
        )
        await c.execute(
            "UPDATE log_groups SET position = %s WHERE stream = %s AND grp = %s",
            (position, claim.stream, claim.group),
        )
    return True


async def extend(c: Conn, claim: LogClaim, expires_at: float) -> bool:
    cursor = await c.execute(
        "UPDATE log_claims SET expires_at = %s WHERE stream = %s AND grp = %s AND first = %s AND last = %s"
        " AND token = %s AND NOT committed",
        (expires_at, claim.stream, claim.group, claim.first, claim.last, claim.token),
    )
    return cursor.rowcount == 1


async def release(c: Conn, claim: LogClaim, now: float, token: str) -> bool:
    # Lapsed at once, under a token nobody holds: the next claim of the group takes it.
    cursor = await c.execute(
        "UPDATE log_claims SET expires_at = %s, token = %s WHERE stream = %s AND grp = %s AND first = %s"
        " AND last = %s AND token = %s AND NOT committed",
        (now, token, claim.stream, claim.group, claim.first, claim.last, claim.token),
    )
    return cursor.rowcount == 1


async def position(c: Conn, stream: str, group: str) -> int:
    cursor = await c.execute("SELECT position FROM log_groups WHERE stream = %s AND grp = %s", (stream, group))
    row = await cursor.fetchone()
    return 0 if row is None else int(row[0])


async def seek(c: Conn, stream: str, group: str, offset: int) -> None:
    await _lock_group(c, stream, group, create=True)
    await c.execute("DELETE FROM log_claims WHERE stream = %s AND grp = %s", (stream, group))
    await c.execute(
        "UPDATE log_groups SET position = %s, claimed = %s WHERE stream = %s AND grp = %s",
        (offset, offset, stream, group),
    )


async def advance(c: Conn, stream: str, group: str, expected: int, offset: int) -> bool:
    held = await _lock_group(c, stream, group, create=expected == 0)
    if held is None or held[0] != expected:
        return False
    cursor = await c.execute(
        "SELECT 1 FROM log_claims WHERE stream = %s AND grp = %s AND first <= %s LIMIT 1", (stream, group, offset)
    )
    if await cursor.fetchone() is not None:
        return False
    await c.execute(
        "UPDATE log_groups SET position = %s, claimed = GREATEST(claimed, %s) WHERE stream = %s AND grp = %s",
        (offset, offset, stream, group),
    )
    return True


async def group_names(c: Conn, stream: str) -> list[str]:
    cursor = await c.execute("SELECT grp FROM log_groups WHERE stream = %s", (stream,))
    return [name for (name,) in await cursor.fetchall()]
