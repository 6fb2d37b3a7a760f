"""Retry(delay=...), NonRetryable, and where results and failures go."""

import asyncio

import orjson

from triggerfish.app import App
from triggerfish.errors import NonRetryable, Retry
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.store import open_store

app = App("shop")
audit = []


@app.function(on_success="queue:shipped", on_failure="function:alert")
def ship(event, context):
    if event.get("address") is None:
        raise NonRetryable("no address: another attempt cannot help")
    if context.attempt == 1:
        raise Retry("carrier busy", delay=0.2)  # replaces the backoff for this retry
    return {"tracking": "TF-1"}


@app.function
def alert(record, context):
    audit.append(record["requestContext"]["condition"])


async def main():
    store = await open_store("memory://")
    invoker = Invoker(InProcessRunner(app.functions), store, retry_policy=RetryPolicy(base=0, ceiling=0))
    await invoker.start()

    await invoker.invoke_async("ship", {"address": "1 Main St"})
    await invoker.invoke_async("ship", {"address": None})
    await invoker.drain()

    [message] = await store.queues.receive("shipped")
    success = orjson.loads(message.body)
    assert success["requestContext"]["condition"] == "Success"
    assert success["requestContext"]["approximateInvokeCount"] == 2
    assert success["responsePayload"] == {"tracking": "TF-1"}
    assert audit == ["NonRetryable"]  # one attempt only, then straight to on_failure

    await invoker.stop()
    await store.close()


asyncio.run(main())
