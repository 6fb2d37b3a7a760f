"""Merge concurrent writes of one kind into one PostgreSQL transaction.

Appends, sends and unconditional puts arrive one call at a time from many
tasks. Up to `in_flight` merged transactions run at once (on as many pooled
connections, so their commits' WAL flushes overlap); the calls that arrive
meanwhile wait together and go as the next one: one pipelined transaction
(`Engine.run(..., pipeline=True)`) for all of them, one commit instead of one each. Every caller hears back only
after its commit. Concurrent callers' order is the order their transactions
commit in (offsets follow commit order); one caller's calls, each awaited, keep
theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from triggerfish.store._pg_engine import Conn, Engine

A = TypeVar("A")
R = TypeVar("R")


class Batcher(Generic[A, R]):
    """Runs calls `A` through `write(connection, [A, ...]) -> [R, ...]`, merged, one transaction at a time."""

    def __init__(
        self,
        engine: Engine,
        write: Callable[[Conn, list[A]], Awaitable[list[R]]],
        *,
        in_flight: int = 1,
        wake: Callable[[A], str] | None = None,
    ) -> None:
        self._engine = engine
        self._write = write
        #: What a call tells other nodes once committed (`Engine.notify_soon`'s payloads), if anything.
        self._wake = wake
        self._in_flight = in_flight
        self._waiting: list[tuple[A, asyncio.Future[R]]] = []
        self._running = 0
        self._tasks: set[asyncio.Future[None]] = set()
        #: merged transactions, and the calls they carried
        self.batches = 0
        self.calls = 0

    async def call(self, item: A) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._running < self._in_flight:
            self._running += 1
            task = asyncio.ensure_future(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                taken, self._waiting = self._waiting, []
                self.batches += 1
                self.calls += len(taken)
                try:
                    items = [item for item, _ in taken]
                    wakes = {self._wake(item) for item in items} if self._wake is not None else ()
                    results: list[Any] = await self._engine.run(
                        self._write, items, operations=len(taken), pipeline=True, wakes=wakes
                    )
                except BaseException as exc:
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(taken, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._running -= 1
