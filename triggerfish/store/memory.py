"""The in-memory store: every contract of `triggerfish.store.base`, in this process only.

It is a product, not a mock: `triggerfish.testing` runs apps on it, and the
contract suite holds it to the same promises as the SQLite store. Nothing
survives the process, so "durable" here means "applied before the call
returns".

Everything runs on the event loop's thread and no primitive awaits, so each
call is atomic without locks.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import itertools
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from triggerfish import _random
from triggerfish.errors import StoreClosedError
from triggerfish.store._memory_groups import Group, Range
from triggerfish.store.atomic import (
    Ack,
    Append,
    Commit,
    Delete,
    Forward,
    Op,
    Put,
    Route,
    Send,
    conflict,
    forward_bodies,
    forwarded_source,
    routable,
)
from triggerfish.store.base import (
    ABSENT,
    DEFAULT_MAX_RECORD_BYTES,
    Clock,
    EventLog,
    KeyValue,
    KVRecord,
    LogClaim,
    LogRecord,
    Message,
    OutgoingMessage,
    QueueConfig,
    Queues,
    QueueStats,
    RecordKeys,
    SendResult,
    Store,
)

__all__ = ["MemoryEventLog", "MemoryKeyValue", "MemoryQueues", "MemoryStore", "open_memory_store"]


def open_memory_store(
    url: str = "memory://", *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, clock: Clock = time.time
) -> MemoryStore:
    """A fresh, empty store that lives as long as this process (or until it is closed)."""
    return MemoryStore(url, max_record_bytes=max_record_bytes, clock=clock)


async def open_from_url(url: str, options: dict[str, str], *, max_record_bytes: int, migrate: bool) -> Store:
    """The opener `open_store` calls for `memory://` (a fresh store each time)."""
    from triggerfish.store.urls import refuse_unknown

    refuse_unknown(url, options)
    return open_memory_store(url, max_record_bytes=max_record_bytes)


class MemoryStore(Store):
    """The three memory parts; `atomic` is all or nothing, as every call here runs without awaiting."""

    atomic_writes = True

    def __init__(self, url: str, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, clock: Clock = time.time) -> None:
        state = _Open(url)
        self._state = state
        self._log = MemoryEventLog(state, clock=clock, max_record_bytes=max_record_bytes)
        self._queues = MemoryQueues(state, clock=clock, max_record_bytes=max_record_bytes)
        self._kv = MemoryKeyValue(state, clock=clock, max_record_bytes=max_record_bytes)
        super().__init__(url, log=self._log, queues=self._queues, kv=self._kv, on_close=state.close)

    async def _atomic(self, ops: list[Op], now: float) -> list[Any]:
        self._state.check()
        # Every condition is checked before anything changes, against the state the earlier
        # operations of the batch leave behind; then everything is applied with no await between.
        written = -1  # a version handed out in this batch: no caller can know it yet
        versions: dict[tuple[str, str], int] = {}
        committed: set[tuple[str, str, int]] = set()
        for index, op in enumerate(ops):
            if isinstance(op, (Put, Delete)):
                key = (op.namespace, op.key)
                if key not in versions:
                    live = self._kv._live(self._kv._namespaces.get(op.namespace), op.key, now)
                    versions[key] = ABSENT if live is None else live.version
                current = versions[key]
                if isinstance(op, Put):
                    if op.if_version is not None and current != op.if_version:
                        raise conflict(index, op)
                    versions[key] = written
                else:
                    if op.if_version is not None and (current == ABSENT or current != op.if_version):
                        raise conflict(index, op)
                    versions[key] = ABSENT
            elif isinstance(op, Commit):
                c = op.claim
                if (c.stream, c.group, c.first) in committed or self._log._held(c) is None:
                    raise conflict(index, op)
                committed.add((c.stream, c.group, c.first))
        results: list[Any] = []
        for op in ops:
            if isinstance(op, Append):
                keys = None if op.keys is None else list(op.keys)
                results.append(await self._log._append(op.stream, list(op.items), now, keys) if op.items else [])
            elif isinstance(op, Send):
                results.append(await self._queues._send(op.queue, list(op.messages), now) if op.messages else [])
            elif isinstance(op, Put):
                expires_at = None if op.ttl is None else now + op.ttl
                results.append(await self._kv._put(op.namespace, op.key, op.value, expires_at, None, now))
            elif isinstance(op, Delete):
                results.append(await self._kv._delete(op.namespace, op.key, None, now))
            elif isinstance(op, Ack):
                results.append(await self._queues._ack(op.queue, list(op.receipts), now) if op.receipts else [])
            elif isinstance(op, Forward):
                results.append(await self._forward(op, forwarded_source(ops, results, op), now))
            elif isinstance(op, Route):
                results.append(await self._route(op, forwarded_source(ops, results, op), now))
            else:
                results.append(await self._log._commit(op.claim, now))
        return results

    async def _route(self, op: Route, records: list[LogRecord], now: float) -> bool:
        # No await yields in between (the parts' primitives never suspend): no claim can come meanwhile.
        found = self._log._groups_by_stream.get(op.source, {}).get(op.group)
        g = Group() if found is None else found  # a new group starts before the stream's first record
        if not routable(records, g.position, g.claimed):
            return False
        for send in op.sends:
            if send.messages:
                await self._queues._send(send.queue, list(send.messages), now)
        g.position = g.claimed = records[-1].offset
        if found is None:
            self._log._groups_by_stream.setdefault(op.source, {})[op.group] = g
        return True

    async def _forward(self, op: Forward, records: list[LogRecord], now: float) -> bool:
        # No await yields in between (the parts' primitives never suspend): the place cannot move meanwhile.
        place = self._kv._live(self._kv._namespaces.get(op.namespace), op.key, now)
        bodies = forward_bodies(op, records, None if place is None else place.value, self._log.max_record_bytes)
        if bodies is None:
            return False
        if bodies:
            for stream, items in bodies:
                await self._log._append(stream, items, now)
        value = str(records[-1].offset).encode()
        await self._kv._put(op.namespace, op.key, value, place.expires_at if place else None, None, now)
        return True


class _Open:
    """The open/closed flag the three parts share."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def check(self) -> None:
        if self.closed:
            raise StoreClosedError(f"the store {self.url} is closed; open it again with open_store()")


# --- the event log ---------------------------------------------------------------------------


class _Stream:
    __slots__ = ("bytes", "next_offset", "records")

    def __init__(self) -> None:
        # records[i].offset == records[0].offset + i: trimming only ever drops a prefix.
        self.records: list[LogRecord] = []
        self.next_offset = 1
        self.bytes = 0


class MemoryEventLog(EventLog):
    """Streams as lists; record times never decrease within a stream, so time ranges are a binary search."""

    def __init__(
        self, state: _Open, *, clock: Clock = time.time, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    ) -> None:
        super().__init__(clock=clock, max_record_bytes=max_record_bytes)
        self._state = state
        self._streams_by_name: dict[str, _Stream] = {}
        self._groups_by_stream: dict[str, dict[str, Group]] = {}
        #: The records' keys (`find`): each key's stream and offset, and each keyed record's keys, to drop them with it.
        self._by_key: dict[str, tuple[str, int]] = {}
        self._keys_of: dict[tuple[str, int], RecordKeys] = {}

    async def _append(
        self, stream: str, bodies: list[bytes], now: float, keys: list[RecordKeys] | None = None
    ) -> list[LogRecord]:
        self._state.check()
        s = self._streams_by_name.get(stream)
        if s is None:
            s = self._streams_by_name[stream] = _Stream()
        # A clock that steps back must not break time-ordered reads.
        if s.records:
            now = max(now, s.records[-1].time)
        first = s.next_offset
        added = [LogRecord(stream, first + i, now, body) for i, body in enumerate(bodies)]
        s.records.extend(added)
        s.next_offset = first + len(added)
        s.bytes += sum(len(body) for body in bodies)
        for record, found in zip(added, keys or (), strict=False):
            if found:
                self._keys_of[stream, record.offset] = found
                for key in found:
                    self._by_key[key] = (stream, record.offset)
        return added

    async def _find(self, prefix: str, limit: int) -> list[tuple[str, LogRecord]]:
        self._state.check()
        found: list[tuple[str, LogRecord]] = []
        # Keys compare as UTF-8 bytes, as the other backends order them.
        for key in sorted((k for k in self._by_key if k.startswith(prefix)), key=lambda k: k.encode()):
            stream, offset = self._by_key[key]
            records = self._streams_by_name[stream].records
            found.append((key, records[offset - records[0].offset]))
            if len(found) >= limit:
                break
        return found

    async def _read(
        self, stream: str, after: int, since: float | None, until: float | None, limit: int
    ) -> list[LogRecord]:
        self._state.check()
        s = self._streams_by_name.get(stream)
        if s is None or not s.records:
            return []
        records = s.records
        start = max(0, after + 1 - records[0].offset)
        if since is not None:
            start = max(start, bisect.bisect_left(records, since, key=lambda r: r.time))
        end = min(len(records), start + limit)
        if until is not None:
            end = min(end, bisect.bisect_left(records, until, lo=start, key=lambda r: r.time))
        return records[start:end] if start < end else []

    async def _last_offset(self, stream: str) -> int:
        self._state.check()
        s = self._streams_by_name.get(stream)
        return 0 if s is None else s.next_offset - 1

    async def _trim(self, stream: str, before: float | None, max_bytes: int | None) -> int:
        self._state.check()
        s = self._streams_by_name.get(stream)
        if s is None:
            return 0
        cut = 0
        if before is not None:
            cut = bisect.bisect_left(s.records, before, key=lambda r: r.time)
        size = s.bytes - sum(len(r.data) for r in s.records[:cut])
        if max_bytes is not None:
            while size > max_bytes and cut < len(s.records):
                size -= len(s.records[cut].data)
                cut += 1
        for record in s.records[:cut]:
            for key in self._keys_of.pop((stream, record.offset), ()):
                if self._by_key.get(key) == (stream, record.offset):
                    del self._by_key[key]
        del s.records[:cut]
        s.bytes = size
        return cut

    async def _streams(self) -> list[str]:
        self._state.check()
        return list(self._streams_by_name)

    # -- consumer groups --

    def _group(self, stream: str, group: str) -> Group:
        groups = self._groups_by_stream.setdefault(stream, {})
        g = groups.get(group)
        if g is None:
            g = groups[group] = Group()
        return g

    def _held(self, claim: LogClaim) -> Range | None:
        g = self._groups_by_stream.get(claim.stream, {}).get(claim.group)
        return None if g is None else g.held(claim)

    async def _claim(self, stream: str, group: str, limit: int, lease: float, now: float) -> LogClaim | None:
        self._state.check()
        g = self._group(stream, group)
        token = secrets.token_hex(8)
        lapsed = g.lapsed(now)
        if lapsed is not None:
            lapsed.token, lapsed.expires_at = token, now + lease
            records = await self._read(stream, lapsed.first - 1, None, None, lapsed.last - lapsed.first + 1)
            records = [r for r in records if r.offset <= lapsed.last]  # some may have been trimmed
            return LogClaim(stream, group, lapsed.first, lapsed.last, token, records, now + lease)
        records = await self._read(stream, g.claimed, None, None, limit)
        if not records:
            return None
        first = g.claimed + 1
        g.add(first, records[-1].offset, token, now + lease)
        return LogClaim(stream, group, first, records[-1].offset, token, records, now + lease)

    async def _commit(self, claim: LogClaim, now: float) -> bool:
        self._state.check()
        held = self._held(claim)
        if held is None:
            return False
        self._group(claim.stream, claim.group).commit(held)
        return True

    async def _extend_claim(self, claim: LogClaim, lease: float, now: float) -> LogClaim | None:
        self._state.check()
        held = self._held(claim)
        if held is None:
            return None
        held.expires_at = now + lease
        return dataclasses.replace(claim, expires_at=held.expires_at)

    async def _release_claim(self, claim: LogClaim, now: float) -> bool:
        self._state.check()
        held = self._held(claim)
        if held is None:
            return False
        # Lapsed at once, under a token nobody holds: the next claim of the group takes it.
        held.expires_at, held.token = now, secrets.token_hex(8)
        return True

    async def _position(self, stream: str, group: str) -> int:
        self._state.check()
        g = self._groups_by_stream.get(stream, {}).get(group)
        return 0 if g is None else g.position

    async def _seek(self, stream: str, group: str, offset: int) -> None:
        self._state.check()
        self._group(stream, group).seek(offset)

    async def _advance(self, stream: str, group: str, expected: int, offset: int) -> bool:
        self._state.check()
        return self._group(stream, group).advance(expected, offset)

    async def _groups(self, stream: str) -> list[str]:
        self._state.check()
        return list(self._groups_by_stream.get(stream, {}))


# --- queues ----------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Msg:
    id: str
    seq: int
    body: bytes
    attributes: MappingProxyType[str, str]
    group: str | None
    dedup_id: str | None
    sent_at: float
    visible_at: float
    receive_count: int = 0
    first_received_at: float = 0.0
    receipt: str | None = None
    # Bumped whenever visible_at changes, so heap entries made before are recognised as stale.
    stamp: int = 0
    alive: bool = True


@dataclass(slots=True)
class _Queue:
    config: QueueConfig = field(default_factory=QueueConfig)
    messages: dict[str, _Msg] = field(default_factory=dict)
    # Candidates for the next receive, by (visible_at, seq). In a FIFO queue only the head
    # of each group is a candidate, which is what keeps one message of a group in flight.
    heap: list[tuple[float, int, int, _Msg]] = field(default_factory=list)
    groups: dict[str, deque[_Msg]] = field(default_factory=dict)
    dedup: dict[str, tuple[str, float]] = field(default_factory=dict)
    dedup_order: deque[tuple[float, str]] = field(default_factory=deque)


class MemoryQueues(Queues):
    """Queues as a dict of messages plus a heap of candidates ordered by visibility, then send order."""

    def __init__(
        self, state: _Open, *, clock: Clock = time.time, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    ) -> None:
        super().__init__(clock=clock, max_record_bytes=max_record_bytes)
        self._state = state
        self._queues_by_name: dict[str, _Queue] = {}
        self._seq = itertools.count(1)
        self._stamps = itertools.count(1)

    def _queue(self, name: str) -> _Queue:
        q = self._queues_by_name.get(name)
        if q is None:
            q = self._queues_by_name[name] = _Queue()
        return q

    async def _configure(self, queue: str, config: QueueConfig) -> None:
        self._state.check()
        q = self._queue(queue)
        was_fifo, q.config = q.config.fifo, config
        if was_fifo != config.fifo:
            self._rebuild(q)

    async def _config(self, queue: str) -> QueueConfig:
        self._state.check()
        q = self._queues_by_name.get(queue)
        return QueueConfig() if q is None else q.config

    async def _send(self, queue: str, messages: list[OutgoingMessage], now: float) -> list[SendResult]:
        self._state.check()
        q = self._queue(queue)
        while q.dedup_order and q.dedup_order[0][0] <= now:
            _, dedup_id = q.dedup_order.popleft()
            entry = q.dedup.get(dedup_id)
            if entry is not None and entry[1] <= now:
                del q.dedup[dedup_id]
        window = q.config.dedup_window
        results: list[SendResult] = []
        for out in messages:
            if out.dedup_id is not None:
                seen = q.dedup.get(out.dedup_id)
                if seen is not None and seen[1] > now:
                    results.append(SendResult(seen[0], duplicate=True))
                    continue
            msg = _Msg(
                id=_random.uuid7_hex(),
                seq=next(self._seq),
                body=out.body,
                attributes=MappingProxyType(dict(out.attributes)),
                group=out.group,
                dedup_id=out.dedup_id,
                sent_at=now,
                visible_at=now + out.delay,
            )
            self._add(q, msg)
            if out.dedup_id is not None and window > 0:
                q.dedup[out.dedup_id] = (msg.id, now + window)
                q.dedup_order.append((now + window, out.dedup_id))
            results.append(SendResult(msg.id))
        return results

    async def _receive(
        self, queue: str, max_messages: int, visibility_timeout: float | None, now: float
    ) -> list[Message]:
        self._state.check()
        q = self._queues_by_name.get(queue)
        if q is None:
            return []
        config = q.config
        lease = config.visibility_timeout if visibility_timeout is None else visibility_timeout
        out: list[Message] = []
        while len(out) < max_messages and q.heap and q.heap[0][0] <= now:
            _, _, stamp, msg = heapq.heappop(q.heap)
            if not msg.alive or msg.stamp != stamp:
                continue
            if msg.sent_at + config.retention <= now:
                self._remove(q, msg)
                continue
            if config.max_receives is not None and msg.receive_count >= config.max_receives:
                assert config.dead_letter is not None  # QueueConfig sets both or neither
                self._dead_letter(q, msg, config.dead_letter, now)
                continue
            msg.receive_count += 1
            if msg.receive_count == 1:
                msg.first_received_at = now
            msg.receipt = f"{msg.id}.{secrets.token_hex(8)}"
            self._set_visible(q, msg, now + lease)
            out.append(self._message(queue, msg))
        self._compact(q)
        return out

    async def _ack(self, queue: str, receipts: list[str], now: float) -> list[bool]:
        self._state.check()
        q = self._queues_by_name.get(queue)
        done: list[bool] = []
        for receipt in receipts:
            msg = None if q is None else self._leased(q, receipt, now)
            if msg is not None and q is not None:
                self._remove(q, msg)
            done.append(msg is not None)
        return done

    async def _release(self, queue: str, receipt: str, delay: float, now: float) -> bool:
        self._state.check()
        q = self._queues_by_name.get(queue)
        msg = None if q is None else self._leased(q, receipt, now)
        if msg is None or q is None:
            return False
        msg.receipt = None
        self._set_visible(q, msg, now + delay)
        return True

    async def _extend(self, queue: str, receipt: str, visibility_timeout: float, now: float) -> bool:
        self._state.check()
        q = self._queues_by_name.get(queue)
        msg = None if q is None else self._leased(q, receipt, now)
        if msg is None or q is None:
            return False
        self._set_visible(q, msg, now + visibility_timeout)
        return True

    async def _purge(self, queue: str) -> int:
        self._state.check()
        q = self._queues_by_name.get(queue)
        if q is None:
            return 0
        count = len(q.messages)
        for msg in q.messages.values():
            msg.alive = False
        q.messages.clear()
        q.heap.clear()
        q.groups.clear()
        return count

    async def _stats(self, queue: str, now: float) -> QueueStats:
        self._state.check()
        q = self._queues_by_name.get(queue)
        if q is None:
            return QueueStats(0, 0, 0, None)
        visible = delayed = in_flight = 0
        oldest: float | None = None
        next_visible: float | None = None
        cutoff = now - q.config.retention
        for msg in q.messages.values():
            if msg.sent_at <= cutoff:
                continue  # past retention: dropped at the next receive, already gone for the caller
            if msg.visible_at <= now:
                visible += 1
            elif msg.receipt is not None:
                in_flight += 1
            else:
                delayed += 1
                if next_visible is None or msg.visible_at < next_visible:
                    next_visible = msg.visible_at
            if oldest is None or msg.sent_at < oldest:
                oldest = msg.sent_at
        age = None if oldest is None else max(0.0, now - oldest)
        return QueueStats(visible, delayed, in_flight, age, next_visible)

    async def _queues(self) -> list[str]:
        self._state.check()
        return list(self._queues_by_name)

    # -- bookkeeping --

    def _add(self, q: _Queue, msg: _Msg) -> None:
        q.messages[msg.id] = msg
        if msg.group is not None:
            members = q.groups.get(msg.group)
            if members is None:
                members = q.groups[msg.group] = deque()
            members.append(msg)
        self._push(q, msg)

    def _push(self, q: _Queue, msg: _Msg) -> None:
        if q.config.fifo and msg.group is not None and q.groups[msg.group][0] is not msg:
            return  # waits behind its group's head; becomes a candidate when the head leaves
        msg.stamp = next(self._stamps)
        heapq.heappush(q.heap, (msg.visible_at, msg.seq, msg.stamp, msg))

    def _set_visible(self, q: _Queue, msg: _Msg, visible_at: float) -> None:
        msg.visible_at = visible_at
        self._push(q, msg)

    def _remove(self, q: _Queue, msg: _Msg) -> None:
        msg.alive = False
        del q.messages[msg.id]
        if msg.group is not None:
            members = q.groups[msg.group]
            if members[0] is msg:
                members.popleft()
                if members and q.config.fifo:
                    self._push(q, members[0])
            else:
                members.remove(msg)
            if not members:
                del q.groups[msg.group]

    def _dead_letter(self, q: _Queue, msg: _Msg, dead_letter: str, now: float) -> None:
        self._remove(q, msg)
        moved = _Msg(
            id=msg.id,
            seq=next(self._seq),
            body=msg.body,
            attributes=msg.attributes,
            group=msg.group,
            dedup_id=msg.dedup_id,
            sent_at=msg.sent_at,
            visible_at=now,
        )
        self._add(self._queue(dead_letter), moved)
        self._sent.notify(dead_letter)

    def _leased(self, q: _Queue, receipt: str, now: float) -> _Msg | None:
        msg = q.messages.get(receipt.partition(".")[0])
        if msg is None or msg.receipt != receipt or msg.visible_at <= now:
            return None
        return msg

    def _rebuild(self, q: _Queue) -> None:
        q.heap.clear()
        for msg in sorted(q.messages.values(), key=lambda m: m.seq):
            self._push(q, msg)

    def _compact(self, q: _Queue) -> None:
        # Stale heap entries (acked, extended, released messages) are skipped lazily; drop them
        # in bulk once they outnumber the live ones so an idle queue does not hold garbage.
        if len(q.heap) > 2 * len(q.messages) + 64:
            self._rebuild(q)

    @staticmethod
    def _message(queue: str, msg: _Msg) -> Message:
        assert msg.receipt is not None
        return Message(
            queue=queue,
            message_id=msg.id,
            receipt=msg.receipt,
            body=msg.body,
            attributes=msg.attributes,
            group=msg.group,
            dedup_id=msg.dedup_id,
            receive_count=msg.receive_count,
            sent_at=msg.sent_at,
            first_received_at=msg.first_received_at,
            lease_expires_at=msg.visible_at,
        )


# --- key-value records -----------------------------------------------------------------------


class _Namespace:
    __slots__ = ("keys", "records")

    def __init__(self) -> None:
        self.records: dict[str, KVRecord] = {}
        self.keys: list[str] = []  # sorted, for prefix scans


class MemoryKeyValue(KeyValue):
    """Records per namespace with a sorted key list; expired records are dropped when next touched."""

    def __init__(
        self, state: _Open, *, clock: Clock = time.time, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    ) -> None:
        super().__init__(clock=clock, max_record_bytes=max_record_bytes)
        self._state = state
        self._namespaces: dict[str, _Namespace] = {}
        self._versions = itertools.count(1)

    def _live(self, ns: _Namespace | None, key: str, now: float) -> KVRecord | None:
        if ns is None:
            return None
        record = ns.records.get(key)
        if record is not None and record.expires_at is not None and record.expires_at <= now:
            self._drop(ns, key)
            return None
        return record

    @staticmethod
    def _drop(ns: _Namespace, key: str) -> None:
        del ns.records[key]
        del ns.keys[bisect.bisect_left(ns.keys, key)]

    async def _get(self, namespace: str, key: str, now: float) -> KVRecord | None:
        self._state.check()
        return self._live(self._namespaces.get(namespace), key, now)

    async def _put(
        self,
        namespace: str,
        key: str,
        value: bytes,
        expires_at: float | None,
        if_version: int | None,
        now: float,
    ) -> KVRecord | None:
        self._state.check()
        ns = self._namespaces.get(namespace)
        if ns is None:
            ns = self._namespaces[namespace] = _Namespace()
        current = self._live(ns, key, now)
        if if_version is not None and (current.version if current is not None else ABSENT) != if_version:
            return None
        record = KVRecord(namespace, key, value, next(self._versions), expires_at)
        if current is None:
            bisect.insort(ns.keys, key)
        ns.records[key] = record
        return record

    async def _put_many(
        self, namespace: str, items: list[tuple[str, bytes]], expires_at: float | None, now: float
    ) -> list[KVRecord]:
        self._state.check()
        ns = self._namespaces.get(namespace)
        if ns is None:
            ns = self._namespaces[namespace] = _Namespace()
        records: list[KVRecord] = []
        for key, value in items:
            record = KVRecord(namespace, key, value, next(self._versions), expires_at)
            if self._live(ns, key, now) is None:
                bisect.insort(ns.keys, key)
            ns.records[key] = record
            records.append(record)
        return records

    async def _delete(self, namespace: str, key: str, if_version: int | None, now: float) -> bool:
        self._state.check()
        ns = self._namespaces.get(namespace)
        current = self._live(ns, key, now)
        if current is None or ns is None or (if_version is not None and current.version != if_version):
            return False
        self._drop(ns, key)
        return True

    async def _scan(
        self, namespace: str, prefix: str, limit: int, now: float, start: str = "", end: str | None = None
    ) -> list[KVRecord]:
        self._state.check()
        ns = self._namespaces.get(namespace)
        if ns is None:
            return []
        out: list[KVRecord] = []
        expired: list[str] = []
        for key in itertools.islice(ns.keys, bisect.bisect_left(ns.keys, max(prefix, start)), None):
            if not key.startswith(prefix) or len(out) >= limit or (end is not None and key >= end):
                break
            record = ns.records[key]
            if record.expires_at is not None and record.expires_at <= now:
                expired.append(key)
            else:
                out.append(record)
        for key in expired:
            self._drop(ns, key)
        return out
