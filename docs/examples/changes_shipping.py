"""`@app.on_change`: shipping reacts to the orders table's change stream, in order per order."""

import asyncio

from triggerfish import App
from triggerfish.testing import TestPlatform

app = App("shop")
shipping_log = []


@app.function
def place(event, context):
    context.table("orders").put({"order_id": event["order_id"], "status": "NEW"})


@app.function
def pay(event, context):
    context.table("orders").update({"order_id": event["order_id"]}, set={"status": "PAID"})


@app.on_change("orders", batch_size=50, starting_position="TRIM_HORIZON", report_batch_item_failures=True)
def shipping(event, context):
    failures = []
    for record in event["Records"]:
        order = record["dynamodb"]["Keys"]["order_id"]["S"]
        new = record["dynamodb"].get("NewImage", {})
        old = record["dynamodb"].get("OldImage", {})
        try:
            if record["eventName"] == "INSERT":
                shipping_log.append(("reserve", order))
            elif record["eventName"] == "MODIFY" and new["status"]["S"] == "PAID" != old["status"]["S"]:
                shipping_log.append(("ship", order))
        except Exception:
            # Retried from this record on; the ones before it are done.
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    return {"batchItemFailures": failures}


async def main() -> None:
    async with TestPlatform(app) as platform:
        await platform.create_table("orders", "order_id")
        await platform.invoke("place", {"order_id": "o-1"})
        await platform.invoke("place", {"order_id": "o-2"})
        await platform.invoke("pay", {"order_id": "o-1"})
        await platform.drain()
    assert shipping_log == [("reserve", "o-1"), ("reserve", "o-2"), ("ship", "o-1")]


asyncio.run(main())
