"""An MQTT source through a TCP proxy in front of the shared Mosquitto (never restarted itself): after a dropped
connection and a broker outage it reconnects and subscribes again by itself, and its persistent session hands over
every QoS 1 message the broker acknowledged, in order per topic."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from tests.streams.proxy import TcpProxy
from tests.streams.test_mqtt_platform import HOST, PORT, _broker, handled, platform, publish, wait_for, write_app

__all__ = ["_broker"]  # the autouse fixture: ends the test's persistent session


async def test_an_mqtt_source_survives_a_dropped_connection_and_a_broker_outage(tmp_path: Path) -> None:
    base = f"t-{uuid.uuid4().hex[:8]}"
    topics = [f"{base}/a", f"{base}/b"]
    sent: list[tuple[str, str]] = []

    async def send(count: int) -> None:
        batch = [(topics[n % 2], str(n)) for n in range(len(sent), len(sent) + count)]
        await publish(batch)  # QoS 1 straight to the broker: each awaits its PUBACK
        sent.extend(batch)

    def all_handled() -> bool:
        return {row[1] for row in handled(tmp_path)} >= {text for _, text in sent}

    async with TcpProxy(HOST, PORT) as proxy:
        app = write_app(tmp_path, f"{base}/+", "batch_size=10, batch_window=0.1")
        toml = app.parent / "triggerfish.toml"
        toml.write_text(toml.read_text().replace(f":{PORT}", f":{proxy.port}"))
        async with platform(tmp_path, app) as running:
            mqtt: Any = running.sources.mqtt
            await send(10)
            await wait_for(all_handled)

            await proxy.disconnect()  # a network blip
            await send(10)
            await wait_for(all_handled, seconds=30)
            await wait_for(lambda: mqtt.status()["ingest"].reconnects >= 1)

            outage = asyncio.create_task(proxy.restart(2.0))  # the broker goes away, then comes back
            await send(10)  # while it is away: kept in the persistent session
            await outage
            await send(10)  # after
            await wait_for(all_handled, seconds=40)
            await wait_for(lambda: mqtt.status()["ingest"].connected)
            state = mqtt.status()["ingest"]
    assert state.reconnects >= 2, "one reconnect for the blip, at least one for the outage"
    assert proxy.accepted >= 3, "the source connected again through the proxy each time"
    first_seen: dict[str, list[int]] = {}
    for topic, text, *_ in handled(tmp_path):
        seen = first_seen.setdefault(topic, [])
        if int(text) not in seen:
            seen.append(int(text))
    assert first_seen == {topics[0]: list(range(0, 40, 2)), topics[1]: list(range(1, 40, 2))}


async def test_messages_sent_into_a_dropped_connection_come_again_first_in_order(tmp_path: Path) -> None:
    """The broker's deliveries lost in a connection gone silent are in the session: resent first, before newer."""
    base = f"t-{uuid.uuid4().hex[:8]}"
    topics = [f"{base}/a", f"{base}/b"]

    async def send(numbers: range) -> None:
        await publish([(topics[n % 2], str(n)) for n in numbers])  # QoS 1, each awaiting its PUBACK

    async with TcpProxy(HOST, PORT) as proxy:
        app = write_app(tmp_path, f"{base}/+", "batch_size=10, batch_window=0.1")
        toml = app.parent / "triggerfish.toml"
        toml.write_text(toml.read_text().replace(f":{PORT}", f":{proxy.port}"))
        async with platform(tmp_path, app):
            await send(range(10))
            await wait_for(lambda: len(handled(tmp_path)) == 10)
            proxy.blackhole()  # the broker sends 10..19 into a connection that no longer answers
            await send(range(10, 20))
            await proxy.disconnect()
            await send(range(20, 30))
            await wait_for(lambda: len({row[1] for row in handled(tmp_path)}) == 30, seconds=40)
    seen: dict[str, list[int]] = {}
    repeated: list[int] = []
    for topic, text, *_ in handled(tmp_path):
        numbers = seen.setdefault(topic, [])
        if int(text) in numbers:
            repeated.append(int(text))
        else:
            numbers.append(int(text))
    assert seen == {topics[0]: list(range(0, 30, 2)), topics[1]: list(range(1, 30, 2))}, "in order, none lost"
    # MQTT has no position to drop a redelivery by (docs/sources.md): a message handled before the cut whose
    # PUBACK the cut swallowed comes again. Those are the only repeats; what the silent connection ate
    # (10..19) and what came after it arrive once each.
    assert all(n < 10 for n in repeated), repeated
