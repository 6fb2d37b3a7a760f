"""Durable handlers written with AWS's durable execution SDK, unchanged, served by the durable-function tests.

Every step appends its name to `runs.log` in the directory the input names, so a test can tell what ran and
how often.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import CallbackConfig, Duration, JitterStrategy, StepConfig
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy
from aws_durable_execution_sdk_python.waits import WaitForConditionConfig, WaitForConditionDecision

import triggerfish
from triggerfish.workflows import WorkflowContext

app = triggerfish.App("durable")


def ran(event: dict[str, Any], name: str) -> None:
    with open(Path(event["dir"]) / "runs.log", "a") as log:
        log.write(name + "\n")


@app.function(durable=True)
@durable_execution
def steps(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    def add(_: Any) -> int:
        ran(event, "add")
        return int(event["n"]) + 1

    first = context.step(add, name="add")
    context.wait(Duration.from_seconds(1), name="pause")

    def times(_: Any) -> int:
        ran(event, "times")
        return first * 10

    return {"first": first, "second": context.step(times, name="times")}


def native_add(directory: str, n: int) -> int:
    ran({"dir": directory}, "add")
    return n + 1


def native_times(directory: str, first: int) -> int:
    ran({"dir": directory}, "times")
    return first * 10


@app.workflow
def native_steps(ctx: WorkflowContext, event: dict[str, Any]) -> dict[str, Any]:
    """`steps` as a native workflow: the same engine, the same records."""
    first = ctx.step(native_add, event["dir"], event["n"], name="add")
    ctx.sleep(1, name="pause")
    return {"first": first, "second": ctx.step(native_times, event["dir"], first, name="times")}


@app.workflow
def native_waits(ctx: WorkflowContext, event: dict[str, Any]) -> dict[str, Any]:
    """A native workflow that waits for an event and then a callback (the crash matrix answers both)."""
    first = ctx.step(native_add, event["dir"], event["n"], name="add")
    paid = ctx.wait_for_event({"type": ["payment.done"]}, timeout=300)
    approved = ctx.callback(timeout=300).result()
    return {"first": first, "paid": paid["data"], "approved": approved}


@app.function(durable=True)
@durable_execution
def signed(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    """`native_waits`'s callback written with AWS's SDK (the crash matrix answers it)."""

    def add(_: Any) -> int:
        ran(event, "add")
        return int(event["n"]) + 1

    first = context.step(add, name="add")
    callback = context.create_callback(name="sign", config=CallbackConfig(timeout=Duration.from_minutes(5)))
    return {"first": first, "approved": json.loads(callback.result() or "null")}


@app.function(durable=True)
@durable_execution
def flaky(event: dict[str, Any], context: DurableContext) -> str:
    def attempt(step: Any) -> str:
        ran(event, f"attempt-{step.attempt}")
        if step.attempt < 2:
            raise RuntimeError("the payment service is down")
        return "charged"

    retry = create_retry_strategy(
        RetryStrategyConfig(max_attempts=3, initial_delay=Duration.from_seconds(1), jitter_strategy=JitterStrategy.NONE)
    )
    return context.step(attempt, name="charge", config=StepConfig(retry_strategy=retry))


@app.function(durable=True)
@durable_execution
def approval(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    callback = context.create_callback(name="approve", config=CallbackConfig(timeout=Duration.from_minutes(5)))
    answer = callback.result()
    submitted = context.wait_for_callback(lambda callback_id, _: ran(event, "submitted"), name="countersign")
    return {"approved": answer, "countersigned": submitted}


@app.function(durable=True)
@durable_execution
def unanswered(event: dict[str, Any], context: DurableContext) -> Any:
    config = CallbackConfig(timeout=Duration.from_hours(1), heartbeat_timeout=Duration.from_seconds(1))
    return context.create_callback(name="pulse", config=config).result()


@app.function(durable=True)
@durable_execution
def polling(event: dict[str, Any], context: DurableContext) -> int:
    def check(state: int, _: Any) -> int:
        ran(event, f"poll-{state}")
        return state + 1

    def strategy(state: int, attempts: int) -> WaitForConditionDecision:
        if state >= 3:
            return WaitForConditionDecision.stop_polling()
        return WaitForConditionDecision.continue_waiting(Duration.from_seconds(1))

    return context.wait_for_condition(check, WaitForConditionConfig(wait_strategy=strategy, initial_state=0))


@app.http("POST", "/quotes", durable=True)
@durable_execution
def quote(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    """An HTTP route as a durable function: it ends in one run, so the caller gets its response."""
    order = json.loads(event["body"])
    price: int = context.step(lambda _: order["items"] * 5, name="price")
    return {"statusCode": 201, "headers": {"content-type": "application/json"}, "body": json.dumps({"price": price})}


@app.on_event({"source": ["shop"]}, durable=True)
@durable_execution
def on_order(event: dict[str, Any], context: DurableContext) -> str:
    """An event rule's target as a durable function: its input is the event (a CloudEvent)."""
    return context.step(lambda _: f"seen {event['data']['id']}", name="see")


@app.function()
def helper(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"doubled": event["x"] * 2}


@app.function(durable=True)
@durable_execution
def fan_out(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    invoked: dict[str, int] = context.invoke("durable-helper", {"x": 21}, name="helper")
    mapped: Any = context.map([1, 2, 3], lambda ctx, item, index, items: ctx.step(lambda _: item * item, name="square"))
    branches = context.parallel(
        [lambda ctx: ctx.step(lambda _: "a", name="a"), lambda ctx: ctx.step(lambda _: "b", name="b")]
    )
    child = context.run_in_child_context(lambda ctx: ctx.step(lambda _: "inside", name="inner"), name="child")
    return {"invoked": invoked, "mapped": mapped.get_results(), "branches": branches.get_results(), "child": child}


@app.function(durable=True)
@durable_execution
def gated(event: dict[str, Any], context: DurableContext) -> str:
    def add(_: Any) -> str:
        ran(event, "add")
        return "added"

    context.step(add, name="add")

    def gate(_: Any) -> str:
        ran(event, "gate")
        while not (Path(event["dir"]) / "go").exists():
            time.sleep(0.05)
        return "through"

    return context.step(gate, name="gate")


@app.function(durable=True, timeout=120)
@durable_execution
def long(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    """Hundreds of steps, a wait (the next run starts from a state of hundreds of operations), then a map."""
    total = 0
    for n in range(int(event["steps"])):

        def numbered(_: Any, n: int = n) -> int:
            ran(event, f"s{n}")
            return n

        total += context.step(numbered, name=f"s{n}")
    context.wait(Duration.from_seconds(1), name="pause")
    squares: Any = context.map(
        list(range(12)), lambda ctx, item, index, items: ctx.step(lambda _: item * item, name="sq")
    )
    return {"total": total, "squares": sum(squares.get_results())}
