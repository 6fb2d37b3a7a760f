"""A function whose invocations the tests queue behind each other on one worker (the async path's prefetch)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from triggerfish.app import App

app = App("queued")


@app.function(concurrency=1, timeout=1.0)
def step(event: dict[str, Any], context: Any) -> Any:
    started = time.time()
    remaining = context.get_remaining_time_in_millis()
    # At once on entry: the output a parent could mistake for the previous invocation's.
    os.write(1, f"start {event['say']}\n".encode())
    time.sleep(event.get("sleep", 0.0))
    if event.get("call"):
        context.publish("step.done", {"say": event["say"]})
    print("end", event["say"], file=sys.stderr, flush=True)
    return {"pid": os.getpid(), "started": started, "ended": time.time(), "remaining_ms": remaining}
