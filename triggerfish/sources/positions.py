"""What a NATS or Redis source stored, by broker position, and the one node that reads its broker consumer.

    lease = ReaderLease(store, "nats/ORDERS/shop-ingest", node="host-1")
    await lease.wait()                               # until this node reads the consumer
    mark = await StoredMark.load(store, "nats/ORDERS/shop-ingest")
    await mark.advance({"source.nats.ingest.0": [record, ...]}, position=42)
    await lease.keep()                               # in the read loop: renew, or raise LeaseLost
    await lease.release()

Why: JetStream and Redis Streams give an unacknowledged message to a
consumer again only after a timeout (AckWait, XAUTOCLAIM's idle time), while
newer messages are delivered at once. A message fetched when the connection
dropped (or stored when the platform died before its ack) would otherwise
reach the partition stream after newer messages of its key, and its key's
handler would see it after them. So a source records, in the same atomic
write as the records, the broker position it stored up to (the JetStream
stream sequence, the Redis entry id), and:

- a message at or below that mark is already stored: it is acknowledged
  and skipped (a redelivery, never stored twice);
- on (re)connecting, the source reads the broker's messages above the mark
  up to what the consumer had delivered, straight from the stream, and
  stores them in order before it fetches anything newer;
- the mark is written with compare-and-set, and one node at a time reads a
  consumer (a leased record, as partitions are owned): two readers cannot
  interleave their messages in a partition stream.

Both records live in the `triggerfish.sources` key-value namespace.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from triggerfish.names import SOURCES_NAMESPACE
from triggerfish.store import ABSENT, Store
from triggerfish.store.atomic import Append, Op, Put

#: Seconds a node's hold on a broker consumer outlives its last renewal.
LEASE_TTL = 15.0


class LeaseLost(ConnectionError):
    """Another node took the broker consumer this session read (this one stalled past the lease)."""


class ReaderLease:
    """One node at a time reads a broker consumer; a node restarted under its name takes it back at once."""

    def __init__(self, store: Store, key: str, *, node: str, ttl: float = LEASE_TTL) -> None:
        self.store = store
        self.key = f"{key}/reader"
        self.ttl = ttl
        self._me = orjson.dumps({"node": node, "incarnation": uuid.uuid4().hex})
        self._node = node
        self._version: int | None = None
        self._renewed = 0.0

    async def take(self) -> bool:
        """Hold the consumer if no other node does."""
        kv = self.store.kv
        current = await kv.get(SOURCES_NAMESPACE, self.key)
        if current is not None and orjson.loads(current.value).get("node") != self._node:
            return False
        expected = ABSENT if current is None else current.version
        taken = await kv.put(SOURCES_NAMESPACE, self.key, self._me, ttl=self.ttl, if_version=expected)
        if taken is None:
            return False
        self._version, self._renewed = taken.version, time.monotonic()
        return True

    async def wait(self) -> None:
        """Wait until this node holds the consumer (another node's hold ends when it stops or its lease lapses)."""
        while True:
            if await self.take():
                return
            await asyncio.sleep(self.ttl / 3)

    async def keep(self) -> None:
        """Renew the hold when a third of its time has passed; LeaseLost when another node took it."""
        if time.monotonic() - self._renewed < self.ttl / 3:
            return
        renewed = await self.store.kv.put(SOURCES_NAMESPACE, self.key, self._me, ttl=self.ttl, if_version=self._version)
        if renewed is None:
            self._version = None
            raise LeaseLost("another node reads this broker consumer now")
        self._version, self._renewed = renewed.version, time.monotonic()

    async def release(self) -> None:
        if self._version is not None:
            await self.store.kv.delete(SOURCES_NAMESPACE, self.key, if_version=self._version)
            self._version = None


class StoredMark:
    """The broker position a source stored up to, written atomically with the records (see the module docstring).

    `epoch` names the broker's history the position belongs to (a JetStream stream's creation time: a stream
    deleted and made again numbers from 1 again); a mark of another epoch counts as none.
    """

    def __init__(self, store: Store, key: str, position: Any, epoch: str | None, version: int) -> None:
        self.store = store
        self.key = key
        #: None: nothing recorded (a consumer new to this platform, or of another epoch).
        self.position = position
        self.epoch = epoch
        self._version = version

    @classmethod
    async def load(cls, store: Store, key: str, *, epoch: str | None = None) -> StoredMark:
        record = await store.kv.get(SOURCES_NAMESPACE, key)
        if record is None:
            return cls(store, key, None, epoch, ABSENT)
        body = orjson.loads(record.value)
        position = body.get("position") if body.get("epoch") == epoch else None
        return cls(store, key, position, epoch, record.version)

    async def advance(self, records: Mapping[str, Sequence[bytes]], position: Any) -> None:
        """Append `records` (by partition stream) and move the mark to `position`, in one atomic write.

        AtomicConflictError when another reader moved the mark since it was loaded: nothing is written.
        """
        ops: list[Op] = [Append(stream, list(items)) for stream, items in records.items() if items]
        value = orjson.dumps({"position": position, "epoch": self.epoch})
        ops.append(Put(SOURCES_NAMESPACE, self.key, value, if_version=self._version))
        results = await self.store.atomic(ops)
        self._version, self.position = results[-1].version, position
