"""Waking long-polls: a waiting `read`, `claim` or `receive` sleeps until told of new data, or a poll interval.

A backend's own writes notify waiters in this process directly; a backend that
can hear of other processes' writes (PostgreSQL's LISTEN) notifies through the
same `Notifier`. Polling remains the fallback, and is what finds delayed
messages becoming visible.
"""

from __future__ import annotations

import asyncio
import contextlib


class Notifier:
    """Wakes long-polls in this process when a name gets new data."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        #: How many times each name was notified: a backend that found a name empty can tell whether new data
        #: came since (from this process) without asking the store.
        self._counts: dict[str, int] = {}

    def waiter(self, name: str) -> asyncio.Event:
        event = self._events.get(name)
        if event is None:
            event = self._events[name] = asyncio.Event()
        return event

    def notify(self, name: str) -> None:
        self._counts[name] = self._counts.get(name, 0) + 1
        event = self._events.pop(name, None)
        if event is not None:
            event.set()

    def count(self, name: str) -> int:
        """How many times `name` was notified so far."""
        return self._counts.get(name, 0)

    def waiting(self, name: str) -> bool:
        """Whether anything in this process waits for `name` now."""
        return name in self._events


async def wait_any(event: asyncio.Event, seconds: float) -> None:
    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
    # arrives together with the wake-up, and a dispatcher waiting here would never stop.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        # The task was asked to stop and something on its way here lost the CancelledError (3.11's wait_for, in
        # a library). asyncio.timeout would take each of its own expiries for that request and hide it as a
        # timeout, so a loop of long-polls would never stop: honour the request before waiting.
        raise asyncio.CancelledError
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
