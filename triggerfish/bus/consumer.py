"""Consuming named log streams at least once, spread over every node: what buses and topics share.

A `LogConsumer` turns named log streams (a bus's `bus.<name>`, a topic's
`topic.<name>`) into deliveries. Every node runs one consumer loop per name,
all in one consumer group of the log (`router` for buses, `fan-out` for
topics): each loop claims the next range of records (`EventLog.claim`), so
the nodes share a stream's records between them instead of one node reading
it all. For each range the subclass says which writes make its deliveries
durable (`consume`: queue messages, mostly invocations); those writes and
the range's `Commit` go to the store together (`Store.atomic`), so a batch
costs one durable commit, and a crash anywhere leaves either the range
unconsumed (its lease lapses and another loop claims it again) or all of its
deliveries stored: every record is delivered at least once.

A claim this loop lost (it took longer than its lease and another loop
claimed the range again) is not committed: the store refuses the whole write,
and the other loop delivers the range.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from triggerfish.errors import AtomicConflictError
from triggerfish.store import LogClaim, LogRecord, Store
from triggerfish.store.atomic import Commit, Op

logger = logging.getLogger("triggerfish.bus")

#: Seconds a claimed range stays this loop's: longer than consuming a batch ever takes.
CLAIM_LEASE = 10.0


class LogConsumer(abc.ABC):
    """Consumes named log streams at least once, shared by every node; subclasses say what a record becomes.

    `group` is the log's consumer group every node joins; `claim_lease` how
    long a claimed range is this loop's before another may claim it again (a
    loop that died is taken over that long after). Running in the
    background, the consumer calls `reload()` every `refresh` seconds so that
    configuration another node changed (rules, subscriptions) takes effect
    here too. `namespace` is where consumers before consumer groups kept their
    checkpoints: a group that has never consumed a stream starts where that
    checkpoint says, so an upgrade delivers nothing twice.
    """

    #: What a name is called in log messages: "bus", "topic".
    kind = "stream"

    def __init__(
        self,
        store: Store,
        *,
        group: str,
        namespace: str,
        clock: Callable[[], float] = time.time,
        claim_lease: float = CLAIM_LEASE,
        batch_size: int = 256,
        refresh: float = 5.0,
    ) -> None:
        self.store = store
        self.group = group
        self.namespace = namespace
        self.clock = clock
        self.claim_lease = claim_lease
        self.batch_size = batch_size
        self.refresh = refresh
        self._adopted: set[str] = set()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- what a subclass says ----------------------------------------------------------------

    @abc.abstractmethod
    def stream(self, name: str) -> str:
        """The log stream of `name`."""

    @abc.abstractmethod
    async def names(self) -> list[str]:
        """Every name to consume now."""

    @abc.abstractmethod
    async def consume(self, name: str, records: list[LogRecord]) -> list[Op]:
        """The writes that make every delivery of `records` durable; stored together with the range's commit."""

    async def reload(self) -> None:  # noqa: B027  # a hook: most consumers have nothing to reload
        """Read configuration kept in the store again (another node may have changed it)."""

    def workers(self, name: str) -> list[Coroutine[Any, Any, None]]:
        """Background work for `name` besides its consumer (a delivery worker, say), run until `stop()`."""
        return []

    # --- consuming ---------------------------------------------------------------------------

    async def checkpoint(self, name: str) -> int:
        """The offset up to which every record of `name` has its deliveries stored (the group's position)."""
        await self._adopt(name)
        return await self.store.log.position(self.stream(name), self.group)

    async def pump(self, name: str, *, wait: float = 0.0) -> int:
        """Claim the next range of `name`, store its deliveries and commit it, in one write.

        Returns how many offsets the range covered (0 when nothing was new; a
        range whose records retention trimmed still counts, so callers see progress).
        """
        claim = await self._claim(name, wait)
        if claim is None:
            return 0
        writes = await self.consume(name, claim.records) if claim.records else []
        await self._store(name, claim, writes)
        return claim.last - claim.first + 1

    async def _claim(self, name: str, wait: float) -> LogClaim | None:
        await self._adopt(name)
        return await self.store.log.claim(
            self.stream(name), self.group, limit=self.batch_size, lease=self.claim_lease, wait=wait
        )

    async def _store(self, name: str, claim: LogClaim, writes: list[Op]) -> None:
        """Store a range's deliveries together with its commit (one durable write)."""
        try:
            await self.store.atomic([*writes, Commit(claim)])
        except AtomicConflictError as exc:
            if exc.index != len(writes):
                raise  # a delivery's own condition failed: the range stays claimed and comes back
            # Our lease lapsed and another loop claimed the range again: it delivers it; ours were not stored.
            logger.warning(
                "%s %r: offsets %d to %d were claimed again by another consumer; left to it",
                self.kind,
                name,
                claim.first,
                claim.last,
            )

    async def _adopt(self, name: str) -> None:
        """A group new to a stream starts where the consumer before consumer groups got to (its checkpoint)."""
        if name in self._adopted:
            return
        stream = self.stream(name)
        if self.group not in await self.store.log.groups(stream):
            old = await self.store.kv.get(self.namespace, f"checkpoint/{name}")
            if old is not None and int(old.value) > 0:
                await self.store.log.seek(stream, self.group, int(old.value))
                logger.info(
                    "%s %r: consumer group %r starts at the old checkpoint %s",
                    self.kind,
                    name,
                    self.group,
                    old.value.decode(),
                )
        self._adopted.add(name)

    # --- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the configuration, then consume every name in the background until `stop()`."""
        await self.reload()
        self._stop.clear()
        self._tasks.append(asyncio.create_task(self._supervise()))

    async def stop(self) -> None:
        """Stop the background work (a range being consumed is left to its lease)."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _supervise(self) -> None:
        running: dict[str, list[asyncio.Task[None]]] = {}
        loaded = time.monotonic()
        try:
            while not self._stop.is_set():
                if time.monotonic() - loaded >= self.refresh:
                    loaded = time.monotonic()
                    try:
                        await self.reload()
                    except Exception:
                        logger.exception(
                            "%s: could not read the configuration again; keeping what is loaded", self.kind
                        )
                try:
                    for name in await self.names():
                        if name not in running:
                            work = [self._consume(name), *self.workers(name)]
                            running[name] = [asyncio.create_task(job) for job in work]
                except Exception:
                    # The store may be unreachable for a while: what runs goes on, new names are found later.
                    logger.exception("%s: could not list what to consume; trying again", self.kind)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(1.0, self.refresh)):
                        await self._stop.wait()
        finally:
            tasks = [task for group in running.values() for task in group]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _consume(self, name: str) -> None:
        """Consume `name` until `stop()`: while one range's write commits, the next is claimed and matched.

        One write is in flight at a time and each is sent only once the one before it is stored, so the
        ranges' deliveries are stored in the order of the log; the claim and the matching of the next range
        overlap the commit of the last (the claim often shares the writer's batch with it), which takes a
        store round trip out of the path from publish to handler. A range whose write failed stays claimed
        and is consumed again once its lease ends (at least once), as before.
        """
        writing: asyncio.Task[None] | None = None
        try:
            while not self._stop.is_set():
                try:
                    claim = await self._claim(name, 0.0 if writing is not None else 1.0)
                    writes = await self.consume(name, claim.records) if claim is not None and claim.records else []
                except Exception:
                    logger.exception("%s %r: the consumer failed; trying again in 1 s", self.kind, name)
                    await asyncio.sleep(1.0)
                    continue
                if writing is not None:
                    written, writing = writing, None
                    if not await self._settled(name, written):
                        await asyncio.sleep(1.0)
                if claim is not None:
                    writing = asyncio.create_task(self._store(name, claim, writes))
        finally:
            if writing is not None:
                # Stopping: the write finishes (or not) in the store; a range not committed comes back later.
                writing.cancel()
                with contextlib.suppress(BaseException):
                    await writing

    async def _settled(self, name: str, written: asyncio.Task[None]) -> bool:
        """Wait for a range's write; False (logged) when it failed."""
        try:
            await written
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "%s %r: storing a range's deliveries failed; it comes back when its claim ends", self.kind, name
            )
            return False
        return True
