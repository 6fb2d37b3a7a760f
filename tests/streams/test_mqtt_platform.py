"""`@app.on_mqtt` on the real platform (worker processes, SQLite) against the real Mosquitto at 127.0.0.1:1883."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.patience import scaled
from tests.services import require_service
from tests.streams.running import handled, subscribed_platform, wait_for
from triggerfish.server.platform import Platform

aiomqtt = pytest.importorskip("aiomqtt", reason="MQTT tests need the mqtt extra: pip install 'triggerfish[mqtt]'")

HOST, PORT = "127.0.0.1", 1883


#: Client-id prefixes the tests gave their platforms: their persistent sessions are ended after each test.
CLIENTS: list[str] = []


@pytest.fixture(autouse=True)
async def _broker() -> AsyncIterator[None]:
    require_service("Mosquitto", HOST, PORT)
    yield
    while CLIENTS:
        await end_session(f"{CLIENTS.pop()}-ingest")


async def end_session(identifier: str) -> None:
    """Connect once with a clean session, so the broker drops what the test's session kept (MQTT 3.1.1 §3.1.2.4)."""
    async with aiomqtt.Client(HOST, PORT, identifier=identifier, clean_session=True):
        pass


APP = """
import base64, json, triggerfish
app = triggerfish.App("home")

@app.on_mqtt({topic!r}, {options})
def ingest(event, context):
    rows = []
    for record in event["Records"]:
        body = record["mqtt"]
        text = base64.b64decode(body["data"]).decode()
        if text == "poison":
            raise ValueError("a poison reading")
        rows.append([body["topic"], text, body["sequenceNumber"], len(event["Records"]), body.get("properties")])
    with open({out!r}, "a") as f:
        f.writelines(json.dumps(row) + "\\n" for row in rows)
"""


def write_app(tmp_path: Path, topic: str, options: str = "", query: str = "") -> Path:
    (tmp_path / "app").mkdir(exist_ok=True)
    app = tmp_path / "app" / "app.py"
    app.write_text(APP.format(topic=topic, options=options, out=str(tmp_path / "out.jsonl")))
    client = f"t{uuid.uuid4().hex[:12]}"
    CLIENTS.append(client)
    toml = f'[mqtt]\nurl = "mqtt://{HOST}:{PORT}{query}"\nclient_id = "{client}"\n'
    (tmp_path / "app" / "triggerfish.toml").write_text(toml)
    return app


def platform(tmp_path: Path, app: Path) -> AbstractAsyncContextManager[Platform]:
    return subscribed_platform(tmp_path, app, "mqtt")


async def publish(messages: list[tuple[str, str]]) -> None:
    async with aiomqtt.Client(HOST, PORT) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


def per_topic(rows: list[list[Any]]) -> dict[str, list[str]]:
    order: dict[str, list[str]] = {}
    for topic, text, *_ in rows:
        order.setdefault(topic, []).append(text)
    return order


async def test_messages_reach_the_function_in_batches_in_order_per_topic(tmp_path: Path) -> None:
    base = f"t-{uuid.uuid4().hex[:8]}"
    app = write_app(tmp_path, f"{base}/+/temperature", "batch_size=50, batch_window=0.2, parallelization=2")
    sent = [(f"{base}/room{n % 4}/temperature", str(n)) for n in range(200)]
    async with platform(tmp_path, app) as running:
        await publish(sent)
        await wait_for(lambda: len(handled(tmp_path)) >= 200)
        status = running.sources.status()
    rows = handled(tmp_path)
    assert per_topic(rows) == per_topic([[t, p] for t, p in sent])
    assert max(row[3] for row in rows) > 1, "records came one per invocation, not in batches"
    assert status["mqtt"]["clients"]["ingest"]["received"] == 200
    assert status["partitions"] == ["source.mqtt.ingest.0", "source.mqtt.ingest.1"]


async def test_a_poison_message_is_bisected_out_to_the_failure_queue_and_its_topic_goes_on(tmp_path: Path) -> None:
    base = f"t-{uuid.uuid4().hex[:8]}"
    options = 'batch_size=10, batch_window=0.5, bisect_on_error=True, max_retries=3, on_failure="queue:bad-readings"'
    app = write_app(tmp_path, f"{base}/#", options)
    sent = [(f"{base}/kitchen", "poison" if n == 4 else str(n)) for n in range(8)]
    async with platform(tmp_path, app) as running:
        await publish(sent)
        await wait_for(lambda: len(handled(tmp_path)) >= 7, seconds=30)
        failed = await running.store.queues.receive("bad-readings", wait=10)
    assert [row[1] for row in handled(tmp_path)][-3:] == ["5", "6", "7"]
    assert {row[1] for row in handled(tmp_path)} == {str(n) for n in range(8) if n != 4}
    record = json.loads(failed[0].body)
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["MQTTBatchInfo"]["batchSize"] == 1
    assert [r["mqtt"]["topic"] for r in record["records"]] == [f"{base}/kitchen"]
    assert "a poison reading" in record["errorMessage"]


async def test_messages_published_while_the_platform_is_down_wait_in_its_persistent_session(tmp_path: Path) -> None:
    base = f"t-{uuid.uuid4().hex[:8]}"
    app = write_app(tmp_path, f"{base}/+", "batch_size=5")
    async with platform(tmp_path, app):
        await publish([(f"{base}/a", "before")])
        await wait_for(lambda: len(handled(tmp_path)) == 1)
    await publish([(f"{base}/a", f"while-down-{n}") for n in range(5)])
    async with platform(tmp_path, app):
        await wait_for(lambda: len(handled(tmp_path)) == 6)
    assert [row[1] for row in handled(tmp_path)] == ["before"] + [f"while-down-{n}" for n in range(5)]


async def test_a_dropped_connection_is_made_again_and_subscribed_again(tmp_path: Path) -> None:
    base = f"t-{uuid.uuid4().hex[:8]}"
    app = write_app(tmp_path, f"{base}/+")
    async with platform(tmp_path, app) as running:
        mqtt = running.sources.mqtt
        assert mqtt is not None
        # A second client with our client id makes the broker drop ours (MQTT's session takeover).
        identifier = f"{mqtt.client_prefix}-ingest"
        async with aiomqtt.Client(HOST, PORT, identifier=identifier, clean_session=False):
            await wait_for(lambda: not mqtt.status()["ingest"].connected, seconds=10)
        await wait_for(lambda: mqtt.status()["ingest"].connected, seconds=20)
        assert mqtt.status()["ingest"].reconnects >= 1
        await publish([(f"{base}/b", "after")])
        await wait_for(lambda: len(handled(tmp_path)) == 1)


async def test_an_app_without_a_broker_is_refused_with_the_fix(tmp_path: Path) -> None:
    app = write_app(tmp_path, "x/#")
    (tmp_path / "app" / "triggerfish.toml").unlink()
    running = Platform(str(app), data_dir=tmp_path / "data")
    with pytest.raises(Exception, match=r"no broker is configured: set url in the \[mqtt\] table"):
        await running.start()


async def test_health_shows_each_client_and_the_partitions_this_node_reads(tmp_path: Path) -> None:
    import httpx

    from triggerfish.server.http import platform_endpoints

    base = f"t-{uuid.uuid4().hex[:8]}"
    app = write_app(tmp_path, f"{base}/+", "parallelization=3")
    async with platform(tmp_path, app) as running:
        await publish([(f"{base}/a", "1")])
        await wait_for(lambda: len(handled(tmp_path)) == 1)
        transport = httpx.ASGITransport(app=platform_endpoints(running))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            health = (await client.get("/-/health")).json()
    sources = health["sources"]
    assert sources["mqtt"]["broker"] == f"mqtt://{HOST}:{PORT}?version=3.1.1"
    assert sources["mqtt"]["clients"]["ingest"] == {"connected": True, "received": 1, "reconnects": 0, "error": None}
    assert "amqp" not in sources
    assert sources["partitions"] == [f"source.mqtt.ingest.{n}" for n in range(3)]


async def test_a_reload_that_needs_a_broker_not_configured_is_refused_and_the_old_version_goes_on(
    tmp_path: Path,
) -> None:
    base = f"t-{uuid.uuid4().hex[:8]}"
    app = write_app(tmp_path, f"{base}/+")
    async with platform(tmp_path, app) as running:
        addition = '\n@app.on_amqp("orders")\ndef orders(event, context):\n    return None\n'
        app.write_text(app.read_text() + addition)
        result = await running.reload()
        assert not result.ok
        assert "'orders' subscribe to AMQP, but no broker is configured" in result.error
        assert running.current.number == 1
        assert running.sources.amqp is None
        await publish([(f"{base}/a", "still consumed")])
        await wait_for(lambda: len(handled(tmp_path)) == 1)


async def test_mqtt_5_sessions_and_properties_reach_the_handler(tmp_path: Path) -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    base = f"t-{uuid.uuid4().hex[:8]}"
    app = write_app(tmp_path, f"{base}/+", query="?version=5")
    async with platform(tmp_path, app) as running:
        assert running.sources.status()["mqtt"]["broker"].endswith("?version=5")
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.UserProperty = [("unit", "C")]
        properties.ContentType = "text/plain"
        async with aiomqtt.Client(HOST, PORT, protocol=aiomqtt.ProtocolVersion.V5) as device:
            await device.publish(f"{base}/kitchen", "21.5", qos=1, properties=properties)
        await wait_for(lambda: len(handled(tmp_path)) == 1)
    received = handled(tmp_path)[0][4]
    assert received["userProperty"] == [["unit", "C"]]
    assert received["contentType"] == "text/plain"


async def test_nodes_sharing_a_subscription_split_the_messages_and_store_each_once(tmp_path: Path) -> None:
    """`share=`: two nodes subscribe as `$share/<group>/<filter>`; Mosquitto gives each message to one of them."""
    from triggerfish.sources.mqtt import MqttSources, MqttSubscription
    from triggerfish.sources.mqtt_config import parse_broker_url
    from triggerfish.store import open_store
    from triggerfish.streams.records import decode_record

    base = f"t-{uuid.uuid4().hex[:8]}"
    store = await open_store(f"sqlite:///{tmp_path}/shared.db")  # the store both nodes share
    sub = MqttSubscription("ingest", f"{base}/+", 1, f"{base}.ingest", streams=("source.mqtt.ingest.0",))
    broker = parse_broker_url(f"mqtt://{HOST}:{PORT}", where="the test")
    nodes = [MqttSources(store, broker, client_prefix=f"{base}-node{n}") for n in (1, 2)]
    CLIENTS.extend(node.client_prefix for node in nodes)
    try:
        for node in nodes:
            await node.update([sub])
        async with asyncio.timeout(10):
            for node in nodes:
                await node.wait_subscribed()
        await publish([(f"{base}/room{n % 3}", str(n)) for n in range(60)])
        deadline = time.monotonic() + scaled(20)
        # A node counts a batch as received once its append has returned: the records can be read a moment before.
        while (
            len(stored := await store.log.read("source.mqtt.ingest.0", limit=1000)) < 60
            or sum(received := [node.status()["ingest"].received for node in nodes]) < 60
        ):
            assert time.monotonic() < deadline, f"timed out waiting: {len(stored)} stored, {received} received"
            await asyncio.sleep(0.05)
    finally:
        for node in nodes:
            await node.stop()
        await store.close()
    assert sorted(int(decode_record(record.data).payload) for record in stored) == list(range(60)), "each once"
    assert sum(received) == 60
    assert min(received) > 0, f"both nodes took a share of the messages: {received}"
