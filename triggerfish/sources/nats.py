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

Order per subject survives redelivery (`sources.positions`): one node at a
time reads the durable consumer; the stream sequence stored up to is kept
with the records; on connecting, the messages the consumer delivered above
it (pending until AckWait) are read from the stream and stored first, in
order; a redelivered message at or below it is acknowledged, not stored
again; and a delivery that went elsewhere (a fetch of a dropped connection)
begins the session again rather than let a newer message in first.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
import uuid
from dataclasses import dataclass
from typing import Any

from triggerfish.sources.clients import Client, SourceClients
from triggerfish.sources.positions import ReaderLease, StoredMark
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


def first_mark(info: Any) -> int:
    """Where the stored mark of a consumer this platform has no record of starts (its consumer info given).

    Nothing pending: everything delivered was stored (stored, then acknowledged), or skipped by the
    DeliverPolicy. Else the ack floor: above it, what was stored is read again this once (at least once).
    """
    if not info.num_ack_pending:
        return int(info.delivered.stream_seq)
    return int(info.ack_floor.stream_seq)


def stream_for(subject: str) -> str:
    """The name of the stream made for a subject no stream holds: its first token, made a valid name."""
    first = subject.split(".")[0]
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in first)
    return cleaned if cleaned.strip("_") else "TRIGGERFISH"


class DeliveryGap(ConnectionError):
    """A delivery of the consumer went to another reader: what it held is read again from the stream."""


class NatsSources(SourceClients[NatsSubscription]):
    """The JetStream consumers of one app on this node. See the module docstring.

    `node` names this node across restarts: one node at a time reads a durable consumer.
    """

    kind = "nats"

    def __init__(self, store: Store, url: str, *, node: str = "", **options: Any) -> None:
        super().__init__(store, **options)
        self.url = url
        self.node = node or uuid.uuid4().hex

    async def _session(self, sub: NatsSubscription, client: Client[NatsSubscription]) -> None:
        connection = await nats.connect(
            self.url, allow_reconnect=False, connect_timeout=5, name=f"triggerfish {sub.function}"
        )
        lease: ReaderLease | None = None
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
            key = f"nats/{stream}/{sub.durable}"
            lease = ReaderLease(self.store, key, node=self.node)
            await lease.wait()
            created = (await jetstream.stream_info(stream)).created
            mark = await StoredMark.load(self.store, key, epoch=None if created is None else str(created))
            info = await jetstream.consumer_info(stream, sub.durable)
            if mark.position is None:
                await mark.advance({}, first_mark(info))
            await self._recover(jetstream, sub, stream, mark, info.delivered.stream_seq)
            delivered = info.delivered.consumer_seq
            pull = await jetstream.pull_subscribe(sub.subject, durable=sub.durable, stream=stream)
            client.ready()
            while not connection.is_closed:
                await lease.keep()
                try:
                    messages = await pull.fetch(MAX_FETCH, timeout=FETCH_WAIT)
                except nats.errors.TimeoutError:
                    continue
                for message in messages:
                    delivered += 1
                    if message.metadata.sequence.consumer != delivered:
                        # A fetch of an earlier connection got deliveries after the consumer's state was read:
                        # begin again, reading them from the stream, rather than store newer ones first.
                        raise DeliveryGap(f"delivery {delivered} of {sub.durable!r} went to another reader")
                fresh = [m for m in messages if m.metadata.sequence.stream > mark.position]
                if fresh:
                    await self._store(sub, stream, mark, fresh)
                await asyncio.gather(*(message.ack() for message in messages))
                client.state.received += len(fresh)
            raise ConnectionError("the connection closed")
        finally:
            if lease is not None:
                with contextlib.suppress(Exception):
                    await lease.release()
            await connection.close()

    async def _recover(self, jetstream: Any, sub: NatsSubscription, stream: str, mark: StoredMark, upto: int) -> None:
        """Store, in stream order, the subject's messages above the mark up to what the consumer delivered.

        Those are pending: JetStream would give them again only after AckWait, after newer ones. They are
        read straight from the stream, a message at a time (at most the consumer's MaxAckPending of them).
        """
        found: list[Any] = []
        after = mark.position
        while True:
            message = None
            if after < upto:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    message = await jetstream.get_msg(stream, seq=after + 1, subject=sub.subject, next=True)
            if message is not None and message.seq > upto:
                message = None
            if found and (message is None or len(found) == MAX_FETCH):
                await self._store(sub, stream, mark, found)
                found = []
            if message is None:
                break
            found.append(message)
            after = message.seq
        if mark.position < upto:
            await mark.advance({}, upto)

    async def _store(self, sub: NatsSubscription, stream: str, mark: StoredMark, messages: list[Any]) -> None:
        """Append the messages to their partition streams and move the mark past them, in one write."""
        now = time.time()
        by_stream: dict[str, list[bytes]] = {}
        last = mark.position
        for message in messages:
            meta: dict[str, Any] = {"subject": message.subject, "stream": stream}
            with_meta = getattr(message, "metadata", None)
            if with_meta is not None:
                sequence = with_meta.sequence.stream
                meta["streamSequence"] = sequence
                meta["deliveries"] = with_meta.num_delivered
            else:  # read from the stream by `_recover`
                sequence = message.seq
                meta["streamSequence"] = sequence
            if message.headers:
                meta["headers"] = {str(k): str(v) for k, v in message.headers.items()}
            last = max(last, sequence)
            record = SourceRecord(key=message.subject, arrived=now, payload=bytes(message.data or b""), meta=meta)
            partition = sub.streams[partition_of(message.subject, sub.partitions)]
            by_stream.setdefault(partition, []).append(encode_record(record))
        await mark.advance(by_stream, last)
