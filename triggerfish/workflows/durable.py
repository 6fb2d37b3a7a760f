"""AWS Lambda durable functions in the worker: the handler `durable=True` declares around the SDK's.

    from aws_durable_execution_sdk_python import DurableContext, durable_execution

    @app.function(durable=True)          # or @app.http(...) / @app.on_event(...); the SDK's decorator alone
    @durable_execution                   # is recognized too
    def order(event, context: DurableContext):
        stock = context.step(lambda _: reserve(event), name="reserve")
        context.wait(Duration.from_hours(1))
        return {"stock": stock}

Any trigger invokes the function with its ordinary event. The wrapper asks the platform to begin a
run of the durable execution (the first run makes its record, with the event as its input) and calls
the SDK's handler with the event Lambda gives a durable function (`DurableExecutionArn`,
`CheckpointToken`, `InitialExecutionState`); the SDK checkpoints through boto3 to the platform's
`/-/aws` (the worker's AWS_ENDPOINT_URL). What it returns ends the run; the platform invokes the
function again (a resume event) when a wait, a callback, a retry or a chained invoke is due.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from triggerfish.workflows.context import PLATFORM_OP, RESUME_KEY
from triggerfish.workflows.history import SUCCEEDED

#: Where the SDK's decorator is defined: a handler wrapped by it is recognized by its code's file.
_SDK_EXECUTION = ("aws_durable_execution_sdk_python", "execution.py")


def is_sdk_durable(handler: Callable[..., Any]) -> bool:
    """Whether `handler` is wrapped by the AWS SDK's `@durable_execution` (it can run only as a durable function)."""
    code = getattr(handler, "__code__", None)
    filename = getattr(code, "co_filename", "") or ""
    parts = filename.replace("\\", "/").split("/")
    return hasattr(handler, "__wrapped__") and tuple(parts[-2:]) == _SDK_EXECUTION


def durable_handler(fn: Callable[..., Any]) -> Callable[[Any, Any], Any]:
    """The handler `durable=True` declares for the SDK-decorated `fn(event, context)`."""

    @functools.wraps(fn)
    def handler(event: Any, context: Any) -> Any:
        return run_durable(fn, event, context)

    return handler


def run_durable(fn: Callable[..., Any], event: Any, context: Any) -> Any:
    """One run of a durable execution. Answers the execution's result once it SUCCEEDED, else its summary
    (`workflow_id`, `status`, and `error` once FAILED), as a native workflow's run does."""

    def call(request: dict[str, Any]) -> Any:
        return context.call_platform(PLATFORM_OP, request)

    lambda_name = getattr(context, "function_name", None)
    marker = event.get(RESUME_KEY) if isinstance(event, dict) and len(event) == 1 else None
    if isinstance(marker, dict) and isinstance(marker.get("id"), str):
        begun = call({"action": "aws_begin", "resume": marker["id"], "lambda_name": lambda_name})
    else:
        begun = call({"action": "aws_begin", "input": event, "lambda_name": lambda_name})
    if "finished" in begun:
        return _answer(begun["finished"])
    output = fn(begun["event"], context)
    summary = call({"action": "aws_end", "id": begun["id"], "run": begun["run"], "output": output})
    return _answer(summary)


def _answer(summary: dict[str, Any]) -> Any:
    return summary.get("result") if summary.get("status") == SUCCEEDED else summary
