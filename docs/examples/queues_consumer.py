"""The live queue consumer: messages arrive in SQS-shaped batches, gathered for up to batch_window seconds."""

import asyncio
import tempfile

from triggerfish import App
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.store import open_store
from triggerfish.triggers.queues import QueueTriggers

app = App("shop")
batches = []


@app.on_queue("emails", batch_size=10, batch_window=2)
def send_emails(event, context):
    batches.append([record["body"] for record in event["Records"]])
    record = event["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["template"]["stringValue"] == "welcome"


async def main() -> None:
    with tempfile.TemporaryDirectory() as data:
        store = await open_store(f"sqlite:///{data}/store.db")
        invoker = Invoker(InProcessRunner(app.functions, platform=StorePlatform(store)), store)
        triggers = QueueTriggers(store, invoker, app.functions)
        await triggers.start()

        for name in ("ada", "grace", "linus"):
            await store.queues.send("emails", name.encode(), attributes={"template": "welcome"})
        # Acknowledged messages leave the queue.
        await eventually(lambda: empty(store, "emails"))

        await triggers.stop()
        await store.close()
    # Sent within the window, they came as one batch.
    assert batches == [["ada", "grace", "linus"]]


async def eventually(check) -> None:
    """Wait up to 10 s for check() to hold: the consumer works in the background."""
    for _ in range(1000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the consumer did not get there in 10 s")


async def empty(store, queue) -> bool:
    return (await store.queues.stats(queue)).depth == 0


asyncio.run(main())
