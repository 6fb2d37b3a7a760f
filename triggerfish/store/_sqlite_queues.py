"""Queue operations on a SQLite connection; each runs inside the writer's transaction (or on the reader).

Every function here is synchronous and takes the connection first: the
worker thread calls it, never the event loop.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import orjson

from triggerfish import _random
from triggerfish.store.base import Message, OutgoingMessage, QueueConfig, QueueStats, SendResult

_COLUMNS = "seq, id, body, attributes, grp, dedup_id, sent_at, receive_count, first_received_at"


@functools.lru_cache(maxsize=256)
def _parse_config(text: str | None) -> QueueConfig:
    return QueueConfig() if text is None else QueueConfig(**json.loads(text))


def load_config(c: sqlite3.Connection, queue: str) -> QueueConfig:
    row = c.execute("SELECT config FROM queues WHERE name = ?", (queue,)).fetchone()
    return _parse_config(None if row is None else row[0])


def _registered_config(c: sqlite3.Connection, queue: str) -> QueueConfig:
    """The queue's config, the queue registered (with the defaults) first if it never was: one statement per send
    to a known queue, not a registration that changes nothing and then the read."""
    row = c.execute("SELECT config FROM queues WHERE name = ?", (queue,)).fetchone()
    if row is None:
        c.execute("INSERT INTO queues (name) VALUES (?)", (queue,))
        return _parse_config(None)
    return _parse_config(row[0])


def configure(c: sqlite3.Connection, queue: str, config: QueueConfig) -> None:
    old = load_config(c, queue)
    c.execute(
        "INSERT INTO queues (name, config) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET config = excluded.config",
        (queue, json.dumps(asdict(config), sort_keys=True)),
    )
    if old.fifo == config.fifo:
        return
    if config.fifo:
        c.execute(
            "UPDATE messages SET ready = (grp IS NULL OR seq = (SELECT MIN(m.seq) FROM messages m"
            " WHERE m.queue = messages.queue AND m.grp = messages.grp)) WHERE queue = ?",
            (queue,),
        )
    else:
        c.execute("UPDATE messages SET ready = 1 WHERE queue = ? AND ready = 0", (queue,))


def send(c: sqlite3.Connection, queue: str, messages: list[OutgoingMessage], now: float) -> list[SendResult]:
    return write_sends(c, [(queue, messages, now)])[0]


@dataclass(slots=True, eq=False)
class SendLease:
    """A lease a send's own write makes on up to `count` of the messages it stores (`_sqlite_ahead` says why):
    each is stored already received once, its receipt set and invisible for the lease, and handed over as the
    `Message` a receive would have made of it. Only a plain message of a standard queue is leased so (no group,
    deduplication id or delay); the rest are stored as ever. The writer fills in `messages` and `drained`."""

    count: int
    visibility_timeout: float | None
    #: The messages leased, in the order they were stored; set anew each time the write runs.
    messages: list[Message] = field(default_factory=list)
    #: Whether nothing was left receivable after the write (no message it did not lease, none sent before).
    drained: bool = False


def write_sends(
    c: sqlite3.Connection,
    sends: list[tuple[str, list[OutgoingMessage], float]],
    leases: Sequence[SendLease | None] = (),
) -> list[list[SendResult]]:
    """Store each (queue, messages, now) in order, with one `executemany` for all; returns each one's results.
    `leases[i]`, where given, leases up to its count of the `i`th send's messages in the same statement."""
    configs: dict[str, QueueConfig] = {}
    rows: list[tuple[object, ...]] = []
    dedup_rows: list[tuple[str, str, str, float]] = []
    seen_here: dict[tuple[str, str], str] = {}  # (queue, dedup id) -> message id, for repeats within this write
    groups_here: set[tuple[str, str]] = set()
    everything: list[list[SendResult]] = []
    ids = _new_ids(sum(len(messages) for _, messages, _ in sends))
    leasing: list[tuple[SendLease, str, float]] = []
    for index, (queue, messages, now) in enumerate(sends):
        config = configs.get(queue)
        if config is None:
            config = configs[queue] = _registered_config(c, queue)
        lease = leases[index] if index < len(leases) else None
        leased: list[Message] = []
        room, lease_until = 0, now
        if lease is not None:
            lease.messages, lease.drained = leased, False  # a write run again (savepoints) starts afresh
            if not config.fifo:
                room = lease.count
                leasing.append((lease, queue, now))
                timeout = config.visibility_timeout if lease.visibility_timeout is None else lease.visibility_timeout
                lease_until = now + timeout
        results: list[SendResult] = []
        for out in messages:
            if out.dedup_id is not None:
                earlier = seen_here.get((queue, out.dedup_id))
                if earlier is None:
                    row = c.execute(
                        "SELECT message_id FROM dedup WHERE queue = ? AND dedup_id = ? AND expires_at > ?",
                        (queue, out.dedup_id, now),
                    ).fetchone()
                    earlier = None if row is None else row[0]
                if earlier is not None:
                    results.append(SendResult(earlier, duplicate=True))
                    continue
            message_id = next(ids)
            ready = 1
            if config.fifo and out.group is not None:
                ready = int((queue, out.group) not in groups_here and not _group_exists(c, queue, out.group))
                groups_here.add((queue, out.group))
            attributes = _attributes_text(out.attributes) if out.attributes else None
            if room and out.group is None and out.dedup_id is None and not out.delay:
                room -= 1
                receipt = f"{message_id}.{_random.take(8).hex()}"
                rows.append((queue, message_id, out.body, attributes, None, None, now, lease_until, 1, receipt, 1, now))
                leased.append(
                    Message(
                        queue=queue,
                        message_id=message_id,
                        receipt=receipt,
                        body=out.body,
                        attributes=dict(out.attributes) if out.attributes else {},
                        group=None,
                        dedup_id=None,
                        receive_count=1,
                        sent_at=now,
                        first_received_at=now,
                        lease_expires_at=lease_until,
                    )
                )
            else:
                # Not leased: no receipt, never received.
                row = (queue, message_id, out.body, attributes, out.group, out.dedup_id, now, now + out.delay, ready)
                rows.append((*row, None, 0, None))
            if out.dedup_id is not None and config.dedup_window > 0:
                seen_here[(queue, out.dedup_id)] = message_id
                dedup_rows.append((queue, out.dedup_id, message_id, now + config.dedup_window))
            results.append(SendResult(message_id))
        everything.append(results)
    c.executemany(
        "INSERT INTO messages (queue, id, body, attributes, grp, dedup_id, sent_at, visible_at, ready,"
        " receipt, receive_count, first_received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    if dedup_rows:
        c.executemany("INSERT OR REPLACE INTO dedup VALUES (?, ?, ?, ?)", dedup_rows)
    for lease, queue, now in leasing:
        # Whether anything is receivable after the write: the receive that takes a lease smaller than its batch
        # then knows the queue drained (see `_sqlite_ahead.lease`), and waits for a send rather than looking.
        lease.drained = not has_ready(c, queue, now)
    return everything


def _attributes_text(attributes: Mapping[str, str]) -> str:
    """A message's attributes as the JSON text stored with it (every async invocation's envelope is one)."""
    try:
        # orjson first: several times quicker than json, and this runs in the store's writer thread per message.
        return orjson.dumps(attributes).decode()
    except TypeError:  # not a dict (the checks make one), or a subclass of str as a name: orjson refuses both
        return json.dumps(dict(attributes))


def receive(
    c: sqlite3.Connection, queue: str, max_messages: int, visibility_timeout: float | None, now: float
) -> tuple[list[Message], str | None]:
    """Lease up to `max_messages`; also returns the dead-letter queue's name if a message moved there."""
    config = load_config(c, queue)
    lease_until = now + (config.visibility_timeout if visibility_timeout is None else visibility_timeout)
    out: list[Message] = []
    dead_lettered: str | None = None
    # One draw for the whole batch, from the pool of random bytes (triggerfish/_random.py), most often
    # without a system call: in the writer thread every system call is also a round of handing the GIL to and fro.
    randomness = _random.take(8 * max_messages).hex()
    tokens = (randomness[i : i + 16] for i in range(0, len(randomness), 16))
    while len(out) < max_messages:
        rows = c.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE queue = ? AND ready = 1 AND visible_at <= ?"
            " ORDER BY visible_at, seq LIMIT ?",
            (queue, now, max_messages - len(out)),
        ).fetchall()
        leases: list[tuple[str, float, float, int]] = []
        removed = False
        for seq, message_id, body, attributes, group, dedup_id, sent_at, count, first in rows:
            if sent_at + config.retention <= now:
                _delete(c, queue, config, seq, group)
                removed = True
            elif config.max_receives is not None and count >= config.max_receives:
                assert config.dead_letter is not None  # QueueConfig sets both or neither
                _dead_letter(c, queue, config, config.dead_letter, seq, group, now)
                dead_lettered = config.dead_letter
                removed = True
            else:
                receipt = f"{message_id}.{next(tokens, None) or _random.take(8).hex()}"
                leases.append((receipt, lease_until, now, seq))
                out.append(
                    Message(
                        queue=queue,
                        message_id=message_id,
                        receipt=receipt,
                        body=body,
                        attributes={} if attributes is None else orjson.loads(attributes),
                        group=group,
                        dedup_id=dedup_id,
                        receive_count=count + 1,
                        sent_at=sent_at,
                        first_received_at=now if first is None else first,
                        lease_expires_at=lease_until,
                    )
                )
        c.executemany(
            "UPDATE messages SET receipt = ?, visible_at = ?, receive_count = receive_count + 1,"
            " first_received_at = coalesce(first_received_at, ?) WHERE seq = ?",
            leases,
        )
        # Removing a FIFO group's head can make the next one a candidate; otherwise nothing more is ready.
        if not removed:
            break
    return out, dead_lettered


def has_ready(c: sqlite3.Connection, queue: str, now: float) -> bool:
    """Whether a receive would find a candidate (possibly one to drop or dead-letter)."""
    row = c.execute(
        "SELECT 1 FROM messages WHERE queue = ? AND ready = 1 AND visible_at <= ? LIMIT 1", (queue, now)
    ).fetchone()
    return row is not None


def ack(c: sqlite3.Connection, queue: str, receipts: list[str], now: float) -> list[bool]:
    # One statement for the whole batch: the ids find the rows through the (queue, id) index,
    # and the receipt must match too, so a stale or forged receipt deletes nothing.
    # orjson, not json: this runs in the store's writer thread once per batch of acknowledgements.
    ids = orjson.dumps([receipt.partition(".")[0] for receipt in receipts]).decode()
    deleted = c.execute(
        "DELETE FROM messages WHERE queue = ? AND id IN (SELECT value FROM json_each(?))"
        " AND receipt IN (SELECT value FROM json_each(?)) AND visible_at > ? RETURNING receipt, grp",
        (queue, ids, orjson.dumps(receipts).decode(), now),
    ).fetchall()
    groups = {group for _, group in deleted if group is not None}
    if groups and load_config(c, queue).fifo:
        for group in groups:
            _promote(c, queue, group)
    gone = {receipt for receipt, _ in deleted}
    done: list[bool] = []
    for receipt in receipts:
        done.append(receipt in gone)
        gone.discard(receipt)  # a receipt listed twice acknowledges once
    return done


def release(c: sqlite3.Connection, queue: str, receipt: str, delay: float, now: float) -> bool:
    cursor = c.execute(
        "UPDATE messages SET receipt = NULL, visible_at = ?"
        " WHERE queue = ? AND id = ? AND receipt = ? AND visible_at > ?",
        (now + delay, queue, receipt.partition(".")[0], receipt, now),
    )
    return cursor.rowcount == 1


def extend(c: sqlite3.Connection, queue: str, receipt: str, visibility_timeout: float, now: float) -> bool:
    cursor = c.execute(
        "UPDATE messages SET visible_at = ? WHERE queue = ? AND id = ? AND receipt = ? AND visible_at > ?",
        (now + visibility_timeout, queue, receipt.partition(".")[0], receipt, now),
    )
    return cursor.rowcount == 1


def purge(c: sqlite3.Connection, queue: str) -> int:
    return c.execute("DELETE FROM messages WHERE queue = ?", (queue,)).rowcount


def stats(c: sqlite3.Connection, queue: str, now: float) -> QueueStats:
    cutoff = now - load_config(c, queue).retention
    visible, delayed, in_flight, oldest, next_visible = c.execute(
        # Named parameters: numbered ones (`?1`) bound from a sequence are deprecated from Python 3.12 and an
        # error from 3.14.
        "SELECT coalesce(SUM(visible_at <= :now), 0),"
        " coalesce(SUM(visible_at > :now AND receipt IS NULL), 0),"
        " coalesce(SUM(visible_at > :now AND receipt IS NOT NULL), 0),"
        " MIN(sent_at), MIN(CASE WHEN visible_at > :now AND receipt IS NULL THEN visible_at END)"
        " FROM messages WHERE queue = :queue AND sent_at > :cutoff",
        {"now": now, "queue": queue, "cutoff": cutoff},
    ).fetchone()
    return QueueStats(visible, delayed, in_flight, None if oldest is None else max(0.0, now - oldest), next_visible)


def queue_names(c: sqlite3.Connection) -> list[str]:
    return [name for (name,) in c.execute("SELECT name FROM queues")]


def sweep_dedup(c: sqlite3.Connection, now: float) -> None:
    c.execute("DELETE FROM dedup WHERE expires_at <= ?", (now,))


# --- helpers ---------------------------------------------------------------------------------


def _new_ids(count: int) -> Iterator[str]:
    """`count` time-ordered (version 7) UUIDs in hex: sent at the end of the `(queue, id)` index and acknowledged
    from its start, rather than each on a page of its own (triggerfish._random says why)."""
    yield from _random.uuid7_texts(count, "")


def _group_exists(c: sqlite3.Connection, queue: str, group: str) -> bool:
    return (
        c.execute("SELECT 1 FROM messages WHERE queue = ? AND grp = ? LIMIT 1", (queue, group)).fetchone() is not None
    )


def _promote(c: sqlite3.Connection, queue: str, group: str) -> None:
    c.execute(
        "UPDATE messages SET ready = 1 WHERE seq = (SELECT MIN(seq) FROM messages WHERE queue = ? AND grp = ?)",
        (queue, group),
    )


def _delete(c: sqlite3.Connection, queue: str, config: QueueConfig, seq: int, group: str | None) -> None:
    c.execute("DELETE FROM messages WHERE seq = ?", (seq,))
    if config.fifo and group is not None:
        _promote(c, queue, group)


def _dead_letter(
    c: sqlite3.Connection, queue: str, config: QueueConfig, dead_letter: str, seq: int, group: str | None, now: float
) -> None:
    c.execute("INSERT OR IGNORE INTO queues (name) VALUES (?)", (dead_letter,))
    ready = 1
    if group is not None and load_config(c, dead_letter).fifo:
        ready = int(not _group_exists(c, dead_letter, group))
    # Copied in SQL so the body never travels through Python; a new seq puts it last in the dead-letter queue.
    c.execute(
        "INSERT INTO messages (queue, id, body, attributes, grp, dedup_id, sent_at, visible_at, ready)"
        " SELECT ?, id, body, attributes, grp, dedup_id, sent_at, ?, ? FROM messages WHERE seq = ?",
        (dead_letter, now, ready, seq),
    )
    _delete(c, queue, config, seq, group)
