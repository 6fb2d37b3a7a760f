"""Queue messages arrive in SQS-shaped batches; a handler can fail just some of them."""

import asyncio
import json

from triggerfish import App
from triggerfish.testing import TestPlatform

app = App("warehouse")
packed = []


@app.on_queue("parcels", batch_size=10)
def pack(event, context):
    failures = []
    for record in event["Records"]:
        parcel = json.loads(record["body"])
        if parcel["weight"] > 30:
            failures.append({"itemIdentifier": record["messageId"]})
        else:
            packed.append(parcel["id"])
    return {"batchItemFailures": failures}


async def main() -> None:
    async with TestPlatform(app) as platform:
        await platform.send("parcels", {"id": "a", "weight": 2})
        await platform.send("parcels", {"id": "b", "weight": 99})
        await platform.send("parcels", {"id": "c", "weight": 5})
        await platform.drain()

        assert packed == ["a", "c"]
        # The heavy parcel was retried, then moved to the queue's dead-letter queue.
        assert await platform.queue_messages("parcels") == []
        (dead,) = await platform.queue_messages("parcels.dlq")
        assert json.loads(dead.body) == {"id": "b", "weight": 99}


asyncio.run(main())
