"""AMQP 0-9-1 sources (RabbitMQ): queue messages stored durably in partition streams, acknowledged once stored.

    sources = AmqpSources(store, parse_amqp_url("amqp://guest:guest@127.0.0.1:5672/"))
    await sources.update([AmqpSubscription("ingest", "readings", exchange="sensors", routing_key="#")])
    await sources.stop()

One connection and channel per subscription, through aio-pika. The queue is
declared durable (and bound to its exchange, declared durable, when one is
named); `basic.qos` lets the broker send `prefetch` messages ahead. Messages
that arrived together are appended to their partition streams (the routing
key is the partition key) and only then acknowledged, in one `basic.ack`
with `multiple` set, so a platform killed in between gets them again from
the broker, marked redelivered: no acknowledged message is lost.

A connection that fails or drops is made again after a backoff (0.5 s
doubling to 30 s, jittered); unacknowledged messages go back to the queue
when the channel closes, which the broker does for a dead connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from triggerfish.retry import RetryPolicy
from triggerfish.sources.amqp_config import AmqpURL
from triggerfish.sources.mqtt import SubscriberState
from triggerfish.store import Store
from triggerfish.streams.records import SourceRecord, encode_record, partition_of

try:
    import aio_pika
    import aio_pika.exceptions
    from aio_pika.abc import AbstractIncomingMessage
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the extra
    raise ModuleNotFoundError("AMQP sources need aio-pika: pip install 'triggerfish[amqp]'", name=exc.name) from None

logger = logging.getLogger("triggerfish.amqp")

#: Most messages stored in one append (what arrived together is stored together).
MAX_APPEND = 500
RECONNECT_POLICY = RetryPolicy(base=0.5, multiplier=2.0, ceiling=30.0)


@dataclass(frozen=True, slots=True)
class AmqpSubscription:
    """A function's queue: what one channel consumes, and the partition streams it feeds."""

    function: str
    queue: str
    exchange: str | None = None
    routing_key: str = "#"
    exchange_type: str = "topic"
    prefetch: int = 500
    partitions: int = 1
    streams: tuple[str, ...] = ()


class AmqpSources:
    """The AMQP consumers of one app on this node. See the module docstring."""

    def __init__(self, store: Store, broker: AmqpURL, *, reconnect_policy: RetryPolicy = RECONNECT_POLICY) -> None:
        self.store = store
        self.broker = broker
        self.reconnect_policy = reconnect_policy
        self._consumers: dict[str, _Consumer] = {}
        #: The connection records given up on are published through (opened on first use).
        self._publishing: Any = None
        self._publish_lock = asyncio.Lock()

    def status(self) -> dict[str, SubscriberState]:
        return {name: consumer.state for name, consumer in self._consumers.items()}

    async def update(self, subscriptions: Sequence[AmqpSubscription]) -> None:
        """Run exactly these subscriptions: unchanged consumers stay, changed ones reconnect."""
        wanted = {sub.function: sub for sub in subscriptions}
        stale = [name for name, consumer in self._consumers.items() if wanted.get(name) != consumer.sub]
        await asyncio.gather(*(self._consumers.pop(name).stop() for name in stale))
        for name, sub in wanted.items():
            if name not in self._consumers:
                self._consumers[name] = _Consumer(self, sub)

    async def stop(self) -> None:
        await self.update([])
        if self._publishing is not None:
            await self._publishing.close()
            self._publishing = None

    async def dead_letter(self, exchange: str, records: Sequence[Mapping[str, Any]], *, reason: str) -> None:
        """Publish the original messages of Lambda-shaped AMQP `records` to `exchange`, each confirmed.

        As RabbitMQ dead-letters a rejected message: the body, properties and routing key it came with,
        and `x-first-death-reason` ("rejected"), `-queue` and `-exchange` headers, plus `x-triggerfish-reason`
        (why it was given up on). The exchange is declared durable (fanout) when it does not exist.
        """
        async with self._publish_lock:
            try:
                channel, target = await self._exchange(exchange)
                try:
                    for record in records:
                        body, routing_key = _dead_message(record, reason)
                        await target.publish(body, routing_key=routing_key)
                finally:
                    await channel.close()
            except Exception:
                if self._publishing is not None:  # made again for the next try
                    with contextlib.suppress(Exception):
                        await self._publishing.close()
                    self._publishing = None
                raise

    async def _exchange(self, name: str) -> tuple[Any, Any]:
        """A channel with publisher confirms, and the exchange `name` on it (declared when missing)."""
        if self._publishing is None or self._publishing.is_closed:
            broker = self.broker
            self._publishing = await aio_pika.connect(
                host=broker.host,
                port=broker.port,
                login=broker.username,
                password=broker.password,
                virtualhost=broker.vhost,
                ssl=broker.tls,
                client_properties={"connection_name": "triggerfish dead letters"},
            )
        channel = await self._publishing.channel(publisher_confirms=True)
        try:
            return channel, await channel.get_exchange(name, ensure=True)
        except aio_pika.exceptions.ChannelClosed:  # NOT_FOUND closes the channel: declare it on a new one
            channel = await self._publishing.channel(publisher_confirms=True)
            return channel, await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT, durable=True)

    async def wait_subscribed(self) -> None:
        """Wait until every consumer is connected and consuming (bound it with `asyncio.timeout`)."""
        await asyncio.gather(*(consumer.subscribed.wait() for consumer in self._consumers.values()))


class _Consumer:
    def __init__(self, owner: AmqpSources, sub: AmqpSubscription) -> None:
        self.owner = owner
        self.sub = sub
        self.state = SubscriberState()
        self.subscribed = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"triggerfish-amqp:{sub.function}")

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        broker, sub, attempt = self.owner.broker, self.sub, 0
        while True:
            try:
                connection = await aio_pika.connect(
                    host=broker.host,
                    port=broker.port,
                    login=broker.username,
                    password=broker.password,
                    virtualhost=broker.vhost,
                    ssl=broker.tls,
                    client_properties={"connection_name": f"triggerfish {sub.function}"},
                )
                async with connection:
                    channel = await connection.channel()
                    await channel.set_qos(prefetch_count=sub.prefetch)
                    queue = await channel.declare_queue(sub.queue, durable=True)
                    if sub.exchange is not None:
                        exchange = await channel.declare_exchange(sub.exchange, sub.exchange_type, durable=True)
                        await queue.bind(exchange, routing_key=sub.routing_key)
                    arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
                    await queue.consume(arrived.put, no_ack=False)
                    closed = asyncio.ensure_future(_closed(connection))
                    self.state.connected, self.state.last_error, attempt = True, None, 0
                    self.subscribed.set()
                    logger.info("AMQP: %s consumes %s at %s", sub.function, sub.queue, broker)
                    await self._consume(arrived, closed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.state.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning(
                    "AMQP: %s's connection to %s failed or dropped (%s); reconnecting", sub.function, broker, exc
                )
            self.state.connected = False
            self.subscribed.clear()
            attempt += 1
            self.state.reconnects += 1
            await asyncio.sleep(self.owner.reconnect_policy.backoff(attempt))

    async def _consume(self, arrived: asyncio.Queue[AbstractIncomingMessage], closed: asyncio.Future[None]) -> None:
        while True:
            getting: asyncio.Future[Any] = asyncio.ensure_future(arrived.get())
            watched: list[asyncio.Future[Any]] = [getting, closed]
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if not getting.done():
                getting.cancel()
                raise ConnectionError("the connection closed")
            batch = [getting.result()]
            while not arrived.empty() and len(batch) < MAX_APPEND:
                batch.append(arrived.get_nowait())
            await self._store(batch)
            # Every earlier delivery of this channel is in this batch or an earlier one: one ack covers them.
            await batch[-1].ack(multiple=True)
            self.state.received += len(batch)

    async def _store(self, batch: list[AbstractIncomingMessage]) -> None:
        now = time.time()
        by_partition: dict[int, list[bytes]] = {}
        for message in batch:
            key = message.routing_key or self.sub.queue
            meta = {
                "queue": self.sub.queue,
                "exchange": message.exchange,
                "routingKey": message.routing_key,
                "redelivered": bool(message.redelivered),
                "basicProperties": _properties(message),
            }
            record = SourceRecord(key=key, arrived=now, payload=bytes(message.body), meta=meta)
            by_partition.setdefault(partition_of(key, self.sub.partitions), []).append(encode_record(record))
        log = self.owner.store.log
        await asyncio.gather(
            *(log.append_many(self.sub.streams[partition], items) for partition, items in by_partition.items())
        )


async def _closed(connection: Any) -> None:
    """Returns when `connection` closes, by us or by the broker or network.

    aio-pika resolves `closed()` only for a close we ask for; a connection dropped under it only runs its
    `close_callbacks`, so those are watched too (else a dropped connection is never noticed nor made again).
    """
    dropped: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_close(*_: Any) -> None:
        if not dropped.done():
            dropped.set_result(None)

    connection.close_callbacks.add(on_close)
    asked = asyncio.ensure_future(connection.closed())
    try:
        await asyncio.wait([asked, dropped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        asked.cancel()


def _properties(message: AbstractIncomingMessage) -> dict[str, Any]:
    """The message's basic properties as Amazon MQ gives them to Lambda (`basicProperties`), JSON-able."""
    stamp = message.timestamp
    values: dict[str, Any] = {
        "contentType": message.content_type,
        "contentEncoding": message.content_encoding,
        "headers": {str(k): _plain(v) for k, v in (message.headers or {}).items()},
        "deliveryMode": int(message.delivery_mode) if message.delivery_mode is not None else None,
        "priority": message.priority,
        "correlationId": message.correlation_id,
        "replyTo": message.reply_to,
        "expiration": str(message.expiration) if message.expiration is not None else None,
        "messageId": message.message_id,
        "timestamp": stamp.isoformat() if stamp is not None else None,
        "type": message.type,
        "userId": message.user_id,
        "appId": message.app_id,
        "bodySize": len(message.body),
    }
    return {key: value for key, value in values.items() if value is not None}


def _dead_message(record: Mapping[str, Any], reason: str) -> tuple[Any, str]:
    """The message a dead-lettered record was, with RabbitMQ's dead-letter headers; and its routing key."""
    body = record["amqp"]
    properties = body.get("basicProperties") or {}
    headers = dict(properties.get("headers") or {})
    headers.update(
        {
            "x-first-death-reason": "rejected",
            "x-first-death-queue": body.get("queue", ""),
            "x-first-death-exchange": body.get("exchange", ""),
            "x-triggerfish-reason": reason[:1000],
        }
    )
    message = aio_pika.Message(
        base64.b64decode(body["data"]),
        headers=headers,
        content_type=properties.get("contentType"),
        content_encoding=properties.get("contentEncoding"),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=properties.get("priority"),
        correlation_id=properties.get("correlationId"),
        reply_to=properties.get("replyTo"),
        message_id=properties.get("messageId"),
        type=properties.get("type"),
        app_id=properties.get("appId"),
    )
    return message, str(body.get("routingKey") or "")


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
