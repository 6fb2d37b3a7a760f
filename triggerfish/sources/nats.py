"""NATS JetStream sources: a durable pull consumer's messages stored in partition streams, then acknowledged.

    sources = NatsSources(store, "nats://127.0.0.1:4222")
    await sources.update([NatsSubscription("ingest", "orders.>", durable="shop-ingest", streams=(...,))])
    await sources.stop()

One connection per subscription, through nats-py. The JetStream stream that
holds the subject is found (or, when none does, created file-backed, named
for the subject's first token); a durable pull consumer (explicit acks)
is created on it or updated. Its AckWait is the function's timeout and
its MaxDeliver the trigger's `max_retries` + 1 (-1: no limit), so the
consumer's redelivery matches the function's own; its DeliverPolicy is the
trigger's `starting_position` (ALL, NEW, or BY_START_TIME). Messages fetched
together are appended to their partition streams (the subject is the
partition key) and only then acknowledged, each: a platform killed in
between gets them again from JetStream once AckWait passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from dataclasses import dataclass
from typing import Any

from triggerfish.sources.clients import Client, SourceClients
from triggerfish.store import Store
from triggerfish.streams.records import SourceRecord, encode_record, partition_of

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the extra
    raise ModuleNotFoundError("NATS sources need nats-py: pip install 'triggerfish[nats]'", name=exc.name) from None

#: Most messages fetched (and stored in one append) at a time.
MAX_FETCH = 500
#: How long one fetch waits for messages before it asks again.
FETCH_WAIT = 1.0


@dataclass(frozen=True, slots=True)
class NatsSubscription:
    """A function's JetStream subject: its consumer's settings, and the partition streams it feeds."""

    function: str
    subject: str
    durable: str
    stream: str | None = None
    ack_wait: float = 30.0
    #: -1: no limit.
    max_deliver: int = -1
    starting_position: str = "TRIM_HORIZON"
    starting_timestamp: float | None = None
    partitions: int = 1
    streams: tuple[str, ...] = ()


def consumer_config(sub: NatsSubscription) -> ConsumerConfig:
    """The durable consumer's configuration (see the module docstring)."""
    policy = {"TRIM_HORIZON": DeliverPolicy.ALL, "LATEST": DeliverPolicy.NEW}.get(
        sub.starting_position, DeliverPolicy.BY_START_TIME
    )
    start = None
    if policy is DeliverPolicy.BY_START_TIME and sub.starting_timestamp is not None:
        start = datetime.datetime.fromtimestamp(sub.starting_timestamp, tz=datetime.UTC)
    return ConsumerConfig(
        durable_name=sub.durable,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=sub.ack_wait,
        max_deliver=sub.max_deliver,
        deliver_policy=policy,
        opt_start_time=start,
        filter_subject=sub.subject,
        max_ack_pending=MAX_FETCH * 4,
    )


def stream_for(subject: str) -> str:
    """The name of the stream made for a subject no stream holds: its first token, made a valid name."""
    first = subject.split(".")[0]
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in first)
    return cleaned if cleaned.strip("_") else "TRIGGERFISH"


class NatsSources(SourceClients[NatsSubscription]):
    """The JetStream consumers of one app on this node. See the module docstring."""

    kind = "nats"

    def __init__(self, store: Store, url: str, **options: Any) -> None:
        super().__init__(store, **options)
        self.url = url

    async def _session(self, sub: NatsSubscription, client: Client[NatsSubscription]) -> None:
        connection = await nats.connect(
            self.url, allow_reconnect=False, connect_timeout=5, name=f"triggerfish {sub.function}"
        )
        try:
            jetstream = connection.jetstream()
            stream = sub.stream
            if stream is None:
                try:
                    stream = await jetstream.find_stream_name_by_subject(sub.subject)
                except nats.js.errors.NotFoundError:
                    stream = stream_for(sub.subject)
                    await jetstream.add_stream(name=stream, subjects=[sub.subject], storage=StorageType.FILE)
            config = consumer_config(sub)
            # A consumer that exists with settings JetStream will not change in place (such as its start) is
            # kept as it is, with its position.
            with contextlib.suppress(nats.js.errors.BadRequestError):
                await jetstream.add_consumer(stream, config)
            pull = await jetstream.pull_subscribe(sub.subject, durable=sub.durable, stream=stream)
            client.ready()
            while not connection.is_closed:
                try:
                    messages = await pull.fetch(MAX_FETCH, timeout=FETCH_WAIT)
                except nats.errors.TimeoutError:
                    continue
                await self._store(sub, stream, messages)
                await asyncio.gather(*(message.ack() for message in messages))
                client.state.received += len(messages)
            raise ConnectionError("the connection closed")
        finally:
            await connection.close()

    async def _store(self, sub: NatsSubscription, stream: str, messages: list[Any]) -> None:
        now = time.time()
        by_partition: dict[int, list[bytes]] = {}
        for message in messages:
            meta: dict[str, Any] = {"subject": message.subject, "stream": stream}
            with_meta = getattr(message, "metadata", None)
            if with_meta is not None:
                meta["streamSequence"] = with_meta.sequence.stream
                meta["deliveries"] = with_meta.num_delivered
            if message.headers:
                meta["headers"] = {str(k): str(v) for k, v in message.headers.items()}
            record = SourceRecord(key=message.subject, arrived=now, payload=bytes(message.data), meta=meta)
            by_partition.setdefault(partition_of(message.subject, sub.partitions), []).append(encode_record(record))
        log = self.store.log
        await asyncio.gather(*(log.append_many(sub.streams[n], items) for n, items in by_partition.items()))
