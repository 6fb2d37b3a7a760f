"""FIFO queues: each message group is handled in send order, one batch at a time; groups run side by side."""

import asyncio
import tempfile
import threading

from triggerfish import App
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.store import open_store
from triggerfish.triggers.queues import QueueTriggers

app = App("bank")
booked = {}
lock = threading.Lock()


@app.on_queue("ledger", batch_size=10, concurrency=4)
def book(event, context):
    with lock:
        for record in event["Records"]:
            account = record["attributes"]["MessageGroupId"]
            booked.setdefault(account, []).append(record["body"])


async def main() -> None:
    with tempfile.TemporaryDirectory() as data:
        store = await open_store(f"sqlite:///{data}/store.db")
        invoker = Invoker(InProcessRunner(app.functions, platform=StorePlatform(store)), store)
        triggers = QueueTriggers(store, invoker, app.functions, queue_settings={"ledger": {"fifo": True}})
        await triggers.start()

        for step in ("open", "deposit 50", "withdraw 20", "close"):
            for account in ("acct-7", "acct-9"):
                await store.queues.send("ledger", step.encode(), group=account)
        await eventually(lambda: empty(store, "ledger"))

        await triggers.stop()
        await store.close()
    steps = ["open", "deposit 50", "withdraw 20", "close"]
    assert booked == {"acct-7": steps, "acct-9": steps}


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
