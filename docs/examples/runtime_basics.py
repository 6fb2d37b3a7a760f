"""Run an app's functions in worker processes forked from its zygote: cold, then warm."""

import asyncio
import os
from pathlib import Path

from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.runtime.types import InvokeRequest

Path("shop.py").write_text("""
import os
from triggerfish import App

app = App("shop")


@app.function(memory_mb=256, env={"CURRENCY": "EUR"})
def quote(event, context):
    print("quoting", event["items"], "items")
    return {"total": event["items"] * 5, "currency": os.environ["CURRENCY"], "pid": os.getpid()}
""")


async def main() -> None:
    runner = await ProcessRunner.start("shop.py", work_dir=Path(".triggerfish"))
    try:
        first = await runner.run(InvokeRequest(request_id="r-1", function="quote", event={"items": 2}))
        second = await runner.run(InvokeRequest(request_id="r-2", function="quote", event={"items": 3}))
    finally:
        await runner.close()

    assert first.ok
    assert first.result["total"] == 10
    assert first.result["currency"] == "EUR"
    assert first.cold_start
    assert first.init_duration_ms is not None
    assert not second.cold_start  # the same worker, warm
    assert second.worker_pid == first.worker_pid != os.getpid()
    assert second.output == "quoting 3 items\n"  # each invocation keeps its own output
    print(f"cold start: worker ready in {first.init_duration_ms:.1f} ms")


asyncio.run(main())
