"""Consumer groups on a SQLite connection: claims, commits and positions, inside the writer's transaction.

A group's claimed ranges tile its stream from offset 1 without gaps (each new
range starts after `claimed`, the highest offset the group ever claimed), so
the position advances over committed ranges one after another; ranges behind
it are deleted. Running in the writer's transaction makes every claim and
commit atomic against every other process writing the file.
"""

from __future__ import annotations

import sqlite3

from triggerfish.store import _sqlite_log as lg
from triggerfish.store.base import LogClaim


def claim(
    c: sqlite3.Connection, stream: str, group: str, limit: int, lease: float, now: float, token: str
) -> LogClaim | None:
    expires_at = now + lease
    lapsed = c.execute(
        "SELECT first, last FROM log_claims WHERE stream = ? AND grp = ? AND committed = 0 AND expires_at <= ?"
        " ORDER BY first LIMIT 1",
        (stream, group, now),
    ).fetchone()
    if lapsed is not None:
        first, last = lapsed
        c.execute(
            "UPDATE log_claims SET token = ?, expires_at = ? WHERE stream = ? AND grp = ? AND first = ?",
            (token, expires_at, stream, group, first),
        )
        records = [r for r in lg.read(c, stream, first - 1, None, None, last - first + 1) if r.offset <= last]
        return LogClaim(stream, group, first, last, token, records, expires_at)
    row = c.execute("SELECT claimed FROM log_groups WHERE stream = ? AND grp = ?", (stream, group)).fetchone()
    claimed = 0 if row is None else int(row[0])
    records = lg.read(c, stream, claimed, None, None, limit)
    if not records:
        return None
    first, last = claimed + 1, records[-1].offset
    c.execute(
        "INSERT INTO log_claims (stream, grp, first, last, token, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        (stream, group, first, last, token, expires_at),
    )
    c.execute(
        "INSERT INTO log_groups (stream, grp, position, claimed) VALUES (?, ?, 0, ?)"
        " ON CONFLICT (stream, grp) DO UPDATE SET claimed = excluded.claimed",
        (stream, group, last),
    )
    return LogClaim(stream, group, first, last, token, records, expires_at)


def claimable(c: sqlite3.Connection, stream: str, group: str, now: float) -> bool:
    """Whether a claim would find something: a lapsed range, or records past what the group claimed."""
    row = c.execute("SELECT claimed FROM log_groups WHERE stream = ? AND grp = ?", (stream, group)).fetchone()
    if lg.last_offset(c, stream) > (0 if row is None else int(row[0])):
        return True
    lapsed = c.execute(
        "SELECT 1 FROM log_claims WHERE stream = ? AND grp = ? AND committed = 0 AND expires_at <= ? LIMIT 1",
        (stream, group, now),
    ).fetchone()
    return lapsed is not None


def _held(c: sqlite3.Connection, claim: LogClaim) -> bool:
    row = c.execute(
        "SELECT 1 FROM log_claims WHERE stream = ? AND grp = ? AND first = ? AND last = ? AND token = ?"
        " AND committed = 0",
        (claim.stream, claim.group, claim.first, claim.last, claim.token),
    ).fetchone()
    return row is not None


def commit(c: sqlite3.Connection, claim: LogClaim) -> bool:
    if not _held(c, claim):
        return False
    c.execute(
        "UPDATE log_claims SET committed = 1 WHERE stream = ? AND grp = ? AND first = ?",
        (claim.stream, claim.group, claim.first),
    )
    (position,) = c.execute(
        "SELECT position FROM log_groups WHERE stream = ? AND grp = ?", (claim.stream, claim.group)
    ).fetchone()
    start = position
    while True:
        head = c.execute(
            "SELECT last FROM log_claims WHERE stream = ? AND grp = ? AND first = ? AND committed = 1",
            (claim.stream, claim.group, position + 1),
        ).fetchone()
        if head is None:
            break
        position = int(head[0])
    if position != start:
        c.execute(
            "DELETE FROM log_claims WHERE stream = ? AND grp = ? AND first <= ?", (claim.stream, claim.group, position)
        )
        c.execute(
            "UPDATE log_groups SET position = ? WHERE stream = ? AND grp = ?", (position, claim.stream, claim.group)
        )
    return True


def extend(c: sqlite3.Connection, claim: LogClaim, expires_at: float) -> bool:
    cursor = c.execute(
        "UPDATE log_claims SET expires_at = ? WHERE stream = ? AND grp = ? AND first = ? AND last = ? AND token = ?"
        " AND committed = 0",
        (expires_at, claim.stream, claim.group, claim.first, claim.last, claim.token),
    )
    return cursor.rowcount == 1


def release(c: sqlite3.Connection, claim: LogClaim, now: float, token: str) -> bool:
    # Lapsed at once, under a token nobody holds: the next claim of the group takes it.
    cursor = c.execute(
        "UPDATE log_claims SET expires_at = ?, token = ? WHERE stream = ? AND grp = ? AND first = ? AND last = ?"
        " AND token = ? AND committed = 0",
        (now, token, claim.stream, claim.group, claim.first, claim.last, claim.token),
    )
    return cursor.rowcount == 1


def position(c: sqlite3.Connection, stream: str, group: str) -> int:
    row = c.execute("SELECT position FROM log_groups WHERE stream = ? AND grp = ?", (stream, group)).fetchone()
    return 0 if row is None else int(row[0])


def seek(c: sqlite3.Connection, stream: str, group: str, offset: int) -> None:
    c.execute("DELETE FROM log_claims WHERE stream = ? AND grp = ?", (stream, group))
    c.execute(
        "INSERT INTO log_groups (stream, grp, position, claimed) VALUES (?, ?, ?, ?) ON CONFLICT (stream, grp)"
        " DO UPDATE SET position = excluded.position, claimed = excluded.claimed",
        (stream, group, offset, offset),
    )


def advance(c: sqlite3.Connection, stream: str, group: str, expected: int, offset: int) -> bool:
    row = c.execute("SELECT position FROM log_groups WHERE stream = ? AND grp = ?", (stream, group)).fetchone()
    if (0 if row is None else int(row[0])) != expected:
        return False
    claimed = c.execute(
        "SELECT 1 FROM log_claims WHERE stream = ? AND grp = ? AND first <= ? LIMIT 1", (stream, group, offset)
    ).fetchone()
    if claimed is not None:
        return False
    c.execute(
        "INSERT INTO log_groups (stream, grp, position, claimed) VALUES (?, ?, ?, ?) ON CONFLICT (stream, grp)"
        " DO UPDATE SET position = excluded.position, claimed = max(claimed, excluded.claimed)",
        (stream, group, offset, offset),
    )
    return True


def group_names(c: sqlite3.Connection, stream: str) -> list[str]:
    return [name for (name,) in c.execute("SELECT grp FROM log_groups WHERE stream = ?", (stream,))]
