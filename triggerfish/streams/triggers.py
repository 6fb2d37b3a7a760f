"""The source triggers of one app (`@app.on_mqtt`, `@app.on_amqp`): broker clients and partition readers.

    triggers = SourceTriggers(store, platform, publisher, app="home", node="host-1")
    await triggers.update(specs, config.mqtt, config.amqp)  # DeclarationError (nothing changed) for a bad broker
    await triggers.stop()

What the platform starts, switches on reload and stops. The readers start
before the clients and stop after them, so every stored message has a reader.
The broker is `TRIGGERFISH_MQTT_URL` from the environment, else `[mqtt] url`
of triggerfish.toml, so credentials need not be written in a file; client ids
start with `TRIGGERFISH_MQTT_CLIENT_ID`, else `[mqtt] client_id`, else a name
made from the app, the host and the data directory, which stays the same when
the node restarts, so it finds its session again. The aiomqtt client is
imported only by apps that declare an MQTT trigger. AMQP's broker is
`TRIGGERFISH_AMQP_URL`, else `[amqp] url`; aio-pika is imported the same way.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from triggerfish.bus.archive import trim_consumed
from triggerfish.bus.publisher import Publisher
from triggerfish.errors import DeclarationError
from triggerfish.identity import (
    amqp_queue_arn,
    kinesis_stream_arn,
    mqtt_topic_filter_arn,
    nats_subject_arn,
    redis_stream_arn,
)
from triggerfish.model import (
    AmqpTrigger,
    FunctionSpec,
    MqttTrigger,
    NatsTrigger,
    PartitionedStreamTrigger,
    RedisStreamTrigger,
)
from triggerfish.names import SOURCE_GROUP, partitioned_stream, partitioned_stream_group
from triggerfish.retry import RetryPolicy
from triggerfish.sources.amqp_config import AmqpURL, parse_amqp_url
from triggerfish.sources.mqtt_config import BrokerURL, parse_broker_url, topic_matches
from triggerfish.sources.urls import check_source_url, shown_url
from triggerfish.store import Store
from triggerfish.streams.batches import BatchOptions, filter_texts
from triggerfish.streams.consumer import DEFAULT_RETRY_POLICY, StreamConsumers, StreamInvoker, StreamSubscription
from triggerfish.streams.partitioned import PartitionedStreams
from triggerfish.streams.records import SourceRecord, encode_record, partition_of

if TYPE_CHECKING:
    from triggerfish.sources.amqp import AmqpSources
    from triggerfish.sources.clients import SourceClients
    from triggerfish.sources.mqtt import MqttSources

#: The environment variable that names the MQTT broker (with its credentials), over `[mqtt] url`.
MQTT_URL_VARIABLE = "TRIGGERFISH_MQTT_URL"
#: The environment variable that starts this node's client ids, over `[mqtt] client_id`.
MQTT_CLIENT_ID_VARIABLE = "TRIGGERFISH_MQTT_CLIENT_ID"
#: The environment variable that names the AMQP broker, over `[amqp] url`.
AMQP_URL_VARIABLE = "TRIGGERFISH_AMQP_URL"
#: The environment variables that name the NATS server and the Redis server, over `[nats] url` and `[redis] url`.
NATS_URL_VARIABLE = "TRIGGERFISH_NATS_URL"
REDIS_URL_VARIABLE = "TRIGGERFISH_REDIS_URL"

SourceTrigger = MqttTrigger | AmqpTrigger | NatsTrigger | RedisStreamTrigger | PartitionedStreamTrigger
_SOURCE_TRIGGERS = (MqttTrigger, AmqpTrigger, NatsTrigger, RedisStreamTrigger, PartitionedStreamTrigger)
#: What to say when a function declares two triggers of one kind.
_COVER = {
    "mqtt": "a filter with '+' or '#' covers several topics",
    "amqp": "bind one queue to several routing keys instead",
    "nats": "a subject with '*' or '>' covers several subjects",
    "redis": "declare one function per stream",
    "stream": "declare one function per stream",
}
#: How long a partition stream keeps records after they were handled: a day, Kinesis's default retention.
SOURCE_RETENTION = 24 * 3600.0
#: A broker URL to show in the error that says none is configured.
_EXAMPLES = {
    "mqtt": "mqtt://127.0.0.1:1883",
    "amqp": "amqp://guest:guest@127.0.0.1:5672/",
    "nats": "nats://127.0.0.1:4222",
    "redis": "redis://127.0.0.1:6379/0",
}


def source_triggers(specs: Mapping[str, FunctionSpec]) -> list[tuple[FunctionSpec, SourceTrigger]]:
    """Every function's stream triggers; DeclarationError for a function with two of one kind, or for
    functions reading one built-in stream with different partition counts."""
    found: list[tuple[FunctionSpec, SourceTrigger]] = []
    for spec in specs.values():
        for kind, cover in _COVER.items():
            mine = [t for t in spec.triggers if isinstance(t, _SOURCE_TRIGGERS) and t.kind == kind]
            if len(mine) > 1:
                decorator = {"redis": "on_redis_stream", "stream": "on_stream"}.get(kind, f"on_{kind}")
                raise DeclarationError(
                    f"function {spec.name!r} declares @app.{decorator} {len(mine)} times; declare one per function"
                    f" ({cover})"
                )
            found.extend((spec, trigger) for trigger in mine)
    partitions: dict[str, tuple[int, str]] = {}
    for spec, trigger in found:
        if isinstance(trigger, PartitionedStreamTrigger):
            count = trigger.stream_settings.parallelization
            seen = partitions.setdefault(trigger.stream, (count, spec.name))
            if seen[0] != count:
                raise DeclarationError(
                    f"functions {seen[1]!r} and {spec.name!r} read stream {trigger.stream!r} with parallelization"
                    f" {seen[0]} and {count}: it is the stream's partition count, so declare the"
                    " same on each"
                )
    return found


def partitioned_streams(specs: Mapping[str, FunctionSpec]) -> dict[str, tuple[str, int]]:
    """The built-in streams `specs` read: each one's partition-key field and partition count."""
    return {
        t.stream: (t.partition_key, t.stream_settings.parallelization)
        for _, t in source_triggers(specs)
        if isinstance(t, PartitionedStreamTrigger)
    }


class SourceTriggers:
    """Every source trigger of one app on this node. See the module docstring."""

    def __init__(
        self,
        store: Store,
        invoker: StreamInvoker,
        publisher: Publisher,
        *,
        app: str,
        node: str,
        environ: Mapping[str, str] | None = None,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.app = app
        self.node = node
        self.environ = os.environ if environ is None else environ
        self.consumers = StreamConsumers(
            store, invoker, publisher, app=app, node=node, retry_policy=retry_policy, clock=clock
        )
        self.mqtt: MqttSources | None = None
        self.amqp: AmqpSources | None = None
        #: The NATS and Redis clients, by kind, with the URL they connect to.
        self.clients: dict[str, tuple[SourceClients[Any], str]] = {}
        self._mqtt_at: tuple[BrokerURL, str] | None = None
        self._amqp_at: AmqpURL | None = None
        self._streams: list[StreamSubscription] = []
        self._triggers: dict[tuple[str, str], SourceTrigger] = {}
        #: The app's built-in streams (`@app.on_stream`), what `context.streams.put` appends to.
        self.partitioned = PartitionedStreams(store, clock=clock)
        #: `[mqtt]` of the version serving now: where `context.mqtt.publish` sends (with TRIGGERFISH_MQTT_URL over it).
        self._mqtt_table: dict[str, str] = {}
        self._publisher: Any = None
        #: Set by `triggerfish.testing`: published messages are delivered to this app's own `on_mqtt` functions
        #: (as a broker would) and kept in `mqtt_published`, with no broker.
        self.mqtt_loopback = False
        self.mqtt_published: list[tuple[str, bytes, int, bool]] = []
        #: In loopback (tests), what would have been dead-lettered to an AMQP exchange: (exchange, record, reason).
        self.amqp_dead_lettered: list[tuple[str, Mapping[str, Any], str]] = []
        self.consumers.dead_letters = self

    @property
    def active(self) -> bool:
        """Whether any broker client runs here."""
        return self.mqtt is not None or self.amqp is not None or bool(self.clients)

    def configure(self, specs: Mapping[str, FunctionSpec]) -> None:
        """Know `specs`' stream subscriptions without connecting or reading (for `deliver_due` and the injects)."""
        found = source_triggers(specs)
        self._streams = [_stream_subscription(spec, trigger) for spec, trigger in found]
        self._triggers = {(trigger.kind, spec.name): trigger for spec, trigger in found}
        self.partitioned.configure(specs)

    async def trim(self, *, max_age: float = SOURCE_RETENTION) -> int:
        """Drop records of the partition streams handled more than `max_age` seconds ago; how many went.

        A record not yet handled is kept whatever its age: the checkpoint bounds the trim.
        """
        removed = 0
        log = self.store.log
        for sub in self._streams:
            for partition in range(sub.partitions):
                stream = sub.stream(partition)
                checkpoint = await log.position(stream, SOURCE_GROUP)
                removed += await trim_consumed(log, stream, checkpoint, max_age=max_age)
        return removed

    async def deliver_due(self) -> int:
        """One batch per partition of every configured subscription, here and now (`triggerfish.testing`)."""
        return await self.consumers.deliver_due(self._streams)

    async def inject(self, topic: str, payload: bytes, *, arrived: float, qos: int = 1, retain: bool = False) -> int:
        """Store an MQTT message as the client would have, for every subscription matching `topic`; how many.

        What `triggerfish.testing`'s `mqtt_publish` does in place of a broker.
        """
        meta = {"topic": topic, "qos": qos, "retain": retain}

        def wants(trigger: SourceTrigger) -> bool:
            return isinstance(trigger, MqttTrigger) and topic_matches(trigger.topic, topic)

        return await self._inject("mqtt", wants, topic, payload, arrived, meta)

    async def inject_amqp(self, queue: str, body: bytes, *, arrived: float, routing_key: str = "") -> int:
        """Store an AMQP message as the consumer of `queue` would have; how many subscriptions took it."""
        meta = {"queue": queue, "exchange": "", "routingKey": routing_key, "redelivered": False, "basicProperties": {}}

        def wants(trigger: SourceTrigger) -> bool:
            return isinstance(trigger, AmqpTrigger) and trigger.queue == queue

        return await self._inject("amqp", wants, routing_key or queue, body, arrived, meta)

    async def inject_nats(self, subject: str, data: bytes, *, arrived: float) -> int:
        """Store a JetStream message as the consumer of every matching `on_nats` function would have; how many."""
        from triggerfish.streams.declare import nats_subject_matches

        def wants(trigger: SourceTrigger) -> bool:
            return isinstance(trigger, NatsTrigger) and nats_subject_matches(trigger.subject, subject)

        meta = {"subject": subject, "stream": "test", "deliveries": 1}
        return await self._inject("nats", wants, subject, data, arrived, meta)

    async def inject_redis(self, stream: str, payload: bytes, *, arrived: float, entry_id: str) -> int:
        """Store a Redis stream entry as the group of every `on_redis_stream` function on `stream` would have."""

        def wants(trigger: SourceTrigger) -> bool:
            return isinstance(trigger, RedisStreamTrigger) and trigger.stream == stream

        meta = {"stream": stream, "id": entry_id, "group": "test"}
        return await self._inject("redis", wants, stream, payload, arrived, meta)

    async def _inject(
        self, kind: str, wants: Callable[[SourceTrigger], bool], key: str, payload: bytes, arrived: float,
        meta: dict[str, Any],
    ) -> int:  # fmt: skip
        matched = 0
        for sub in self._streams:
            if sub.source == kind and wants(self._triggers[(kind, sub.function)]):
                record = SourceRecord(key, arrived, payload, meta)
                await self.store.log.append(sub.stream(partition_of(key, sub.partitions)), encode_record(record))
                matched += 1
        return matched

    def check(
        self,
        specs: Mapping[str, FunctionSpec],
        mqtt_table: Mapping[str, str] | None = None,
        amqp_table: Mapping[str, str] | None = None,
        nats_table: Mapping[str, str] | None = None,
        redis_table: Mapping[str, str] | None = None,
    ) -> None:
        """Raise the DeclarationError `update` would, changing nothing (a reload checks before it switches)."""
        found = source_triggers(specs)
        for kind, variable, table in (("mqtt", MQTT_URL_VARIABLE, mqtt_table), ("amqp", AMQP_URL_VARIABLE, amqp_table)):
            mine = [(s, t) for s, t in found if t.kind == kind]
            if mine:
                parse = parse_broker_url if kind == "mqtt" else parse_amqp_url
                _checked(parse, *self._url(variable, dict(table or {}), kind, _EXAMPLES[kind], mine))
                _module(kind)
        self._client_urls(found, nats_table, redis_table)

    def _client_urls(
        self,
        found: Sequence[tuple[FunctionSpec, SourceTrigger]],
        nats_table: Mapping[str, str] | None,
        redis_table: Mapping[str, str] | None,
    ) -> dict[str, str]:
        """The NATS and Redis URLs the triggers in `found` need, checked, with their client modules importable."""
        urls: dict[str, str] = {}
        for kind, variable, table in (
            ("nats", NATS_URL_VARIABLE, nats_table),
            ("redis", REDIS_URL_VARIABLE, redis_table),
        ):
            mine = [(spec, t) for spec, t in found if t.kind == kind]
            if mine:
                url, where = self._url(variable, dict(table or {}), kind, _EXAMPLES[kind], mine)
                try:
                    urls[kind] = check_source_url(url, kind=kind, where=where)
                except ValueError as exc:
                    raise DeclarationError(str(exc)) from None
                _module(kind)
        return urls

    async def update(
        self,
        specs: Mapping[str, FunctionSpec],
        mqtt_table: Mapping[str, str] | None = None,
        amqp_table: Mapping[str, str] | None = None,
        nats_table: Mapping[str, str] | None = None,
        redis_table: Mapping[str, str] | None = None,
    ) -> None:
        """Run the source triggers `specs` declare, with triggerfish.toml's `[mqtt]`, `[amqp]`, `[nats]`, `[redis]`.

        Checked first: a DeclarationError (two triggers of a kind on a function, no broker, a bad URL,
        a missing extra) leaves everything running as it was.
        """
        found = source_triggers(specs)
        mqtt_found = [(s, t) for s, t in found if isinstance(t, MqttTrigger)]
        amqp_found = [(s, t) for s, t in found if isinstance(t, AmqpTrigger)]
        mqtt_table, amqp_table = dict(mqtt_table or {}), dict(amqp_table or {})
        self._mqtt_table = mqtt_table
        mqtt_at: tuple[BrokerURL, str] | None = None
        if mqtt_found:
            url = self._url(MQTT_URL_VARIABLE, mqtt_table, "mqtt", _EXAMPLES["mqtt"], mqtt_found)
            prefix = self.environ.get(MQTT_CLIENT_ID_VARIABLE) or mqtt_table.get("client_id")
            mqtt_at = (_checked(parse_broker_url, *url), prefix or f"tf-{self.app}-{_short(self.node)}")
            mqtt_module = _module("mqtt")
        amqp_at = None
        if amqp_found:
            url = self._url(AMQP_URL_VARIABLE, amqp_table, "amqp", _EXAMPLES["amqp"], amqp_found)
            amqp_at = _checked(parse_amqp_url, *url)
            amqp_module = _module("amqp")
        client_urls = self._client_urls(found, nats_table, redis_table)
        streams = [_stream_subscription(spec, trigger) for spec, trigger in found]
        self.configure(specs)
        await self.consumers.update(streams)
        subs = {(sub.source, sub.function): sub for sub in streams}
        if mqtt_at is None or mqtt_at != self._mqtt_at:
            await self._stop("mqtt")
        if mqtt_at is not None:
            if self.mqtt is None:
                self.mqtt = mqtt_module.MqttSources(self.store, mqtt_at[0], client_prefix=mqtt_at[1])
                self._mqtt_at = mqtt_at
            await self.mqtt.update(
                [
                    mqtt_module.MqttSubscription(
                        spec.name,
                        t.topic,
                        t.qos,
                        t.share,
                        t.stream_settings.parallelization,
                        _streams_of(subs[("mqtt", spec.name)]),
                    )
                    for spec, t in mqtt_found
                ]
            )
        if amqp_at is None or amqp_at != self._amqp_at:
            await self._stop("amqp")
        if amqp_at is not None:
            if self.amqp is None:
                self.amqp = amqp_module.AmqpSources(self.store, amqp_at)
                self._amqp_at = amqp_at
            await self.amqp.update(
                [
                    amqp_module.AmqpSubscription(
                        spec.name,
                        t.queue,
                        t.exchange,
                        t.routing_key,
                        t.exchange_type,
                        t.prefetch,
                        t.stream_settings.parallelization,
                        _streams_of(subs[("amqp", spec.name)]),
                    )
                    for spec, t in amqp_found
                ]
            )

        for kind in ("nats", "redis"):
            await self._update_clients(kind, client_urls.get(kind), found, subs)

    async def _update_clients(
        self,
        kind: str,
        url: str | None,
        found: Sequence[tuple[FunctionSpec, SourceTrigger]],
        subs: Mapping[tuple[str, str], StreamSubscription],
    ) -> None:
        running = self.clients.get(kind)
        if running is not None and (url is None or running[1] != url):
            await running[0].stop()
            del self.clients[kind]
            running = None
        if url is None:
            return
        module = _module(kind)
        if running is None:
            if kind == "nats":
                clients = module.NatsSources(self.store, url, node=self.node)
            else:
                prefix = self.environ.get(MQTT_CLIENT_ID_VARIABLE) or f"tf-{self.app}-{_short(self.node)}"
                clients = module.RedisStreamSources(self.store, url, consumer=prefix)
            running = self.clients[kind] = (clients, url)
        wanted: list[Any] = []
        for spec, t in found:
            sub = subs.get((kind, spec.name))
            if sub is None:
                continue
            reading = t.stream_settings
            if isinstance(t, NatsTrigger):
                wanted.append(
                    module.NatsSubscription(
                        spec.name, t.subject, t.durable or f"{self.app}-{spec.name}".replace(".", "_"), t.stream,
                        ack_wait=max(1.0, spec.settings.timeout),
                        max_deliver=-1 if reading.max_retries < 0 else reading.max_retries + 1,
                        starting_position=reading.starting_position,
                        starting_timestamp=reading.starting_position_timestamp,
                        partitions=reading.parallelization, streams=_streams_of(sub),
                    )
                )  # fmt: skip
            elif isinstance(t, RedisStreamTrigger):
                wanted.append(
                    module.RedisStreamSubscription(
                        spec.name, t.stream, t.group or f"{self.app}.{spec.name}", t.partition_key,
                        starting_position=reading.starting_position,
                        starting_timestamp=reading.starting_position_timestamp, partitions=reading.parallelization,
                        streams=_streams_of(sub),
                    )
                )  # fmt: skip
        await running[0].update(wanted)

    async def publish_mqtt(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish to the MQTT broker (`context.mqtt.publish`); returns once the broker has it (QoS 1).

        DeclarationError when no broker is configured; in loopback (tests) the message goes to this app's
        own matching `on_mqtt` functions instead.
        """
        if self.mqtt_loopback:
            self.mqtt_published.append((topic, payload, qos, retain))
            await self.inject(topic, payload, arrived=self.consumers.clock(), qos=qos, retain=retain)
            return
        if self._publisher is None:
            if not (self.environ.get(MQTT_URL_VARIABLE) or self._mqtt_table.get("url")):
                raise DeclarationError(
                    "context.mqtt.publish: no MQTT broker is configured: set url in the [mqtt] table of"
                    f' triggerfish.toml (url = "{_EXAMPLES["mqtt"]}") or {MQTT_URL_VARIABLE}'
                )
            url, where = self._url(MQTT_URL_VARIABLE, self._mqtt_table, "mqtt", _EXAMPLES["mqtt"], [])
            broker = _checked(parse_broker_url, url, where)
            prefix = self.environ.get(MQTT_CLIENT_ID_VARIABLE) or self._mqtt_table.get("client_id")
            module = importlib.import_module("triggerfish.sources.mqtt_publish")
            client_id = f"{prefix or f'tf-{self.app}-{_short(self.node)}'}-out"
            self._publisher = module.MqttPublisher(broker, client_id=client_id)
        await self._publisher.publish(topic, payload, qos=qos, retain=retain)

    async def dead_letter(self, exchange: str, records: Sequence[Mapping[str, Any]], *, reason: str) -> None:
        """Publish AMQP records given up on to `exchange` (`@app.on_amqp(dead_letter_exchange=)`), confirmed.

        ConnectionError when no AMQP source runs (the batch stays unsettled and runs again); in loopback
        (tests) they are kept in `amqp_dead_lettered`.
        """
        if self.mqtt_loopback:
            self.amqp_dead_lettered.extend((exchange, record, reason) for record in records)
            return
        if self.amqp is None:
            raise ConnectionError(f"no AMQP connection to dead-letter {len(records)} records to {exchange!r}")
        await self.amqp.dead_letter(exchange, records, reason=reason)

    async def stop(self) -> None:
        """Disconnect from the brokers (sessions and queues stay), then let running batches finish."""
        if self._publisher is not None:
            await self._publisher.close()
            self._publisher = None
        await self._stop("mqtt")
        await self._stop("amqp")
        for clients, _ in self.clients.values():
            await clients.stop()
        self.clients.clear()
        await self.consumers.stop()

    def status(self) -> dict[str, Any]:
        """What `status` shows: each broker and its clients' connections, the partitions this node reads."""
        shown: dict[str, Any] = {}
        for kind, sources, at in (
            ("mqtt", self.mqtt, self._mqtt_at and self._mqtt_at[0]),
            ("amqp", self.amqp, self._amqp_at),
        ):
            if sources is None:
                continue
            clients = sources.status()
            shown[kind] = {
                "broker": str(at),
                "clients": {
                    name: {
                        "connected": s.connected,
                        "received": s.received,
                        "reconnects": s.reconnects,
                        "error": s.last_error,
                    }
                    for name, s in clients.items()
                },
            }
        for kind, (running, url) in self.clients.items():
            shown[kind] = {
                "broker": shown_url(url),
                "clients": {
                    name: {"connected": c.connected, "received": c.received, "reconnects": c.reconnects,
                           "error": c.last_error}
                    for name, c in running.status().items()
                },
            }  # fmt: skip
        shown["partitions"] = self.consumers.owned()
        return shown

    async def _stop(self, kind: str) -> None:
        sources = self.mqtt if kind == "mqtt" else self.amqp
        if sources is not None:
            await sources.stop()
        if kind == "mqtt":
            self.mqtt, self._mqtt_at = None, None
        else:
            self.amqp, self._amqp_at = None, None

    def _url(
        self,
        variable: str,
        table: Mapping[str, str],
        kind: str,
        example: str,
        found: Sequence[tuple[FunctionSpec, Any]],
    ) -> tuple[str, str]:
        if url := self.environ.get(variable):
            return url, f"the environment variable {variable}"
        if url := table.get("url"):
            return url, f"[{kind}] url in triggerfish.toml"
        functions = ", ".join(repr(spec.name) for spec, _ in found)
        raise DeclarationError(
            f"{functions} subscribe to {kind.upper()}, but no broker is configured: set url in the [{kind}] table"
            f' of triggerfish.toml (url = "{example}") or {variable}'
        )


def _checked(parse: Callable[..., Any], url: str, where: str) -> Any:
    try:
        return parse(url, where=where)
    except ValueError as exc:
        raise DeclarationError(str(exc)) from None


def _streams_of(sub: StreamSubscription) -> tuple[str, ...]:
    return tuple(sub.stream(n) for n in range(sub.partitions))


def _stream_subscription(spec: FunctionSpec, trigger: SourceTrigger) -> StreamSubscription:
    reading = trigger.stream_settings
    extra: dict[str, Any] = {}
    if isinstance(trigger, MqttTrigger):
        arn = mqtt_topic_filter_arn(trigger.topic)
    elif isinstance(trigger, AmqpTrigger):
        arn = amqp_queue_arn(trigger.queue)
        extra = {"dead_letter_exchange": trigger.dead_letter_exchange}
    elif isinstance(trigger, NatsTrigger):
        arn = nats_subject_arn(trigger.subject)
    elif isinstance(trigger, RedisStreamTrigger):
        arn = redis_stream_arn(trigger.stream)
    else:
        arn = kinesis_stream_arn(trigger.stream)
        extra = {
            "log_name": partitioned_stream(trigger.stream),
            "group": partitioned_stream_group(spec.name),
            "starting_position": reading.starting_position,
            "starting_timestamp": reading.starting_position_timestamp,
        }
    return StreamSubscription(
        function=spec.name,
        source="kinesis" if isinstance(trigger, PartitionedStreamTrigger) else trigger.kind,
        source_arn=arn,
        partitions=reading.parallelization,
        batch_size=reading.batch_size,
        batch_window=reading.batch_window,
        options=BatchOptions.of(reading),
        timeout=spec.settings.timeout,
        on_failure=spec.settings.on_failure,
        filters=filter_texts(reading),
        window=reading.window,
        to_bus=reading.to_bus,
        rule=reading.rule,
        **extra,
    )


def _module(kind: str) -> Any:
    module = {"redis": "redis_streams"}.get(kind, kind)
    decorator = {"redis": "on_redis_stream"}.get(kind, f"on_{kind}")
    try:
        return importlib.import_module(f"triggerfish.sources.{module}")
    except ModuleNotFoundError as exc:
        raise DeclarationError(f"{exc}; the app declares @app.{decorator}") from None


def _short(node: str) -> str:
    return hashlib.sha256(node.encode()).hexdigest()[:10]
