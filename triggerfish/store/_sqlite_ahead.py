"""Receives made ahead on SQLite: a receive waiting on a queue is leased its messages in the send's own write.

    ahead = ReceivesAhead(writer, notify=sent.notify, clock=time.time)
    ahead.waiting(queue, max_messages, visibility_timeout, True)   # Queues.receive is about to wait
    ahead.after_send(queue, now)                                   # right after a send is submitted to the writer
    messages = await ahead.take(queue, max_messages, visibility_timeout)   # the waiting receive's next look

A function's dispatcher waits in `receive` on its queue; the bus's consumer
sends the invocations an event matched. Without this, the dispatcher was
woken by the send's commit and then leased: a second writer round trip
between an event's routing and its handler, which on a busy writer waits
for a whole commit (an fsync) before its turn. The lease is submitted right
behind the send instead (the writer runs operations in order, and what one
turn of the event loop submits in one transaction), so it takes the new
messages, and the receive that wakes finds them leased to it.

It is a lease like any receive: the same statement, the visibility timeout
the waiting receives asked for and the smallest batch any of them asked for
(so whichever takes it can take it whole; receives waiting with different
visibility timeouts each lease their own), the same receive count; lost in a
crash, the messages come back when it ends. A lease made ahead that no
receive takes (every receive it was made for was cancelled) is handed back
at once (released, visible again) rather than left to run out; its receive
is counted, as SQS counts a long poll whose client went away.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from triggerfish.errors import StoreClosedError
from triggerfish.store import _sqlite_queues as q
from triggerfish.store._sqlite_worker import Worker
from triggerfish.store.base import Message


@dataclass(slots=True)
class _Lease:
    """A lease on its way or made: what it was asked for, and its messages once the writer made it."""

    max_messages: int
    visibility_timeout: float | None
    messages: asyncio.Future[list[Message]]


class ReceivesAhead:
    """Leases for receives waiting on this process's queues, behind this process's sends (see the module)."""

    def __init__(self, writer: Worker, *, notify: Callable[[str], None], clock: Callable[[], float]) -> None:
        self._writer = writer
        self._clock = clock
        #: Told of a queue a lease moved messages to (a dead-letter queue), or handed messages back to.
        self._notify = notify
        #: The receives waiting, by queue: how many ask for each batch size and visibility timeout.
        self._waiting: dict[str, Counter[tuple[int, float | None]]] = {}
        self._ahead: dict[str, _Lease] = {}

    def waiting(self, queue: str, max_messages: int, visibility_timeout: float | None, waiting: bool) -> None:
        """A receive on `queue` starts (`waiting`) or stops waiting for a send."""
        kinds = self._waiting.setdefault(queue, Counter())
        kinds[max_messages, visibility_timeout] += 1 if waiting else -1
        if kinds[max_messages, visibility_timeout] <= 0:
            del kinds[max_messages, visibility_timeout]
        if kinds:
            return
        del self._waiting[queue]
        if queue in self._ahead:
            # A receive that stopped waiting to look again takes the lease this very turn; one that was
            # cancelled never will: hand it back, once this turn is over.
            asyncio.get_running_loop().call_soon(self._hand_back_untaken, queue)

    def after_send(self, queue: str, now: float) -> None:
        """Lease for the receive waiting on `queue` (if any) behind the send just submitted to the writer."""
        kinds = self._waiting.get(queue)
        if not kinds or queue in self._ahead:
            return  # nobody waits, or a lease made ahead is on its way and takes this send's messages too
        timeouts = {visibility_timeout for _, visibility_timeout in kinds}
        if len(timeouts) > 1:
            return  # receives of different leases wait: each leases its own, as ever
        # As many as the smallest waiting receive asks for, so whichever takes the lease can take it whole.
        max_messages = min(size for size, _ in kinds)
        (visibility_timeout,) = timeouts

        def lease(c: sqlite3.Connection) -> tuple[list[Message], str | None]:
            return q.receive(c, queue, max_messages, visibility_timeout, now)

        leasing = self._writer.submit(lease, durable=False)
        messages: asyncio.Future[list[Message]] = asyncio.get_running_loop().create_future()
        self._ahead[queue] = _Lease(max_messages, visibility_timeout, messages)
        leasing.add_done_callback(lambda done: self._leased(messages, done))

    async def take(self, queue: str, max_messages: int, visibility_timeout: float | None) -> list[Message] | None:
        """The messages leased ahead on `queue`, for a receive they fit (its batch size and visibility timeout);
        None when there is no such lease: the receive leases as ever, and a lease that does not fit it waits
        for one of the receives it was made for."""
        lease = self._ahead.get(queue)
        if lease is None or lease.max_messages > max_messages or lease.visibility_timeout != visibility_timeout:
            return None
        del self._ahead[queue]
        try:
            return await asyncio.shield(lease.messages)
        except asyncio.CancelledError:
            lease.messages.add_done_callback(lambda done: self._hand_back(queue, done.result()))
            raise

    def _leased(
        self, messages: asyncio.Future[list[Message]], leasing: asyncio.Future[tuple[list[Message], str | None]]
    ) -> None:
        if leasing.cancelled() or leasing.exception() is not None:
            messages.set_result([])  # nothing was leased: the receive that takes this leases as ever
            return
        leased, dead_letter = leasing.result()
        if dead_letter is not None:
            self._notify(dead_letter)
        messages.set_result(leased)

    def _hand_back_untaken(self, queue: str) -> None:
        if queue in self._waiting:
            return  # another receive waits now: the lease is its
        lease = self._ahead.pop(queue, None)
        if lease is not None:
            lease.messages.add_done_callback(lambda done: self._hand_back(queue, done.result()))

    def _hand_back(self, queue: str, messages: list[Message]) -> None:
        if not messages:
            return
        receipts = [message.receipt for message in messages]
        now = self._clock()

        def release(c: sqlite3.Connection) -> None:
            for receipt in receipts:
                q.release(c, queue, receipt, 0.0, now)

        try:
            released = self._writer.submit(release, durable=False)
        except StoreClosedError:
            return  # the process is stopping: the lease runs out, as every lease of a stopped process does
        released.add_done_callback(lambda done: None if done.cancelled() or done.exception() else self._notify(queue))
