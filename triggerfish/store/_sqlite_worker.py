"""A thread that owns one SQLite connection and runs operations for the event loop.

The writer is what makes the SQLite store fast and safe at once. Callers on
the event loop hand it small operations (a function of the connection); the
thread takes everything pending, runs it all in ONE transaction, commits
once, and only then resolves every caller's future. One fsync thus pays for
a whole batch (group commit), no caller hears "done" before its data is on
disk, and the event loop never blocks on SQLite.

Each operation in a batch runs inside its own SAVEPOINT, so one failing
operation rolls back only its own changes and fails only its own caller.

Some operations need no fsync: a lease (a queue receive, a log claim, their
extensions and releases) lost in a crash only makes the message or range
visible again, which at-least-once delivery already allows for. A batch of
nothing but those commits with `synchronous=NORMAL`; in WAL mode that skips
the fsync but keeps the file consistent, and the next durable commit's fsync
covers it too.

The thread is woken once per turn of the event loop that gave it work (at the
turn's end), so the writes one turn makes go in one batch and the thread is
not woken (a futex call, and on a busy machine a lost core) once for each.

In a batch, the leases run after everything else, in the order each kind
was submitted. A receive (or a log claim) that waited in the queue while the
writer committed the batch before sees what the sends and appends that joined
it meanwhile wrote, instead of leaving it for its next look: a dispatcher's
look that went in just before a publish's routing write takes that event's
invocation in the commit that publishes it, one writer round trip sooner.
Operations in one batch were submitted without awaiting each other, so any
order of them is one their callers could have seen.

A reader worker uses the same machinery without the transaction: WAL lets
it read committed data while the writer writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from triggerfish.errors import StoreClosedError, StoreError, StoreFullError

T = TypeVar("T")

Operation = Callable[[sqlite3.Connection], Any]


class TransactionState(Protocol):
    """What the writer's operations keep for the rest of their transaction (the version counter, _sqlite_versions).

    Forgotten when a transaction begins; written into it just before it commits, outside every operation's savepoint.
    """

    def begin(self) -> None: ...

    def before_commit(self, c: sqlite3.Connection) -> None: ...


@dataclass(slots=True)
class _Op:
    fn: Operation
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    durable: bool = True


@dataclass(slots=True)
class WorkerStats:
    """Group-commit figures: how many batches ran and how many operations they held."""

    batches: int = 0
    operations: int = 0
    largest: int = 0
    #: Batches of nothing but leases, committed without an fsync.
    unsynced: int = 0
    #: Seconds the batches took to run and commit, added up (the metrics' commit latency).
    seconds: float = 0.0

    @property
    def mean(self) -> float:
        return self.operations / self.batches if self.batches else 0.0


class Worker:
    """Runs operations on `connection` in its own thread; `transactional` makes each batch one transaction."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        name: str,
        path: str,
        transactional: bool,
        state: TransactionState | None = None,
    ) -> None:
        self._connection = connection
        self._path = path
        self._transactional = transactional
        self._state = state
        self._pending: list[_Op] = []
        #: The connection's `synchronous` setting now: FULL (fsync at every commit) or NORMAL.
        self._syncing = True
        self._lock = threading.Condition()
        self._closing = False
        #: The event loop whose turn ends with waking the thread for what is pending.
        self._waking: asyncio.AbstractEventLoop | None = None
        self.stats = WorkerStats()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> asyncio.Future[T]:
        """Queue `fn(connection)`; the future resolves after it ran (and, for the writer, committed).

        `durable=False`: a change a crash may lose (a lease); see the module docstring.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closing:
                raise StoreClosedError(f"the store {self._path} is closed; open it again with open_store()")
            self._pending.append(_Op(fn, future, loop, durable))
            if len(self._pending) == 1:
                # The thread is woken when this turn of the event loop ends, not now: what the rest of the turn
                # submits (a request's record, log append and trace entry; other requests' writes) joins the
                # batch, and the thread wakes once for all of it. Each wake is a futex call, and on a busy
                # machine it can cost the event loop its core and then the GIL.
                self._waking = loop
                loop.call_soon(self._wake)
            elif loop is not self._waking:
                self._lock.notify()  # another event loop's turn is not this one's to wait for
        return future

    def _wake(self) -> None:
        with self._lock:
            self._lock.notify()

    async def close(self) -> None:
        """Run what is pending, then stop the thread and close the connection."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._pending and not self._closing:
                        self._lock.wait()
                    batch, self._pending = self._pending, []
                if not batch:
                    return  # closing, and nothing left to do
                if self._transactional:
                    batch = _leases_last(batch)
                began = time.perf_counter()
                outcomes = (
                    self._run_transaction(batch)
                    if self._transactional
                    else [_call(op, self._connection) for op in batch]
                )
                self.stats.seconds += time.perf_counter() - began
                self.stats.batches += 1
                self.stats.unsynced += not any(op.durable for op in batch)
                self.stats.operations += len(batch)
                self.stats.largest = max(self.stats.largest, len(batch))
                _resolve(batch, outcomes)
        finally:
            self._connection.close()

    def _run_transaction(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        # Optimistic first: savepoints cost two statements per operation, and operations
        # almost never fail. If one does, the whole batch is rolled back and run again with
        # a savepoint around each operation, so the failure takes back only its own changes.
        # Nothing was acknowledged in between, so running an operation twice is invisible.
        outcomes = self._attempt(batch, isolate=len(batch) == 1)
        if outcomes is None:
            outcomes = self._attempt(batch, isolate=True)
        assert outcomes is not None
        return outcomes

    def _attempt(self, batch: list[_Op], *, isolate: bool) -> list[tuple[bool, Any]] | None:
        """Run the batch in one transaction; None when an operation failed and `isolate` is off."""
        connection = self._connection
        durable = any(op.durable for op in batch)
        try:
            if durable != self._syncing:
                connection.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                self._syncing = durable
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(False, _store_error(exc, self._path))] * len(batch)
        state = self._state
        if state is not None:
            state.begin()
        outcomes: list[tuple[bool, Any]] = []
        try:
            for op in batch:
                if isolate:
                    connection.execute("SAVEPOINT op")
                outcome = _call(op, connection)
                if not outcome[0]:
                    if not connection.in_transaction:
                        # SQLite rolled the whole transaction back itself (a full disk, an I/O error):
                        # nothing of the batch stands, and every caller hears why.
                        return [(False, outcome[1])] * len(batch)
                    if not isolate:
                        connection.execute("ROLLBACK")
                        return None
                    connection.execute("ROLLBACK TO op")
                if isolate:
                    connection.execute("RELEASE op")
                outcomes.append(outcome)
            if state is not None:
                state.before_commit(connection)
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            # Nothing of this batch is durable: every caller must hear that, not a success.
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            return [(False, _store_error(exc, self._path))] * len(batch)
        return outcomes


def _leases_last(batch: list[_Op]) -> list[_Op]:
    """`batch` with its leases (`durable=False`) moved behind the rest, each kind in its order (see the module)."""
    leases = [op for op in batch if not op.durable]
    if not leases or len(leases) == len(batch):
        return batch
    return [op for op in batch if op.durable] + leases


def _call(op: _Op, connection: sqlite3.Connection) -> tuple[bool, Any]:
    if op.future.cancelled():
        # The caller gave up before its turn: doing the work now would surprise it.
        return (True, None)
    try:
        return (True, op.fn(connection))
    except sqlite3.Error as exc:
        return (False, _store_error(exc, ""))
    except Exception as exc:
        return (False, exc)


def _store_error(exc: sqlite3.Error, path: str) -> StoreError:
    where = f" on {path}" if path else ""
    error: StoreError
    if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == sqlite3.SQLITE_FULL:
        # SQLITE_FULL is how SQLite reports ENOSPC (and a max_page_count reached): nothing was written.
        error = StoreFullError(f"the store file{where} is full ({exc}); free disk space, then retry", retry_after=30)
    else:
        error = StoreError(f"SQLite failed{where}: {exc}")
    error.__cause__ = exc
    return error


def _resolve(batch: list[_Op], outcomes: list[tuple[bool, Any]]) -> None:
    # One wake-up per event loop per batch, not one per operation: each
    # call_soon_threadsafe writes to the loop's self-pipe.
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for op, (ok, value) in zip(batch, outcomes, strict=True):
        by_loop.setdefault(op.loop, []).append((op.future, ok, value))
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed; nobody is waiting any more
            loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in items:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
