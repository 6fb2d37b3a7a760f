"""Invocation records: status, duration, billed duration and GB-seconds."""

import asyncio

from triggerfish.app import App
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.store import open_store

app = App("reports")


@app.function(memory_mb=1024)
def render(event, context):
    print("rendering", event["page"])
    return "ok"


async def main():
    store = await open_store("memory://")
    invoker = Invoker(InProcessRunner(app.functions), store, record_retention=24 * 3600)

    await invoker.invoke("render", {"page": 1}, request_id="req-1")
    record = await invoker.records.get("req-1")
    assert record.status == "succeeded"
    assert record.trigger == "direct"
    assert "rendering 1" in record.output
    # Billed as Lambda bills: rounded up to the millisecond, GB-seconds at the memory size.
    assert record.billed_duration_ms >= record.duration_ms
    assert record.gb_seconds == record.billed_duration_ms / 1000 * 1024 / 1024

    succeeded = await invoker.records.query(function="render", status="succeeded")
    assert [r.request_id for r in succeeded] == ["req-1"]

    await store.close()


asyncio.run(main())
