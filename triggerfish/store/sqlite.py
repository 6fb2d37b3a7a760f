"""The embedded durable store: one SQLite file in WAL mode with `synchronous=FULL`.

    store = await open_store("sqlite:///.triggerfish/store.db")

Writes go to one writer thread that commits whatever is pending as one
transaction (group commit) and acknowledges each caller only after the
commit: an awaited append, send or put has reached the disk. Reads that
change nothing (log reads, record gets and scans, queue stats) run on a
second connection in a reader thread, which WAL lets proceed while the
writer writes. See `triggerfish.store._sqlite_worker` for the mechanics and
`docs/store.md` for why.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import secrets
import sqlite3
import time
import types
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from triggerfish.errors import UnknownStoreURLError
from triggerfish.store import _sqlite_groups as groups
from triggerfish.store import _sqlite_log as lg
from triggerfish.store import _sqlite_queues as q
from triggerfish.store._checks import key_range
from triggerfish.store._sqlite_ahead import ReceivesAhead
from triggerfish.store._sqlite_ahead import lease as lease_messages
from triggerfish.store._sqlite_checkpoint import Checkpointer
from triggerfish.store._sqlite_merge import Merger
from triggerfish.store._sqlite_queues import SendLease
from triggerfish.store._sqlite_schema import SCHEMA_VERSION, connect
from triggerfish.store._sqlite_versions import VersionCounter
from triggerfish.store._sqlite_worker import Worker, WorkerStats
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
    routable,
    unconditional_puts,
)
from triggerfish.store.base import (
    ABSENT,
    DEFAULT_MAX_RECORD_BYTES,
    Clock,
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

__all__ = ["SqliteEventLog", "SqliteKeyValue", "SqliteQueues", "SqliteStore", "open_sqlite_store"]

#: How often (store clock seconds) expired records and dedup ids are swept from the file.
SWEEP_INTERVAL = 60.0


async def open_from_url(url: str, options: dict[str, str], *, max_record_bytes: int, migrate: bool) -> SqliteStore:
    """The opener `open_store` calls for `sqlite:///relative/path.db` and `sqlite:////absolute/path.db`."""
    from triggerfish.store.urls import refuse_unknown

    refuse_unknown(url, options)
    parts = urlsplit(url)
    if parts.netloc:
        raise UnknownStoreURLError(
            f"store URL {url!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise UnknownStoreURLError(f"store URL {url!r} names no file: write sqlite:///path/to/store.db")
    return await open_sqlite_store(url, path, max_record_bytes=max_record_bytes, migrate=migrate)


async def open_sqlite_store(
    url: str,
    path: str,
    *,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    clock: Clock = time.time,
    migrate: bool = True,
) -> SqliteStore:
    """Open (creating if needed) the store file at `path`; its directory is created too.

    Raises StoreError naming the path when the file is not a SQLite database,
    SchemaVersionError when it was written by a newer Triggerfish (or needs
    migrating and `migrate` is False).
    """
    writer_connection = await asyncio.to_thread(functools.partial(connect, path, migrate=migrate))
    try:
        reader_connection = await asyncio.to_thread(connect, path)
    except BaseException:
        writer_connection.close()
        raise
    return SqliteStore(url, path, writer_connection, reader_connection, clock=clock, max_record_bytes=max_record_bytes)


class _Engine:
    """The two workers the three parts share, and the periodic sweep of expired rows."""

    def __init__(self, path: str, writer: sqlite3.Connection, reader: sqlite3.Connection, clock: Clock) -> None:
        # The log is checkpointed by a thread of its own, not inside the writer's commits (_sqlite_checkpoint).
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        self.checkpointer = Checkpointer(path)
        #: Record versions, read and written once per writer transaction (_sqlite_versions).
        self.versions = VersionCounter()
        self.writer = Worker(
            writer, name=f"triggerfish-store-writer:{path}", path=path, transactional=True, state=self.versions
        )
        self.reader = Worker(reader, name=f"triggerfish-store-reader:{path}", path=path, transactional=False)
        self._clock = clock
        self._next_sweep = clock() + SWEEP_INTERVAL

    async def write(self, fn: Any, *args: Any) -> Any:
        self.sweep_when_due()
        return await self.writer.submit(lambda c: fn(c, *args))

    async def lease(self, fn: Any, *args: Any) -> Any:
        """A write a crash may lose (a lease: see _sqlite_worker), committed without waiting for the disk."""
        return await self.writer.submit(lambda c: fn(c, *args), durable=False)

    def sweep_when_due(self) -> None:
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL
            # Rides along in the same group commit; a failure here must not fail the caller's write.
            self.writer.submit(functools.partial(_sweep, now=now)).add_done_callback(_ignore_result)

    async def read(self, fn: Any, *args: Any) -> Any:
        return await self.reader.submit(lambda c: fn(c, *args))

    async def close(self) -> None:
        await self.writer.close()
        await self.reader.close()
        await asyncio.to_thread(self.checkpointer.stop)


def _ignore_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _sweep(c: sqlite3.Connection, *, now: float) -> None:
    q.sweep_dedup(c, now)
    c.execute("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))


class SqliteStore(Store):
    """A `Store` over one SQLite file; `write_stats` reports the group-commit batch sizes."""

    atomic_writes = True
    schema_version = SCHEMA_VERSION
    routes_appends = True

    def __init__(
        self,
        url: str,
        path: str,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        *,
        clock: Clock = time.time,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        engine = _Engine(path, writer, reader, clock)
        super().__init__(
            url,
            log=SqliteEventLog(engine, clock=clock, max_record_bytes=max_record_bytes),
            queues=SqliteQueues(engine, clock=clock, max_record_bytes=max_record_bytes),
            kv=SqliteKeyValue(engine, clock=clock, max_record_bytes=max_record_bytes),
            on_close=engine.close,
        )
        self.path = path
        self._engine = engine

    async def _atomic(self, ops: list[Op], now: float) -> list[Any]:
        # One writer operation: it runs in the writer's transaction, and a conflict raised here
        # rolls back its own changes only (the writer reruns the batch with savepoints).
        self._engine.sweep_when_due()
        limit = self.log.max_record_bytes
        versions = self._engine.versions
        queues = self.queues
        assert isinstance(queues, SqliteQueues)
        # The bus's invocations (routed by their publisher, or sent by its consumer), to the dispatcher waiting for
        # them: leased to it by the very statement that stores them (`_sqlite_ahead`).
        sends = [send for op in ops for send in _sends_of(op) if send.messages]
        leases = {
            id(send): lease for send in sends if (lease := queues.ahead.leasing_send(send.queue, len(send.messages)))
        }
        try:
            written: asyncio.Future[list[Any]] = self._engine.writer.submit(
                lambda c: _write_atomic(c, versions, ops, now, limit, leases)
            )
        except Exception as exc:  # the store is closing: the leases given out above end with it
            written = asyncio.get_running_loop().create_future()
            written.set_exception(exc)
        for send in sends:
            lease = leases.get(id(send))
            queues.ahead.after_send(send.queue, now, None if lease is None else (lease, written))
        return await written

    @property
    def write_stats(self) -> WorkerStats:
        """Group commit so far: transactions (batches) and the operations they carried."""
        return self._engine.writer.stats

    @property
    def append_stats(self) -> WorkerStats:
        """Appends merged into one writer operation: flushes (batches) and the appends they carried."""
        log = self.log
        assert isinstance(log, SqliteEventLog)
        return log.append_stats


#: No send of the write leases what it stores.
_NO_LEASES: Mapping[int, SendLease] = types.MappingProxyType({})


def _sends_of(op: Op) -> tuple[Send, ...]:
    """The sends an op stores: a `Send`'s own, a `Route`'s when it routes."""
    if isinstance(op, Send):
        return (op,)
    return op.sends if isinstance(op, Route) else ()


def _write_atomic(
    c: sqlite3.Connection,
    versions: VersionCounter,
    ops: list[Op],
    now: float,
    limit: int,
    leases: Mapping[int, SendLease] = _NO_LEASES,
) -> list[Any]:
    """`ops` in the writer's transaction; `leases` (by the `id` of a `Send`) are what sends lease as they store."""
    for lease in leases.values():
        lease.messages, lease.drained = [], False  # run again (savepoints), or a Route that routes nothing this time
    results: list[Any] = []
    # Every put of the write takes its version from one take of the counter, not one each.
    puts = sum(isinstance(op, Put) for op in ops)
    version = versions.take(c, puts) if puts else 0
    for index, op in enumerate(ops):
        if len(results) > index:
            continue  # written with the run of puts it belongs to
        if isinstance(op, Put) and op.if_version is None:
            # A run of unconditional puts (a batch of invocation records: each one's copy, span and input) is one
            # executemany, not a statement per put.
            run = unconditional_puts(ops, index)
            written = _kv_write_puts(
                c, [(p.namespace, [(p.key, p.value)], _expiry(p, now)) for p in run], versions, first=version
            )
            version += len(run)
            results.extend(records[0] for records in written)
            continue
        if isinstance(op, Append):
            keys = None if op.keys is None else list(op.keys)
            results.append(lg.write_appends(c, [(op.stream, list(op.items), now, keys)])[0] if op.items else [])
        elif isinstance(op, Send):
            sent = [(op.queue, list(op.messages), now)]
            results.append(q.write_sends(c, sent, (leases.get(id(op)),))[0] if op.messages else [])
        elif isinstance(op, Put):
            record = _kv_put(c, op.namespace, op.key, op.value, _expiry(op, now), op.if_version, now, version)
            version += 1
            if record is None:
                raise conflict(index, op)
            results.append(record)
        elif isinstance(op, Delete):
            deleted = _kv_delete(c, op.namespace, op.key, op.if_version, now)
            if not deleted and op.if_version is not None:
                raise conflict(index, op)
            results.append(deleted)
        elif isinstance(op, Ack):
            results.append(q.ack(c, op.queue, list(op.receipts), now) if op.receipts else [])
        elif isinstance(op, Commit):
            if not groups.commit(c, op.claim):
                raise conflict(index, op)
            results.append(True)
        elif isinstance(op, Forward):
            results.append(_forward(c, versions, op, forwarded_source(ops, results, op), now, limit))
        elif isinstance(op, Route):
            results.append(_route(c, op, forwarded_source(ops, results, op), now, leases))
    return results


def _route(
    c: sqlite3.Connection, op: Route, records: list[LogRecord], now: float, leases: Mapping[int, SendLease]
) -> bool:
    # Inside the writer's transaction: no consumer of the group can claim between this look and the write below.
    row = c.execute("SELECT position, claimed FROM log_groups WHERE stream = ? AND grp = ?", (op.source, op.group))
    found = row.fetchone()
    # A group with no row yet starts before the stream's first record (as `claim` reads it): it takes a stream's
    # very first records by a Route, so a bus that is new when its load starts routes from its first event.
    position, claimed = (0, 0) if found is None else (int(found[0]), int(found[1]))
    if not routable(records, position, claimed):
        return False
    routed = [send for send in op.sends if send.messages]
    if routed:
        sends = [(send.queue, list(send.messages), now) for send in routed]
        q.write_sends(c, sends, [leases.get(id(send)) for send in routed])
    last = records[-1].offset
    if found is None:
        insert = "INSERT INTO log_groups (stream, grp, position, claimed) VALUES (?, ?, ?, ?)"
        c.execute(insert, (op.source, op.group, last, last))
    else:
        update = "UPDATE log_groups SET position = ?, claimed = ? WHERE stream = ? AND grp = ?"
        c.execute(update, (last, last, op.source, op.group))
    return True


def _expiry(op: Put, now: float) -> float | None:
    return None if op.ttl is None else now + op.ttl


def _forward(
    c: sqlite3.Connection, versions: VersionCounter, op: Forward, records: list[LogRecord], now: float, limit: int
) -> bool:
    # Inside the writer's transaction: the reader's place cannot move between this read and the write below.
    place = _kv_get(c, op.namespace, op.key, now)
    bodies = forward_bodies(op, records, None if place is None else place.value, limit)
    if bodies is None:
        return False
    if bodies:
        lg.write_appends(c, [(stream, items, now) for stream, items in bodies])
    offset = str(records[-1].offset).encode()
    _kv_put(c, op.namespace, op.key, offset, place.expires_at if place else None, None, now, versions.take(c, 1))
    return True


# --- the event log ---------------------------------------------------------------------------


class SqliteEventLog(EventLog):
    def __init__(
        self, engine: _Engine, *, clock: Clock = time.time, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    ) -> None:
        super().__init__(clock=clock, max_record_bytes=max_record_bytes)
        self._engine = engine
        self._appends = Merger(engine.writer, lg.write_appends)
        #: Stream and group that came up empty, with the stream's append count (`Notifier.count`) then.
        self._idle: dict[tuple[str, str], int] = {}
        #: The groups a `claim` waits for, by stream: each one's limit, lease and how many claims wait.
        self._claimers: dict[str, dict[str, tuple[int, float, int]]] = {}
        #: Claims made ahead for a waiting group (see `_claim_ahead`), in the order they were made.
        self._ready: dict[tuple[str, str], collections.deque[LogClaim]] = {}
        self._claiming: set[tuple[str, str]] = set()
        #: Stream and group a write of this process routed (`atomic.Route`), with the stream's append count then.
        self._routed_at: dict[tuple[str, str], int] = {}

    @property
    def append_stats(self) -> WorkerStats:
        return self._appends.stats

    async def _append(
        self, stream: str, bodies: list[bytes], now: float, keys: list[RecordKeys] | None = None
    ) -> list[LogRecord]:
        appended = self._appends.submit((stream, bodies, now, keys))
        self._claim_ahead(stream, now)
        return await appended

    async def _find(self, prefix: str, limit: int) -> list[tuple[str, LogRecord]]:
        result: list[tuple[str, LogRecord]] = await self._engine.read(lg.find, prefix, _after_prefix(prefix), limit)
        return result

    def _waiting_to_claim(self, stream: str, group: str, limit: int, lease: float, waiting: bool) -> None:
        groups_waiting = self._claimers.setdefault(stream, {})
        count = groups_waiting.get(group, (limit, lease, 0))[2] + (1 if waiting else -1)
        if count > 0:
            groups_waiting[group] = (limit, lease, count)
        else:
            groups_waiting.pop(group, None)
            if not groups_waiting:
                del self._claimers[stream]

    def _claim_ahead(self, stream: str, now: float) -> None:
        """Claim for each group waiting on `stream` right behind the append just submitted, in its write.

        A consumer waiting for this stream would otherwise be woken by the append's commit and then claim,
        a second writer round trip between an event's publish and its routing. The claim is submitted
        after the append (the writer runs operations in order, and mostly in one transaction), so it takes
        the new records; it is a lease like any claim, handed to the group's next `claim` here (and the
        waiters woken). A claim nobody takes (its consumer stopped) lapses and is claimed again elsewhere,
        as the claim of a consumer that died; one that failed leaves the records to the ordinary claim.
        """
        for group, (limit, lease, _) in self._claimers.get(stream, {}).items():
            key = (stream, group)
            if key in self._claiming:
                continue  # one made ahead is on its way: it takes what this append adds too
            self._claiming.add(key)
            claiming = self._engine.writer.submit(
                functools.partial(
                    groups.claim,
                    stream=stream,
                    group=group,
                    limit=limit,
                    lease=lease,
                    now=now,
                    token=secrets.token_hex(8),
                ),
                durable=False,
            )
            claiming.add_done_callback(functools.partial(self._claimed_ahead, key))

    def _routed(self, stream: str, group: str) -> None:
        self._routed_at[stream, group] = self._appended.count(stream)

    def _claimed_ahead(self, key: tuple[str, str], claiming: asyncio.Future[LogClaim | None]) -> None:
        self._claiming.discard(key)
        if claiming.cancelled() or claiming.exception() is not None:
            return  # nothing was claimed: the group's next claim takes the records
        claim = claiming.result()
        if claim is not None:
            self._ready.setdefault(key, collections.deque()).append(claim)
            self._appended.notify(key[0])

    async def _read(
        self, stream: str, after: int, since: float | None, until: float | None, limit: int
    ) -> list[LogRecord]:
        result: list[LogRecord] = await self._engine.read(lg.read, stream, after, since, until, limit)
        return result

    async def _last_offset(self, stream: str) -> int:
        result: int = await self._engine.read(lg.last_offset, stream)
        return result

    async def _trim(self, stream: str, before: float | None, max_bytes: int | None) -> int:
        result: int = await self._engine.write(lg.trim, stream, before, max_bytes)
        return result

    async def _streams(self) -> list[str]:
        result: list[str] = await self._engine.read(lg.stream_names)
        return result

    async def _claim(self, stream: str, group: str, limit: int, lease: float, now: float) -> LogClaim | None:
        # As with receives: once a group came up empty, look on the reader before taking the writer, unless
        # this process appended to the stream since (the claim that follows an append's wake-up goes straight
        # to the writer: one thread round trip, not two, between an event's publish and its routing).
        key = (stream, group)
        ready = self._ready.get(key)
        if ready:
            made_ahead = ready.popleft()
            if not ready:
                del self._ready[key]
            return made_ahead
        appends = self._appended.count(stream)
        if self._routed_at.pop(key, None) == appends:
            # Woken by an append its publisher routed for the group, and nothing was appended here since: the
            # group has taken every record up to it, so there is nothing to claim and no store to ask. (Once
            # only: the next look asks the store, which sees other processes' appends and lapsed claims.)
            self._idle[key] = appends
            return None
        if self._idle.get(key) == appends and not await self._engine.read(groups.claimable, stream, group, now):
            return None
        claim: LogClaim | None = await self._engine.lease(
            groups.claim, stream, group, limit, lease, now, secrets.token_hex(8)
        )
        if claim is None:
            self._idle[key] = appends
        else:
            self._idle.pop(key, None)
        return claim

    async def _commit(self, claim: LogClaim, now: float) -> bool:
        result: bool = await self._engine.write(groups.commit, claim)
        return result

    async def _extend_claim(self, claim: LogClaim, lease: float, now: float) -> LogClaim | None:
        extended: bool = await self._engine.lease(groups.extend, claim, now + lease)
        return dataclasses.replace(claim, expires_at=now + lease) if extended else None

    async def _release_claim(self, claim: LogClaim, now: float) -> bool:
        result: bool = await self._engine.lease(groups.release, claim, now, secrets.token_hex(8))
        return result

    async def _position(self, stream: str, group: str) -> int:
        result: int = await self._engine.read(groups.position, stream, group)
        return result

    async def _seek(self, stream: str, group: str, offset: int) -> None:
        await self._engine.write(groups.seek, stream, group, offset)

    async def _advance(self, stream: str, group: str, expected: int, offset: int) -> bool:
        result: bool = await self._engine.write(groups.advance, stream, group, expected, offset)
        return result

    async def _groups(self, stream: str) -> list[str]:
        result: list[str] = await self._engine.read(groups.group_names, stream)
        return result


# --- queues ----------------------------------------------------------------------------------


class SqliteQueues(Queues):
    def __init__(
        self, engine: _Engine, *, clock: Clock = time.time, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    ) -> None:
        super().__init__(clock=clock, max_record_bytes=max_record_bytes)
        self._engine = engine
        #: Queues that came up empty, with their send count (`Notifier.count`) then.
        self._empty: dict[str, int] = {}
        self._sends = Merger(engine.writer, q.write_sends)
        #: Leases made in a send's write for the receives waiting on its queue (_sqlite_ahead).
        self.ahead = ReceivesAhead(
            engine.writer,
            notify=self._sent.notify,
            clock=self.clock,
            notified=self._sent.count,
            horizon=self.poll_interval,
        )

    async def _configure(self, queue: str, config: QueueConfig) -> None:
        await self._engine.write(q.configure, queue, config)
        self.ahead.forget(queue)

    async def _config(self, queue: str) -> QueueConfig:
        result: QueueConfig = await self._engine.read(q.load_config, queue)
        return result

    async def _send(self, queue: str, messages: list[OutgoingMessage], now: float) -> list[SendResult]:
        sent = self._sends.submit((queue, messages, now))
        self.ahead.after_send(queue, now)
        return await sent

    def _found_empty(self, queue: str) -> bool:
        return self.ahead.drained(queue)

    def _waiting_to_receive(
        self, queue: str, max_messages: int, visibility_timeout: float | None, waiting: bool
    ) -> None:
        self.ahead.waiting(queue, max_messages, visibility_timeout, waiting)

    async def _receive(
        self, queue: str, max_messages: int, visibility_timeout: float | None, now: float
    ) -> list[Message]:
        # A long-poll on an empty queue asks again every few milliseconds; once a queue came up
        # empty, look on the reader first so that idle consumers keep off the writer (and its lock),
        # unless this process sent to it since: then there is something to lease, and asking the
        # reader first would only add a thread round trip to the message's way to its consumer.
        made_ahead = await self.ahead.take(queue, max_messages, visibility_timeout)
        if made_ahead:
            self._empty.pop(queue, None)
            return made_ahead
        sends = self._sent.count(queue)
        if self._empty.get(queue) == sends and not await self._engine.read(q.has_ready, queue, now):
            return []
        messages: list[Message]
        submitted = self.ahead.sent(queue)
        drained: bool
        clock = self.clock

        def leasing(c: sqlite3.Connection) -> tuple[list[Message], str | None, bool]:
            # Its time is when it runs, not when it was asked for: the writer runs a batch's leases after its
            # writes (_sqlite_worker), so a send that joined the batch while this waited is visible to it.
            return lease_messages(c, queue, max_messages, visibility_timeout, max(now, clock()))

        messages, dead_letter, drained = await self._engine.lease(leasing)
        if drained:
            self.ahead.found_empty(queue, submitted)
        if dead_letter is not None:
            self._sent.notify(dead_letter)
        if messages:
            self._empty.pop(queue, None)
        else:
            self._empty[queue] = sends
        return messages

    async def _ack(self, queue: str, receipts: list[str], now: float) -> list[bool]:
        result: list[bool] = await self._engine.write(q.ack, queue, receipts, now)
        return result

    async def _release(self, queue: str, receipt: str, delay: float, now: float) -> bool:
        result: bool = await self._engine.write(q.release, queue, receipt, delay, now)
        return result

    async def _extend(self, queue: str, receipt: str, visibility_timeout: float, now: float) -> bool:
        result: bool = await self._engine.lease(q.extend, queue, receipt, visibility_timeout, now)
        return result

    async def _purge(self, queue: str) -> int:
        result: int = await self._engine.write(q.purge, queue)
        return result

    async def _stats(self, queue: str, now: float) -> QueueStats:
        result: QueueStats = await self._engine.read(q.stats, queue, now)
        return result

    async def _queues(self) -> list[str]:
        result: list[str] = await self._engine.read(q.queue_names)
        return result


# --- key-value records -----------------------------------------------------------------------


class SqliteKeyValue(KeyValue):
    def __init__(
        self, engine: _Engine, *, clock: Clock = time.time, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    ) -> None:
        super().__init__(clock=clock, max_record_bytes=max_record_bytes)
        self._engine = engine
        # Unconditional puts from concurrent callers (invocation records, above all) share one
        # writer operation and one `executemany`, as appends and sends do.
        self._puts = Merger(engine.writer, functools.partial(_kv_write_puts, versions=engine.versions))

    async def _get(self, namespace: str, key: str, now: float) -> KVRecord | None:
        result: KVRecord | None = await self._engine.read(_kv_get, namespace, key, now)
        return result

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
            self._engine.sweep_when_due()
            (record,) = await self._puts.call((namespace, [(key, value)], expires_at))
            return record
        versions = self._engine.versions
        result: KVRecord | None = await self._engine.write(
            lambda c: _kv_put(c, namespace, key, value, expires_at, if_version, now, versions.take(c, 1))
        )
        return result

    async def _put_many(
        self, namespace: str, items: list[tuple[str, bytes]], expires_at: float | None, now: float
    ) -> list[KVRecord]:
        self._engine.sweep_when_due()
        return await self._puts.call((namespace, items, expires_at))

    async def _delete(self, namespace: str, key: str, if_version: int | None, now: float) -> bool:
        result: bool = await self._engine.write(_kv_delete, namespace, key, if_version, now)
        return result

    async def _scan(
        self, namespace: str, prefix: str, limit: int, now: float, start: str = "", end: str | None = None
    ) -> list[KVRecord]:
        low, high = key_range(prefix, _after_prefix(prefix), start, end)
        result: list[KVRecord] = await self._engine.read(_kv_scan, namespace, low, high, limit, now)
        return result


def _kv_get(c: sqlite3.Connection, namespace: str, key: str, now: float) -> KVRecord | None:
    row = c.execute(
        "SELECT value, version, expires_at FROM kv WHERE namespace = ? AND key = ?"
        " AND (expires_at IS NULL OR expires_at > ?)",
        (namespace, key, now),
    ).fetchone()
    return None if row is None else KVRecord(namespace, key, row[0], row[1], row[2])


def _kv_live_version(c: sqlite3.Connection, namespace: str, key: str, now: float) -> int:
    row = c.execute(
        "SELECT version FROM kv WHERE namespace = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)",
        (namespace, key, now),
    ).fetchone()
    return ABSENT if row is None else int(row[0])


def _kv_put(
    c: sqlite3.Connection,
    namespace: str,
    key: str,
    value: bytes,
    expires_at: float | None,
    if_version: int | None,
    now: float,
    version: int,
) -> KVRecord | None:
    """Write one record (None: `if_version` did not hold), as `version`.

    The condition is the write's own WHERE, one statement, not a read of the live version and then a write."""
    if if_version is None:
        c.execute(
            "INSERT OR REPLACE INTO kv (namespace, key, value, version, expires_at) VALUES (?, ?, ?, ?, ?)",
            (namespace, key, value, version, expires_at),
        )
    elif if_version == ABSENT:
        # Created where there is none; an expired record counts as none and is replaced.
        written = c.execute(
            "INSERT INTO kv (namespace, key, value, version, expires_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,"
            " expires_at = excluded.expires_at WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?",
            (namespace, key, value, version, expires_at, now),
        ).rowcount
        if not written:
            return None
    else:
        written = c.execute(
            "UPDATE kv SET value = ?, version = ?, expires_at = ? WHERE namespace = ? AND key = ? AND version = ?"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (value, version, expires_at, namespace, key, if_version, now),
        ).rowcount
        if not written:
            return None
    return KVRecord(namespace, key, value, version, expires_at)


def _kv_write_puts(
    c: sqlite3.Connection,
    puts: list[tuple[str, list[tuple[str, bytes]], float | None]],
    versions: VersionCounter,
    first: int | None = None,
) -> list[list[KVRecord]]:
    """Unconditional puts, in order, with one `executemany` for all of them, as versions from `first` on (taken
    here, all at once, when None)."""
    version = (versions.take(c, sum(len(items) for _, items, _ in puts)) if first is None else first) - 1
    rows: list[tuple[str, str, bytes, int, float | None]] = []
    everything: list[list[KVRecord]] = []
    for namespace, items, expires_at in puts:
        records: list[KVRecord] = []
        for key, value in items:
            version += 1
            rows.append((namespace, key, value, version, expires_at))
            records.append(KVRecord(namespace, key, value, version, expires_at))
        everything.append(records)
    c.executemany("INSERT OR REPLACE INTO kv (namespace, key, value, version, expires_at) VALUES (?, ?, ?, ?, ?)", rows)
    return everything


def _kv_delete(c: sqlite3.Connection, namespace: str, key: str, if_version: int | None, now: float) -> bool:
    live = _kv_live_version(c, namespace, key, now)
    if live == ABSENT or (if_version is not None and live != if_version):
        return False
    c.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
    return True


def _kv_scan(
    c: sqlite3.Connection, namespace: str, prefix: str, end: str | None, limit: int, now: float
) -> list[KVRecord]:
    rows = c.execute(
        "SELECT key, value, version, expires_at FROM kv WHERE namespace = ? AND key >= ?"
        + ("" if end is None else " AND key < ?")
        + " AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?",
        (namespace, prefix, *(() if end is None else (end,)), now, limit),
    ).fetchall()
    return [KVRecord(namespace, key, value, version, expires) for key, value, version, expires in rows]


def _after_prefix(prefix: str) -> str | None:
    """The least string greater than every string starting with `prefix` (None: there is none).

    SQLite compares text as UTF-8 bytes, which orders like code points, so a
    range `prefix <= key < _after_prefix(prefix)` is a prefix match that uses
    the index, with no LIKE wildcards to escape.
    """
    stripped = prefix.rstrip(chr(0x10FFFF))
    if not stripped:
        return None
    following = ord(stripped[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:
        following = 0xE000  # surrogates cannot be stored; the next storable code point
    return stripped[:-1] + chr(following)
