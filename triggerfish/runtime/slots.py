"""Concurrency slots taken within a bounded wait: shared by every Runner.

    slots = Slots(10)
    if not await slots.take(wait=1.0):   # False: none freed up within a second (the caller throttles)
        ...
    try: ... finally: slots.release()

A function at its concurrency limit is the common case under load (32
connections to a function of concurrency 10: two requests in three wait).
An asyncio.Semaphore bounded by `asyncio.wait` cost each waiting request a
task, a waiter set, a done callback and a timer, about as much Python as the
rest of its way to the worker. Here a waiting caller costs one future and
one timer: a released slot goes straight to the longest waiting caller (no
barging: first come, first served), and the timer resolves the future with
False when the wait runs out.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    """`count` slots; `take` one within a wait, `release` it when done."""

    __slots__ = ("_free", "_loop", "_waiting")

    def __init__(self, count: int) -> None:
        self._free = count
        #: The loop its waiting callers' futures are made on, asked for once: on Python 3.11 asking
        #: (`asyncio.get_running_loop`) is a `getpid` system call, and two requests in three wait.
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Callers waiting, oldest first; each future's result says whether it was handed a slot. Futures whose
        #: wait ran out stay until `release` meets them (it skips those already done).
        self._waiting: deque[asyncio.Future[bool]] = deque()

    def locked(self) -> bool:
        """Whether a caller would have to wait."""
        return self._free <= 0

    @property
    def free(self) -> int:
        return self._free

    async def take(self, wait: float) -> bool:
        """Take a slot, waiting at most `wait` seconds; False when none freed up in time.

        A free slot is taken without yielding to the loop (the warm path's cost). A caller cancelled while it
        waits takes no slot (one handed to it at that moment goes to the next caller).
        """
        if self._free > 0:
            self._free -= 1
            return True
        if wait <= 0:
            return False
        loop = self._loop
        if loop is None or loop.is_closed():  # the first wait, or slots outliving the loop they waited on
            loop = self._loop = asyncio.get_running_loop()
        handed: asyncio.Future[bool] = loop.create_future()
        self._waiting.append(handed)
        timer = loop.call_later(wait, _run_out, handed)
        try:
            return await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled() and handed.result():
                self.release()  # handed a slot just as the caller was cancelled: it is the next caller's
            raise
        finally:
            timer.cancel()

    def release(self) -> None:
        """Give a slot back: to the longest waiting caller, else to the free ones."""
        waiting = self._waiting
        while waiting:
            handed = waiting.popleft()
            if not handed.done():
                handed.set_result(True)
                return
        self._free += 1


def _run_out(handed: asyncio.Future[bool]) -> None:
    if not handed.done():
        handed.set_result(False)
