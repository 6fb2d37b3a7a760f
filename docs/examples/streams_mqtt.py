"""MQTT readings through the real platform: each stored before the broker hears it arrived, then read in order."""

import asyncio
import base64
import json
import os
import tempfile
import uuid
from pathlib import Path

import triggerfish

app = triggerfish.App("home")


@app.on_mqtt("example-home/+/temperature", batch_size=50, batch_window=0.5)
def readings(event, context):
    for record in event["Records"]:
        body = record["mqtt"]
        room = body["topic"].split("/")[1]
        celsius = float(base64.b64decode(body["data"]))
        context.send("temperatures", json.dumps({"room": room, "celsius": celsius, "seq": body["sequenceNumber"]}))


async def main() -> None:
    import aiomqtt

    from triggerfish.server.platform import Platform

    # The broker and this node's client id, from the environment (or [mqtt] in triggerfish.toml).
    os.environ["TRIGGERFISH_MQTT_URL"] = "mqtt://127.0.0.1:1883"
    os.environ["TRIGGERFISH_MQTT_CLIENT_ID"] = "triggerfish-docs-example"
    room = f"room-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as data:
        platform = Platform(f"{__file__}:app", data_dir=Path(data))
        await platform.start()
        try:
            async with asyncio.timeout(10):
                await platform.sources.mqtt.wait_subscribed()
            async with aiomqtt.Client("127.0.0.1", 1883) as device:
                for celsius in (20.5, 21.0, 21.5, 22.0):
                    await device.publish(f"example-home/{room}/temperature", str(celsius), qos=1)
            seen = []
            async with asyncio.timeout(20):
                while len(seen) < 4:
                    for message in await platform.store.queues.receive("temperatures", max_messages=10, wait=1):
                        reading = json.loads(message.body)
                        if reading["room"] == room:  # earlier runs of this example may have left readings
                            seen.append(reading["celsius"])
                        await platform.store.queues.ack("temperatures", message.receipt)
        finally:
            await platform.stop()
    assert seen == [20.5, 21.0, 21.5, 22.0], seen


if __name__ == "__main__":
    asyncio.run(main())
