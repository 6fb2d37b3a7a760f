"""Writes handed over without waiting, taken out in batches by one task at a time.

    writes = BackgroundWrites(write_batch)   # write_batch(items) -> awaitable; it handles its own failures
    writes.add(item)                         # returns at once
    await writes.settled()                   # every item added so far has been through write_batch

The sync invocation path answers its caller before the invocation's record is
committed (records.InvocationRecords.add_soon). Giving each record a task of
its own, then a future in a batcher, then a task per store call, costs more
Python than the record's write itself at a few thousand requests a second.
Here adding is a list append: one task writes everything added during the
turn of the event loop, and everything added while its write was in flight
goes out in its next batch. So the batches grow with the load on their own,
and the store's writer is woken once per batch instead of once per record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("triggerfish.runtime")


class BackgroundWrites(Generic[T]):
    """Items added with `add` go to `write` in batches, one batch at a time, in the order they were added.

    `write` must handle its own failures (log them): an exception that escapes it is logged here, and its
    batch counts as written all the same, as nobody waits for the outcome of a background write.
    """

    def __init__(self, write: Callable[[list[T]], Awaitable[None]], *, gather: float = 0.0) -> None:
        self._write = write
        #: Seconds a batch waits for more items before it goes (0: to the end of the turn that started it).
        self._gather = gather
        self._pending: list[T] = []
        self._task: asyncio.Task[None] | None = None
        #: Items ever added, and how many of them have been through `write`: `settled` waits for the one to
        #: reach the other as it was when it was called, not for later items (under a steady load there are
        #: always later ones).
        self._added = 0
        self._written = 0
        self._waiter: asyncio.Future[None] | None = None

    @property
    def pending(self) -> int:
        """Items added and not yet through `write`."""
        return self._added - self._written

    def add(self, item: T) -> None:
        """Queue `item` for the next batch; starts the writing task when none runs."""
        self._pending.append(item)
        self._added += 1
        task = self._task
        if task is None or task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def settled(self) -> None:
        """Wait until every item added before this call has been through `write`."""
        target = self._added
        while self._written < target:
            task = self._task
            if task is None or task.done():  # cancelled (the loop closing) with items pending: write them now
                self._task = asyncio.get_running_loop().create_task(self._run())
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(waiter)

    async def _run(self) -> None:
        try:
            if self._gather:
                await asyncio.sleep(self._gather)
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._write(batch)
                except Exception:
                    log.exception("a background write of %d items failed", len(batch))
                finally:  # also when cancelled (the loop closing): nobody is to wait for this batch again
                    self._written += len(batch)
                    self._wake()
        finally:
            self._task = None
            self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
