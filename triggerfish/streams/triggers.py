"""The source triggers of one app (`@app.on_mqtt`): its broker clients and its partition readers, together.

    triggers = SourceTriggers(store, platform, publisher, app="home", node="host-1")
    await triggers.update(specs, mqtt_table)  # DeclarationError (nothing changed) for a missing or bad broker
    await triggers.stop()

What the platform starts, switches on reload and stops. The readers start
before the clients and stop after them, so every stored message has a reader.
The broker is `TRIGGERFISH_MQTT_URL` from the environment, else `[mqtt] url`
of triggerfish.toml, so credentials need not be written in a file; client ids
start with `TRIGGERFISH_MQTT_CLIENT_ID`, else `[mqtt] client_id`, else a name
made from the app, the host and the data directory, which stays the same when
the node restarts, so it finds its session again. The aiomqtt client is
imported only by apps that declare an MQTT trigger.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from triggerfish.bus.publisher import Publisher
from triggerfish.errors import DeclarationError
from triggerfish.identity import mqtt_topic_filter_arn
from triggerfish.model import FunctionSpec, MqttTrigger
from triggerfish.retry import RetryPolicy
from triggerfish.sources.mqtt_config import BrokerURL, parse_broker_url, topic_matches
from triggerfish.store import Store
from triggerfish.streams.batches import BatchOptions
from triggerfish.streams.consumer import DEFAULT_RETRY_POLICY, StreamConsumers, StreamInvoker, StreamSubscription
from triggerfish.streams.records import SourceRecord, encode_record, partition_of

if TYPE_CHECKING:
    from triggerfish.sources.mqtt import MqttSources, MqttSubscription

#: The environment variable that names the MQTT broker (with its credentials), over `[mqtt] url`.
MQTT_URL_VARIABLE = "TRIGGERFISH_MQTT_URL"
#: The environment variable that starts this node's client ids, over `[mqtt] client_id`.
MQTT_CLIENT_ID_VARIABLE = "TRIGGERFISH_MQTT_CLIENT_ID"


def mqtt_triggers(specs: Mapping[str, FunctionSpec]) -> list[tuple[FunctionSpec, MqttTrigger]]:
    """Every function's MQTT trigger; DeclarationError for a function with two (one client per function)."""
    found: list[tuple[FunctionSpec, MqttTrigger]] = []
    for spec in specs.values():
        mine = [t for t in spec.triggers if isinstance(t, MqttTrigger)]
        if len(mine) > 1:
            raise DeclarationError(
                f"function {spec.name!r} declares @app.on_mqtt {len(mine)} times ({', '.join(t.topic for t in mine)});"
                " declare one per function (a filter with '+' or '#' covers several topics)"
            )
        found.extend((spec, trigger) for trigger in mine)
    return found


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
        self._broker: BrokerURL | None = None
        self._prefix = ""
        self._streams: list[StreamSubscription] = []
        #: Each subscribed function's topic filter.
        self._topics: dict[str, str] = {}

    def configure(self, specs: Mapping[str, FunctionSpec]) -> None:
        """Know `specs`' stream subscriptions without connecting or reading (for `deliver_due` and `inject`)."""
        self._streams = [_stream_subscription(spec, trigger) for spec, trigger in mqtt_triggers(specs)]
        self._topics = {spec.name: trigger.topic for spec, trigger in mqtt_triggers(specs)}

    async def deliver_due(self) -> int:
        """One batch per partition of every configured subscription, here and now (`triggerfish.testing`)."""
        return await self.consumers.deliver_due(self._streams)

    async def inject(self, topic: str, payload: bytes, *, arrived: float, qos: int = 1, retain: bool = False) -> int:
        """Store a message as the MQTT client would have, for every subscription matching `topic`; how many.

        What `triggerfish.testing`'s `mqtt_publish` does in place of a broker.
        """
        matched = 0
        for sub in self._streams:
            if topic_matches(self._topics[sub.function], topic):
                record = SourceRecord(topic, arrived, payload, {"topic": topic, "qos": qos, "retain": retain})
                await self.store.log.append(sub.stream(partition_of(topic, sub.partitions)), encode_record(record))
                matched += 1
        return matched

    async def update(self, specs: Mapping[str, FunctionSpec], mqtt_table: Mapping[str, str] | None = None) -> None:
        """Run the source triggers `specs` declare, with triggerfish.toml's `[mqtt]` table.

        Checked first: a DeclarationError (two MQTT triggers on a function, no broker, a bad URL)
        leaves everything running as it was.
        """
        table = dict(mqtt_table or {})
        found = mqtt_triggers(specs)
        broker = self._broker_url(table, [spec.name for spec, _ in found]) if found else None
        prefix = (
            self.environ.get(MQTT_CLIENT_ID_VARIABLE) or table.get("client_id") or f"tf-{self.app}-{_short(self.node)}"
        )
        if not found:
            await self._stop_mqtt()
            await self.consumers.update([])
            return
        module = _mqtt_module()
        streams: list[StreamSubscription] = []
        clients: list[MqttSubscription] = []
        for spec, trigger in found:
            sub = _stream_subscription(spec, trigger)
            streams.append(sub)
            clients.append(
                module.MqttSubscription(
                    spec.name,
                    trigger.topic,
                    trigger.qos,
                    trigger.share,
                    trigger.parallelization,
                    tuple(sub.stream(n) for n in range(sub.partitions)),
                )
            )
        self.configure(specs)
        await self.consumers.update(streams)
        if self.mqtt is None or broker != self._broker or prefix != self._prefix:
            await self._stop_mqtt()
            self.mqtt = module.MqttSources(self.store, broker, client_prefix=prefix)
            self._broker, self._prefix = broker, prefix
        await self.mqtt.update(clients)

    async def stop(self) -> None:
        """Disconnect from the brokers (sessions stay), then let running batches finish."""
        await self._stop_mqtt()
        await self.consumers.stop()

    def status(self) -> dict[str, Any]:
        """What `status` shows: the broker, each client's connection, the partitions this node reads."""
        clients = self.mqtt.status() if self.mqtt is not None else {}
        return {
            "broker": str(self._broker) if self._broker is not None else None,
            "clients": {
                name: {
                    "connected": s.connected,
                    "received": s.received,
                    "reconnects": s.reconnects,
                    "error": s.last_error,
                }
                for name, s in clients.items()
            },
            "partitions": self.consumers.owned(),
        }

    async def _stop_mqtt(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.stop()
            self.mqtt = None

    def _broker_url(self, table: Mapping[str, str], functions: list[str]) -> BrokerURL:
        if url := self.environ.get(MQTT_URL_VARIABLE):
            where = f"the environment variable {MQTT_URL_VARIABLE}"
        elif url := table.get("url"):
            where = "[mqtt] url in triggerfish.toml"
        else:
            raise DeclarationError(
                f"{', '.join(map(repr, functions))} subscribe to MQTT, but no broker is configured: set url in the"
                f' [mqtt] table of triggerfish.toml (url = "mqtt://127.0.0.1:1883") or {MQTT_URL_VARIABLE}'
            )
        try:
            return parse_broker_url(url, where=where)
        except ValueError as exc:
            raise DeclarationError(str(exc)) from None


def _stream_subscription(spec: FunctionSpec, trigger: MqttTrigger) -> StreamSubscription:
    return StreamSubscription(
        function=spec.name,
        source="mqtt",
        source_arn=mqtt_topic_filter_arn(trigger.topic),
        partitions=trigger.parallelization,
        batch_size=trigger.batch_size,
        batch_window=trigger.batch_window,
        options=BatchOptions(
            trigger.max_retries, trigger.max_record_age, trigger.bisect_on_error, trigger.report_batch_item_failures
        ),
        timeout=spec.settings.timeout,
        on_failure=spec.settings.on_failure,
    )


def _mqtt_module() -> Any:
    try:
        return importlib.import_module("triggerfish.sources.mqtt")
    except ModuleNotFoundError as exc:
        raise DeclarationError(f"{exc}; the app declares @app.on_mqtt") from None


def _short(node: str) -> str:
    return hashlib.sha256(node.encode()).hexdigest()[:10]
