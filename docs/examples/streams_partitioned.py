"""A built-in stream read twice: in order per device, and as per-minute averages over a tumbling window."""

import asyncio
import base64
import json

from triggerfish import App
from triggerfish.testing import TestPlatform

app = App("home")
averages: list[dict] = []


@app.on_stream("readings", partition_key="device", window=60, parallelization=2)
def per_minute(event, context):
    state = dict(event["state"])  # what this function returned for the window's previous batch
    for record in event["Records"]:
        reading = json.loads(base64.b64decode(record["kinesis"]["data"]))
        state["sum"] = state.get("sum", 0) + reading["t"]
        state["count"] = state.get("count", 0) + 1
    if event["isFinalInvokeForWindow"]:
        averages.append({"from": event["window"]["start"], "average": state["sum"] / state["count"]})
    return {"state": state}


@app.function()
def report(event, context):
    return context.streams.put("readings", event)  # ordered by the record's "device" field


async def main() -> None:
    async with TestPlatform(app) as platform:
        for t in (20, 22, 24):
            await platform.invoke("report", {"device": "hall", "t": t})
        await platform.drain()
        await platform.advance(61)  # the minute passes: the window closes
        await platform.drain()
    assert averages[0]["average"] == 22


asyncio.run(main())
