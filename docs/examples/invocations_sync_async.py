"""Sync and async invocations, retries and the platform dead-letter queue."""

import asyncio

import orjson

from triggerfish.app import App
from triggerfish.errors import HandlerError
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.store import open_store

app = App("shop")


@app.function
def quote(event, context):
    return {"total": event["items"] * 10}


@app.function(retries=2)
def sync_stock(event, context):
    raise ConnectionError(f"warehouse unreachable (attempt {context.attempt})")


async def main():
    store = await open_store("sqlite:///store.db")
    runner = InProcessRunner(app.functions, platform=StorePlatform(store))
    # Retry at once instead of after ~1 and ~2 minutes, to keep the example quick.
    invoker = Invoker(runner, store, retry_policy=RetryPolicy(base=0, ceiling=0))
    await invoker.start()

    # Sync: the caller waits for the result, or gets HandlerError with Lambda's error document.
    assert await invoker.invoke("quote", {"items": 3}) == {"total": 30}
    try:
        await invoker.invoke("sync_stock", {})
        raise AssertionError("a failing handler raises HandlerError")
    except HandlerError as exc:
        error = exc.error
    assert error["errorType"] == "ConnectionError"

    # Async: returns once the invocation is stored; the dispatcher runs and retries it.
    request_id = await invoker.invoke_async("sync_stock", {"sku": "A-1"})
    await invoker.drain()
    attempts = await invoker.records.attempts(request_id)
    assert [record.status for record in attempts] == ["failed", "failed", "failed"]

    # No on_failure or dead_letter: the failure is kept in the platform queue dlq.<function>.
    [message] = await store.queues.receive("dlq.sync_stock")
    failure = orjson.loads(message.body)
    assert failure["requestContext"]["condition"] == "RetriesExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["requestPayload"] == {"sku": "A-1"}
    assert len(failure["attempts"]) == 3

    await invoker.stop()
    await store.close()


asyncio.run(main())
