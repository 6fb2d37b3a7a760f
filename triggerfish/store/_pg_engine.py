"""The PostgreSQL store's engine: the pool, transactions with their failures mapped, the clock, wake-ups.

- **Transactions.** `run(fn, ...)` runs `fn(connection, ...)` in one transaction
  on a pooled connection. A connection that died while idle in the pool (the
  server restarted, `pg_terminate_backend`) fails before COMMIT was sent, so
  nothing happened and the transaction is run again on another connection; a
  failure during COMMIT leaves the outcome unknown and is reported as
  StoreUnavailableError, never as a success. Deadlocks and serialization
  failures are retried too: the transaction was rolled back.
- **Pipelined transactions.** `run(fn, ..., pipeline=True)` sends BEGIN, every
  statement of `fn` and COMMIT in libpq's pipeline mode: a statement goes out
  at once and only a fetch of a result waits for the server, so a transaction
  costs one round trip per result it needs before COMMIT, plus COMMIT's,
  instead of one per statement. Its `fn` must read results by fetching them
  (`RETURNING`), never through `rowcount`, which a pipeline fills in late.
- **The clock.** Leases, visibility and expiry use the database's clock, so
  nodes whose clocks differ agree on them: each node measures its offset from
  the database clock (the midpoint of a round trip) on open and every minute,
  and its parts' clock is its own plus that offset.
- **Wake-ups.** After an append or send commits, other nodes are told with a
  NOTIFY in a transaction of its own, so data transactions never take
  NOTIFY's commit-time lock: in a pipelined write, right after its COMMIT in
  the same pipeline (`wakes`); otherwise queued, and sent on a pooled
  connection, coalesced per name while one is in flight. A
  listening connection turns other nodes' notifications into local wake-ups.
  They are hints only: polling remains, and finds delayed messages too.
- **Statistics.** A new schema's tables have none until autovacuum's first
  ANALYZE (a minute or more), and without them the planner takes any
  `queue = ...` as selective: the common lease then reads and sorts every
  visible message to take a batch. `analyze_soon(table)` (called by the queues
  when a lease comes back full, that is behind a backlog) ANALYZEs the table in
  the background when it has no statistics yet; the cached plans of prepared
  statements are invalidated by it and planned again with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import AsyncConnection, AsyncCursor, errors, sql

from triggerfish.errors import StoreClosedError, StoreError, StoreFullError, StoreUnavailableError
from triggerfish.store._pg_arrays import text_array
from triggerfish.store._sqlite_worker import WorkerStats

logger = logging.getLogger("triggerfish.store")

T = TypeVar("T")
Conn = AsyncConnection[Any]
Cursor = AsyncCursor[Any]

#: Seconds between clock measurements and sweeps of expired records and dedup ids.
MAINTENANCE_INTERVAL = 60.0
#: Seconds between looks at the churned tables' dead rows, and how many make this node vacuum them.
VACUUM_INTERVAL = 2.0
VACUUM_DEAD_ROWS = 10_000
#: Seconds before looking again at a table whose ANALYZE left no statistics (it was empty by then).
ANALYZE_RETRY = 30.0
#: The tables every receive, acknowledgement or claim updates or deletes rows of.
CHURNED = ("messages", "dedup", "streams", "log_groups", "log_claims", "kv")

#: How often a transaction is run again after a connection that died idle, a deadlock or a serialization failure.
ATTEMPTS = 4

_RETRYABLE = (errors.DeadlockDetected, errors.SerializationFailure)


#: Wake-ups for other nodes: one notification per payload.
_NOTIFY = "SELECT pg_notify(%s, p) FROM unnest(%b::text[]) AS p"


def _succeeded(commit: Cursor) -> bool:
    """Whether the COMMIT run by `commit` committed (a COMMIT of a failed transaction answers ROLLBACK)."""
    result = commit.pgresult
    return result is not None and result.command_status == b"COMMIT"


async def _roll_back(conn: Conn) -> None:
    """End a pipelined transaction that failed (or whose failure the pipeline's sync reported), if it is open."""
    if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        with contextlib.suppress(psycopg.Error):
            await conn.execute("ROLLBACK")


class DatabaseClock:
    """This node's clock corrected to the database's: its own time plus a measured offset."""

    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self.local = local
        self.offset = 0.0

    def __call__(self) -> float:
        return self.local() + self.offset

    async def measure(self, conn: Conn) -> None:
        before = self.local()
        cursor = await conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
        row = await cursor.fetchone()
        after = self.local()
        assert row is not None
        self.offset = float(row[0]) - (before + after) / 2


class Engine:
    """What the three PostgreSQL parts share: one pool, one clock, one notifier, one listener."""

    def __init__(
        self, *, where: str, conninfo: str, schema: str, pool_size: int, notify: bool, connect_timeout: float
    ) -> None:
        self.where = where
        self.connect_timeout = connect_timeout
        self.schema = schema
        self.channel = f"triggerfish_{schema}"
        self.clock = DatabaseClock()
        #: Merged write transactions of one kind in flight at once: a share of the pool.
        self.in_flight = max(1, pool_size // 3)
        self._conninfo = conninfo
        self._notify_enabled = notify
        self.pool: psycopg_pool.AsyncConnectionPool[Conn] = psycopg_pool.AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            open=False,
            kwargs={
                "autocommit": True,
                "options": f"-c search_path={schema}",
                "connect_timeout": max(1, round(connect_timeout)),
            },
            name=f"triggerfish-store:{schema}",
        )
        self.closed = False
        #: Write transactions committed so far, the operations they carried and the seconds they took (BEGIN to
        #: COMMIT): the same figures as the SQLite writer's group commit, so `/-/metrics` reports both alike.
        self.stats = WorkerStats()
        self._pending_notifies: set[str] = set()
        self._notifying = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_notify: Callable[[str], None] = lambda payload: None
        #: Per table, when `analyze_soon` may look at it next (never again once it has statistics).
        self._next_analysis: dict[str, float] = {}

    async def open(self) -> None:
        try:
            await self.pool.open(wait=True, timeout=self.connect_timeout)
        except (psycopg_pool.PoolTimeout, psycopg.OperationalError) as exc:
            await self.pool.close()
            raise StoreUnavailableError(f"cannot reach the PostgreSQL store at {self.where}: {exc}") from exc

    def start(self, on_notify: Callable[[str], None]) -> None:
        """Start the background work: the listener (wake-ups from other nodes) and maintenance."""
        self._on_notify = on_notify
        if self._notify_enabled:
            self._spawn(self._listen())
        self._spawn(self._maintain())
        self._spawn(self._vacuum())

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A pooled connection (within `connect_timeout`), for one task's use; a cancellation of that task that
        came while it waited is never lost.

        psycopg_pool waits for a free connection with `asyncio.wait_for`, which on Python 3.11 returns the
        connection when it was handed over in the same turn as the task's cancellation, and drops the
        cancellation (fixed in 3.12). The task then goes on as if never cancelled, with `cancelling()` still
        counting the request, and every `asyncio.timeout` it enters afterwards takes its own expiry for that
        request and hides it as a timeout: a receive loop stopped that way ran on for good (seen: a node's
        workflow timers, and with them `Host.stop`, hung until the test's timeout). A count that rose across
        the wait is such a lost cancellation: it is raised here, the connection going back to the pool."""
        task = asyncio.current_task()
        before = 0 if task is None else task.cancelling()
        async with self.pool.connection(timeout=self.connect_timeout) as conn:
            if task is not None and task.cancelling() > before:
                raise asyncio.CancelledError
            yield conn

    # --- transactions -----------------------------------------------------------------------

    async def run(
        self,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        operations: int = 1,
        pipeline: bool = False,
        wakes: Collection[str] = (),
    ) -> T:
        """`fn(connection, *args)` in one transaction; its failures as StoreUnavailableError or StoreError.

        `operations`: how many callers' writes the transaction carries (a merged batch's size), for `stats`.
        `pipeline`: in pipeline mode (see the module's docstring; `fn` fetches every result it reads).
        `wakes`: with `pipeline`, what to tell other nodes once committed (as `notify_soon`), in the same
        pipeline after COMMIT: no connection and no round trip of its own."""
        return await self._attempt(fn, args, transaction=True, operations=operations, pipeline=pipeline, wakes=wakes)

    async def read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """`fn(connection, *args)` that only reads: each statement on its own, no BEGIN and COMMIT round trips."""
        return await self._attempt(fn, args, transaction=False)

    async def _attempt(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        *,
        transaction: bool,
        operations: int = 1,
        pipeline: bool = False,
        wakes: Collection[str] = (),
    ) -> T:
        for attempt in range(ATTEMPTS):
            if self.closed:
                raise StoreClosedError(f"the store {self.where} is closed; open it again with open_store()")
            committing = False
            try:
                async with self.connection() as conn:
                    if not transaction:
                        return await fn(conn, *args)
                    began = time.perf_counter()
                    if pipeline:
                        # BEGIN and COMMIT as plain statements in the pipeline: psycopg's `transaction()` would
                        # sync the pipeline on its way in and out, a round trip each. COMMIT's outcome, and the
                        # error of any statement whose result `fn` did not fetch, come back at the closing sync.
                        # The NOTIFY goes after COMMIT, in a transaction of its own (so the data's commit never
                        # takes NOTIFY's commit-time lock), and its failure after a COMMIT that succeeded is
                        # a lost hint, not a failed write.
                        committed: Cursor | None = None
                        try:
                            async with conn.pipeline():
                                await conn.execute("BEGIN")
                                result = await fn(conn, *args)
                                committing = True
                                committed = await conn.execute("COMMIT")
                                if wakes and self._notify_enabled and not self.closed:
                                    await conn.execute(_NOTIFY, (self.channel, text_array(sorted(wakes))))
                        except psycopg.Error as exc:
                            if committed is None or not _succeeded(committed):
                                await _roll_back(conn)
                                raise
                            logger.debug("store: NOTIFY failed (%s); other nodes will poll", exc)
                        except BaseException:
                            await _roll_back(conn)
                            raise
                    else:
                        async with conn.transaction():
                            result = await fn(conn, *args)
                            committing = True
                    self._committed(operations, time.perf_counter() - began)
                    return result
            except psycopg_pool.PoolTimeout as exc:
                raise self._unavailable(f"no connection within {self.connect_timeout:g} s ({exc})") from exc
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if isinstance(exc, errors.DiskFull):
                    raise StoreFullError(
                        f"the PostgreSQL store at {self.where} is full ({exc}); nothing was written", retry_after=30
                    ) from exc
                if committing and not isinstance(exc, _RETRYABLE):
                    raise self._unavailable(
                        f"the connection failed during COMMIT, so whether it was written is unknown ({exc})"
                    ) from exc
                if attempt + 1 < ATTEMPTS:
                    continue  # rolled back, nothing was written: try again (on another connection)
                raise self._unavailable(str(exc)) from exc
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL failed on {self.where}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _committed(self, operations: int, seconds: float) -> None:
        stats = self.stats
        stats.batches += 1
        stats.operations += operations
        stats.seconds += seconds
        if operations > stats.largest:
            stats.largest = operations

    def _unavailable(self, why: str) -> StoreUnavailableError:
        return StoreUnavailableError(f"the PostgreSQL store at {self.where} is unavailable: {why}", retry_after=1.0)

    # --- wake-ups ---------------------------------------------------------------------------

    def notify_soon(self, payload: str) -> None:
        """Tell other nodes (after this commit) that `payload` (`l:stream` or `q:queue`) has news."""
        if not self._notify_enabled or self.closed:
            return
        self._pending_notifies.add(payload)
        if not self._notifying:
            self._notifying = True
            self._spawn(self._send_notifies())

    async def _send_notifies(self) -> None:
        try:
            while self._pending_notifies and not self.closed:
                payloads, self._pending_notifies = sorted(self._pending_notifies), set()
                try:
                    async with self.connection() as conn:
                        await conn.execute(_NOTIFY, (self.channel, text_array(payloads)))
                except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                    # A lost hint costs other nodes one poll interval, nothing more.
                    logger.debug("store: NOTIFY failed (%s); other nodes will poll", exc)
        finally:
            self._notifying = False

    async def _listen(self) -> None:
        while not self.closed:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    async for notification in conn.notifies():
                        self._on_notify(notification.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("store: the LISTEN connection failed (%s); polling until it is back", exc)
            await asyncio.sleep(1.0)

    # --- maintenance ------------------------------------------------------------------------

    async def _vacuum(self) -> None:
        # Autovacuum looks at a database once a minute (autovacuum_naptime), and a busy queue
        # leaves hundreds of thousands of dead rows in that time: the table and its indexes grow,
        # and every receive wades through them. So the store vacuums its own churned tables when
        # their dead rows pass a threshold, one node at a time (an advisory lock decides which).
        lock = f"triggerfish-vacuum:{self.schema}"
        while not self.closed:
            await asyncio.sleep(VACUUM_INTERVAL)
            try:
                async with self.connection() as conn:
                    cursor = await conn.execute(
                        "SELECT relname FROM pg_stat_user_tables WHERE schemaname = %s AND n_dead_tup > %s"
                        " AND relname = ANY(%s)",
                        (self.schema, VACUUM_DEAD_ROWS, list(CHURNED)),
                    )
                    tables = [name for (name,) in await cursor.fetchall()]
                    if not tables:
                        continue
                    cursor = await conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (lock,))
                    row = await cursor.fetchone()
                    if not row or not row[0]:
                        continue
                    try:
                        for table in tables:
                            await conn.execute(sql.SQL("VACUUM {}").format(sql.Identifier(self.schema, table)))
                    finally:
                        await conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (lock,))
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                logger.debug("store: vacuuming failed (%s); autovacuum remains", exc)

    def analyze_soon(self, table: str) -> None:
        """ANALYZE `table` in the background if it has no statistics yet; cheap to call on every full lease."""
        now = time.monotonic()
        if self.closed or now < self._next_analysis.get(table, 0.0):
            return
        self._next_analysis[table] = now + ANALYZE_RETRY
        self._spawn(self._analyze(table))

    async def _analyze(self, table: str) -> None:
        # pg_stats has a row per analyzed column: none on a table never analyzed, or analyzed while empty.
        has_statistics = "SELECT EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = %s AND tablename = %s)"
        try:
            async with self.connection() as conn:
                cursor = await conn.execute(has_statistics, (self.schema, table))
                row = await cursor.fetchone()
                if not (row and row[0]):
                    await conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(self.schema, table)))
                    cursor = await conn.execute(has_statistics, (self.schema, table))
                    row = await cursor.fetchone()
            if row and row[0]:
                self._next_analysis[table] = float("inf")
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            logger.debug("store: analyzing %s failed (%s); autovacuum remains", table, exc)

    async def _maintain(self) -> None:
        while not self.closed:
            await asyncio.sleep(MAINTENANCE_INTERVAL)
            try:
                async with self.connection() as conn:
                    await self.clock.measure(conn)
                    now = self.clock()
                    await conn.execute("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= %s", (now,))
                    await conn.execute("DELETE FROM dedup WHERE expires_at <= %s", (now,))
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                logger.debug("store: maintenance failed (%s); trying again later", exc)
