"""Redis Streams sources: a consumer group's entries stored in partition streams, then acknowledged (XACK).

    sources = RedisStreamSources(store, "redis://127.0.0.1:6379/0", consumer="tf-home-1a2b")
    await sources.update([RedisStreamSubscription("ingest", "readings", group="home.ingest", streams=(...,))])
    await sources.stop()

One connection per subscription, through redis-py's asyncio client. The
group is created (with the stream, when missing) at the trigger's
`starting_position`: `0` (TRIM_HORIZON), `$` (LATEST), or just before
the timestamp's first entry id (AT_TIMESTAMP). A session first stores
what this consumer read but never acknowledged (its pending entries,
after a crash), then reads new entries (`XREADGROUP ... >`), and every
`reclaim_every` seconds takes over, with XAUTOCLAIM, entries that other
consumers of the group (a node that died) left pending longer than the
function's timeout. Entries are appended to the partition streams (the
stream key is the partition key, a Redis stream being one ordered partition, unless
`partition_key` names an entry field whose value is)
and only then acknowledged.

An entry's fields become the record's payload as a JSON object of
strings; an entry with the single field `data` carries its value as is.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson

from triggerfish.sources.clients import Client, SourceClients
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
    #: Seconds an entry stays pending with another consumer before this one takes it over (XAUTOCLAIM).
    reclaim_idle: float = 30.0
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


class RedisStreamSources(SourceClients[RedisStreamSubscription]):
    """The Redis stream consumers of one app on this node. See the module docstring.

    `consumer` names this node in every group (the same after a restart, so it finds its pending entries).
    """

    kind = "redis"

    def __init__(self, store: Store, url: str, *, consumer: str, reclaim_every: float = 5.0, **options: Any) -> None:
        super().__init__(store, **options)
        self.url = url
        self.consumer = consumer
        self.reclaim_every = reclaim_every

    async def _session(self, sub: RedisStreamSubscription, client: Client[RedisStreamSubscription]) -> None:
        # Named, so an operator sees whose connection it is (CLIENT LIST) and can end one alone (CLIENT KILL).
        name = f"triggerfish-{self.consumer}-{sub.function}"
        connection = aioredis.from_url(self.url, socket_connect_timeout=5, client_name=name)
        try:
            try:
                await connection.xgroup_create(sub.stream, sub.group, id=group_start(sub), mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            client.ready()
            # What this consumer read before and never acknowledged (it crashed before storing it).
            while entries := await self._read(connection, sub, "0"):
                await self._take(connection, sub, client, entries)
                if len(entries) < MAX_READ:
                    break
            reclaimed_at = 0.0
            while True:
                if time.monotonic() - reclaimed_at >= self.reclaim_every:
                    await self._reclaim(connection, sub, client)
                    reclaimed_at = time.monotonic()
                entries = await self._read(connection, sub, ">", block=BLOCK_MS)
                if entries:
                    await self._take(connection, sub, client, entries)
        finally:
            await connection.aclose()

    async def _read(
        self, connection: Any, sub: RedisStreamSubscription, after: str, block: int | None = None
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        answer = await connection.xreadgroup(sub.group, self.consumer, {sub.stream: after}, count=MAX_READ, block=block)
        if not answer:
            return []
        entries: list[tuple[bytes, dict[bytes, bytes]]] = answer[0][1]
        # Pending entries deleted from the stream come back without fields: nothing to store, only to ack.
        return entries

    async def _reclaim(self, connection: Any, sub: RedisStreamSubscription, client: Client[Any]) -> None:
        """Take over entries other consumers left pending past `reclaim_idle` (XAUTOCLAIM), and store them."""
        start = "0-0"
        idle = max(1, int(sub.reclaim_idle * 1000))
        while True:
            answer = await connection.xautoclaim(
                sub.stream, sub.group, self.consumer, idle, start_id=start, count=MAX_READ
            )
            following, entries = answer[0], answer[1]
            if entries:
                await self._take(connection, sub, client, entries)
            start = following.decode() if isinstance(following, bytes) else str(following)
            if start == "0-0":
                return

    async def _take(
        self, connection: Any, sub: RedisStreamSubscription, client: Client[Any], entries: list[Any]
    ) -> None:
        now = time.time()
        by_partition: dict[int, list[bytes]] = {}
        ids: list[bytes] = []
        for entry_id, fields in entries:
            ids.append(entry_id)
            if not fields:
                continue
            text_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            decoded = {_text(k): _text(v) for k, v in fields.items()}
            payload = fields.get(b"data") if len(fields) == 1 and b"data" in fields else orjson.dumps(decoded)
            meta = {"stream": sub.stream, "id": text_id, "group": sub.group}
            key = decoded.get(sub.partition_key, sub.stream) if sub.partition_key else sub.stream
            record = encode_record(SourceRecord(key=key or sub.stream, arrived=now, payload=bytes(payload), meta=meta))
            by_partition.setdefault(partition_of(key or sub.stream, sub.partitions), []).append(record)
        log = self.store.log
        await asyncio.gather(*(log.append_many(sub.streams[n], items) for n, items in by_partition.items()))
        if ids:
            await connection.xack(sub.stream, sub.group, *ids)
        client.state.received += sum(len(items) for items in by_partition.values())


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
