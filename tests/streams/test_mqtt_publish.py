"""`context.mqtt.publish` on the real platform against the Mosquitto at 127.0.0.1:1883: a function answers a
device's report with a command the device receives; a publish to a filter fails the handler's call."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from tests.services import require_service
from triggerfish.server.platform import Platform

aiomqtt = pytest.importorskip("aiomqtt", reason="MQTT tests need the mqtt extra: pip install 'triggerfish[mqtt]'")

HOST, PORT = "127.0.0.1", 1883
APP = """
import base64, json, triggerfish
app = triggerfish.App("home")

@app.on_mqtt({reports!r}, share=False)
def answer(event, context):
    for record in event["Records"]:
        device = record["mqtt"]["topic"].split("/")[-2]
        report = json.loads(base64.b64decode(record["mqtt"]["data"]))
        context.mqtt.publish({base!r} + f"/{{device}}/set", {{"power": "on", "after": report["seq"]}})

@app.function()
def bad(event, context):
    context.mqtt.publish("home/+/set", "x")
"""


async def test_a_function_sends_a_command_the_device_receives(tmp_path: Path) -> None:
    require_service("Mosquitto", HOST, PORT)
    base = f"pub-{uuid.uuid4().hex[:8]}"
    (tmp_path / "app").mkdir()
    app = tmp_path / "app" / "app.py"
    app.write_text(APP.format(reports=f"{base}/+/reported", base=base))
    (tmp_path / "app" / "triggerfish.toml").write_text(f'[mqtt]\nurl = "mqtt://{HOST}:{PORT}"\n')
    platform = Platform(str(app), data_dir=tmp_path / "data")
    await platform.start()
    try:
        assert platform.sources.mqtt is not None
        async with asyncio.timeout(10):
            await platform.sources.mqtt.wait_subscribed()
        async with aiomqtt.Client(HOST, PORT) as device:
            await device.subscribe(f"{base}/lamp/set", qos=1)
            await device.publish(f"{base}/lamp/reported", json.dumps({"seq": 7}), qos=1)
            async with asyncio.timeout(30):
                command = await anext(device.messages)
        outcome = await platform.invoke("bad", {}, wait=10)
    except Exception as exc:
        outcome = exc
    finally:
        await platform.stop()
    assert isinstance(command.payload, bytes)
    assert json.loads(command.payload) == {"power": "on", "after": 7}
    assert "is not a topic name a message can go to" in str(outcome)
