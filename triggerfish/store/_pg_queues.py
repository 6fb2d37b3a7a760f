"""Queue statements for PostgreSQL; each runs in the caller's transaction.

Receivers on many nodes take candidates with `FOR UPDATE SKIP LOCKED`, so they
never wait for or take each other's rows. A FIFO queue marks only each group's
head `ready`; whoever adds to a group or removes its head first takes an
advisory lock on (queue, group), so a send and an acknowledgement racing on
two nodes cannot both miss the new head.

A receive should read the queue's head in `messages_ready`'s order and stop
after the batch, whatever the backlog. On a table without statistics (a new
schema, until autovacuum's first ANALYZE) the planner expects a handful of
candidates and may rather fetch every visible message with a bitmap scan and
sort them, a cost that grows with the backlog (1.1 ms per batch of 50 behind
3,000 messages, against 0.05 ms). `receive`'s transaction turns sorting off
(`_IN_INDEX_ORDER`), which leaves the ordered index scan as the one plan without
a sort. `receive_at_once` does not: a SET and a RESET around its statement cost
the platform, whose CPU limits the async path, about 0.1 ms more per receive.
Its plan comes from statistics instead: the store ANALYZEs `messages` when a
lease first comes back full and the table has none (`Engine.analyze_soon`);
and its batch size is written into its text, so that the server keeps one
generic plan per size rather than planning every lease (`_lease_at_once`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import orjson
from psycopg import AsyncConnection

from triggerfish import _random
from triggerfish.store._pg_arrays import EncodedArray, bool_array, bytea_array, float8_array, int8_array, text_array
from triggerfish.store._sqlite_queues import _attributes_text, _parse_config
from triggerfish.store.base import Message, OutgoingMessage, QueueConfig, QueueStats, SendResult

Conn = AsyncConnection[Any]

_COLUMNS = "seq, id, body, attributes, grp, dedup_id, sent_at, receive_count, first_received_at"

#: Before a receive's statements, within their transaction: see the module's docstring.
_IN_INDEX_ORDER = "SET LOCAL enable_sort = off"


async def load_config(c: Conn, queue: str) -> QueueConfig:
    cursor = await c.execute("SELECT config FROM queues WHERE name = %s", (queue,))
    row = await cursor.fetchone()
    return _parse_config(None if row is None else row[0])


async def _lock_groups(c: Conn, queue: str, groups: set[str]) -> None:
    for group in sorted(groups):
        await c.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{queue}\x1f{group}",))


async def configure(c: Conn, queue: str, config: QueueConfig) -> None:
    await c.execute("INSERT INTO queues (name) VALUES (%s) ON CONFLICT DO NOTHING", (queue,))
    cursor = await c.execute("SELECT config FROM queues WHERE name = %s FOR UPDATE", (queue,))
    row = await cursor.fetchone()
    old = _parse_config(None if row is None else row[0])
    await c.execute(
        "UPDATE queues SET config = %s WHERE name = %s", (json.dumps(asdict(config), sort_keys=True), queue)
    )
    if old.fifo == config.fifo:
        return
    if config.fifo:
        await c.execute(
            "UPDATE messages SET ready = (grp IS NULL OR seq = (SELECT min(m.seq) FROM messages m"
            " WHERE m.queue = messages.queue AND m.grp = messages.grp)) WHERE queue = %s",
            (queue,),
        )
    else:
        await c.execute("UPDATE messages SET ready = true WHERE queue = %s AND NOT ready", (queue,))


async def write_sends(c: Conn, sends: list[tuple[str, list[OutgoingMessage], float]]) -> list[list[SendResult]]:
    """Store each (queue, messages, now) in order, with one insert for all; returns each one's results."""
    names = sorted({queue for queue, _, _ in sends})
    await c.execute(
        "INSERT INTO queues (name) SELECT n FROM unnest(%b::text[]) n ON CONFLICT DO NOTHING", (text_array(names),)
    )
    # A queue's config only matters to messages with a group (FIFO) or a deduplication id: without any, nothing
    # waits for it, and in a pipelined transaction the whole send is then the commit's round trip.
    needed = {
        queue for queue, messages, _ in sends if any(m.group is not None or m.dedup_id is not None for m in messages)
    }
    configs = {name: await load_config(c, name) if name in needed else QueueConfig() for name in names}
    fifo_groups = {
        (queue, m.group)
        for queue, messages, _ in sends
        for m in messages
        if m.group is not None and configs[queue].fifo
    }
    for queue in names:
        await _lock_groups(c, queue, {group for q, group in fifo_groups if q == queue})
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [], [])
    seen_here: dict[tuple[str, str], str] = {}
    groups_here: set[tuple[str, str]] = set()
    everything: list[list[SendResult]] = []
    ids = _new_ids(sum(len(messages) for _, messages, _ in sends))
    for queue, messages, now in sends:
        config = configs[queue]
        results: list[SendResult] = []
        for out in messages:
            message_id = next(ids)
            if out.dedup_id is not None and config.dedup_window > 0:
                earlier = seen_here.get((queue, out.dedup_id)) or await _claim_dedup(
                    c, queue, out.dedup_id, message_id, now, now + config.dedup_window
                )
                if earlier is not None:
                    results.append(SendResult(earlier, duplicate=True))
                    continue
                seen_here[(queue, out.dedup_id)] = message_id
            ready = True
            if config.fifo and out.group is not None:
                ready = (queue, out.group) not in groups_here and not await _group_exists(c, queue, out.group)
                groups_here.add((queue, out.group))
            attributes = _attributes_text(out.attributes) if out.attributes else None
            row = (queue, message_id, out.body, attributes, out.group, out.dedup_id, now, now + out.delay, ready)
            for column, value in zip(columns, row, strict=True):
                column.append(value)
            results.append(SendResult(message_id))
        everything.append(results)
    if columns[0]:
        await c.execute(
            "INSERT INTO messages (queue, id, body, attributes, grp, dedup_id, sent_at, visible_at, ready)"
            " SELECT * FROM unnest(%b::text[], %b::text[], %b::bytea[], %b::text[], %b::text[], %b::text[],"
            " %b::float8[], %b::float8[], %b::bool[])",
            [encode(column) for encode, column in zip(_SEND_COLUMNS, columns, strict=True)],
        )
    return everything


#: How each column of `write_sends`'s insert goes to the server.
_SEND_COLUMNS: tuple[Callable[[Any], EncodedArray], ...] = (
    text_array,
    text_array,
    bytea_array,
    text_array,
    text_array,
    text_array,
    float8_array,
    float8_array,
    bool_array,
)


async def _claim_dedup(c: Conn, queue: str, dedup_id: str, message_id: str, now: float, until: float) -> str | None:
    """Record `dedup_id` for `message_id`; the earlier message's id when it is still in its window."""
    # ON CONFLICT waits for a concurrent sender of the same id, then sees its row: one of them wins.
    cursor = await c.execute(
        "INSERT INTO dedup (queue, dedup_id, message_id, expires_at) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (queue, dedup_id) DO UPDATE SET message_id = excluded.message_id,"
        " expires_at = excluded.expires_at WHERE dedup.expires_at <= %s RETURNING message_id",
        (queue, dedup_id, message_id, until, now),
    )
    if await cursor.fetchone() is not None:
        return None
    cursor = await c.execute("SELECT message_id FROM dedup WHERE queue = %s AND dedup_id = %s", (queue, dedup_id))
    row = await cursor.fetchone()
    assert row is not None
    return str(row[0])


async def receive(
    c: Conn, queue: str, max_messages: int, visibility_timeout: float | None, now: float
) -> tuple[list[Message], str | None]:
    """Lease up to `max_messages`; also returns the dead-letter queue's name if a message moved there."""
    await c.execute(_IN_INDEX_ORDER)
    config = await load_config(c, queue)
    lease_until = now + (config.visibility_timeout if visibility_timeout is None else visibility_timeout)
    out: list[Message] = []
    dead_lettered: str | None = None
    while len(out) < max_messages:
        cursor = await c.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE queue = %s AND ready AND visible_at <= %s"
            " ORDER BY visible_at, seq LIMIT %s FOR UPDATE SKIP LOCKED",
            (queue, now, max_messages - len(out)),
        )
        rows = await cursor.fetchall()
        seqs: list[int] = []
        receipts: list[str] = []
        removed = False
        for seq, message_id, body, attributes, group, dedup_id, sent_at, count, first in rows:
            if sent_at + config.retention <= now:
                await _delete(c, queue, config, seq, group)
                removed = True
            elif config.max_receives is not None and count >= config.max_receives:
                assert config.dead_letter is not None  # QueueConfig sets both or neither
                await _dead_letter(c, queue, config, config.dead_letter, seq, group, now)
                dead_lettered = config.dead_letter
                removed = True
            else:
                receipt = f"{message_id}.{secrets.token_hex(8)}"
                seqs.append(seq)
                receipts.append(receipt)
                out.append(
                    Message(
                        queue=queue,
                        message_id=message_id,
                        receipt=receipt,
                        body=bytes(body),
                        attributes={} if attributes is None else orjson.loads(attributes),
                        group=group,
                        dedup_id=dedup_id,
                        receive_count=count + 1,
                        sent_at=sent_at,
                        first_received_at=now if first is None else first,
                        lease_expires_at=lease_until,
                    )
                )
        if seqs:
            # The seqs twice: the list lets the table be read by its key whatever the planner thinks of the join (as
            # in `ack`).
            await c.execute(
                "UPDATE messages SET receipt = v.receipt, visible_at = %s, receive_count = receive_count + 1,"
                " first_received_at = coalesce(first_received_at, %s)"
                " FROM unnest(%b::bigint[], %b::text[]) AS v(seq, receipt)"
                " WHERE messages.seq = v.seq AND messages.seq = ANY(%b::bigint[])",
                (lease_until, now, int8_array(seqs), text_array(receipts), int8_array(seqs)),
            )
        # Removing a FIFO group's head can make the next one a candidate; otherwise nothing more is ready.
        if not removed:
            break
    return out, dead_lettered


#: The lease of `receive_at_once`: one statement (autocommit), locking the queue's head with SKIP LOCKED, counting
#: the candidates `receive` would rather remove (past the retention, or due for the dead-letter queue) and, only when
#: there are none, leasing them all. The queue's config is read in the statement; an unconfigured queue's defaults
#: come as a parameter. Receipts are the message id and 16 hex digits of a random UUID's MD5.
#:
#: Its commit does not wait for the write-ahead log to reach the disk (`synchronous_commit` off for this statement's
#: own transaction, set in `cfg`, which every other part reads, so it runs before the commit): that wait was a
#: flush per lease, the largest cost of a lease. What a server crash can then lose is only leases (and their
#: receive counts) committed in the last moments (`wal_writer_delay`): their messages come back visible and are
#: delivered again, as after a lease that ran out. It can never lose an acknowledgement or a record that depends on
#: the lease: the log is flushed in order, so a durable commit after this one (the settle that records and
#: acknowledges the invocation) makes this one durable too.
_LEASE_AT_ONCE_WITH_LIMIT = f"""
WITH cfg AS (
    SELECT coalesce((SELECT config::jsonb FROM queues WHERE name = %(queue)s), %(defaults)s::jsonb) AS c,
        set_config('synchronous_commit', 'off', true) AS async_commit
), head AS (
    SELECT seq, sent_at, receive_count, visible_at FROM messages
    WHERE queue = %(queue)s AND ready AND visible_at <= %(now)s
    ORDER BY visible_at, seq LIMIT {{limit}} FOR UPDATE SKIP LOCKED
), removable AS (
    SELECT count(*) AS n FROM head, cfg
    WHERE head.sent_at + (cfg.c->>'retention')::float8 <= %(now)s
       OR (cfg.c->>'max_receives' IS NOT NULL AND head.receive_count >= (cfg.c->>'max_receives')::int)
), leased AS (
    UPDATE messages m SET receipt = m.id || '.' || left(md5(gen_random_uuid()::text), 16),
        visible_at = %(now)s + coalesce(%(lease)s, (cfg.c->>'visibility_timeout')::float8),
        receive_count = m.receive_count + 1, first_received_at = coalesce(m.first_received_at, %(now)s)
    FROM head, cfg, removable
    WHERE m.seq = head.seq AND removable.n = 0
    RETURNING head.visible_at AS was_visible_at, {", ".join("m." + c for c in _COLUMNS.split(", "))},
        m.receipt, m.visible_at
)
SELECT removable.n, leased.* FROM removable LEFT JOIN leased ON true
"""
_DEFAULTS = json.dumps(asdict(QueueConfig()))
#: The lease's text per batch size, the size written into it: see `_lease_at_once`.
_LEASES_AT_ONCE: dict[int, str] = {}


def _lease_at_once(limit: int) -> str:
    """The lease statement for batches of `limit`, its LIMIT a constant.

    With the LIMIT a parameter the server planned every lease again (a custom plan: about 0.19 ms of a 0.67 ms
    lease of 20, the largest part of the statement's fixed cost): a generic plan must be costed without knowing
    the limit, as if for a tenth of the queue, which always looked dearer than a custom plan for a batch. With the
    limit in the text, the generic plan is costed for the batch it takes, and the server keeps it after its first
    five runs on a connection (planned for their parameters, as it plans every prepared statement's first five).
    Each batch size is a statement of its own; the dispatcher asks for a few sizes mostly (its buffer's room, half
    its prefetch to all of it: 16 to 18 in seven leases of ten in the drain)."""
    text = _LEASES_AT_ONCE.get(limit)
    if text is None:
        text = _LEASES_AT_ONCE[limit] = _LEASE_AT_ONCE_WITH_LIMIT.replace("{limit}", str(int(limit)))
    return text


async def receive_at_once(
    c: Conn, queue: str, max_messages: int, visibility_timeout: float | None, now: float
) -> list[Message] | None:
    """Lease up to `max_messages` in one round trip (no transaction of its own: one statement is one); None when
    the queue's head holds a message `receive` must remove or dead-letter first (then call that)."""
    # Prepared on its first run on a connection (not psycopg's fifth): the server plans its first five runs of a
    # prepared statement for their parameters before it compares them with a generic plan, and each batch size on
    # each pooled connection goes through that once.
    cursor = await c.execute(
        _lease_at_once(max_messages),
        {"queue": queue, "now": now, "lease": visibility_timeout, "defaults": _DEFAULTS},
        prepare=True,
    )
    rows = await cursor.fetchall()
    if rows and rows[0][0]:
        return None
    leased = sorted((row for row in rows if row[2] is not None), key=lambda row: (row[1], row[2]))
    return [
        Message(
            queue=queue,
            message_id=message_id,
            receipt=receipt,
            body=bytes(body),
            attributes={} if attributes is None else orjson.loads(attributes),
            group=group,
            dedup_id=dedup_id,
            receive_count=count,
            sent_at=sent_at,
            first_received_at=first,
            lease_expires_at=lease_until,
        )
        for (_, _, _, message_id, body, attributes, group, dedup_id, sent_at, count, first, receipt, lease_until) in (
            leased
        )
    ]


async def has_ready(c: Conn, queue: str, now: float) -> bool:
    cursor = await c.execute(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE queue = %s AND ready AND visible_at <= %s)", (queue, now)
    )
    row = await cursor.fetchone()
    return bool(row and row[0])


async def ack(c: Conn, queue: str, receipts: list[str], now: float) -> list[bool]:
    # A receipt starts with its message's id, so matching the receipts alone would do; the ids are there for the
    # index (`messages_by_id`, id first: _pg_schema says why), as a list rather than a join, which could be planned
    # as a hash join over every message of the queue.
    ids = [receipt.partition(".")[0] for receipt in receipts]
    cursor = await c.execute(
        "DELETE FROM messages WHERE queue = %s AND id = ANY(%b::text[]) AND receipt = ANY(%b::text[])"
        " AND visible_at > %s RETURNING receipt, grp",
        (queue, text_array(ids), text_array(receipts), now),
    )
    deleted = await cursor.fetchall()
    groups = {group for _, group in deleted if group is not None}
    if groups and (await load_config(c, queue)).fifo:
        await _lock_groups(c, queue, groups)
        for group in sorted(groups):
            await _promote(c, queue, group)
    gone = {receipt for receipt, _ in deleted}
    done: list[bool] = []
    for receipt in receipts:
        done.append(receipt in gone)
        gone.discard(receipt)  # a receipt listed twice acknowledges once
    return done


async def release(c: Conn, queue: str, receipt: str, delay: float, now: float) -> bool:
    cursor = await c.execute(
        "UPDATE messages SET receipt = NULL, visible_at = %s"
        " WHERE queue = %s AND id = %s AND receipt = %s AND visible_at > %s",
        (now + delay, queue, receipt.partition(".")[0], receipt, now),
    )
    return cursor.rowcount == 1


async def extend(c: Conn, queue: str, receipt: str, visibility_timeout: float, now: float) -> bool:
    cursor = await c.execute(
        "UPDATE messages SET visible_at = %s WHERE queue = %s AND id = %s AND receipt = %s AND visible_at > %s",
        (now + visibility_timeout, queue, receipt.partition(".")[0], receipt, now),
    )
    return cursor.rowcount == 1


async def purge(c: Conn, queue: str) -> int:
    cursor = await c.execute("DELETE FROM messages WHERE queue = %s", (queue,))
    return cursor.rowcount


async def stats(c: Conn, queue: str, now: float) -> QueueStats:
    cutoff = now - (await load_config(c, queue)).retention
    cursor = await c.execute(
        "SELECT count(*) FILTER (WHERE visible_at <= %s), count(*) FILTER (WHERE visible_at > %s AND receipt IS NULL),"
        " count(*) FILTER (WHERE visible_at > %s AND receipt IS NOT NULL), min(sent_at),"
        " min(visible_at) FILTER (WHERE visible_at > %s AND receipt IS NULL)"
        " FROM messages WHERE queue = %s AND sent_at > %s",
        (now, now, now, now, queue, cutoff),
    )
    row = await cursor.fetchone()
    assert row is not None
    visible, delayed, in_flight, oldest, next_visible = row
    age = None if oldest is None else max(0.0, now - oldest)
    return QueueStats(
        int(visible), int(delayed), int(in_flight), age, None if next_visible is None else float(next_visible)
    )


async def queue_names(c: Conn) -> list[str]:
    cursor = await c.execute("SELECT name FROM queues")
    return [name for (name,) in await cursor.fetchall()]


# --- helpers ---------------------------------------------------------------------------------


def _new_ids(count: int) -> Iterator[str]:
    """`count` time-ordered (version 7) UUIDs in hex: new messages at the end of the `(queue, id)` index
    (triggerfish._random says why)."""
    for _ in range(count):
        yield _random.uuid7_hex()


async def _group_exists(c: Conn, queue: str, group: str) -> bool:
    cursor = await c.execute("SELECT EXISTS (SELECT 1 FROM messages WHERE queue = %s AND grp = %s)", (queue, group))
    row = await cursor.fetchone()
    return bool(row and row[0])


async def _promote(c: Conn, queue: str, group: str) -> None:
    await c.execute(
        "UPDATE messages SET ready = true WHERE seq = (SELECT min(seq) FROM messages WHERE queue = %s AND grp = %s)",
        (queue, group),
    )


async def _delete(c: Conn, queue: str, config: QueueConfig, seq: int, group: str | None) -> None:
    await c.execute("DELETE FROM messages WHERE seq = %s", (seq,))
    if config.fifo and group is not None:
        await _lock_groups(c, queue, {group})
        await _promote(c, queue, group)


async def _dead_letter(
    c: Conn, queue: str, config: QueueConfig, dead_letter: str, seq: int, group: str | None, now: float
) -> None:
    await c.execute("INSERT INTO queues (name) VALUES (%s) ON CONFLICT DO NOTHING", (dead_letter,))
    ready = True
    if group is not None and (await load_config(c, dead_letter)).fifo:
        await _lock_groups(c, dead_letter, {group})
        ready = not await _group_exists(c, dead_letter, group)
    # Copied in SQL so the body never travels through Python; a new seq puts it last in the dead-letter queue.
    await c.execute(
        "INSERT INTO messages (queue, id, body, attributes, grp, dedup_id, sent_at, visible_at, ready)"
        " SELECT %s, id, body, attributes, grp, dedup_id, sent_at, %s, %s FROM messages WHERE seq = %s",
        (dead_letter, now, ready, seq),
    )
    await _delete(c, queue, config, seq, group)
