"""Merge many small writes of one kind into a single writer operation.

The hottest writes (log appends, queue sends) arrive one call at a time from
many concurrent tasks. Each would be its own writer operation, with its own
lookups of stream or queue state and its own statements. A `Merger` lets
calls that arrive while the writer is busy wait together and go to the
writer as ONE operation, whose function handles the whole list at once (one
`executemany`, one lookup per stream or queue). Every caller still hears back
only after the commit, and calls keep their arrival order.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from triggerfish.store._sqlite_worker import Worker, WorkerStats

A = TypeVar("A")
R = TypeVar("R")


class _Flush(Generic[A, R]):
    """One merged operation: the calls it took and their futures."""

    def __init__(self) -> None:
        self.taken: list[tuple[A, asyncio.Future[R]]] | None = None


class Merger(Generic[A, R]):
    """Queues calls `A` and runs them through `write(connection, [A, ...]) -> [R, ...]` as one operation."""

    def __init__(self, writer: Worker, write: Callable[[sqlite3.Connection, list[A]], list[R]]) -> None:
        self._writer = writer
        self._write = write
        self._lock = threading.Lock()  # the writer thread takes the list while the loop adds to it
        self._waiting: list[tuple[A, asyncio.Future[R]]] = []
        #: batches = merged operations, operations = the calls merged into them
        self.stats = WorkerStats()

    async def call(self, item: A) -> R:
        return await self.submit(item)

    def submit(self, item: A) -> asyncio.Future[R]:
        """Queue `item` now (before anything else this turn submits to the writer); its result once committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiting.append((item, future))
            first = len(self._waiting) == 1
        if first:
            flush: _Flush[A, R] = _Flush()
            try:
                done = self._writer.submit(lambda c: self._run(c, flush))
            except BaseException:
                with self._lock:
                    self._waiting.clear()
                raise
            done.add_done_callback(lambda finished: self._settle(finished, flush))
        return future

    def _settle(self, finished: asyncio.Future[list[R]], flush: _Flush[A, R]) -> None:
        if flush.taken is None:
            # The operation never ran (its transaction could not begin: a full disk, a read-only file): the calls
            # waiting for it fail with it, or they would wait forever, and every later call behind them too.
            with self._lock:
                flush.taken, self._waiting = self._waiting, []
        _settle(finished, flush)

    def _run(self, c: sqlite3.Connection, flush: _Flush[A, R]) -> list[R]:
        # The writer may run an operation twice (after rolling a failed batch back), so the
        # calls are taken once and kept: a rerun must write the same calls, not newer ones.
        if flush.taken is None:
            with self._lock:
                flush.taken, self._waiting = self._waiting, []
            self.stats.batches += 1
            self.stats.operations += len(flush.taken)
            self.stats.largest = max(self.stats.largest, len(flush.taken))
        return self._write(c, [item for item, _ in flush.taken])


def _settle(finished: asyncio.Future[list[R]], flush: _Flush[A, R]) -> None:
    error = finished.exception()
    results = None if error is not None else finished.result()
    for i, (_, future) in enumerate(flush.taken or []):
        if future.done():
            continue
        if results is None:
            future.set_exception(error if error is not None else RuntimeError("merged write did not run"))
        else:
            future.set_result(results[i])
