"""A function's `topic:` destination fans out like a publish: its result reaches the topic's subscribers."""

import asyncio
import json
import threading

import triggerfish
from triggerfish.testing import TestPlatform

app = triggerfish.App("billing")
receipts: list[dict] = []
lock = threading.Lock()


@app.function(on_success="topic:receipts")
def charge(event, context):
    return {"charged": event["amount"]}


@app.on_topic("receipts")
def email_receipt(event, context):
    # The message is Lambda's destination record, as JSON text.
    with lock:
        receipts.append(json.loads(event["Records"][0]["Sns"]["Message"]))


async def main() -> None:
    async with TestPlatform(app) as platform:
        request_id = await platform.invoke_async("charge", {"amount": 30})
        await platform.drain()
    [record] = receipts
    assert record["requestContext"]["requestId"] == request_id
    assert record["responsePayload"] == {"charged": 30}


asyncio.run(main())
