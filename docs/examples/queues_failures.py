"""Partial batch failures retry only those messages; a message that keeps failing ends in the dead-letter queue."""

import asyncio
import json
import tempfile

from triggerfish import App
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.store import open_store
from triggerfish.triggers.queues import QueueTriggers

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


# As triggerfish.toml would say: [queues.parcels] max_receives = 2, dead_letter = "parcels-too-heavy"
SETTINGS = {"parcels": {"max_receives": 2, "dead_letter": "parcels-too-heavy"}}


async def main() -> None:
    with tempfile.TemporaryDirectory() as data:
        store = await open_store(f"sqlite:///{data}/store.db")
        invoker = Invoker(InProcessRunner(app.functions, platform=StorePlatform(store)), store)
        # A failed message stays hidden for a backoff before it comes back (about 1 s at first by default).
        fast = RetryPolicy(base=0.1, ceiling=0.1)
        triggers = QueueTriggers(store, invoker, app.functions, queue_settings=SETTINGS, retry_policy=fast)
        await triggers.start()

        sent = [
            await store.queues.send("parcels", json.dumps(parcel).encode())
            for parcel in ({"id": "a", "weight": 2}, {"id": "b", "weight": 99}, {"id": "c", "weight": 5})
        ]
        await eventually(lambda: dead_lettered(store))

        assert packed == ["a", "c"]  # packed once each: only the heavy parcel was retried
        assert (await store.queues.stats("parcels")).depth == 0
        (dead,) = await store.queues.receive("parcels-too-heavy")
        assert json.loads(dead.body) == {"id": "b", "weight": 99}
        assert dead.message_id == sent[1].message_id  # the same message, moved

        await triggers.stop()
        await store.close()


async def eventually(check) -> None:
    """Wait up to 10 s for check() to hold: the consumer works in the background."""
    for _ in range(1000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the consumer did not get there in 10 s")


async def dead_lettered(store) -> bool:
    return (await store.queues.stats("parcels-too-heavy")).depth == 1


asyncio.run(main())
