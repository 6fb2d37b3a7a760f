"""Event-log operations on a SQLite connection.

Appends arrive merged (see `triggerfish.store._sqlite_merge`): `write_appends`
takes every waiting append at once, with one read of each stream's next
offset, one `executemany` for all records and one update per stream. Each
caller's records stay contiguous and in order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from triggerfish.store.base import LogRecord, RecordKeys

#: What one append is: its stream, its bodies, the time it is written at, and (optionally) each body's keys.
Appending = tuple[str, list[bytes], float] | tuple[str, list[bytes], float, "list[RecordKeys] | None"]


def write_appends(c: sqlite3.Connection, appends: Sequence[Appending]) -> list[list[LogRecord]]:
    """Append each (stream, bodies, now[, keys]) in order; returns each one's records."""
    state: dict[str, list[float]] = {}  # stream -> [next_offset, last_time, bytes]
    for append in appends:
        stream = append[0]
        if stream not in state:
            row = c.execute("SELECT next_offset, last_time, bytes FROM streams WHERE name = ?", (stream,)).fetchone()
            state[stream] = [1, float("-inf"), 0] if row is None else list(row)
    rows: list[tuple[str, int, float, int, bytes]] = []
    keyed: list[tuple[str, int, float, int, bytes, str | None, str | None]] = []
    out: list[list[LogRecord]] = []
    for append in appends:
        stream, bodies, now = append[0], append[1], append[2]
        keys = append[3] if len(append) > 3 else None
        s = state[stream]
        # Times never decrease within a stream, even if the clock steps back, so time ranges map to offset ranges.
        at = max(now, s[1])
        first = int(s[0])
        records = [LogRecord(stream, first + i, at, body) for i, body in enumerate(bodies)]
        if keys is None:
            rows.extend((stream, r.offset, at, len(r.data), r.data) for r in records)
        else:
            keyed.extend(
                (
                    stream,
                    r.offset,
                    at,
                    len(r.data),
                    r.data,
                    found[0] if found else None,
                    found[1] if len(found) > 1 else None,
                )
                for r, found in zip(records, keys, strict=True)
            )
        s[0], s[1], s[2] = first + len(records), at, s[2] + sum(len(b) for b in bodies)
        out.append(records)
    if rows:
        c.executemany('INSERT INTO log_records (stream, "offset", time, size, data) VALUES (?, ?, ?, ?, ?)', rows)
    if keyed:
        c.executemany(
            'INSERT INTO log_records (stream, "offset", time, size, data, key1, key2) VALUES (?, ?, ?, ?, ?, ?, ?)',
            keyed,
        )
    c.executemany(
        "INSERT INTO streams (name, next_offset, last_time, bytes) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE"
        " SET next_offset = excluded.next_offset, last_time = excluded.last_time, bytes = excluded.bytes",
        [(stream, int(s[0]), s[1], int(s[2])) for stream, s in state.items()],
    )
    return out


def find(c: sqlite3.Connection, low: str, high: str | None, limit: int) -> list[tuple[str, LogRecord]]:
    """Records with a key in [low, high) (None: no upper bound), in key order, each with the key: one range of each
    key column's index (each partial: only keyed records are in it)."""
    bound = "" if high is None else " AND {0} < ?"
    select = 'SELECT {0}, stream, "offset", time, data FROM log_records WHERE {0} >= ?' + bound
    rows = c.execute(
        f"{select.format('key1')} UNION ALL {select.format('key2')} ORDER BY 1 LIMIT ?",
        (low, *(() if high is None else (high,)), low, *(() if high is None else (high,)), limit),
    ).fetchall()
    return [(key, LogRecord(stream, offset, t, data)) for key, stream, offset, t, data in rows]


def _first_offset_at(c: sqlite3.Connection, stream: str, at: float) -> int | None:
    """The first offset whose time is at or after `at`, or None.

    Times never decrease along a stream's offsets, so this is a binary search
    over the offset index: a time index would cost every append an index
    update and the commit a page, for the benefit of rare reads by time.
    """
    row = c.execute('SELECT "offset" FROM log_records WHERE stream = ? ORDER BY "offset" LIMIT 1', (stream,)).fetchone()
    if row is None:
        return None
    low, high = int(row[0]), last_offset(c, stream) + 1
    while low < high:
        middle = (low + high) // 2
        found = c.execute(
            'SELECT "offset", time FROM log_records WHERE stream = ? AND "offset" >= ? ORDER BY "offset" LIMIT 1',
            (stream, middle),
        ).fetchone()
        if found is None or found[1] >= at:
            high = middle
        else:
            low = int(found[0]) + 1
    return None if low > last_offset(c, stream) else low


def read(
    c: sqlite3.Connection, stream: str, after: int, since: float | None, until: float | None, limit: int
) -> list[LogRecord]:
    if since is not None:
        first = _first_offset_at(c, stream, since)
        if first is None:
            return []
        after = max(after, first - 1)
    end = None if until is None else _first_offset_at(c, stream, until)
    rows = c.execute(
        'SELECT "offset", time, data FROM log_records WHERE stream = ? AND "offset" > ? AND "offset" < ?'
        ' ORDER BY "offset" LIMIT ?',
        (stream, after, 2**63 - 1 if end is None else end, limit),
    ).fetchall()
    return [LogRecord(stream, offset, t, data) for offset, t, data in rows]


def last_offset(c: sqlite3.Connection, stream: str) -> int:
    row = c.execute("SELECT next_offset FROM streams WHERE name = ?", (stream,)).fetchone()
    return 0 if row is None else int(row[0]) - 1


def trim(c: sqlite3.Connection, stream: str, before: float | None, max_bytes: int | None) -> int:
    row = c.execute("SELECT bytes FROM streams WHERE name = ?", (stream,)).fetchone()
    if row is None:
        return 0
    size: int = row[0]
    cut = 0  # records with offset <= cut go
    if before is not None:
        end = _first_offset_at(c, stream, before)
        cut = last_offset(c, stream) if end is None else end - 1
    cut_size, cut_count = c.execute(
        'SELECT coalesce(SUM(size), 0), COUNT(*) FROM log_records WHERE stream = ? AND "offset" <= ?', (stream, cut)
    ).fetchone()
    size -= cut_size
    if max_bytes is not None and size > max_bytes:
        for offset, record_size in c.execute(
            'SELECT "offset", size FROM log_records WHERE stream = ? AND "offset" > ? ORDER BY "offset"', (stream, cut)
        ).fetchall():
            if size <= max_bytes:
                break
            size -= record_size
            cut = offset
            cut_count += 1
    if cut_count:
        c.execute('DELETE FROM log_records WHERE stream = ? AND "offset" <= ?', (stream, cut))
        c.execute("UPDATE streams SET bytes = ? WHERE name = ?", (size, stream))
    return int(cut_count)


def stream_names(c: sqlite3.Connection) -> list[str]:
    return [name for (name,) in c.execute("SELECT name FROM streams")]
