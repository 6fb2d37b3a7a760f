"""A small app for the runtime tests: plain, async, environment and platform-calling handlers."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from triggerfish.app import App

app = App("basic")
_loop_ids: list[int] = []


@app.function()
def echo(event: Any, context: Any) -> Any:
    return {"event": event, "request_id": context.aws_request_id, "pid": os.getpid()}


@app.function(env={"GREETING": "hello"}, memory_mb=256)
def environment(event: Any, context: Any) -> Any:
    return {"env": dict(os.environ), "cwd": os.getcwd()}


@app.function()
async def aecho(event: Any, context: Any) -> Any:
    await asyncio.sleep(0)
    _loop_ids.append(id(asyncio.get_running_loop()))
    return {"event": event, "loops": len(set(_loop_ids))}


@app.function()
def chatty(event: Any, context: Any) -> Any:
    print("to stdout", event)
    print("to stderr", file=sys.stderr)
    context.logger.info("through the logger")
    os.write(1, b"C-level write\n")
    os.system("echo from a child process")
    return "done"


@app.function()
def publisher(event: Any, context: Any) -> Any:
    event_id = context.publish("thing.happened", {"n": event})
    try:
        context.call_platform("kv_get", {"namespace": "x", "key": "boom"})
    except Exception as exc:
        return {"event_id": event_id, "error": str(exc)}
    return {"event_id": event_id, "error": None}


@app.function(concurrency=1, timeout=5.0)
def slow(event: Any, context: Any) -> Any:
    time.sleep(float(event))
    return "slept"


@app.function(min_warm=1)
def warm(event: Any) -> Any:
    return os.getpid()


@app.function()
def entry_time(event: Any) -> Any:
    return time.time()
