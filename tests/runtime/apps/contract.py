"""The app both runners are held to (tests/runtime/test_runner_contract.py): one file, loaded by the process
runtime from its path and by `triggerfish.testing` as an object."""

from __future__ import annotations

import time
from typing import Any

from triggerfish import App, NonRetryable

app = App("contract")


@app.function()
def echo(event: Any, context: Any) -> Any:
    return {"event": event, "function": context.function_name, "arn": context.invoked_function_arn}


@app.function()
def fails(event: Any) -> None:
    raise ValueError(f"no good: {event}")


@app.function()
def unserialisable(event: Any) -> Any:
    return {1, 2}


@app.function(timeout=0.5)
def sleeps(event: Any) -> None:
    time.sleep(5)


@app.function()
def announces(event: Any, context: Any) -> dict[str, str]:
    return {"id": context.publish("Announced", {"n": event["n"]}, bus="news")}


@app.function()
def announces_badly(event: Any, context: Any) -> None:
    # 2**40 is no CloudEvents integer (they are 32-bit): the bus could not read it back.
    context.publish("Announced", {"n": 1}, bus="news", big=2**40)


@app.on_event({"type": ["Announced"]}, bus="news")
def heard(event: Any, context: Any) -> None:
    context.send("heard", str(event["data"]["n"]))


@app.on_queue("heard")
def logged(event: Any, context: Any) -> None:
    for record in event["Records"]:
        context.call_platform("kv_put", {"namespace": "log", "key": record["body"], "value": record["messageId"]})


@app.function(retries=1)
def gives_up(event: Any) -> None:
    raise NonRetryable("this cannot work")


@app.function(retries=2)
def flaky(event: Any) -> None:
    raise RuntimeError("always")
