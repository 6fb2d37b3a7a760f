"""The in-process runner: handlers on their own threads, limits, the platform bridge, captured output."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from triggerfish.errors import FunctionNotFoundError, NonRetryable, Retry, ThrottledError
from triggerfish.model import FunctionSettings, FunctionSpec
from triggerfish.names import INVALID_EVENT_ERROR, TIMEOUT_ERROR
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.types import InvokeRequest, PlatformCall

SECONDS = 5.0  # how long a test waits on a thread before declaring it stuck


def spec(handler: Callable[..., Any], name: str | None = None, **settings: Any) -> FunctionSpec:
    name = name or handler.__name__
    return FunctionSpec(name=name, handler=handler, ref=f"tests:{name}", settings=FunctionSettings(**settings))


def request(function: str, event: Any = None, rid: str = "r-1", **fields: Any) -> InvokeRequest:
    return InvokeRequest(request_id=rid, function=function, event=event, **fields)


class Calls:
    """A platform handler that answers like the real one would and remembers what it was asked."""

    def __init__(self) -> None:
        self.calls: list[PlatformCall] = []
        self.loop_thread: int | None = None

    async def __call__(self, call: PlatformCall) -> Any:
        self.calls.append(call)
        self.loop_thread = threading.get_ident()
        await asyncio.sleep(0)  # a real platform awaits the store
        if call.op == "publish":
            return call.args["event"]["id"]
        return f"answer-{len(self.calls)}"


async def test_sync_handler_result_and_context() -> None:
    def hello(event: Any, context: Any) -> dict[str, Any]:
        return {
            "greeting": f"hello {event['name']}",
            "request_id": context.aws_request_id,
            "function": context.function_name,
            "declared": context.function,
            "attempt": context.attempt,
            "memory": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
        }

    runner = InProcessRunner({"hello": spec(hello, memory_mb=256, timeout=3.0)})
    first = await runner.run(request("hello", {"name": "ada"}, rid="req-9", attempt=2))
    assert first.ok, first.error
    assert first.result["greeting"] == "hello ada"
    assert first.result["request_id"] == "req-9"
    assert first.result["function"] == "app-hello"  # the Lambda name: <app>-<function>
    assert first.result["declared"] == "hello"
    assert first.result["attempt"] == 2
    assert first.result["memory"] == "256"
    assert 0 < first.result["remaining_ms"] <= 3000
    assert first.cold_start
    assert first.request_id == "req-9"
    assert first.ended_at >= first.started_at
    second = await runner.run(request("hello", {"name": "bob"}))
    assert not second.cold_start
    assert runner.functions() == ["hello"]
    assert runner.settings("hello").memory_mb == 256


async def test_async_handler_and_single_argument_form() -> None:
    async def double(event: Any) -> int:
        await asyncio.sleep(0)
        return int(event) * 2

    runner = InProcessRunner({"double": spec(double)})
    outcome = await runner.run(request("double", 21))
    assert outcome.ok
    assert outcome.result == 42


async def test_handler_errors_come_back_in_lambdas_shape() -> None:
    def broken(event: Any, context: Any) -> None:
        raise ValueError("no such order")

    def later(event: Any, context: Any) -> None:
        raise Retry("busy", delay=7.5)

    def never(event: Any, context: Any) -> None:
        raise NonRetryable("bad order")

    def unserialisable(event: Any, context: Any) -> object:
        return object()

    runner = InProcessRunner({f.__name__: spec(f) for f in (broken, later, never, unserialisable)})
    outcome = await runner.run(request("broken"))
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == "ValueError"
    assert outcome.error["errorMessage"] == "no such order"
    assert outcome.retryable
    retry = await runner.run(request("later"))
    assert not retry.ok
    assert retry.retry_delay == 7.5
    final = await runner.run(request("never"))
    assert not final.ok
    assert not final.retryable
    marshal = await runner.run(request("unserialisable"))
    assert not marshal.ok
    assert marshal.error is not None
    assert marshal.error["errorType"] == "Runtime.MarshalError"


async def test_unknown_function_names_the_known_ones() -> None:
    runner = InProcessRunner({"a": spec(lambda e: e, name="a"), "b": spec(lambda e: e, name="b")})
    with pytest.raises(FunctionNotFoundError, match=r"'nope'.*a, b"):
        await runner.run(request("nope"))


async def test_blocking_sync_handlers_run_side_by_side_without_stalling_the_loop() -> None:
    # Both invocations must be inside the handler at once to pass the barrier.
    barrier = threading.Barrier(2, timeout=SECONDS)

    def meet(event: Any, context: Any) -> str:
        barrier.wait()
        return "met"

    runner = InProcessRunner({"meet": spec(meet, concurrency=2)})
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    ticker = asyncio.create_task(tick())
    outcomes = await asyncio.gather(runner.run(request("meet", rid="1")), runner.run(request("meet", rid="2")))
    ticker.cancel()
    assert [o.result for o in outcomes] == ["met", "met"]
    assert ticks > 0


async def test_concurrency_limit_throttles_after_wait_and_frees_the_slot() -> None:
    release, entered = threading.Event(), threading.Event()

    def slow(event: Any, context: Any) -> str:
        entered.set()
        release.wait(SECONDS)
        return "done"

    runner = InProcessRunner({"slow": spec(slow, concurrency=1)})
    first = asyncio.create_task(runner.run(request("slow", rid="1")))
    assert await asyncio.to_thread(entered.wait, SECONDS)
    assert runner.in_flight("slow") == 1
    with pytest.raises(ThrottledError, match="'slow' is at its concurrency limit") as caught:
        await runner.run(request("slow", rid="2"), wait=0.05)
    assert caught.value.function == "slow"
    with pytest.raises(ThrottledError):
        await runner.run(request("slow", rid="3"), wait=0)
    release.set()
    assert (await first).result == "done"
    assert runner.in_flight("slow") == 0
    assert (await runner.run(request("slow", rid="4"), wait=0)).result == "done"


async def test_waiting_invocation_gets_the_slot_when_it_frees() -> None:
    release, entered = threading.Event(), threading.Event()

    def slow(event: Any, context: Any) -> Any:
        entered.set()
        release.wait(SECONDS)
        return event

    runner = InProcessRunner({"slow": spec(slow, concurrency=1)})
    first = asyncio.create_task(runner.run(request("slow", 1, rid="1")))
    assert await asyncio.to_thread(entered.wait, SECONDS)
    assert runner.in_flight("slow") == 1
    second = asyncio.create_task(runner.run(request("slow", 2, rid="2"), wait=SECONDS))
    await asyncio.sleep(0.01)
    release.set()
    assert [(await first).result, (await second).result] == [1, 2]


async def test_sync_handler_past_its_timeout_is_reported_and_its_slot_freed() -> None:
    release = threading.Event()

    def stuck(event: Any, context: Any) -> str:
        release.wait(SECONDS)
        return "late"

    runner = InProcessRunner({"stuck": spec(stuck, timeout=0.1, concurrency=1)})
    try:
        outcome = await runner.run(request("stuck"))
        assert not outcome.ok
        assert outcome.error is not None
        assert outcome.error["errorType"] == TIMEOUT_ERROR
        assert outcome.error["errorMessage"] == "Task timed out after 0.10 seconds"
        assert runner.in_flight("stuck") == 0
    finally:
        release.set()


async def test_async_handler_past_its_timeout_is_cancelled() -> None:
    cancelled = threading.Event()

    async def sleepy(event: Any, context: Any) -> str:
        try:
            await asyncio.sleep(SECONDS)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    runner = InProcessRunner({"sleepy": spec(sleepy, timeout=0.1)})
    outcome = await runner.run(request("sleepy"))
    assert outcome.error is not None
    assert outcome.error["errorType"] == TIMEOUT_ERROR
    assert await asyncio.to_thread(cancelled.wait, SECONDS)


async def test_sync_handler_calls_the_async_platform() -> None:
    def order(event: Any, context: Any) -> str:
        event_id: str = context.publish("order.placed", {"id": event["id"]}, bus="orders")
        return event_id

    platform = Calls()
    runner = InProcessRunner({"order": spec(order)}, platform=platform)
    outcome = await runner.run(request("order", {"id": 7}, rid="r-7", hop_count=2))
    assert outcome.ok, outcome.error
    (call,) = platform.calls
    assert call.op == "publish"
    assert call.args["bus"] == "orders"
    assert call.args["event"]["type"] == "order.placed"
    assert call.args["event"]["data"] == {"id": 7}
    assert call.function == "order"
    assert call.request_id == "r-7"
    assert call.hop_count == 2
    assert outcome.result == call.args["event"]["id"]
    assert platform.loop_thread == threading.get_ident()  # answered on the platform's loop


async def test_async_handler_calls_the_platform_without_deadlock() -> None:
    async def order(event: Any, context: Any) -> list[Any]:
        await asyncio.sleep(0)
        first = context.call_platform("kv_get", {"namespace": "n", "key": "k"})
        second = context.send("shipping", "box 1")
        return [first, second]

    platform = Calls()
    runner = InProcessRunner({"order": spec(order, timeout=SECONDS)}, platform=platform)
    outcome = await runner.run(request("order"))
    assert outcome.ok, outcome.error
    assert outcome.result == ["answer-1", "answer-2"]
    assert [c.op for c in platform.calls] == ["kv_get", "send"]


async def test_platform_calls_without_a_platform_or_with_an_unknown_op_fail_the_invocation() -> None:
    def publishes(event: Any, context: Any) -> None:
        context.publish("x.y", {})

    def hostile(event: Any, context: Any) -> None:
        context.call_platform("drop_tables", {})

    bare = InProcessRunner({"publishes": spec(publishes)})
    outcome = await bare.run(request("publishes"))
    assert outcome.error is not None
    assert outcome.error["errorType"] == "InvocationError"
    assert "needs a platform" in outcome.error["errorMessage"]
    platform = Calls()
    runner = InProcessRunner({"hostile": spec(hostile)}, platform=platform)
    outcome = await runner.run(request("hostile"))
    assert outcome.error is not None
    assert "unknown platform operation 'drop_tables'" in outcome.error["errorMessage"]
    assert platform.calls == []


async def test_output_is_captured_per_invocation() -> None:
    barrier = threading.Barrier(2, timeout=SECONDS)

    def chatty(event: Any, context: Any) -> None:
        print(f"printed by {event}")
        barrier.wait()  # both run at once, so their output would mix if capture were not per invocation
        context.logger.warning("logged by %s", event)

    runner = InProcessRunner({"chatty": spec(chatty, concurrency=2)})
    one, two = await asyncio.gather(
        runner.run(request("chatty", "one", rid="1")), runner.run(request("chatty", "two", rid="2"))
    )
    assert "printed by one" in one.output
    assert "logged by one" in one.output
    assert "two" not in one.output
    assert "printed by two" in two.output
    assert "logged by two" in two.output
    assert "one" not in two.output.replace("done", "")


async def test_output_past_the_limit_is_dropped_and_marked() -> None:
    def loud(event: Any, context: Any) -> str:
        print("x" * 10_000)
        print("é" * 100)
        return "ok"

    runner = InProcessRunner({"loud": spec(loud)}, output_limit=100)
    outcome = await runner.run(request("loud"))
    assert outcome.ok
    assert outcome.output_truncated
    assert len(outcome.output.encode()) <= 100


async def test_the_handler_gets_a_json_copy_of_the_event_and_non_json_events_are_refused() -> None:
    def mutate(event: Any) -> Any:
        event["seen"] = True
        return event

    runner = InProcessRunner({"mutate": spec(mutate)})
    original: dict[str, Any] = {"items": (1, 2)}
    outcome = await runner.run(request("mutate", original))
    assert outcome.result == {"items": [1, 2], "seen": True}
    assert original == {"items": (1, 2)}
    for hostile in ({"when": object()}, {1: "int key"}, {"big": 2**70}):
        refused = await runner.run(request("mutate", hostile))
        assert not refused.ok
        assert not refused.retryable
        assert refused.error is not None
        assert refused.error["errorType"] == INVALID_EVENT_ERROR
        assert "not a JSON value" in refused.error["errorMessage"]


async def test_cancelling_the_run_cancels_an_async_handler() -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def long(event: Any) -> None:
        started.set()
        try:
            await asyncio.sleep(SECONDS)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runner = InProcessRunner({"long": spec(long, timeout=SECONDS * 2)})
    task = asyncio.create_task(runner.run(request("long")))
    assert await asyncio.to_thread(started.wait, SECONDS)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(cancelled.wait, SECONDS)
    assert runner.in_flight("long") == 0
