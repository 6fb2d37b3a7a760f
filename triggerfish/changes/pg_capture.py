"""One function's change capture: a logical replication slot read with SQL, in batches, advanced after success.

    reader = SlotReader(capture, invoker, store, publisher, app="shop")
    reader.start()          # connects, checks the setup, reads in the background
    await reader.step(conn) # or one peek-and-run, here and now
    await reader.stop()

psycopg 3 speaks no replication protocol, so the slot is read with the SQL
functions: `pg_logical_slot_peek_changes` decodes whole transactions from the
slot's confirmed position without moving it; the rows about the captured
table become DynamoDB Streams records (`pg_records`); they run through the
stream engine's `run_batch` (batchItemFailures, bisect, retries, record age,
the failure destination) in batches of `batch_size`; and only once a batch is
settled does `pg_replication_slot_advance` move the slot past the last
transaction the batch finished. A platform killed anywhere in that leaves the
slot where it was, so the batch runs again (at least once). A transaction
larger than a batch is finished over several batches: the slot can only move
to a commit, so the reader remembers, in memory, the position it handled up
to and skips those records on the next peek (after a crash they run again).

One reader per slot across nodes: the reader holds a session advisory lock
on the slot's name while it reads, so another node (or a second process on
the same data) waits, and takes over within a few seconds of a crash (the
lock dies with the connection). Records are in commit order, one batch at a
time, so every row's changes are handled in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from triggerfish.bus.publisher import Publisher
from triggerfish.changes.pg_decoding import Begin, Commit, DecodingFormatError, RowChange, parse_line
from triggerfish.changes.pg_records import (
    Position,
    RecordError,
    ViewType,
    commit_time,
    format_lsn,
    parse_lsn,
    stream_record,
)
from triggerfish.changes.pg_setup import TableInfo, TableName, drop_slot, prepare, slot_lag
from triggerfish.errors import InvocationError
from triggerfish.events.patterns import compile_pattern
from triggerfish.model import Destination
from triggerfish.retry import RetryPolicy
from triggerfish.store import Store
from triggerfish.streams.batches import Attempt, BatchOptions, GivenUp, Item, run_batch
from triggerfish.streams.consumer import StreamInvoker
from triggerfish.streams.failures import BatchContext, failure_record, send_failure

logger = logging.getLogger("triggerfish.changes")

#: Seconds between peeks while the slot has had nothing new for a while (the floor of write-to-handler latency
#: when idle): a peek decodes the WAL from the slot's restart point, so polling faster costs the server.
POLL_INTERVAL = 0.02
#: Seconds before the first peek after one that found records: the pause doubles after each empty peek up to
#: POLL_INTERVAL, so a steady stream of writes is read within a few milliseconds and an idle slot costs as before.
BUSY_POLL_INTERVAL = 0.002
#: Most decoded rows one peek asks for (whole transactions are always returned, so it may give more). The
#: server counts every table's rows of the database (test_decoding cannot filter; the WHERE applies after), and
#: each peek decodes again from the slot's restart point: a large figure keeps a busy database's other tables
#: from making many slow peeks. Only the captured table's rows reach the platform.
PEEK_ROWS = 50_000
#: Seconds between tries to take the slot's lock while another reader holds it, and after a failure.
RETRY_PAUSE = 2.0
#: The advisory lock's first key ('tf'); the second is the hash of the slot's name.
LOCK_CLASS = 0x7466
#: What `status` shows while another node (or process) holds the slot's lock.
_HELD_ELSEWHERE = "another session reads this slot (its advisory lock is taken)"
#: A read of the slot slower than this many seconds is logged, with the usual reason.
SLOW_PEEK = 1.0
#: Seconds between measurements of the slot's lag while reading.
LAG_PERIOD = 5.0

#: pg_replication_slots.wal_status values that mean the slot holds back more WAL than the server wants to keep.
_WAL_TROUBLE = {
    "extended": "past max_wal_size, kept only for this slot (the function is slow or failing)",
    "unreserved": "past max_slot_wal_keep_size: the next checkpoint removes it and the slot's changes are lost",
}

_PEEK = (
    "SELECT lsn::text, data FROM pg_logical_slot_peek_changes(%s, NULL, %s, 'include-xids', '1',"
    " 'include-timestamp', '1', 'skip-empty-xacts', '1')"
    " WHERE starts_with(data, 'BEGIN') OR starts_with(data, 'COMMIT') OR starts_with(data, %s)"
)


@dataclass(frozen=True, slots=True)
class Capture:
    """A function's change capture, as declared and resolved; a reader restarts on update only if this changed."""

    function: str
    #: Where the URL came from (`env:ORDERS_DB`), for messages: the URL itself may hold a password.
    source: str
    url: str = field(repr=False)
    table: TableName
    slot: str
    view: ViewType = "NEW_IMAGE"
    #: The eventNames that reach the function (INSERT, MODIFY, REMOVE).
    events: tuple[str, ...] = ("INSERT", "MODIFY", "REMOVE")
    batch_size: int = 100
    batch_window: float = 0.0
    options: BatchOptions = field(default_factory=BatchOptions)
    timeout: float = 3.0
    on_failure: Destination | None = None
    filters: tuple[str, ...] = ()
    #: `parallelization`: above 1, the records go through partitions (`pg_partitions.SlotMover`).
    partitions: int = 1


@dataclass(slots=True)
class ReaderState:
    """What `status` and the metrics show of a reader."""

    #: Whether this node reads the slot now (holds its lock).
    reading: bool = False
    #: Bytes of WAL the server keeps for the slot beyond its confirmed position (None: not measured yet).
    lag_bytes: int | None = None
    wal_status: str | None = None
    #: With parallelization > 1: records moved into the partitions and not handled yet (None: not measured).
    backlog: int | None = None
    records: int = 0
    batches: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class _Pending:
    """A record peeked, with where the slot may move once it is handled."""

    position: Position
    created: float
    record: dict[str, Any] | None  # None: filtered out, handled by skipping it
    #: The LSN the slot may advance to once this record (and all before it) is handled; None: not yet.
    advance_to: int | None


class SlotReader:
    """Reads one capture's slot; see the module docstring."""

    def __init__(
        self,
        capture: Capture,
        invoker: StreamInvoker,
        store: Store,
        publisher: Publisher,
        *,
        app: str,
        retry_policy: RetryPolicy,
        clock: Callable[[], float] = time.time,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.capture = capture
        self.invoker = invoker
        self.store = store
        self.publisher = publisher
        self.app = app
        self.retry_policy = retry_policy
        self.clock = clock
        self.poll_interval = poll_interval
        self.state = ReaderState()
        self.source_arn = ""
        self._table: TableInfo | None = None
        #: The last record handled: records at or before it are skipped when peeked again (see the docstring).
        self._done: Position | None = None
        self._advanced = 0
        self._filters = [compile_pattern(text) for text in capture.filters]
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"triggerfish-pgcapture:{self.capture.function}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def connect(self, *, fresh: bool = False) -> Any:
        """A connection with the setup checked and the slot made; `fresh` drops the slot first (starts at now)."""
        import psycopg

        conn = await psycopg.AsyncConnection.connect(self.capture.url, autocommit=True)
        try:
            if fresh:
                await drop_slot(conn, self.capture.slot)
            self._table = await prepare(conn, self.capture.table, slot=self.capture.slot, view=self.capture.view)
        except BaseException:
            await conn.close()
            raise
        self.source_arn = source_arn(self._table.database, self.capture.table, self.capture.slot)
        return conn

    async def _run(self) -> None:
        capture = self.capture
        while not self._stopping.is_set():
            conn = None
            try:
                conn = await self.connect()
                await self.connected()
                locked = await (
                    await conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, capture.slot))
                ).fetchone()
                if not locked[0]:
                    if self.state.last_error != _HELD_ELSEWHERE:
                        logger.info("%s: another session reads slot %s; waiting for it", capture.function, capture.slot)
                    self.state.last_error = _HELD_ELSEWHERE
                    await self._pause(RETRY_PAUSE)
                    continue
                self.state.reading, self.state.last_error = True, None
                logger.info("%s: reading slot %s for %s", capture.function, capture.slot, capture.table)
                # Measured beside the reading, so the lag shows while a failing batch is retried (the case it is
                # for); psycopg runs one statement at a time on the connection, which is idle while a batch runs.
                measurer = asyncio.create_task(self._measure_forever(conn))
                try:
                    pause = self.poll_interval
                    while not self._stopping.is_set():
                        if await self.step(conn):
                            pause = min(BUSY_POLL_INTERVAL, self.poll_interval)
                        else:
                            await self._pause(pause)
                            pause = min(pause * 2, self.poll_interval)
                finally:
                    measurer.cancel()
                    await asyncio.gather(measurer, return_exceptions=True)
            except _Stopped:
                return
            except Exception as exc:
                self.state.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("%s: reading slot %s failed (%s); trying again", capture.function, capture.slot, exc)
                await self._pause(RETRY_PAUSE)
            finally:
                self.state.reading = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()

    async def connected(self) -> None:
        """Called once the reader connected and checked its setup (before it takes the slot's lock)."""

    async def run_due(self, conn: Any) -> int:
        """Run what is new in the slot here and now, retries without waiting (`triggerfish.testing`)."""
        return await self.step(conn, sleep=_no_wait)

    async def trim(self, *, max_age: float) -> int:
        """Records kept by the platform that may go (none here: the slot keeps them, and forgets on advance)."""
        return 0

    async def _measure_forever(self, conn: Any) -> None:
        while True:
            try:
                await self.measure(conn)
            except Exception as exc:  # the reading loop meets the same failure and reconnects
                logger.debug("%s: measuring the slot's lag failed: %s", self.capture.function, exc)
            await asyncio.sleep(LAG_PERIOD)

    async def measure(self, conn: Any) -> None:
        lag = await slot_lag(conn, self.capture.slot)
        if lag is not None:
            if lag[1] != self.state.wal_status and lag[1] in _WAL_TROUBLE:
                logger.warning(
                    "%s: slot %s is %d bytes behind and its WAL is %s: %s",
                    self.capture.function,
                    self.capture.slot,
                    lag[0],
                    lag[1],
                    _WAL_TROUBLE[lag[1]],
                )
            self.state.lag_bytes, self.state.wal_status = int(lag[0]), lag[1]

    async def step(self, conn: Any, *, sleep: Callable[[float], Awaitable[None]] | None = None) -> int:
        """Peek, run what is new in batches, advance the slot after each; how many records were handled.

        `sleep` waits between retries of a failing batch (default: the backoff, ended early by `stop`).
        """
        capture = self.capture
        pending = await self._gather(conn)
        handled = 0
        for start in range(0, len(pending), capture.batch_size):
            chunk = pending[start : start + capture.batch_size]
            items = [Item(p.position.sequence, p.created, p.record) for p in chunk if p.record is not None]
            if items:
                await run_batch(
                    items,
                    self._invoke,
                    capture.options,
                    fail=self._fail,
                    backoff=self.retry_policy.backoff,
                    sleep=sleep or self._wait_retry,
                    clock=self.clock,
                )
                self.state.batches += 1
            handled += len(chunk)
            self.state.records += len(items)
            self._done = chunk[-1].position
            target = max((p.advance_to for p in chunk if p.advance_to is not None), default=None)
            if target is not None and target > self._advanced:
                await self._advance(conn, target)
        return handled

    async def _advance(self, conn: Any, lsn: int) -> None:
        """Move the slot to `lsn` (a commit): the server forgets what is before it, and may let its WAL go."""
        await conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (self.capture.slot, format_lsn(lsn)))
        self._advanced = lsn

    async def _gather(self, conn: Any) -> list[_Pending]:
        """What is new in the slot: a batch's worth, or less once `batch_window` closes (0: what is there)."""
        capture = self.capture
        deadline: float | None = None
        while True:
            pending, last_commit = await self._peek(conn)
            if not pending and last_commit is not None and last_commit > self._advanced:
                # Only other tables' transactions: move past them, so the server can let their WAL go.
                await self._advance(conn, last_commit)
            if not pending or len(pending) >= capture.batch_size or capture.batch_window <= 0:
                return pending
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + capture.batch_window
            if now >= deadline or self._stopping.is_set():
                return pending
            await self._pause(min(self.poll_interval * 5, deadline - now))

    async def _peek(self, conn: Any) -> tuple[list[_Pending], int | None]:
        assert self._table is not None
        began = time.monotonic()
        rows = await (await conn.execute(_PEEK, (self.capture.slot, PEEK_ROWS, self._table.prefix))).fetchall()
        took = time.monotonic() - began
        if took > SLOW_PEEK:
            # Decoding starts at the slot's restart point, which a long-open transaction anywhere on the server
            # holds back: every peek then decodes again all the WAL written since it began.
            logger.warning(
                "%s: reading slot %s took %.1f s (%d rows); a long-open transaction on the server, or a very"
                " large one, makes every read decode its WAL again",
                self.capture.function,
                self.capture.slot,
                took,
                len(rows),
            )
        return self.pending(rows)

    def pending(self, rows: Sequence[tuple[str, str]]) -> tuple[list[_Pending], int | None]:
        """The records in peeked rows not yet handled, and the last commit LSN seen (see `_Pending`)."""
        assert self._table is not None
        capture, table = self.capture, self._table
        txns: list[tuple[int, float, list[RowChange]]] = []
        changes: list[RowChange] = []
        for lsn, data in rows:
            try:
                line = parse_line(data)
            except DecodingFormatError as exc:
                raise DecodingFormatError(f"slot {capture.slot}: {exc}") from None
            if isinstance(line, Begin):
                changes = []
            elif isinstance(line, Commit):
                txns.append((parse_lsn(lsn), commit_time(line.at, self.clock()), changes))
            elif line.op == "TRUNCATE":
                logger.warning("%s: %s was truncated; a TRUNCATE has no rows, so no records", capture.function, table)
            else:
                changes.append(line)
        out: list[_Pending] = []
        for commit_lsn, created, rows_changed in txns:
            for index, change in enumerate(rows_changed):
                position = Position(commit_lsn, index)
                if self._done is not None and position <= self._done:
                    continue
                out.append(_Pending(position, created, self._record(change, position, created), None))
            # The slot may move to this commit once the last record before it is handled.
            if out:
                last = out[-1]
                out[-1] = _Pending(last.position, last.created, last.record, commit_lsn)
        last_commit = txns[-1][0] if txns else None
        return out, last_commit

    def _record(self, change: RowChange, position: Position, created: float) -> dict[str, Any] | None:
        assert self._table is not None
        try:
            record = stream_record(
                change,
                position,
                keys=self._table.keys,
                view=self.capture.view,
                created=created,
                source_arn=self.source_arn,
            )
        except RecordError as exc:
            logger.error("%s: %s; skipped", self.capture.function, exc)
            return None
        if record["eventName"] not in self.capture.events:
            return None
        if self._filters and not any(pattern.matches(record) for pattern in self._filters):
            return None
        return record

    async def _invoke(self, batch: Sequence[Item]) -> Attempt:
        capture = self.capture
        try:
            result = await self.invoker.invoke(
                capture.function,
                {"Records": [dict(item.record) for item in batch]},
                wait=min(capture.timeout + 1.0, 900.0),
                trigger="change",
            )
        except InvocationError as exc:
            logger.warning("%s: a batch of %d changes failed: %s", capture.function, len(batch), exc)
            return Attempt(False, error=str(exc))
        except Exception as exc:  # the platform's own failure: the batch did not run, so it is tried again
            logger.exception("%s: invoking the function failed", capture.function)
            return Attempt(False, error=f"{type(exc).__name__}: {exc}")
        return Attempt(True, result)

    async def _fail(self, gone: GivenUp) -> None:
        capture = self.capture
        context = BatchContext(self.app, capture.function, "DDBStream", self.source_arn, 0)
        await send_failure(
            capture.on_failure,
            failure_record(gone, context, now=self.clock()),
            store=self.store,
            publisher=self.publisher,
            invoker=self.invoker,
        )

    async def _wait_retry(self, seconds: float) -> None:
        await self._pause(seconds)
        if self._stopping.is_set():
            raise _Stopped

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: on 3.11 it can lose a cancellation
                await self._stopping.wait()


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


class _Stopped(Exception):
    """A stop came while a failed batch waited for its retry: the slot stays where it was, the batch runs again."""


def source_arn(database: str, table: TableName, slot: str) -> str:
    """The records' `eventSourceARN`: DynamoDB's stream ARN's shape, naming the database, table and slot."""
    from triggerfish.identity import ACCOUNT_ID, REGION

    return f"arn:triggerfish:postgresql:{REGION}:{ACCOUNT_ID}:table/{database}/{table}/stream/{slot}"
