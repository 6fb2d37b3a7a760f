"""Testing an MQTT handler without a broker: a poison reading bisected out to the failure destination."""

import asyncio
import base64
import json

from triggerfish import App
from triggerfish.testing import TestPlatform

app = App("home")
averages = []


@app.on_mqtt(
    "home/+/temperature",
    batch_size=10,
    bisect_on_error=True,
    max_retries=2,
    on_failure="queue:unreadable-readings",
)
def average(event, context):
    readings = [float(base64.b64decode(record["mqtt"]["data"])) for record in event["Records"]]  # may raise
    averages.append(sum(readings) / len(readings))


async def main() -> None:
    async with TestPlatform(app) as platform:
        for text in ("20", "22", "hot!", "24"):
            await platform.mqtt_publish("home/kitchen/temperature", text)
        await platform.drain()
        unreadable = [json.loads(m.body) for m in await platform.queue_messages("unreadable-readings")]
    # The batch of four failed; its halves were retried alone: 20 and 22 went through, "hot!" and 24 failed
    # again and were split again; "hot!" ran out of retries, and 24, behind it, went through.
    assert averages == [21.0, 24.0], averages
    failure = unreadable[0]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["MQTTBatchInfo"]["batchSize"] == 1
    assert base64.b64decode(failure["records"][0]["mqtt"]["data"]) == b"hot!"


asyncio.run(main())
