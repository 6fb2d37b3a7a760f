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

A lease (made ahead, or a receive's own) that took fewer messages than it
asked for saw the queue empty in its write. Until this process sends to the
queue again or wakes its waiters (a message handed back), a receive looking
again (the dispatcher does, as soon as it has started what it got) can find
nothing this process knows of; yet on a busy writer its look waits for a
whole commit, and the sends committed meanwhile are not leased ahead (no
receive was waiting), so their messages wait for yet another look: at 1,000
events/s every look overlapped a send, and almost no invocation was leased
in its send's write. So for a poll interval such a receive does not look
(`drained`): it waits at once, and the next send's write leases for it. What
only the store knows (another process's send, a delayed message come due) a
poll finds once the interval is over, as for any waiting receive.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    #: Sends this process had made to the queue when the lease was submitted (all of them before it).
    sends: int
    #: Whether the lease left the queue with nothing receivable that only a send could change (`lease`).
    drained: bool = False
    #: A lease made by sends' own writes (`leasing_send`): their parts, in the order they were submitted, how many
    #: more messages a later send may add, and how many of those writes have yet to end.
    parts: list[q.SendLease] | None = None
    room: int = 0
    pending: int = 0


class ReceivesAhead:
    """Leases for receives waiting on this process's queues, behind this process's sends (see the module)."""

    def __init__(
        self,
        writer: Worker,
        *,
        notify: Callable[[str], None],
        clock: Callable[[], float],
        notified: Callable[[str], int] = lambda queue: 0,
        horizon: float = 0.05,
    ) -> None:
        self._writer = writer
        self._clock = clock
        #: Told of a queue a lease moved messages to (a dead-letter queue), or handed messages back to.
        self._notify = notify
        #: How many times a queue's waiters were woken so far (a hand-back, a release: messages visible again).
        self._notified = notified
        #: Sends submitted to each queue by this process so far (every one passes `after_send`).
        self._sends: dict[str, int] = {}
        #: Queues a lease found empty: the sends and wake-ups counted then, and until when (monotonic) to trust it.
        self._drained: dict[str, tuple[int, int, float]] = {}
        #: How long a queue found empty is taken to stay so, if nothing here changes it (the receives' poll interval).
        self._horizon = horizon
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

    def leasing_send(self, queue: str, count: int) -> q.SendLease | None:
        """The lease the write of a send of `count` messages to `queue`, about to be submitted, is to make in its
        own statement for the receive waiting there (`SendLease`), if one waits; then `after_send(queue, now,
        written)` once it is submitted. None when nobody waits, or a lease made ahead (by a write of its own) is
        on its way: that one takes the send's messages."""
        made = self._ahead.get(queue)
        if made is None:
            fits = self._fits(queue)
            if fits is None:
                return None
            max_messages, visibility_timeout = fits
            future: asyncio.Future[list[Message]] = asyncio.get_running_loop().create_future()
            made = self._ahead[queue] = _Lease(max_messages, visibility_timeout, future, 0, parts=[], room=max_messages)
        if made.parts is None or not made.room:
            return None  # a lease's own write takes the send's messages, or a full one leaves them to the next look
        part = q.SendLease(min(count, made.room), made.visibility_timeout)
        made.room -= part.count
        made.parts.append(part)
        made.pending += 1
        return part

    def after_send(self, queue: str, now: float, leased: tuple[q.SendLease, asyncio.Future[Any]] | None = None) -> None:
        """Lease for the receive waiting on `queue` (if any) behind the send just submitted to the writer; or, where
        `leasing_send` gave that send a lease to make, `leased` is it and the send's write: its messages are handed
        over once the write ends. A caller that could not submit the write passes a failed future."""
        sends = self._sends[queue] = self._sends.get(queue, 0) + 1
        made = self._ahead.get(queue)
        if leased is not None:
            part, written = leased
            if made is not None and made.parts is not None and part in made.parts:
                made.sends = sends
                written.add_done_callback(functools.partial(self._sent_leased, made, part))
            return
        if made is not None:
            return  # a lease made ahead is on its way and takes this send's messages too
        fits = self._fits(queue)
        if fits is None:
            return  # nobody waits, or receives of different leases wait: each leases its own, as ever
        max_messages, visibility_timeout = fits

        def leasing_ahead(c: sqlite3.Connection) -> tuple[list[Message], str | None, bool]:
            return lease(c, queue, max_messages, visibility_timeout, now)

        leasing = self._writer.submit(leasing_ahead, durable=False)
        messages: asyncio.Future[list[Message]] = asyncio.get_running_loop().create_future()
        made = self._ahead[queue] = _Lease(max_messages, visibility_timeout, messages, sends)
        leasing.add_done_callback(lambda done: self._leased(made, done))

    def _fits(self, queue: str) -> tuple[int, float | None] | None:
        """The batch size and visibility timeout of a lease every receive waiting on `queue` can take whole; None when
        nobody waits, or receives wait with different visibility timeouts (each leases its own, as ever)."""
        kinds = self._waiting.get(queue)
        if not kinds:
            return None
        timeouts = {visibility_timeout for _, visibility_timeout in kinds}
        if len(timeouts) > 1:
            return None
        # As many as the smallest waiting receive asks for, so whichever takes the lease can take it whole.
        (visibility_timeout,) = timeouts
        return min(size for size, _ in kinds), visibility_timeout

    def _sent_leased(self, lease: _Lease, part: q.SendLease, written: asyncio.Future[Any]) -> None:
        if written.cancelled() or written.exception() is not None:
            part.messages, part.drained = [], False  # not stored: nothing of it was leased
        lease.pending -= 1
        if lease.pending or lease.messages.done():
            return
        assert lease.parts is not None
        lease.room = 0  # handed over: a later send leaves its messages to the receive's next look
        messages = [message for made in lease.parts for message in made.messages]
        lease.drained = len(messages) < lease.max_messages and lease.parts[-1].drained
        lease.messages.set_result(messages)

    async def take(self, queue: str, max_messages: int, visibility_timeout: float | None) -> list[Message] | None:
        """The messages leased ahead on `queue`, for a receive they fit (its batch size and visibility timeout);
        None when there is no such lease: the receive leases as ever, and a lease that does not fit it waits
        for one of the receives it was made for."""
        lease = self._ahead.get(queue)
        if lease is None or lease.max_messages > max_messages or lease.visibility_timeout != visibility_timeout:
            return None
        del self._ahead[queue]
        try:
            messages = await asyncio.shield(lease.messages)
        except asyncio.CancelledError:
            lease.messages.add_done_callback(lambda done: self._hand_back(queue, done.result()))
            raise
        if lease.drained:
            self.found_empty(queue, lease.sends)
        return messages

    def sent(self, queue: str) -> int:
        """How many sends to `queue` this process has submitted so far (what a lease submitted now comes after)."""
        return self._sends.get(queue, 0)

    def found_empty(self, queue: str, sends: int) -> None:
        """A lease submitted after `sends` sends (`sent`) left the queue drained (see `lease`)."""
        self._drained[queue] = (sends, self._notified(queue), time.monotonic() + self._horizon)

    def drained(self, queue: str) -> bool:
        """Whether a lease found `queue` empty less than a poll interval ago and this process has neither sent to it
        nor woken its waiters since: a look now would find nothing this process knows of (see the module)."""
        seen = self._drained.get(queue)
        if seen is None:
            return False
        if seen[:2] == (self._sends.get(queue, 0), self._notified(queue)) and time.monotonic() < seen[2]:
            return True
        del self._drained[queue]
        return False

    def forget(self, queue: str) -> None:
        """What this process knew of `queue` being empty no longer holds (it was configured anew: FIFO off, say)."""
        self._drained.pop(queue, None)

    def _leased(self, lease: _Lease, leasing: asyncio.Future[tuple[list[Message], str | None, bool]]) -> None:
        if leasing.cancelled() or leasing.exception() is not None:
            lease.messages.set_result([])  # nothing was leased: the receive that takes this leases as ever
            return
        leased, dead_letter, lease.drained = leasing.result()
        if dead_letter is not None:
            self._notify(dead_letter)
        lease.messages.set_result(leased)

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


def lease(
    c: sqlite3.Connection, queue: str, max_messages: int, visibility_timeout: float | None, now: float
) -> tuple[list[Message], str | None, bool]:
    """`receive` on the writer's connection, and whether it left the queue drained: it took fewer messages than it
    asked for, on a queue where only a send (or the clock) makes more receivable. Not on a FIFO queue, where an
    acknowledgement makes the next message of its group receivable."""
    messages, dead_letter = q.receive(c, queue, max_messages, visibility_timeout, now)
    return messages, dead_letter, len(messages) < max_messages and not q.load_config(c, queue).fifo
