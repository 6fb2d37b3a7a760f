"""One message, every subscriber: on_topic functions with filters on attributes and on the body, SNS records."""

import asyncio
import json
import threading

import triggerfish
from triggerfish.testing import TestPlatform

app = triggerfish.App("alerts")
seen: dict[str, list[dict]] = {"log": [], "pager": [], "big": []}
lock = threading.Lock()  # handlers run in threads of the test platform


@app.on_topic("alerts")
def log(event, context):
    with lock:
        seen["log"].append(event)


@app.on_topic("alerts", filter={"severity": ["high", "critical"]})  # the message attributes
def pager(event, context):
    with lock:
        seen["pager"].append(event)


@app.on_topic("alerts", filter={"disk": {"used": [{"numeric": [">", 90]}]}}, filter_scope="body")
def big(event, context):
    with lock:
        seen["big"].append(event)


async def main() -> None:
    async with TestPlatform(app) as platform:
        first = await platform.publish_topic(
            "alerts", json.dumps({"disk": {"used": 97}}), subject="Disk", attributes={"severity": "high"}
        )
        await platform.publish_topic("alerts", json.dumps({"disk": {"used": 40}}), attributes={"severity": "low"})
        await platform.drain()

    assert len(seen["log"]) == 2  # no filter: every message
    [paged] = seen["pager"]
    [record] = paged["Records"]
    assert record["EventSource"] == "aws:sns"
    assert record["EventSubscriptionArn"] == "arn:aws:sns:local:000000000000:alerts:pager"
    sns = record["Sns"]
    assert (sns["MessageId"], sns["Subject"], sns["Type"]) == (first, "Disk", "Notification")
    assert json.loads(sns["Message"]) == {"disk": {"used": 97}}
    assert sns["MessageAttributes"] == {"severity": {"Type": "String", "Value": "high"}}
    assert [e["Records"][0]["Sns"]["MessageId"] for e in seen["big"]] == [first]


asyncio.run(main())
