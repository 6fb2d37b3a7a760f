"""Redis Streams sources: a consumer group's entries stored in partition streams, then acknowledged (XACK).

    sources = RedisStreamSources(store, "redis://127.0.0.1:6379/0", consumer="tf-home-1a2b")
    await sources.update([RedisStreamSubscription("ingest", "readings", group="home.ingest", streams=(...,))])
    await sources.stop()

One connection per subscription, through redis-py's asyncio client. The
group is created (with the stream, when missing) at the trigger's
`starting_position`: `0` (TRIM_HORIZON), `$` (LATEST), or just before
the timestamp's first entry id (AT_TIMESTAMP). One node at a time reads a
group (`sources.positions`), and the entry id stored up to is kept with the
records. A session first stores, in id order, the entries the group
delivered above that mark (read with XRANGE: they are pending, with this
consumer after a crash or with a node that died), then takes every pending
entry over with XAUTOCLAIM and acknowledges it, then reads new entries
(`XREADGROUP ... >`). Entries are appended to the partition streams (the
stream key is the partition key, a Redis stream being one ordered
partition, unless `partition_key` names an entry field whose value is) and
only then acknowledged. So an entry is never stored after a newer one of
its key, nor stored twice.

An entry's fields become the record's payload as a JSON object of
strings; an entry with the single field `data` carries its value as is.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import orjson

from triggerfish.sources.clients import Client, SourceClients
from triggerfish.sources.positions import ReaderLease, StoredMark
from triggerfish.store import Store
from triggerfish.streams.records import SourceRecord, encode_record, partition_of

try:
    import redis.asyncio as aioredis
    from redis.exceptions import ResponseError
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the extra
    raise ModuleNotFoundError("Redis sources need redis-py: pip install 'triggerfish[redis]'", name=exc.name) from None

#: Most entries read (and stored in one append) at a time.
MAX_READ = 500
#: Milliseconds one XREADGROUP blocks waiting for entries.
BLOCK_MS = 1000
#: The largest sequence part of a stream id: `<ms>-<this>` is the last id of a millisecond.
_LAST_SEQUENCE = 2**64 - 1


@dataclass(frozen=True, slots=True)
class RedisStreamSubscription:
    """A function's Redis stream: its group, how long an entry may stay pending, the partition streams it feeds."""

    function: str
    stream: str
    group: str
    #: The entry field that is the partition key (None: the stream key).
    partition_key: str | None = None
    starting_position: str = "TRIM_HORIZON"
    starting_timestamp: float | None = None
    partitions: int = 1
    streams: tuple[str, ...] = ()


def group_start(sub: RedisStreamSubscription) -> str:
    """The id a new group starts after (XGROUP CREATE's id)."""
    if sub.starting_position == "LATEST":
        return "$"
    if sub.starting_position == "AT_TIMESTAMP" and sub.starting_timestamp is not None:
        millis = int(sub.starting_timestamp * 1000)
        return "0" if millis <= 0 else f"{millis - 1}-{_LAST_SEQUENCE}"
    return "0"


class DeliveryGap(ConnectionError):
    """Entries of the group went to another reader: what they held is read again from the stream."""


def entry_order(entry_id: Any) -> tuple[int, int]:
    """An entry id (`<ms>-<seq>`) as what sorts as Redis sorts ids."""
    millis, _, sequence = _text(entry_id).partition("-")
    return int(millis), int(sequence or 0)


def before(entry_id: Any) -> str:
    """The id just before `entry_id` (so a range after it starts at `entry_id`)."""
    millis, sequence = entry_order(entry_id)
    if sequence:
        return f"{millis}-{sequence - 1}"
    return f"{millis - 1}-{_LAST_SEQUENCE}" if millis else "0-0"


class RedisStreamSources(SourceClients[RedisStreamSubscription]):
    """The Redis stream consumers of one app on this node. See the module docstring.

    `consumer` names this node in every group (the same after a restart, so it takes its hold back at once).
    """

    kind = "redis"

    def __init__(self, store: Store, url: str, *, consumer: str, **options: Any) -> None:
        super().__init__(store, **options)
        self.url = url
        self.consumer = consumer

    async def _session(self, sub: RedisStreamSubscription, client: Client[RedisStreamSubscription]) -> None:
        # Named, so an operator sees whose connection it is (CLIENT LIST) and can end one alone (CLIENT KILL).
        name = f"triggerfish-{self.consumer}-{sub.function}"
        connection = aioredis.from_url(self.url, socket_connect_timeout=5, client_name=name)
        lease: ReaderLease | None = None
        try:
            try:
                await connection.xgroup_create(sub.stream, sub.group, id=group_start(sub), mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            key = f"redis/{sub.stream}/{sub.group}"
            lease = ReaderLease(self.store, key, node=self.consumer)
            await lease.wait()
            mark = await StoredMark.load(self.store, key)
            delivered = await self._delivered(connection, sub)
            if mark.position is None:
                mark.position = await self._acknowledged(connection, sub, delivered)
            await self._recover(connection, sub, client, mark, delivered)
            client.ready()
            while True:
                await lease.keep()
                entries = await self._read(connection, sub, ">", block=BLOCK_MS)
                if not entries:
                    continue
                # One XREADGROUP returns entries next to each other; one the mark does not reach went elsewhere.
                following = await connection.xrange(sub.stream, f"({mark.position}", "+", count=1)
                if following and entry_order(following[0][0]) < entry_order(entries[0][0]):
                    raise DeliveryGap(f"entries of group {sub.group!r} went to another reader")
                await self._take(connection, sub, client, mark, entries)
        finally:
            if lease is not None:
                with contextlib.suppress(Exception):
                    await lease.release()
            await connection.aclose()

    async def _delivered(self, connection: Any, sub: RedisStreamSubscription) -> str:
        """The last id the group delivered to any consumer."""
        for group in await connection.xinfo_groups(sub.stream):
            if _text(group["name"]) == sub.group:
                return _text(group["last-delivered-id"])
        raise ConnectionError(f"the consumer group {sub.group!r} of {sub.stream!r} is gone")  # deleted meanwhile

    async def _acknowledged(self, connection: Any, sub: RedisStreamSubscription, delivered: str) -> str:
        """Where a mark starts for a group this platform has no record of: below its oldest pending entry."""
        pending = await connection.xpending(sub.stream, sub.group)
        return before(pending["min"]) if pending["pending"] else delivered

    async def _recover(
        self, connection: Any, sub: RedisStreamSubscription, client: Client[Any], mark: StoredMark, delivered: str
    ) -> None:
        """Store, in id order, the entries above the mark the group delivered, then acknowledge the pending ones.

        Those entries are pending (with this consumer, or one that died); XAUTOCLAIM would hand them over only
        once idle, after newer ones. So they are read straight from the stream (XRANGE) and stored in order;
        then every pending entry at or below the mark is taken over (XAUTOCLAIM) and acknowledged.
        """
        while entry_order(mark.position) < entry_order(delivered):
            entries = await connection.xrange(sub.stream, f"({mark.position}", delivered, count=MAX_READ)
            if not entries:
                await mark.advance({}, delivered)
                break
            await self._take(connection, sub, client, mark, entries, acknowledge=False)
        start = "0-0"
        while True:
            answer = await connection.xautoclaim(
                sub.stream, sub.group, self.consumer, 0, start_id=start, count=MAX_READ
            )
            following, claimed = answer[0], answer[1]
            stored = [i for i, _ in claimed if entry_order(i) <= entry_order(mark.position)]
            if stored:
                await connection.xack(sub.stream, sub.group, *stored)
            start = _text(following)
            if start == "0-0":
                return

    async def _read(
        self, connection: Any, sub: RedisStreamSubscription, after: str, block: int | None = None
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        answer = await connection.xreadgroup(sub.group, self.consumer, {sub.stream: after}, count=MAX_READ, block=block)
        if not answer:
            return []
        entries: list[tuple[bytes, dict[bytes, bytes]]] = answer[0][1]
        return entries

    async def _take(
        self,
        connection: Any,
        sub: RedisStreamSubscription,
        client: Client[Any],
        mark: StoredMark,
        entries: list[Any],
        *,
        acknowledge: bool = True,
    ) -> None:
        """Store the entries above the mark (and move it past them) in one write, then XACK them all."""
        now = time.time()
        by_stream: dict[str, list[bytes]] = {}
        last = mark.position
        for entry_id, fields in entries:
            text_id = _text(entry_id)
            if entry_order(text_id) <= entry_order(mark.position) or not fields:
                continue  # stored before (a redelivery), or deleted from the stream
            last = text_id
            decoded = {_text(k): _text(v) for k, v in fields.items()}
            payload = fields.get(b"data") if len(fields) == 1 and b"data" in fields else orjson.dumps(decoded)
            meta = {"stream": sub.stream, "id": text_id, "group": sub.group}
            key = decoded.get(sub.partition_key, sub.stream) if sub.partition_key else sub.stream
            record = encode_record(SourceRecord(key=key or sub.stream, arrived=now, payload=bytes(payload), meta=meta))
            by_stream.setdefault(sub.streams[partition_of(key or sub.stream, sub.partitions)], []).append(record)
        last_read = _text(entries[-1][0])
        if entry_order(last_read) > entry_order(last):
            last = last_read
        if last != mark.position:
            await mark.advance(by_stream, last)
        if acknowledge:
            await connection.xack(sub.stream, sub.group, *(entry_id for entry_id, _ in entries))
        client.state.received += sum(len(items) for items in by_stream.values())


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
