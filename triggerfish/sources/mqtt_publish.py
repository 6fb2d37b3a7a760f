"""Publishing to the MQTT broker for functions (`context.mqtt.publish`): one connected client per node.

    publisher = MqttPublisher(parse_broker_url("mqtt://127.0.0.1:1883"), client_id="tf-home-1a2b-out")
    await publisher.publish("home/hall/fan/set", b'{"power": "on"}', qos=1)
    await publisher.close()

The client connects on first use and stays connected; a publish that finds it broken
connects again once and retries. With QoS 1 the call returns after the broker's PUBACK,
so a handler that published has its command with the broker (and a handler that failed
to publish fails, to be retried with its batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

from triggerfish.sources.mqtt_config import BrokerURL

try:
    import aiomqtt
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the extra
    raise ModuleNotFoundError("MQTT needs aiomqtt: pip install 'triggerfish[mqtt]'", name=exc.name) from None


class MqttPublisher:
    """One MQTT client for a node's outgoing messages. See the module docstring."""

    def __init__(self, broker: BrokerURL, *, client_id: str) -> None:
        self.broker = broker
        self.client_id = client_id
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        async with self._lock:
            for attempt in (1, 2):
                client = await self._connected()
                try:
                    await client.publish(topic, payload, qos=qos, retain=retain, timeout=10)
                    return
                except aiomqtt.MqttError:
                    await self._drop()
                    if attempt == 2:
                        raise

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _connected(self) -> Any:
        if self._client is None:
            broker = self.broker
            client = aiomqtt.Client(
                broker.host,
                broker.port,
                username=broker.username,
                password=broker.password,
                identifier=self.client_id,
                protocol=aiomqtt.ProtocolVersion.V5 if broker.version == "5" else aiomqtt.ProtocolVersion.V311,
                tls_context=ssl.create_default_context() if broker.tls else None,
                keepalive=30,
            )
            await client.__aenter__()
            self._client = client
        return self._client

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
