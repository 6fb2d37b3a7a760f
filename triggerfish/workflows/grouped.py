"""Group commit of workflow writes: the atomic writes of concurrent workflows go to the store as one.

Hundreds of workflows running at once each write a checkpoint per step: a
compare-and-set of its record with its timers, spans and invocations, one
`Store.atomic` each. Each is a transaction of its own (on PostgreSQL its own
BEGIN, COMMIT and pooled connection; on SQLite an operation of the writer's).
`GroupedWrites` sends the writes made in one turn of the event loop (and
those that wait while `MAX_IN_FLIGHT` groups are being written) as one
group: one atomic write holding all their operations, whose results are
handed back to each writer in order.

A group is all or nothing, so one refused write (a compare-and-set that no
longer holds, a record over the store's limit) would refuse the others with
it: the group is then written again one write at a time, and each hears its
own outcome. Any other failure (the store unreachable: the commit's fate
unknown) is every writer's, as its own write's would have been. Nothing is
acknowledged before its group (or its own write) committed. Only for stores
whose atomic writes are atomic: where a failed write leaves the operations
before it written, a group would leave another workflow's half-done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from triggerfish.errors import AtomicConflictError, InvalidInputError
from triggerfish.store.atomic import Op

Atomic = Callable[[Sequence[Op]], Awaitable[list[Any]]]


#: Groups written at once at most: a few, so that one group's round trips do not hold up every workflow (the
#: store's connections serve several), and yet many writes share each.
MAX_IN_FLIGHT = 3


class GroupedWrites:
    """`atomic(ops)` as `store.atomic(ops)` does, concurrent calls written as one group; see the module docstring."""

    def __init__(self, atomic: Atomic, *, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._atomic = atomic
        self.max_in_flight = max_in_flight
        self._pending: list[tuple[list[Op], asyncio.Future[list[Any] | BaseException]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._starting = False
        #: Groups written, writes they carried, and groups a refused write made write one by one.
        self.groups = 0
        self.writes = 0
        self.split = 0

    async def atomic(self, ops: Sequence[Op]) -> list[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any] | BaseException] = loop.create_future()
        self._pending.append((list(ops), future))
        self._start_soon(loop)
        outcome = await future
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _start_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        # At the end of this turn of the event loop, so the writes the rest of the turn makes join the group.
        if self._pending and not self._starting and len(self._in_flight) < self.max_in_flight:
            self._starting = True
            loop.call_soon(self._start, loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._starting = False
        if not self._pending or len(self._in_flight) >= self.max_in_flight:
            return
        group, self._pending = self._pending, []
        task = loop.create_task(self._run(group))
        self._in_flight.add(task)
        task.add_done_callback(lambda done: self._finished(done, loop))

    def _finished(self, task: asyncio.Task[None], loop: asyncio.AbstractEventLoop) -> None:
        self._in_flight.discard(task)
        self._start_soon(loop)

    async def _run(self, group: list[tuple[list[Op], asyncio.Future[list[Any] | BaseException]]]) -> None:
        try:
            outcomes = await self._write([ops for ops, _ in group])
        except BaseException as exc:  # cancelled (the platform stops): its writers hear it rather than wait
            outcomes = [exc] * len(group)
            if not isinstance(exc, Exception):
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                raise
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    async def _write(self, writes: list[list[Op]]) -> list[list[Any] | BaseException]:
        self.groups += 1
        self.writes += len(writes)
        if len(writes) > 1:
            try:
                results = await self._atomic([op for ops in writes for op in ops])
            except (AtomicConflictError, InvalidInputError):
                # One of them was refused before anything was written, and so were the others with it: each on its
                # own says which.
                self.split += 1
            except Exception as exc:
                # Not a refusal (the store went away, say): whether the group committed is not known, so each writer
                # hears the error, as it would have of its own write. Written again one by one, a group that did
                # commit would fail its compare-and-sets, and its writers would take the conflict for another's write.
                return [exc] * len(writes)
            else:
                split: list[list[Any] | BaseException] = []
                start = 0
                for ops in writes:
                    split.append(results[start : start + len(ops)])
                    start += len(ops)
                return split
        outcomes = await asyncio.gather(*(self._atomic(ops) for ops in writes), return_exceptions=True)
        return list(outcomes)
