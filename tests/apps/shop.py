"""A small, well-formed app with one function per handler form and trigger kind.

Other tests run it through the runtimes: load it with `load_app("tests/apps/shop.py")`
(or the module `tests.apps.shop`). Keep the behaviour of each function stable.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from triggerfish.app import App
from triggerfish.errors import NonRetryable, Retry

app = App("shop")


@app.function()
def echo(event: Any, context: Any) -> Any:
    """Returns the event and what the context says about the invocation."""
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function": context.function_name,
        "attempt": context.attempt,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


@app.function()
def add(event: Any) -> Any:
    """The one-argument form: returns event["a"] + event["b"]."""
    return event["a"] + event["b"]


@app.function(timeout=5)
async def async_echo(event: Any, context: Any) -> Any:
    """An async handler: sleeps event.get("sleep", 0) seconds, then returns the event."""
    await asyncio.sleep(float(event.get("sleep", 0)) if isinstance(event, dict) else 0)
    return {"event": event, "request_id": context.aws_request_id}


@app.function(retries=0)
def fail(event: Any) -> Any:
    """Raises ValueError with event["message"] (default "boom")."""
    message = event.get("message", "boom") if isinstance(event, dict) else "boom"
    raise ValueError(message)


@app.function()
def retry_later(event: Any) -> Any:
    """Raises Retry(delay=event["delay"])."""
    raise Retry("not yet", delay=float(event.get("delay", 1)))


@app.function()
def reject(event: Any) -> Any:
    """Raises NonRetryable: no further attempts."""
    raise NonRetryable("this event can never succeed")


@app.function(timeout=1)
def sleepy(event: Any) -> Any:
    """Sleeps event["seconds"] (blocking); its timeout is 1 second."""
    time.sleep(float(event["seconds"]))
    return "woke"


@app.function(env={"GREETING": "hello"})
def greet(event: Any) -> Any:
    """Reads its env setting: returns f"{GREETING} {event['name']}"."""
    return f"{os.environ.get('GREETING', '?')} {event['name']}"


@app.function()
def publish(event: Any, context: Any) -> Any:
    """Publishes event["type"] with event["data"] on the default bus; returns the event id."""
    return context.publish(event.get("type", "shop.ping"), event.get("data"))


@app.http("POST", "/orders", memory_mb=256)
@app.on_queue("orders", batch_size=10)
def create_order(event: Any, context: Any) -> Any:
    """HTTP and queue triggers on one function."""
    return {"statusCode": 201, "body": "created"}


@app.on_event({"type": ["order.created"]})
def on_order_created(event: Any) -> Any:
    """Runs for every order.created event on the default bus."""
    return event.get("data")


@app.schedule("rate(1 hour)")
def hourly(event: Any) -> None:
    """Runs every hour."""
