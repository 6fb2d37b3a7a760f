"""The PostgreSQL store: many machines over one database, with the embedded store's semantics.

    store = await open_store("postgresql://triggerfish@db.internal:5432/platform?schema=prod")

Every part runs on one pool of connections (psycopg 3, async). Claims and
receives are row-locked (`FOR UPDATE`, `SKIP LOCKED`), offsets come from a
counter row per stream, versions from a sequence, and lease and expiry times
from the database's clock, so nodes agree. Concurrent appends, sends and
unconditional puts merge into one transaction each (`_pg_batch`). See
docs/store.md for the URL's options, the schema, migrations and failures.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from triggerfish.errors import UnknownStoreURLError
from triggerfish.store import _pg_kv as kv
from triggerfish.store import _pg_log as lg
from triggerfish.store import _pg_queues as q
from triggerfish.store._checks import key_range
from triggerfish.store._pg_batch import Batcher
from triggerfish.store._pg_engine import Conn, Engine
from triggerfish.store._pg_schema import SCHEMA_VERSION, check_schema_name, migrate
from triggerfish.store._sqlite_worker import WorkerStats
from triggerfish.store.atomic import (
    Ack,
    Append,
    Commit,
    Delete,
    Forward,
    Op,
    Put,
    Route,
    Send,
    conflict,
    forward_bodies,
    forwarded_source,
    unconditional_puts,
)
from triggerfish.store.base import (
    DEFAULT_MAX_RECORD_BYTES,
    EventLog,
    KeyValue,
    KVRecord,
    LogClaim,
    LogRecord,
    Message,
    OutgoingMessage,
    QueueConfig,
    Queues,
    QueueStats,
    RecordKeys,
    SendResult,
    Store,
)
from triggerfish.store.sqlite import _after_prefix
from triggerfish.store.urls import pop_float, pop_int, refuse_unknown

__all__ = ["PostgresStore", "open_from_url"]

#: libpq's own URL options, passed through to the driver untouched.
LIBPQ_OPTIONS = frozenset(
    {"sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "application_name", "target_session_attrs"}
)


async def open_from_url(url: str, options: dict[str, str], *, max_record_bytes: int, migrate: bool) -> PostgresStore:
    """The opener `open_store` calls for `postgresql://` and `postgres://` URLs.

    Options: `schema` (default `triggerfish`), `pool_size` (10), `poll_interval` (0.25 s),
    `notify` (`on`; `off` leaves wake-ups across nodes to polling), `connect_timeout` (5 s),
    and libpq's `sslmode`, `application_name` and the like.
    """
    schema = check_schema_name(url, options.pop("schema", "triggerfish"))
    pool_size = pop_int(url, options, "pool_size", 10, minimum=2)
    poll_interval = pop_float(url, options, "poll_interval", 0.25, low=0.01, high=60)
    connect_timeout = pop_float(url, options, "connect_timeout", 5.0, low=0.5, high=600)
    notify = options.pop("notify", "on")
    if notify not in ("on", "off"):
        raise UnknownStoreURLError(f"store URL {url!r}: notify must be on or off, not {notify!r}")
    passed = {name: options.pop(name) for name in list(options) if name in LIBPQ_OPTIONS}
    refuse_unknown(url, options)
    parts = urlsplit(url)
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(passed), ""))
    where = urlunsplit(("postgresql", parts.netloc.rpartition("@")[2], parts.path, "", "")) + f"?schema={schema}"
    engine = Engine(
        where=where,
        conninfo=conninfo,
        schema=schema,
        pool_size=pool_size,
        notify=notify == "on",
        connect_timeout=connect_timeout,
    )
    await engine.open()
    try:
        async with engine.pool.connection() as conn:
            version = await _migrate(conn, schema, migrate, where)
            await engine.clock.measure(conn)
    except BaseException:
        await engine.close()
        raise
    assert version == SCHEMA_VERSION
    return PostgresStore(url, engine, max_record_bytes=max_record_bytes, poll_interval=poll_interval)


async def _migrate(conn: Conn, schema: str, allowed: bool, where: str) -> int:
    import psycopg

    from triggerfish.errors import StoreUnavailableError

    try:
        return await migrate(conn, schema, allowed=allowed, where=where)
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(f"cannot reach the PostgreSQL store at {where}: {exc}") from exc


class PostgresStore(Store):
    """A `Store` over one PostgreSQL schema; `atomic` is one transaction."""

    atomic_writes = True
    commits_apart = True
    schema_version = SCHEMA_VERSION

    def __init__(
        self,
        url: str,
        engine: Engine,
        *,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        poll_interval: float = 0.25,
    ) -> None:
        self.engine = engine
        log = PostgresEventLog(engine, max_record_bytes=max_record_bytes)
        queues = PostgresQueues(engine, max_record_bytes=max_record_bytes)
        log.poll_interval = queues.poll_interval = poll_interval
        super().__init__(
            url,
            log=log,
            queues=queues,
            kv=PostgresKeyValue(engine, max_record_bytes=max_record_bytes),
            on_close=engine.close,
        )
        self._log, self._queues = log, queues
        engine.start(self._heard)

    def _heard(self, payload: str) -> None:
        kind, _, name = payload.partition(":")
        if kind == "l":
            self._log._appended.notify(name)
        elif kind == "q":
            self._queues._sent.notify(name)

    async def _atomic(self, ops: list[Op], now: float) -> list[Any]:
        # Appends and sends wake other nodes from the transaction's own pipeline; a forward's appends are known
        # only once it ran.
        wakes = {f"l:{op.stream}" for op in ops if isinstance(op, Append) and op.items}
        wakes.update(f"q:{op.queue}" for op in ops if isinstance(op, Send) and op.messages)
        results: list[Any] = await self.engine.run(
            _write_atomic, ops, now, self.log.max_record_bytes, pipeline=True, wakes=wakes
        )
        for op, result in zip(ops, results, strict=True):
            if isinstance(op, Forward) and result:
                for stream in op.streams:
                    self.engine.notify_soon(f"l:{stream}")
        return results

    @property
    def write_stats(self) -> WorkerStats:
        """Write transactions so far: commits, the operations they carried (a merged batch counts each caller),
        the largest, and the seconds from BEGIN to COMMIT (the metrics' commit latency and batch size)."""
        return self.engine.stats

    def __repr__(self) -> str:
        return f"<PostgresStore {self.engine.where}>"


async def _write_atomic(c: Conn, ops: list[Op], now: float, limit: int) -> list[Any]:
    # Appends and unconditional puts only send their statements here; their results are read at the end. In the
    # pipelined transaction this runs in, a batch of invocation records and the acknowledgement of their
    # messages is then one round trip before COMMIT (the acknowledgement's), whatever the number of statements.
    results: list[Any] = []
    pending: list[tuple[int, int, Callable[[], Awaitable[list[Any]]]]] = []  # (first result, count, reader)
    index = 0
    while index < len(ops):
        op = ops[index]
        if isinstance(op, Append):
            # A run of appends is one write (four statements, whatever the number of streams), not one per
            # append: the event store's group of appends names many streams. Counter rows lock in name order.
            end = index
            while end < len(ops) and isinstance(ops[end], Append):
                end += 1
            run = [a for a in ops[index:end] if isinstance(a, Append)]
            batch: list[lg.Appending] = [
                (a.stream, list(a.items), now, None if a.keys is None else list(a.keys)) for a in run if a.items
            ]
            if batch:
                read_appends = await lg.start_appends(c, batch)
                written = [i for i, a in enumerate(run) if a.items]
                pending.append((len(results), len(run), _spread(read_appends, written, len(run))))
            results.extend([] for _ in run)
            index = end
            continue
        if isinstance(op, Put) and op.if_version is None:
            # A run of unconditional puts (a batch of invocation records: each one's copy, span and input) is one
            # statement, not two per put.
            puts = unconditional_puts(ops, index)
            read_puts = await kv.start_puts(
                c, [(p.namespace, [(p.key, p.value)], None if p.ttl is None else now + p.ttl) for p in puts]
            )
            pending.append((len(results), len(puts), _firsts(read_puts)))
            results.extend(None for _ in puts)
            index += len(puts)
            continue
        at, index = index, index + 1
        if isinstance(op, Send):
            results.append((await q.write_sends(c, [(op.queue, list(op.messages), now)]))[0] if op.messages else [])
        elif isinstance(op, Put):
            expires_at = None if op.ttl is None else now + op.ttl
            record = await kv.put(c, op.namespace, op.key, op.value, expires_at, op.if_version, now)
            if record is None:
                raise conflict(at, op)
            results.append(record)
        elif isinstance(op, Delete):
            deleted = await kv.delete(c, op.namespace, op.key, op.if_version, now)
            if not deleted and op.if_version is not None:
                raise conflict(at, op)
            results.append(deleted)
        elif isinstance(op, Ack):
            receipts = [_storable(r) for r in op.receipts]
            results.append(await q.ack(c, op.queue, receipts, now) if receipts else [])
        elif isinstance(op, Commit):
            if not await lg.commit(c, _storable_claim(op.claim)):
                raise conflict(at, op)
            results.append(True)
        elif isinstance(op, Forward):
            # A forward reads the records of the appends before it: theirs are read now.
            await _read_pending(pending, results)
            results.append(await _forward(c, op, forwarded_source(ops, results, op), now, limit))
        elif isinstance(op, Route):
            # Not decided here (publishers on PostgreSQL append through the batcher, see `routes_appends`): the
            # group's consumer delivers the records.
            results.append(False)
    await _read_pending(pending, results)
    return results


async def _read_pending(pending: list[tuple[int, int, Callable[[], Awaitable[list[Any]]]]], results: list[Any]) -> None:
    for first, count, read in pending:
        results[first : first + count] = await read()
    pending.clear()


def _spread(
    read: Callable[[], Awaitable[list[list[LogRecord]]]], written: list[int], count: int
) -> Callable[[], Awaitable[list[list[LogRecord]]]]:
    """The records of a run of `count` appends of which those at `written` had items (the others have none)."""

    async def records() -> list[list[LogRecord]]:
        out: list[list[LogRecord]] = [[] for _ in range(count)]
        for i, appended in zip(written, await read(), strict=True):
            out[i] = appended
        return out

    return records


def _firsts(
    read: Callable[[], Awaitable[list[list[KVRecord]]]],
) -> Callable[[], Awaitable[list[KVRecord]]]:
    """The one record of each single-key put."""

    async def records() -> list[KVRecord]:
        return [written[0] for written in await read()]

    return records


async def _forward(c: Conn, op: Forward, records: list[LogRecord], now: float, limit: int) -> bool:
    # The place is locked until this transaction ends, so the reader's own copy (a compare-and-set on it)
    # waits, then fails and reads again. The reader takes the place before the streams it appends to, as
    # this does (its ops put the place first): no lock cycle.
    cursor = await c.execute(
        "SELECT value, expires_at FROM kv WHERE namespace = %s AND key = %s"
        " AND (expires_at IS NULL OR expires_at > %s) FOR UPDATE",
        (op.namespace, op.key, now),
    )
    row = await cursor.fetchone()
    bodies = forward_bodies(op, records, None if row is None else bytes(row[0]), limit)
    if bodies is None or row is None:
        return False
    if bodies:
        await lg.write_appends(c, [(stream, items, now) for stream, items in bodies])
    await kv.put(c, op.namespace, op.key, str(records[-1].offset).encode(), row[1], None, now)
    return True


def _storable(token: str) -> str:
    """A receipt or claim token as PostgreSQL text: one with NUL (which text cannot hold) matches nothing."""
    return "" if "\x00" in token else token


def _storable_claim(claim: LogClaim) -> LogClaim:
    return claim if "\x00" not in claim.token else dataclasses.replace(claim, token="")


# --- the event log ---------------------------------------------------------------------------


class PostgresEventLog(EventLog):
    def __init__(self, engine: Engine, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        super().__init__(clock=engine.clock, max_record_bytes=max_record_bytes)
        self._engine = engine
        self.appends: Batcher[lg.Appending, list[LogRecord]] = Batcher(
            engine, lg.write_appends, in_flight=engine.in_flight, wake=lambda append: f"l:{append[0]}"
        )
        self._idle: set[tuple[str, str]] = set()

    async def _append(
        self, stream: str, bodies: list[bytes], now: float, keys: list[RecordKeys] | None = None
    ) -> list[LogRecord]:
        return await self.appends.call((stream, bodies, now, keys))

    async def _find(self, prefix: str, limit: int) -> list[tuple[str, LogRecord]]:
        return await self._engine.read(lg.find, prefix, _after_prefix(prefix), limit)

    async def _read(
        self, stream: str, after: int, since: float | None, until: float | None, limit: int
    ) -> list[LogRecord]:
        return await self._engine.read(lg.read, stream, after, since, until, limit)

    async def _last_offset(self, stream: str) -> int:
        return await self._engine.read(lg.last_offset, stream)

    async def _trim(self, stream: str, before: float | None, max_bytes: int | None) -> int:
        return await self._engine.run(lg.trim, stream, before, max_bytes)

    async def _streams(self) -> list[str]:
        return await self._engine.read(lg.stream_names)

    async def _claim(self, stream: str, group: str, limit: int, lease: float, now: float) -> LogClaim | None:
        # Idle consumers poll: once a group came up empty, ask without a transaction or a lock first.
        key = (stream, group)
        if key in self._idle and not await self._engine.read(lg.claimable, stream, group, now):
            return None
        claim = await self._engine.run(lg.claim, stream, group, limit, lease, now, secrets.token_hex(8), pipeline=True)
        if claim is None:
            self._idle.add(key)
        else:
            self._idle.discard(key)
        return claim

    async def _commit(self, claim: LogClaim, now: float) -> bool:
        return await self._engine.run(lg.commit, _storable_claim(claim), pipeline=True)

    async def _extend_claim(self, claim: LogClaim, lease: float, now: float) -> LogClaim | None:
        extended = await self._engine.run(lg.extend, _storable_claim(claim), now + lease)
        return dataclasses.replace(claim, expires_at=now + lease) if extended else None

    async def _release_claim(self, claim: LogClaim, now: float) -> bool:
        released = await self._engine.run(lg.release, _storable_claim(claim), now, secrets.token_hex(8))
        if released:
            self._engine.notify_soon(f"l:{claim.stream}")
        return released

    async def _position(self, stream: str, group: str) -> int:
        return await self._engine.read(lg.position, stream, group)

    async def _seek(self, stream: str, group: str, offset: int) -> None:
        await self._engine.run(lg.seek, stream, group, offset)

    async def _advance(self, stream: str, group: str, expected: int, offset: int) -> bool:
        result: bool = await self._engine.run(lg.advance, stream, group, expected, offset)
        return result

    async def _groups(self, stream: str) -> list[str]:
        return await self._engine.read(lg.group_names, stream)


# --- queues ----------------------------------------------------------------------------------


class PostgresQueues(Queues):
    def __init__(self, engine: Engine, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        super().__init__(clock=engine.clock, max_record_bytes=max_record_bytes)
        self._engine = engine
        self.sends: Batcher[tuple[str, list[OutgoingMessage], float], list[SendResult]] = Batcher(
            engine, q.write_sends, in_flight=engine.in_flight, wake=lambda send: f"q:{send[0]}"
        )
        self._empty: set[str] = set()

    async def _configure(self, queue: str, config: QueueConfig) -> None:
        await self._engine.run(q.configure, queue, config)

    async def _config(self, queue: str) -> QueueConfig:
        return await self._engine.read(q.load_config, queue)

    async def _send(self, queue: str, messages: list[OutgoingMessage], now: float) -> list[SendResult]:
        return await self.sends.call((queue, messages, now))

    async def _receive(
        self, queue: str, max_messages: int, visibility_timeout: float | None, now: float
    ) -> list[Message]:
        # Idle receivers poll: once a queue came up empty, ask without a transaction or a lock first.
        if queue in self._empty and not await self._engine.read(q.has_ready, queue, now):
            return []
        # One round trip in the common case; the transaction of several statements only when the head of the queue
        # holds messages to drop or dead-letter.
        dead_letter = None
        found = await self._engine.read(q.receive_at_once, queue, max_messages, visibility_timeout, now)
        if found is None:
            messages, dead_letter = await self._engine.run(
                q.receive, queue, max_messages, visibility_timeout, now, pipeline=True
            )
        else:
            messages = found
            if len(found) == max_messages:
                # A full lease: the queue holds a backlog, where a plan without statistics costs the most.
                self._engine.analyze_soon("messages")
        if messages:
            self._empty.discard(queue)
        else:
            self._empty.add(queue)
        if dead_letter is not None:
            self._sent.notify(dead_letter)
            self._engine.notify_soon(f"q:{dead_letter}")
        return messages

    async def _ack(self, queue: str, receipts: list[str], now: float) -> list[bool]:
        return await self._engine.run(q.ack, queue, [_storable(r) for r in receipts], now, pipeline=True)

    async def _release(self, queue: str, receipt: str, delay: float, now: float) -> bool:
        released = await self._engine.run(q.release, queue, _storable(receipt), delay, now)
        if released:
            self._engine.notify_soon(f"q:{queue}")
        return released

    async def _extend(self, queue: str, receipt: str, visibility_timeout: float, now: float) -> bool:
        return await self._engine.run(q.extend, queue, _storable(receipt), visibility_timeout, now)

    async def _purge(self, queue: str) -> int:
        return await self._engine.run(q.purge, queue)

    async def _stats(self, queue: str, now: float) -> QueueStats:
        return await self._engine.read(q.stats, queue, now)

    async def _queues(self) -> list[str]:
        return await self._engine.read(q.queue_names)


# --- key-value records -----------------------------------------------------------------------


class PostgresKeyValue(KeyValue):
    def __init__(self, engine: Engine, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        super().__init__(clock=engine.clock, max_record_bytes=max_record_bytes)
        self._engine = engine
        self.puts: Batcher[tuple[str, list[tuple[str, bytes]], float | None], list[KVRecord]] = Batcher(
            engine, kv.put_many, in_flight=engine.in_flight
        )

    async def _get(self, namespace: str, key: str, now: float) -> KVRecord | None:
        return await self._engine.read(kv.get, namespace, key, now)

    async def _put(
        self,
        namespace: str,
        key: str,
        value: bytes,
        expires_at: float | None,
        if_version: int | None,
        now: float,
    ) -> KVRecord | None:
        if if_version is None:
            (record,) = await self.puts.call((namespace, [(key, value)], expires_at))
            return record
        return await self._engine.run(kv.put, namespace, key, value, expires_at, if_version, now)

    async def _put_many(
        self, namespace: str, items: list[tuple[str, bytes]], expires_at: float | None, now: float
    ) -> list[KVRecord]:
        return await self.puts.call((namespace, items, expires_at))

    async def _delete(self, namespace: str, key: str, if_version: int | None, now: float) -> bool:
        return await self._engine.run(kv.delete, namespace, key, if_version, now)

    async def _scan(
        self, namespace: str, prefix: str, limit: int, now: float, start: str = "", end: str | None = None
    ) -> list[KVRecord]:
        if "\x00" in prefix + start + (end or ""):
            return []  # keys never hold NUL, and PostgreSQL text cannot
        low, high = key_range(prefix, _after_prefix(prefix), start, end)
        return await self._engine.read(kv.scan, namespace, low, high, limit, now)
