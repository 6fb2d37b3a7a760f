"""`QueueTriggers`: `@app.on_queue` consumed live from a real SQLite store, through the real invoker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from triggerfish.app import App
from triggerfish.errors import DeclarationError
from triggerfish.model import FunctionSpec
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.store import OutgoingMessage, QueueConfig, Store, open_store
from triggerfish.triggers.queue_config import DEFAULT_MAX_RECEIVES, queue_configs
from triggerfish.triggers.queues import QueueTriggers

ROOT = Path(__file__).resolve().parents[2]
#: Failed messages come back almost at once, so retries need no long waits.
FAST = RetryPolicy(base=0.05, ceiling=0.05)


class Current:
    """What the server hands QueueTriggers: a stable object forwarding to the current version's Invoker."""

    def __init__(self, store: Store, specs: Mapping[str, FunctionSpec]) -> None:
        self.store = store
        self.swap(specs)

    def swap(self, specs: Mapping[str, FunctionSpec]) -> None:
        runner = InProcessRunner(specs, platform=StorePlatform(self.store), app_name="test")
        self.invoker = Invoker(runner, self.store, app_name="test")

    async def invoke(
        self,
        function: str,
        event: Any = None,
        *,
        wait: float = 1.0,
        trigger: str = "direct",
        traceparent: str | None = None,
        hop_count: int = 0,
        request_id: str | None = None,
        links: Sequence[str] = (),
    ) -> Any:
        return await self.invoker.invoke(
            function, event, wait=wait, trigger=trigger, traceparent=traceparent, hop_count=hop_count,
            request_id=request_id, links=links,
        )  # fmt: skip


@asynccontextmanager
async def consuming(
    tmp_path: Path, app: App, queue_settings: Mapping[str, Mapping[str, Any]] | None = None, *, start: bool = True
) -> AsyncIterator[tuple[Store, QueueTriggers, Current]]:
    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    current = Current(store, app.functions)
    triggers = QueueTriggers(
        store, current, app.functions, queue_settings=queue_settings, retry_policy=FAST, receive_wait=0.1
    )
    try:
        if start:
            await triggers.start()
        yield store, triggers, current
    finally:
        await triggers.stop()
        await store.close()


async def until(condition: Callable[[], Any], what: str, bound: float = 15.0) -> None:
    deadline = time.monotonic() + bound
    while not await _value(condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def _value(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


def bodies(event: Mapping[str, Any]) -> list[str]:
    return [r["body"] for r in event["Records"]]


async def test_batches_hold_up_to_batch_size_sqs_records_and_are_acknowledged(tmp_path: Path) -> None:
    app = App("shop")
    batches: list[dict[str, Any]] = []

    @app.on_queue("orders", batch_size=3, concurrency=1)
    def take(event: Any, context: Any) -> None:
        batches.append(event)

    async with consuming(tmp_path, app, start=False) as (store, triggers, _):
        for n in range(7):
            await store.queues.send("orders", f"order-{n}".encode(), attributes={"kind": "retail"})
        await triggers.start()
        await until(lambda: sum(len(b["Records"]) for b in batches) == 7, "seven records")
        assert [bodies(b) for b in batches] == [
            ["order-0", "order-1", "order-2"],
            ["order-3", "order-4", "order-5"],
            ["order-6"],
        ]
        record = batches[0]["Records"][0]
        assert record["eventSource"] == "aws:sqs"
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert record["messageAttributes"]["kind"]["stringValue"] == "retail"
        assert record["eventSourceARN"].endswith(":orders")
        await until(lambda: _depth(store, "orders", 0), "the queue to empty")


async def _records(current: Current, function: str, count: int) -> bool:
    return len(await current.invoker.records.query(function=function, limit=100)) == count


async def _depth(store: Store, queue: str, depth: int) -> bool:
    return (await store.queues.stats(queue)).depth == depth


async def test_batch_window_gathers_messages_that_arrive_while_it_is_open(tmp_path: Path) -> None:
    app = App("shop")
    batches: list[list[str]] = []

    @app.on_queue("orders", batch_size=5, batch_window=2)
    def take(event: Any, context: Any) -> None:
        batches.append(bodies(event))

    async with consuming(tmp_path, app) as (store, _, _):
        await store.queues.send("orders", b"first")
        # Leased by the poller, which keeps the window open for more.
        await until(lambda: _in_flight(store, "orders", 1), "the first message to be leased")
        await store.queues.send("orders", b"second")
        await until(lambda: batches, "a batch")
        assert batches == [["first", "second"]]


async def _in_flight(store: Store, queue: str, count: int) -> bool:
    return (await store.queues.stats(queue)).in_flight == count


async def test_partial_batch_failure_retries_only_the_failed_messages(tmp_path: Path) -> None:
    app = App("shop")
    seen: list[tuple[str, str]] = []

    @app.on_queue("parcels", batch_size=10)
    def pack(event: Any, context: Any) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            seen.append((record["body"], record["attributes"]["ApproximateReceiveCount"]))
            if record["body"] == "heavy" and record["attributes"]["ApproximateReceiveCount"] == "1":
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    async with consuming(tmp_path, app, start=False) as (store, triggers, _):
        for body in (b"a", b"heavy", b"c"):
            await store.queues.send("parcels", body)
        await triggers.start()
        await until(lambda: len(seen) == 4, "the retry of the failed message")
        assert seen == [("a", "1"), ("heavy", "1"), ("c", "1"), ("heavy", "2")]
        await until(lambda: _depth(store, "parcels", 0), "the queue to empty")


async def test_a_raising_handler_gets_the_whole_batch_again(tmp_path: Path) -> None:
    app = App("shop")
    calls: list[list[str]] = []

    @app.on_queue("parcels", batch_size=10)
    def pack(event: Any, context: Any) -> None:
        calls.append(bodies(event))
        if len(calls) == 1:
            raise RuntimeError("the printer jammed")

    async with consuming(tmp_path, app, start=False) as (store, triggers, current):
        for body in (b"a", b"b"):
            await store.queues.send("parcels", body)
        await triggers.start()
        await until(lambda: len(calls) == 2, "the second attempt")
        assert calls == [["a", "b"], ["a", "b"]]
        await until(lambda: _records(current, "pack", 2), "both invocation records")
        records = await current.invoker.records.query(function="pack", limit=10)
        assert sorted(r.status for r in records) == ["failed", "succeeded"]
        assert {r.trigger for r in records} == {"queue"}


async def test_a_message_that_keeps_failing_goes_to_the_configured_dead_letter_queue(tmp_path: Path) -> None:
    app = App("shop")
    attempts: list[str] = []

    @app.on_queue("payments")
    def charge(event: Any, context: Any) -> None:
        attempts.append(event["Records"][0]["attributes"]["ApproximateReceiveCount"])
        raise ValueError("card declined")

    settings = {"payments": {"max_receives": 2, "dead_letter": "payments-failed", "visibility_timeout": 10}}
    async with consuming(tmp_path, app, settings, start=False) as (store, triggers, _):
        await store.queues.send("payments", b'{"order": 7}')
        await triggers.start()
        await until(lambda: _depth(store, "payments-failed", 1), "the dead letter")
        assert attempts == ["1", "2"]
        (dead,) = await store.queues.receive("payments-failed")
        assert dead.body == b'{"order": 7}'
        assert await store.queues.config("payments") == QueueConfig(
            visibility_timeout=10, max_receives=2, dead_letter="payments-failed"
        )


async def test_an_unconfigured_queue_dead_letters_to_queue_dlq_after_three_receives(tmp_path: Path) -> None:
    app = App("shop")
    attempts: list[int] = []

    @app.on_queue("mail")
    def send(event: Any, context: Any) -> None:
        attempts.append(1)
        raise ValueError("smtp down")

    async with consuming(tmp_path, app) as (store, _, _):
        assert await store.queues.config("mail") == QueueConfig(max_receives=3, dead_letter="mail.dlq")
        await store.queues.send("mail", b"hello")
        await until(lambda: _depth(store, "mail.dlq", 1), "the dead letter")
        assert len(attempts) == DEFAULT_MAX_RECEIVES


async def test_fifo_queues_keep_order_per_group_across_concurrent_batches(tmp_path: Path) -> None:
    app = App("bank")
    order: dict[str, list[str]] = {}
    in_flight: set[str] = set()
    overlaps: list[str] = []
    lock = threading.Lock()
    failed_once: set[str] = set()

    @app.on_queue("ledger", batch_size=10, concurrency=3)
    def book(event: Any, context: Any) -> dict[str, Any]:
        groups = [r["attributes"]["MessageGroupId"] for r in event["Records"]]
        with lock:
            overlaps.extend(g for g in groups if g in in_flight)
            in_flight.update(groups)
        time.sleep(0.005)  # work, so batches of different groups overlap
        failures = []
        with lock:
            for record in event["Records"]:
                body = record["body"]
                if body == "a2" and body not in failed_once:
                    failed_once.add(body)
                    failures.append({"itemIdentifier": record["messageId"]})
                else:
                    order.setdefault(body[0], []).append(body)
            in_flight.difference_update(groups)
        return {"batchItemFailures": failures}

    async with consuming(tmp_path, app, {"ledger": {"fifo": True}}) as (store, _, _):
        for n in range(1, 6):
            for group in "abc":
                await store.queues.send("ledger", f"{group}{n}".encode(), group=group)
        await until(lambda: sum(map(len, order.values())) == 15, "every message")
        assert order == {g: [f"{g}{n}" for n in range(1, 6)] for g in "abc"}
        assert failed_once == {"a2"}
        assert overlaps == []


async def test_concurrency_bounds_the_batches_in_flight(tmp_path: Path) -> None:
    app = App("shop")
    together = threading.Barrier(3, timeout=10)
    running: list[int] = []
    peak: list[int] = []
    lock = threading.Lock()

    @app.on_queue("jobs", concurrency=3, timeout=20)
    def work(event: Any, context: Any) -> None:
        with lock:
            running.append(1)
            peak.append(len(running))
        if event["Records"][0]["body"] < "3":
            together.wait()  # only passes if three batches run at the same moment
        with lock:
            running.pop()

    async with consuming(tmp_path, app, start=False) as (store, triggers, _):
        for n in range(6):
            await store.queues.send("jobs", str(n).encode())
        await triggers.start()
        await until(lambda: _depth(store, "jobs", 0), "every job")
        assert len(peak) == 6
        assert max(peak) == 3


async def test_a_lease_is_extended_while_a_slow_handler_runs(tmp_path: Path) -> None:
    app = App("shop")
    counts: list[str] = []

    @app.on_queue("reports", timeout=10)
    def render(event: Any, context: Any) -> None:
        counts.append(event["Records"][0]["attributes"]["ApproximateReceiveCount"])
        time.sleep(3.0)  # three times the visibility timeout

    async with consuming(tmp_path, app, {"reports": {"visibility_timeout": 1.0}}) as (store, _, _):
        await store.queues.send("reports", b"q3")
        await until(lambda: _depth(store, "reports", 0), "the report")
        assert counts == ["1"]


async def test_stop_lets_the_batch_in_flight_finish_and_leaves_the_rest_queued(tmp_path: Path) -> None:
    app = App("shop")
    entered, release = threading.Event(), threading.Event()
    done: list[str] = []

    @app.on_queue("orders", concurrency=1, timeout=20)
    def take(event: Any, context: Any) -> None:
        entered.set()
        release.wait(10)
        done.extend(bodies(event))

    async with consuming(tmp_path, app, start=False) as (store, triggers, _):
        for body in (b"one", b"two", b"three"):
            await store.queues.send("orders", body)
        await triggers.start()
        await until(entered.is_set, "the first batch to start")
        stopping = asyncio.create_task(triggers.stop())
        await asyncio.sleep(0)  # stop() has begun: nothing new is received from here on
        release.set()
        await stopping
        assert done == ["one"]
        stats = await store.queues.stats("orders")
        assert (stats.visible, stats.in_flight) == (2, 0)
        assert triggers.subscriptions() == []


async def test_update_applies_a_new_versions_subscriptions(tmp_path: Path) -> None:
    first, second = App("shop"), App("shop")
    seen: list[tuple[str, list[str]]] = []

    @first.on_queue("orders")
    def take(event: Any, context: Any) -> None:
        seen.append(("v1", bodies(event)))

    @second.on_queue("orders", batch_size=2, batch_window=0.2, name="take")
    def take_v2(event: Any, context: Any) -> None:
        seen.append(("v2", bodies(event)))

    @second.on_queue("refunds")
    def refund(event: Any, context: Any) -> None:
        seen.append(("refund", bodies(event)))

    async with consuming(tmp_path, first) as (store, triggers, current):
        await store.queues.send("orders", b"o1")
        await until(lambda: seen == [("v1", ["o1"])], "version 1")

        current.swap(second.functions)
        await triggers.update(second.functions)
        assert triggers.subscriptions() == [("refund", "refunds"), ("take", "orders")]
        await store.queues.send_many("orders", [OutgoingMessage(b"o2"), OutgoingMessage(b"o3")])
        await store.queues.send("refunds", b"r1")
        await until(lambda: len(seen) == 3, "version 2")
        assert sorted(seen[1:]) == [("refund", ["r1"]), ("v2", ["o2", "o3"])]

        # A version without the subscription: its messages wait, durably, for one that has it.
        current.swap(first.functions)
        await triggers.update({"take": first.functions["take"]}, {"orders": {"visibility_timeout": 5}})
        await store.queues.send("refunds", b"r2")
        await until(lambda: _depth(store, "refunds", 1), "the refund to be queued")
        assert triggers.subscriptions() == [("take", "orders")]
        assert (await store.queues.config("orders")).visibility_timeout == 5
        stats = await store.queues.stats("refunds")
        assert (stats.visible, stats.in_flight) == (1, 0)


async def test_an_update_that_fails_its_checks_leaves_the_running_version(tmp_path: Path) -> None:
    app = App("shop")
    seen: list[str] = []

    @app.on_queue("orders")
    def take(event: Any, context: Any) -> None:
        seen.extend(bodies(event))

    async with consuming(tmp_path, app) as (store, triggers, _):
        with pytest.raises(DeclarationError, match=r"\[queues.orders\]: dead_letter names the queue itself"):
            await triggers.update(app.functions, {"orders": {"dead_letter": "orders"}})
        await store.queues.send("orders", b"still served")
        await until(lambda: seen == ["still served"], "the old version to serve")
        assert (await store.queues.config("orders")).dead_letter == "orders.dlq"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"orders": {"dead_letter": "orders"}}, r"\[queues.orders\]: dead_letter names the queue itself.*orders.dlq"),
        (
            {"orders": {"dead_letter": "b"}, "b": {"dead_letter": "orders"}},
            r"\[queues.orders\]: dead_letter = 'b' makes a loop of dead-letter queues \(orders -> b -> orders\)",
        ),
        (
            {"orders.dlq": {"dead_letter": "orders"}},
            r"\[queues.orders.dlq\]: .*loop of dead-letter queues \(orders.dlq -> orders -> orders.dlq\)",
        ),
        ({"orders": {"visibility_timeout": 13 * 24 * 3600}}, r"\[queues.orders\]: visibility_timeout must be from"),
        ({"orders": {"retention": 15 * 24 * 3600}}, r"\[queues.orders\]: retention must be from"),
        ({"orders": {"dead_letter": "no spaces"}}, r"\[queues.orders\]: invalid dead-letter queue name 'no spaces'"),
        ({"orders": {"dead_letter": "fn.take"}}, r"\[queues.orders\]: dead_letter = 'fn.take' is the platform's"),
    ],
)
async def test_bad_queue_tables_are_reported_with_the_table_and_key(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    app = App("shop")

    @app.on_queue("orders")
    def take(event: Any, context: Any) -> None: ...

    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        with pytest.raises(DeclarationError, match=message):
            QueueTriggers(store, Current(store, app.functions), app.functions, queue_settings=settings)
        # Nothing was applied.
        assert await store.queues.config("orders") == QueueConfig()
    finally:
        await store.close()


def test_queue_tables_fill_in_the_redrive_they_do_not_name() -> None:
    configs = queue_configs({"a": {"max_receives": 5}, "b": {"dead_letter": "b-dead"}, "c": {"fifo": True}})
    assert configs["a"] == QueueConfig(max_receives=5, dead_letter="a.dlq")
    assert configs["b"] == QueueConfig(max_receives=DEFAULT_MAX_RECEIVES, dead_letter="b-dead")
    assert configs["c"] == QueueConfig(max_receives=DEFAULT_MAX_RECEIVES, dead_letter="c.dlq", fifo=True)


def test_a_dead_letter_queue_with_a_table_of_its_own_gets_no_redrive_unless_it_is_consumed() -> None:
    tables: dict[str, dict[str, Any]] = {
        "orders": {"dead_letter": "orders-dead"},
        "orders-dead": {"retention": 3600},
        "c.dlq": {"retention": 60},
    }
    configs = queue_configs(tables, subscribed=["c"])
    assert configs["orders-dead"] == QueueConfig(retention=3600)
    assert configs["c.dlq"] == QueueConfig(retention=60)
    consumed = queue_configs(tables, subscribed=["orders-dead"])
    assert consumed["orders-dead"] == QueueConfig(
        max_receives=DEFAULT_MAX_RECEIVES, dead_letter="orders-dead.dlq", retention=3600
    )


async def test_a_trigger_on_a_functions_invocation_queue_is_refused(tmp_path: Path) -> None:
    app = App("shop")

    @app.on_queue("fn.ship")
    def steal(event: Any, context: Any) -> None: ...

    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        with pytest.raises(DeclarationError, match=r"function 'steal': @app.on_queue\('fn.ship'\): queues named fn"):
            QueueTriggers(store, Current(store, app.functions), app.functions)
    finally:
        await store.close()


CONSUMER = """
import asyncio, sys, time
from pathlib import Path
from triggerfish.app import App
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.store import open_store
from triggerfish.triggers.queues import QueueTriggers

app = App("shop")

@app.on_queue("jobs", timeout=60)
def work(event, context):
    # Written whole, then renamed: the test must never read a marker that exists but is still empty.
    part = Path(sys.argv[2] + ".part")
    part.write_text(event["Records"][0]["messageId"])
    part.rename(sys.argv[2])
    time.sleep(60)  # killed long before this ends

async def main():
    store = await open_store("sqlite:///" + sys.argv[1])
    invoker = Invoker(InProcessRunner(app.functions, platform=StorePlatform(store)), store)
    triggers = QueueTriggers(store, invoker, app.functions, queue_settings={"jobs": {"visibility_timeout": 1}})
    await triggers.start()
    await asyncio.sleep(120)

asyncio.run(main())
"""


async def test_a_message_leased_by_a_killed_consumer_comes_back_after_its_visibility_timeout(tmp_path: Path) -> None:
    path, marker = tmp_path / "s.db", tmp_path / "taken"
    store = await open_store(f"sqlite:///{path}")
    sent = await store.queues.send("jobs", b"render invoice 7")
    await store.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", CONSUMER, str(path), str(marker), env=env)
    try:
        await until(marker.exists, "the child to take the message", bound=30)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert marker.read_text() == sent.message_id

    app = App("shop")
    again: list[dict[str, Any]] = []

    @app.on_queue("jobs")
    def work(event: Any, context: Any) -> None:
        again.extend(event["Records"])

    async with consuming(tmp_path, app, {"jobs": {"visibility_timeout": 1}}) as (store, _, _):
        await until(lambda: again, "the message to come back")
        (record,) = again
        assert (record["messageId"], record["body"]) == (sent.message_id, "render invoice 7")
        assert record["attributes"]["ApproximateReceiveCount"] == "2"
        await until(lambda: _depth(store, "jobs", 0), "the queue to empty")


async def test_a_message_sent_by_a_function_continues_its_trace_and_hop_count(tmp_path: Path) -> None:
    app = App("shop")
    seen: list[tuple[str, int]] = []

    @app.function()
    def checkout(event: Any, context: Any) -> str:
        context.send("receipts", json.dumps({"order": 1}))
        return str(context.traceparent)

    @app.on_queue("receipts")
    def receipt(event: Any, context: Any) -> None:
        seen.append((context.traceparent, context.hop_count))

    async with consuming(tmp_path, app) as (_, _, current):
        parent = await current.invoke("checkout", {})
        await until(lambda: seen, "the receipt")
        ((traceparent, hops),) = seen
        assert traceparent.split("-")[1] == parent.split("-")[1]  # the same trace id
        assert hops == 1


async def test_a_function_declaring_a_queue_twice_is_refused(tmp_path: Path) -> None:
    app = App("shop")

    @app.on_queue("orders")
    @app.on_queue("orders", batch_size=5)
    def take(event: Any, context: Any) -> None: ...

    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    try:
        with pytest.raises(DeclarationError, match=r"function 'take': @app.on_queue\('orders'\) is declared twice"):
            QueueTriggers(store, Current(store, app.functions), app.functions)
    finally:
        await store.close()


async def test_a_body_that_is_not_text_is_never_shown_to_the_handler_and_is_dead_lettered(tmp_path: Path) -> None:
    app = App("shop")
    seen: list[str] = []

    @app.on_queue("orders", batch_size=10)
    def take(event: Any, context: Any) -> None:
        seen.extend(bodies(event))

    async with consuming(tmp_path, app, start=False) as (store, triggers, _):
        await store.queues.send("orders", b"fine")
        binary = await store.queues.send("orders", b"\xff\xfe")
        await triggers.start()
        await until(lambda: _depth(store, "orders.dlq", 1), "the dead letter")
        assert seen == ["fine"]
        (dead,) = await store.queues.receive("orders.dlq")
        assert (dead.message_id, dead.body) == (binary.message_id, b"\xff\xfe")
