"""MQTT sources: broker messages stored durably in partition streams, acknowledged only once stored.

    sources = MqttSources(store, parse_broker_url("mqtt://127.0.0.1:1883"), client_prefix="tf-home-node1")
    await sources.update([MqttSubscription("ingest", "home/+/temperature", qos=1, share="home.ingest")])
    await sources.stop()

One client per subscription (function and filter), through aiomqtt, with a
persistent session (MQTT 3.1.1 `clean_session=0`; MQTT 5 clean start off and
a session expiry), so messages published while the platform is down wait at
the broker. Each message is appended to the partition stream its topic hashes
to; only after the append is durable is a QoS 1 message acknowledged
(PUBACK). A platform killed between the two gets the message again from the
broker (at least once): no acknowledged message is ever lost. QoS 2 is
refused at declaration: paho answers PUBREC, which hands the message over,
before the application sees it, so it cannot wait for the store.

aiomqtt does not expose paho's manual acknowledgements yet (aiomqtt issue
#345); `_paho` below reaches the paho client it wraps, in one place.

A connection that fails or drops is made again after a backoff (0.5 s
doubling to 30 s, jittered) and subscribes again; the session keeps what
was not acknowledged. `stop()` disconnects cleanly (the session stays).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from triggerfish.retry import RetryPolicy
from triggerfish.sources.mqtt_config import BrokerURL, subscription_filter
from triggerfish.store import Store
from triggerfish.streams.records import SourceRecord, encode_record, partition_of

try:
    import aiomqtt
    import paho.mqtt.client as paho
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the extra
    raise ModuleNotFoundError("MQTT sources need aiomqtt: pip install 'triggerfish[mqtt]'", name=exc.name) from None

logger = logging.getLogger("triggerfish.mqtt")

#: How long the broker keeps an MQTT 5 session after a disconnect: a week.
SESSION_EXPIRY = 7 * 24 * 3600
#: Most messages stored in one append (what arrived together is stored together).
MAX_APPEND = 500
#: Reconnect backoff: 0.5 s, doubling up to 30 s, jittered.
RECONNECT_POLICY = RetryPolicy(base=0.5, multiplier=2.0, ceiling=30.0)


@dataclass(frozen=True, slots=True)
class MqttSubscription:
    """A function's MQTT subscription: what one client subscribes to, and how many partitions it feeds."""

    function: str
    topic: str
    qos: int = 1
    share: str | None = None
    partitions: int = 1
    #: The partition streams, by partition number (`names.source_stream`).
    streams: tuple[str, ...] = field(default=())


@dataclass(slots=True)
class SubscriberState:
    """What `status` shows of one subscription's client."""

    connected: bool = False
    received: int = 0
    reconnects: int = 0
    last_error: str | None = None


class MqttSources:
    """The MQTT clients of one app on this node. See the module docstring.

    `client_prefix` starts every client id (a client id per node and function keeps each node's
    session its own); `reconnect_policy` paces reconnects.
    """

    def __init__(
        self,
        store: Store,
        broker: BrokerURL,
        *,
        client_prefix: str,
        reconnect_policy: RetryPolicy = RECONNECT_POLICY,
    ) -> None:
        self.store = store
        self.broker = broker
        self.client_prefix = client_prefix
        self.reconnect_policy = reconnect_policy
        self._subscribers: dict[str, _Subscriber] = {}

    def status(self) -> dict[str, SubscriberState]:
        """Each subscription's client, by function."""
        return {name: subscriber.state for name, subscriber in self._subscribers.items()}

    async def update(self, subscriptions: Sequence[MqttSubscription]) -> None:
        """Run exactly these subscriptions: unchanged clients stay connected, changed ones reconnect."""
        wanted = {sub.function: sub for sub in subscriptions}
        stale = [name for name, subscriber in self._subscribers.items() if wanted.get(name) != subscriber.sub]
        await asyncio.gather(*(self._subscribers.pop(name).stop() for name in stale))
        for name, sub in wanted.items():
            if name not in self._subscribers:
                self._subscribers[name] = _Subscriber(self, sub)

    async def stop(self) -> None:
        await self.update([])

    async def wait_subscribed(self) -> None:
        """Wait until every client is connected and subscribed (bound it with `asyncio.timeout`)."""
        await asyncio.gather(*(subscriber.subscribed.wait() for subscriber in self._subscribers.values()))


def _paho(client: aiomqtt.Client) -> paho.Client:
    """The paho client aiomqtt wraps: the only way to its manual acknowledgements (aiomqtt issue #345)."""
    return client._client


class _Subscriber:
    def __init__(self, owner: MqttSources, sub: MqttSubscription) -> None:
        self.owner = owner
        self.sub = sub
        self.state = SubscriberState()
        self.subscribed = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"triggerfish-mqtt:{sub.function}")

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def _client(self) -> aiomqtt.Client:
        broker, sub = self.owner.broker, self.sub
        v5 = broker.version == "5"
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY
        client = aiomqtt.Client(
            broker.host,
            broker.port,
            username=broker.username,
            password=broker.password,
            identifier=f"{self.owner.client_prefix}-{sub.function}",
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else False,
            clean_start=False if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
            tls_context=ssl.create_default_context() if broker.tls else None,
            keepalive=30,
        )
        _paho(client).manual_ack_set(True)
        return client

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe(subscription_filter(self.sub.topic, self.sub.share), qos=self.sub.qos)
                    self.state.connected, self.state.last_error, attempt = True, None, 0
                    self.subscribed.set()
                    logger.info("MQTT: %s subscribed to %s at %s", self.sub.function, self.sub.topic, self.owner.broker)
                    await self._consume(client)
            except aiomqtt.MqttError as exc:
                self.state.last_error = str(exc)
                logger.warning(
                    "MQTT: %s's connection to %s failed or dropped (%s); reconnecting",
                    self.sub.function,
                    self.owner.broker,
                    exc,
                )
            except Exception:
                self.state.last_error = "storing messages failed"
                logger.exception(
                    "MQTT: storing %s's messages failed; reconnecting (unstored ones come again)", self.sub.function
                )
            self.state.connected = False
            self.subscribed.clear()
            attempt += 1
            self.state.reconnects += 1
            await asyncio.sleep(self.owner.reconnect_policy.backoff(attempt))

    async def _consume(self, client: aiomqtt.Client) -> None:
        messages = client.messages
        while True:
            batch = [await anext(messages)]
            while len(messages) and len(batch) < MAX_APPEND:
                batch.append(await anext(messages))
            await self._store(batch)
            for message in batch:
                if message.qos > 0:
                    _paho(client).ack(message.mid, message.qos)
            self.state.received += len(batch)

    async def _store(self, batch: list[aiomqtt.Message]) -> None:
        """Append the batch to its partitions, each in arrival order; returns once all of it is durable."""
        now = time.time()
        by_partition: dict[int, list[bytes]] = {}
        count = self.sub.partitions
        for message in batch:
            topic = message.topic.value
            meta: dict[str, Any] = {"topic": topic, "qos": message.qos, "retain": message.retain}
            if message.properties is not None:
                with contextlib.suppress(Exception):
                    values = message.properties.json()  # type: ignore[no-untyped-call]
                    meta["properties"] = _json_properties(values)
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            record = SourceRecord(key=topic, arrived=now, payload=bytes(payload), meta=meta)
            by_partition.setdefault(partition_of(topic, count), []).append(encode_record(record))
        log = self.owner.store.log
        await asyncio.gather(
            *(log.append_many(self.sub.streams[partition], items) for partition, items in by_partition.items())
        )


def _json_properties(values: dict[str, Any]) -> dict[str, Any]:
    """MQTT 5 properties as JSON: user properties as a list of pairs, bytes as hex."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, bytes):
            value = value.hex()
        elif name == "UserProperty":
            value = [list(pair) for pair in value]
        out[name[0].lower() + name[1:]] = value
    return out
