"""A handler that loops forever or crashes fails only its own invocation; the pool keeps serving."""

import asyncio
from pathlib import Path

from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.runtime.types import InvokeRequest

Path("risky.py").write_text("""
import ctypes
from triggerfish import App

app = App("risky")


@app.function(timeout=0.5)
def work(event, context):
    if event == "loop":
        while True:
            pass
    if event == "crash":
        ctypes.string_at(0)  # a segmentation fault in C code
    return "done"
""")


async def main() -> None:
    runner = await ProcessRunner.start("risky.py", work_dir=Path(".triggerfish"))
    try:
        looped = await runner.run(InvokeRequest(request_id="r-1", function="work", event="loop"))
        crashed = await runner.run(InvokeRequest(request_id="r-2", function="work", event="crash"))
        fine = await runner.run(InvokeRequest(request_id="r-3", function="work", event="ok"))
    finally:
        await runner.close()

    assert looped.error == {
        "errorType": "Runtime.Timeout",
        "errorMessage": "Task timed out after 0.50 seconds",
        "stackTrace": [],
    }
    assert crashed.error is not None
    assert crashed.error["errorType"] == "Runtime.ExitError"
    assert "signal 11 (SIGSEGV)" in crashed.error["errorMessage"]
    assert fine.ok
    assert fine.result == "done"
    print(looped.error["errorMessage"], "/", crashed.error["errorMessage"])


asyncio.run(main())
