"""One leased consumer per log stream, across every server on a store: what buses and topics share.

A `LogConsumer` turns named log streams (a bus's `bus.<name>`, a topic's
`topic.<name>`) into deliveries. Each name has one consumer at a time: it
holds a leased lock in the key-value records (`<namespace>`, `lock/<name>`,
renewed while it runs, taken over by another server when it lapses). The
consumer reads the stream from its checkpoint (`checkpoint/<name>`), has the
subclass make every delivery of the records durable (`consume`), and only
then moves the checkpoint, by compare-and-set so that a consumer that lost
its lock cannot move it. A crash anywhere re-reads from the old checkpoint:
every record is delivered at least once.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from triggerfish.store import ABSENT, KVRecord, LogRecord, Store

logger = logging.getLogger("triggerfish.bus")


class LogConsumer(abc.ABC):
    """Consumes named log streams at least once, one server per name; subclasses say what a record becomes.

    `lock_ttl` is how long a consumer's lock lasts without renewal: another
    server takes over a name that long after its consumer died. Running in
    the background, the consumer calls `reload()` every `refresh` seconds so
    that configuration another server changed (rules, subscriptions) takes
    effect here too.
    """

    #: What a name is called in log messages: "bus", "topic".
    kind = "stream"

    def __init__(
        self,
        store: Store,
        *,
        namespace: str,
        clock: Callable[[], float] = time.time,
        lock_ttl: float = 10.0,
        batch_size: int = 256,
        refresh: float = 5.0,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.clock = clock
        self.lock_ttl = lock_ttl
        self.batch_size = batch_size
        self.refresh = refresh
        self.owner = uuid.uuid4().hex
        self._locks: dict[str, tuple[KVRecord, float]] = {}
        self._checkpoints: dict[str, KVRecord | None] = {}
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
    async def consume(self, name: str, records: list[LogRecord]) -> None:
        """Make every delivery of `records` durable; the checkpoint moves past them only once this returns."""

    async def reload(self) -> None:  # noqa: B027  # a hook: most consumers have nothing to reload
        """Read configuration kept in the store again (another server may have changed it)."""

    def workers(self, name: str) -> list[Coroutine[Any, Any, None]]:
        """Background work for `name` besides its consumer (a delivery worker, say), run until `stop()`."""
        return []

    # --- the lock and the checkpoint ---------------------------------------------------------

    async def acquire(self, name: str) -> bool:
        """Take or renew this server's lock on consuming `name`; False when another server holds it.

        A lock taken less than a third of `lock_ttl` ago is not written again:
        renewing on every pump would cost a durable write per batch.
        """
        key = f"lock/{name}"
        held = self._locks.get(name)
        if held is not None:
            record, renewed_at = held
            if time.monotonic() - renewed_at < self.lock_ttl / 3:
                return True
            renewed = await self.store.kv.put(
                self.namespace, key, self.owner.encode(), ttl=self.lock_ttl, if_version=record.version
            )
            if renewed is not None:
                self._locks[name] = (renewed, time.monotonic())
                return True
            self._lose(name)
        taken = await self.store.kv.put(self.namespace, key, self.owner.encode(), ttl=self.lock_ttl, if_version=ABSENT)
        if taken is None:
            return False
        self._locks[name] = (taken, time.monotonic())
        return True

    def _lose(self, name: str) -> None:
        self._locks.pop(name, None)
        self._checkpoints.pop(name, None)

    async def checkpoint(self, name: str) -> int:
        """The offset of the last record of `name` whose deliveries are all durable."""
        record = await self.store.kv.get(self.namespace, f"checkpoint/{name}")
        return 0 if record is None else int(record.value)

    async def pump(self, name: str, *, wait: float = 0.0) -> int:
        """Consume what is new on `name` once: make its deliveries durable, then move the checkpoint.

        Returns how many records were consumed (0 also when another server holds the name).
        """
        if not await self.acquire(name):
            return 0
        key = f"checkpoint/{name}"
        if name in self._checkpoints:
            current = self._checkpoints[name]  # ours while we hold the lock; the compare-and-set below checks it
        else:
            current = self._checkpoints[name] = await self.store.kv.get(self.namespace, key)
        after = 0 if current is None else int(current.value)
        records = await self.store.log.read(self.stream(name), after=after, limit=self.batch_size, wait=wait)
        if not records:
            return 0
        await self.consume(name, records)
        moved = await self.store.kv.put(
            self.namespace,
            key,
            str(records[-1].offset).encode(),
            if_version=ABSENT if current is None else current.version,
        )
        if moved is None:
            # Another consumer moved it: our lock lapsed. Its deliveries and ours overlap; at least once holds.
            self._lose(name)
            logger.warning("%s %r: the checkpoint moved under this consumer; giving it up", self.kind, name)
        else:
            self._checkpoints[name] = moved
        return len(records)

    # --- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the configuration, then consume every name in the background until `stop()`."""
        await self.reload()
        self._stop.clear()
        self._tasks.append(asyncio.create_task(self._supervise()))

    async def stop(self) -> None:
        """Stop the background work and release the locks."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for name, (held, _) in list(self._locks.items()):
            with contextlib.suppress(Exception):
                await self.store.kv.delete(self.namespace, f"lock/{name}", if_version=held.version)
        self._locks.clear()
        self._checkpoints.clear()

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
                for name in await self.names():
                    if name not in running:
                        work = [self._consume(name), *self.workers(name)]
                        running[name] = [asyncio.create_task(job) for job in work]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(1.0, self.refresh)):
                        await self._stop.wait()
        finally:
            tasks = [task for group in running.values() for task in group]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _consume(self, name: str) -> None:
        while not self._stop.is_set():
            try:
                if await self.acquire(name):
                    await self.pump(name, wait=min(1.0, self.lock_ttl / 3))
                else:
                    await asyncio.sleep(self.lock_ttl / 3)
            except Exception:
                logger.exception("%s %r: the consumer failed; trying again in 1 s", self.kind, name)
                await asyncio.sleep(1.0)
