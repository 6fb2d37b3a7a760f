"""The workflows the platform tests run: each step leaves a line in a file, so tests count how often it ran."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import triggerfish
from triggerfish.retry import RetryPolicy
from triggerfish.workflows import BatchFailedError, Saga, StepFailedError, WaitTimeoutError, WorkflowContext

app = triggerfish.App("flows")
QUICK = RetryPolicy(base=0.05, ceiling=0.05, jitter=0.0)


def mark(directory: str, name: str) -> int:
    """Append `name` to the log of runs; how often it ran before."""
    log = Path(directory) / "runs.log"
    before = log.read_text().split().count(name) if log.exists() else 0
    with log.open("a") as out:
        out.write(name + "\n")
    return before


def add(directory: str, a: int, b: int) -> int:
    mark(directory, "add")
    return a + b


def flaky(directory: str) -> str:
    if mark(directory, "flaky") == 0:
        raise RuntimeError("the first attempt fails")
    return "second time lucky"


def broken(directory: str) -> None:
    mark(directory, "broken")
    raise ValueError("never works")


def wait_for_file(directory: str, name: str) -> str:
    """A step that blocks until the test creates `name` (to kill the platform in the middle of it)."""
    mark(directory, f"waiting-{name}")
    deadline = time.monotonic() + 60
    while not (Path(directory) / name).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return name


@app.workflow
def steps(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    directory = input["dir"]
    total = ctx.step(add, directory, 1, 2)
    lucky = ctx.step(flaky, directory, retry=QUICK)
    try:
        ctx.step(broken, directory, max_attempts=2, retry=QUICK)
    except StepFailedError as exc:
        failure = exc.error["errorType"]
    return {"total": total, "lucky": lucky, "failure": failure, "year": ctx.now().year, "id": len(ctx.uuid())}


@app.workflow
def sleeper(ctx: WorkflowContext, input: dict[str, Any]) -> float:
    began = ctx.now().timestamp()
    ctx.sleep(input["seconds"])
    return ctx.now().timestamp() - began


@app.workflow
def payment(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    pattern = {"type": ["payment.done"], "data": {"order": [input["order"]]}}
    try:
        event = ctx.wait_for_event(pattern, timeout=input.get("timeout"))
    except WaitTimeoutError:
        return "timed out"
    return event["data"]


@app.workflow
def approval(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    callback = ctx.callback(timeout=input.get("timeout", 60))
    ctx.step(mark, input["dir"], "token:" + callback.token)
    try:
        return {"approved": callback.result()}
    except StepFailedError as exc:
        return {"refused": exc.error}
    except WaitTimeoutError:
        return "timed out"


def square(ctx: WorkflowContext, item: int) -> int:
    return int(ctx.step(lambda: item * item, name="square"))


def fails_on_three(ctx: WorkflowContext, item: int) -> int:
    if item == 3:
        raise ValueError("three is refused")
    return item


def branch_a(ctx: WorkflowContext) -> str:
    return "a"


def branch_b(ctx: WorkflowContext) -> str:
    ctx.sleep(0.1)
    return "b"


@app.workflow
def child(ctx: WorkflowContext, input: int) -> int:
    return int(ctx.step(lambda: input + 100, name="plus100"))


@app.function
def quote(event: Any, context: Any) -> dict[str, Any]:
    return {"price": event["items"] * 10}


@app.function
def starter(event: Any, context: Any) -> str:
    """A handler that starts a workflow, as the shop's `POST /orders` does."""
    return str(context.start_workflow(event["function"], event.get("input"), id=event.get("id")))


@app.workflow
def fan(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    squares = ctx.map(input["items"], square, max_concurrency=2)
    branches = ctx.parallel(branch_a, branch_b)
    some = ctx.map([1, 2, 3, 4], fails_on_three, tolerated_failures=1)
    try:
        ctx.map([3], fails_on_three)
        refused = None
    except BatchFailedError as exc:
        refused = [item.error["errorMessage"] for item in exc.result.failed() if item.error]
    return {
        "squares": squares.results(),
        "branches": branches.results(),
        "some": some.results(),
        "refused": refused,
        "child": ctx.child(child, 1),
        "quote": ctx.invoke("quote", {"items": 3}),
    }


def reserve(directory: str, order: str) -> str:
    mark(directory, "reserve")
    return f"stock for {order}"


def release(directory: str, order: str) -> None:
    mark(directory, "release")


def charge(directory: str, order: str) -> None:
    mark(directory, "charge")


def refund(directory: str, order: str) -> None:
    mark(directory, "refund")


def ship(directory: str, order: str) -> None:
    mark(directory, "ship")
    raise triggerfish.NonRetryable("no courier today")


@app.workflow
def saga(ctx: WorkflowContext, input: dict[str, Any]) -> str:
    directory, order = input["dir"], input["order"]
    try:
        with Saga(ctx) as saga:
            saga.step(reserve, directory, order, compensate=release)
            # A step's retry options are the step's: its compensation is not handed them.
            saga.step(charge, directory, order, compensate=refund, max_attempts=2, retry=QUICK)
            saga.step(ship, directory, order)
    except StepFailedError as exc:
        return f"undone: {exc.error['errorMessage']}"
    return "shipped"


@app.workflow
def crashy(ctx: WorkflowContext, input: dict[str, Any]) -> list[Any]:
    directory = input["dir"]
    first = ctx.step(add, directory, 1, 1)
    middle = ctx.step(wait_for_file, directory, "go")
    ctx.sleep(input.get("sleep", 0.2))
    last = ctx.step(add, directory, 2, 2)
    return [first, middle, last]


@app.workflow
def nap_then_block(ctx: WorkflowContext, input: dict[str, Any]) -> str:
    """A step after a sleep that blocks until the test says: runs of the workflow that overlap are seen."""
    ctx.sleep(input["sleep"])
    return str(ctx.step(wait_for_file, input["dir"], "go"))


@app.workflow
def long_sleep(ctx: WorkflowContext, input: Any) -> str:
    ctx.sleep(365 * 24 * 3600)
    return "a year later"


def echo_key(key: str) -> str:
    return key


@app.workflow
def many_resumptions(ctx: WorkflowContext, input: Any) -> list[str]:
    """More resumptions than the loop guard's 16 hops: a workflow's own resumptions are not an event chain."""
    for _ in range(20):
        ctx.sleep(0)
    return [ctx.step(echo_key, ctx.key()), ctx.step(echo_key, ctx.key())]


def big() -> str:
    return "x" * 2_000_000


@app.workflow
def huge(ctx: WorkflowContext, input: Any) -> str:
    return str(ctx.step(big))
