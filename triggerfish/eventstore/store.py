"""`EventStore`: streams with optimistic concurrency and one gap-free global order, over any `Store`.

    events = EventStore(store)
    result = await events.append("account-1", [NewEvent("Opened", {"owner": "ada"})], expected_version=NO_STREAM)
    await events.read_stream("account-1")                  # forwards from version 1
    await events.read_stream("account-1", backwards=True)  # newest first
    await events.read_all(after=0)                         # every stream, in commit order

The event store has no SQL of its own: an append is one `Store.atomic` write of
a compare-and-set on the stream's head record (the expected version), the events
on the stream's own log (offset = version), the same events on the global log
`eventstore.all` (offset = position), and whatever else the caller adds (the
bus's copy of each event: `also=`), so on SQLite, PostgreSQL and memory alike an
append is all or nothing, and an event on the bus is never lost nor published
for an append that failed. The global order is gap-free and in commit order
because every backend assigns log offsets at commit under one lock per stream
(SQLite: its one writer; PostgreSQL: the stream's counter row, locked until the
transaction ends), so a reader that saw position n has seen every position
before it: unlike a sequence, no transaction can commit a lower number later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from triggerfish.errors import AtomicConflictError, InvalidInputError
from triggerfish.eventstore.records import (
    NewEvent,
    RecordedEvent,
    WrongExpectedVersionError,
    check_expected,
    check_stream,
    decode,
    encode,
    parse_events,
    record,
)
from triggerfish.names import EVENTSTORE_ALL_STREAM, EVENTSTORE_NAMESPACE, event_stream
from triggerfish.store import ABSENT, Store
from triggerfish.store.atomic import Append, Op, Put
from triggerfish.store.base import check_count

#: Most events one read returns.
MAX_READ = 1000
#: How often an append with no expected version retries a lost race before giving up.
_ANY_RETRIES = 50
#: Most appends one transaction takes.
_GROUP = 256


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append wrote: the stream's versions `first`..`last` and the last event's global `position`."""

    stream: str
    first: int
    last: int
    position: int
    events: list[RecordedEvent]

    def to_dict(self) -> dict[str, Any]:
        return {"stream": self.stream, "first_version": self.first, "version": self.last, "position": self.position}


#: Builds the extra operations an append writes in its transaction (the bus's copy), from the recorded events.
Also = Callable[[list[RecordedEvent]], Sequence[Op]]


class EventStore:
    """Streams of events with expected versions, a global order, and reads either way. See the module docstring.

    Appends made at the same time share one transaction (a group commit of their own): the global log's lock
    is then taken, and the commit flushed, once per group rather than once per append, which is what lets
    PostgreSQL keep a gap-free order at more than one append per disk flush. An append whose expected version
    no longer holds inside the group is taken out and told so; the rest commit.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent | dict[str, Any]],
        *,
        expected_version: int | None = None,
        also: Also | None = None,
    ) -> AppendResult:
        """Append `events` to `stream`, all or none, once the stream is at `expected_version`.

        `expected_version`: None appends whatever the version is; 0 (`NO_STREAM`) only to a new
        stream; n only when the stream's last event is version n. Raises WrongExpectedVersionError
        (with the current version) when it does not hold, and nothing is written. `also` adds
        operations to the same transaction (see the module docstring).
        """
        check_stream(stream)
        expected = check_expected(expected_version)
        parsed = parse_events(events)
        for _ in range(_ANY_RETRIES):
            head = await self.store.kv.get(EVENTSTORE_NAMESPACE, _head_key(stream))
            current = 0 if head is None else int(orjson.loads(head.value)["version"])
            if expected is not None and expected != current:
                raise WrongExpectedVersionError(stream, expected, current)
            now = self.store.kv.clock()
            recorded = [record(stream, current + i + 1, event, now) for i, event in enumerate(parsed)]
            last = current + len(recorded)
            pending = _Pending(
                stream=stream,
                head=Put(
                    EVENTSTORE_NAMESPACE,
                    _head_key(stream),
                    orjson.dumps({"version": last}),
                    if_version=ABSENT if head is None else head.version,
                ),
                # Checked here, so an event over the store's limit fails its own append, not its whole group.
                bodies=self.store.log.check_append(EVENTSTORE_ALL_STREAM, [encode(event) for event in recorded]),
                also=list(also(recorded)) if also is not None else [],
                done=asyncio.get_running_loop().create_future(),
            )
            positions = await self._submit(pending)
            if positions is None:  # another writer moved the stream first
                if expected is not None:
                    raise WrongExpectedVersionError(stream, expected, await self.version(stream))
                continue
            placed = [_at(event, position) for event, position in zip(recorded, positions, strict=True)]
            return AppendResult(stream, current + 1, last, positions[-1], placed)
        raise WrongExpectedVersionError(stream, -1, await self.version(stream))

    async def _submit(self, pending: _Pending) -> list[int] | None:
        self._pending.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_pending())
        return await pending.done

    async def _write_pending(self) -> None:
        while self._pending:
            group, self._pending = self._pending[:_GROUP], self._pending[_GROUP:]
            try:
                await self._write_group(group)
            except BaseException as exc:
                for pending in group:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

    async def _write_group(self, group: list[_Pending]) -> None:
        # PostgreSQL locks rows in the order the operations name them; every writer names them in this order
        # (heads by stream, then bus logs, the global log, the streams' logs: the order of their names too), so
        # two groups, on two nodes, never deadlock.
        group = sorted(group, key=lambda p: p.stream)
        lost: list[_Pending] = []
        try:
            await self._write_sorted(group, lost)
        finally:
            # Told only once the rest committed, so a loser reading the stream again sees the winner's version.
            for pending in lost:
                pending.done.set_result(None)

    async def _write_sorted(self, group: list[_Pending], lost: list[_Pending]) -> None:
        while group:
            ops: list[Op] = [p.head for p in group]
            ops.extend(_merged([op for p in group for op in p.also]))
            ops.append(Append(EVENTSTORE_ALL_STREAM, [body for p in group for body in p.bodies]))
            ops.extend(Append(event_stream(p.stream), p.bodies) for p in group)
            try:
                results = await self.store.atomic(ops)
            except AtomicConflictError as exc:
                if exc.index >= len(group):
                    raise
                lost.append(group.pop(exc.index))
                continue
            offsets = iter(r.offset for r in results[len(ops) - len(group) - 1])
            for pending in group:
                pending.done.set_result([next(offsets) for _ in pending.bodies])
            return

    async def version(self, stream: str) -> int:
        """The stream's version: its last event's (0 when it has none)."""
        head = await self.store.kv.get(EVENTSTORE_NAMESPACE, _head_key(check_stream(stream)))
        return 0 if head is None else int(orjson.loads(head.value)["version"])

    async def read_stream(
        self, stream: str, *, start: int | None = None, backwards: bool = False, limit: int = 100
    ) -> list[RecordedEvent]:
        """Events of `stream` from version `start` on (oldest first), or from `start` down (`backwards`, newest
        first; `start` None: from the last). An unknown stream reads as empty."""
        check_stream(stream)
        limit = _check_limit(limit)
        if start is not None:
            check_count("start", start)
        log = event_stream(stream)
        if not backwards:
            records = await self.store.log.read(log, after=max(0, (start or 1) - 1), limit=limit)
            return [decode(r.data) for r in records]
        top = await self.version(stream) if start is None else min(start, await self.version(stream))
        if top <= 0:
            return []
        after = max(0, top - limit)
        records = await self.store.log.read(log, after=after, limit=top - after)
        return [decode(r.data) for r in reversed(records)]

    async def read_all(
        self, *, after: int = 0, limit: int = 100, wait: float = 0.0, category: str | None = None
    ) -> list[RecordedEvent]:
        """Events of every stream after global position `after`, in commit order (of `category` only, if given;
        the range read is still `limit` positions, so a read may return fewer). With `wait`, an empty read
        waits up to that long for a new event."""
        check_count("after", after)
        limit = _check_limit(limit)
        records = await self.store.log.read(EVENTSTORE_ALL_STREAM, after=after, limit=limit, wait=wait)
        events = [decode(r.data, r.offset) for r in records]
        return events if category is None else [e for e in events if e.category == category]

    async def position(self) -> int:
        """The global position of the newest event (0 for an empty store)."""
        return await self.store.log.last_offset(EVENTSTORE_ALL_STREAM)

    async def streams(self, *, category: str | None = None, limit: int = 1000) -> list[tuple[str, int]]:
        """(stream, version) of the streams there are, by name (of `category` only, if given)."""
        prefix = "head/" if category is None else f"head/{category}"
        records = await self.store.kv.scan(EVENTSTORE_NAMESPACE, prefix=prefix, limit=limit)
        found = [(r.key[len("head/") :], int(orjson.loads(r.value)["version"])) for r in records]
        if category is not None:
            found = [(s, v) for s, v in found if s == category or s.startswith(f"{category}-")]
        return found


@dataclass(slots=True)
class _Pending:
    """One append waiting for its group's transaction; `done` gets its positions, or None for a lost race."""

    stream: str
    head: Put
    bodies: list[bytes]
    also: list[Op]
    done: asyncio.Future[list[int] | None]


def _merged(ops: list[Op]) -> list[Op]:
    """Appends to the same log made one (in order); other operations as they are."""
    merged: list[Op] = []
    appends: dict[str, list[bytes]] = {}
    for op in ops:
        if isinstance(op, Append):
            if op.stream not in appends:
                appends[op.stream] = []
                merged.append(op)
            appends[op.stream].extend(op.items)
        else:
            merged.append(op)
    return [Append(op.stream, appends[op.stream]) if isinstance(op, Append) else op for op in merged]


def _head_key(stream: str) -> str:
    return f"head/{stream}"


def _at(event: RecordedEvent, position: int) -> RecordedEvent:
    from dataclasses import replace

    return replace(event, position=position)


def _check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_READ:
        raise InvalidInputError(f"limit must be a whole number from 1 to {MAX_READ}, not {limit!r}")
    return limit
