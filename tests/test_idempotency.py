"""@idempotent end to end: through the runner, the platform calls and a real store."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import triggerfish
from tests.backends import platform_store
from triggerfish.app import App
from triggerfish.errors import DeclarationError, HandlerError, NonRetryable
from triggerfish.names import IDEMPOTENCY_NAMESPACE
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.context import Context
from triggerfish.runtime.idempotency import idempotent
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.store import Store, open_store

app = App("payments")
charges: list[Any] = []
attempts: list[int] = []
gate = threading.Event()


@app.function
@idempotent(key="$.data.order_id")
def charge(event: dict[str, Any], context: Any) -> dict[str, Any]:
    charges.append(event["data"]["order_id"])
    return {"charged": event["data"]["amount"], "request": context.aws_request_id}


@app.function(retries=2)
@idempotent(key="order_id")
def charge_flaky(event: dict[str, Any], context: Any) -> str:
    attempts.append(context.attempt)
    if context.attempt == 1:
        raise ConnectionError("card network down")
    charges.append(event["order_id"])
    return "charged"


@app.function(timeout=5)
@idempotent(key=lambda event: f"{event['customer']}:{event['order_id']}")
def charge_slow(event: dict[str, Any], context: Any) -> str:
    charges.append(event["order_id"])
    gate.wait(5)
    return "charged"


@app.function
@idempotent(key="{customer}-{order_id}")
async def charge_async(event: dict[str, Any], context: Any) -> str:
    await asyncio.sleep(0)
    charges.append(event["order_id"])
    return "charged"


@app.function
@idempotent(key="id")
def event_only(event: dict[str, Any]) -> int:
    charges.append(event["id"])
    return len(charges)


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(autouse=True)
def _reset() -> None:
    charges.clear()
    attempts.clear()
    gate.clear()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "postgres":
        async with platform_store("postgres") as url:
            assert url is not None
            store = await open_store(url)
            yield store
            await store.close()
        return
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/s.db"
    store = await open_store(url)
    yield store
    await store.close()


@pytest.fixture
async def invoker(store: Store) -> AsyncIterator[Invoker]:
    runner = InProcessRunner(app.functions, platform=StorePlatform(store))
    invoker = Invoker(runner, store, retry_policy=RetryPolicy(base=0.0, ceiling=0.0))
    await invoker.start()
    yield invoker
    await invoker.stop(drain=False)


async def test_a_double_delivered_event_charges_once_and_both_get_the_result(invoker: Invoker) -> None:
    event = {"data": {"order_id": "o-1", "amount": 25}}
    first = await invoker.invoke_async("charge", event)
    second = await invoker.invoke_async("charge", event)
    async with asyncio.timeout(10):
        await invoker.drain()
    assert charges == ["o-1"]
    records = [await invoker.records.get(r) for r in (first, second)]
    assert [r.status for r in records if r] == ["succeeded", "succeeded"]
    direct = await invoker.invoke("charge", event)
    # The stored result of whichever of the two ran first and charged.
    assert direct["charged"] == 25
    assert direct["request"] in (first, second)
    assert charges == ["o-1"]
    await invoker.invoke("charge", {"data": {"order_id": "o-2", "amount": 5}})
    assert charges == ["o-1", "o-2"]


async def test_a_failed_attempt_frees_the_key_so_the_retry_charges(invoker: Invoker) -> None:
    await invoker.invoke_async("charge_flaky", {"order_id": 9})
    async with asyncio.timeout(10):
        await invoker.drain()
    assert attempts == [1, 2]
    assert charges == [9]


async def test_a_duplicate_while_the_first_runs_is_told_to_retry(invoker: Invoker) -> None:
    event = {"customer": "c", "order_id": 1}
    first = asyncio.create_task(invoker.invoke("charge_slow", event))
    await asyncio.sleep(0.1)
    with pytest.raises(HandlerError) as caught:
        await invoker.invoke("charge_slow", event)
    assert caught.value.error_type == "Retry"
    assert "is running with idempotency key" in str(caught.value.error["errorMessage"])
    gate.set()
    assert await first == "charged"
    assert await invoker.invoke("charge_slow", event) == "charged"
    assert charges == [1]


async def test_a_claim_left_by_the_same_invocations_crashed_attempt_is_taken_over(
    store: Store, invoker: Invoker
) -> None:
    # A worker killed mid-handler leaves its claim, which outlives the invocation's lease when the lease margin
    # is shorter than the claim's. The redelivered attempt carries the same request id: it must run (at least
    # once), not wait on its own dead claim with Retry until its retries run out in the dead-letter queue.
    event = {"data": {"order_id": "o-5", "amount": 7}}
    await invoker.stop(drain=False)  # nothing runs until the crashed attempt's claim is in place
    request = await invoker.invoke_async("charge", event)
    claim = {"state": "in_progress", "request_id": request, "at": time.time()}
    await store.kv.put(IDEMPOTENCY_NAMESPACE, "charge:o-5", orjson.dumps(claim), ttl=600)
    await invoker.start()
    async with asyncio.timeout(10):
        await invoker.drain()
    record = await invoker.records.get(request)
    assert record is not None
    assert (record.status, record.attempt) == ("succeeded", 1)
    assert charges == ["o-5"]
    # Another invocation's live claim still holds a duplicate back.
    await store.kv.put(IDEMPOTENCY_NAMESPACE, "charge:o-6", orjson.dumps({**claim, "request_id": "other"}), ttl=600)
    with pytest.raises(HandlerError, match="is running with idempotency key"):
        await invoker.invoke("charge", {"data": {"order_id": "o-6", "amount": 1}})
    assert charges == ["o-5"]


async def test_the_key_is_forgotten_after_the_window(store: Store) -> None:
    clock = Clock()
    store.kv.clock = clock
    runner = InProcessRunner(app.functions, platform=StorePlatform(store))
    invoker = Invoker(runner, store)
    await invoker.invoke("charge_async", {"customer": "c", "order_id": 4})
    await invoker.invoke("charge_async", {"customer": "c", "order_id": 4})
    assert charges == [4]
    [kept] = await store.kv.scan(IDEMPOTENCY_NAMESPACE)
    assert kept.key == "charge_async:c-4"
    clock.offset = 3601.0  # the default window is an hour
    await invoker.invoke("charge_async", {"customer": "c", "order_id": 4})
    assert charges == [4, 4]


async def test_a_handler_taking_only_the_event_still_works(invoker: Invoker) -> None:
    assert await invoker.invoke("event_only", {"id": 5}) == 1
    assert await invoker.invoke("event_only", {"id": 5}) == 1
    assert charges == [5]


@pytest.mark.parametrize(
    ("key", "event", "expected"),
    [
        ("$.data.order_id", {"data": {"order_id": "o1"}}, "o1"),
        ("data.order_id", {"data": {"order_id": 7}}, "7"),
        ("$.Records[0].messageId", {"Records": [{"messageId": "m"}]}, "m"),
        ("{a}/{b.c}", {"a": 1, "b": {"c": "x"}}, "1/x"),
        (lambda e: e["id"], {"id": "k"}, "k"),
    ],
    ids=["json-path", "dotted", "index", "template", "callable"],
)
def test_keys_are_read_from_the_event(key: Any, event: Any, expected: str) -> None:
    seen: list[str] = []

    def call_platform(op: str, args: dict[str, Any]) -> Any:
        seen.append(args["key"])
        return {"version": 1, "value": "{}"} if op == "kv_put" else None

    context = Context(request_id="r", function_name="f", deadline=time.time() + 3, call_platform=call_platform)
    assert idempotent(key)(lambda event, context: "ran")(event, context) == "ran"
    assert seen[0] == f"f:{expected}"


@pytest.mark.parametrize(
    ("key", "event"),
    [
        ("$.data.order_id", {"data": {}}),
        ("$.data.order_id", {"data": "text"}),
        ("order_id", {"order_id": None}),
        ("order_id", {"order_id": {"nested": 1}}),
        ("$.items[3]", {"items": [1]}),
        (lambda e: "", {}),
        (lambda e: "x" * 600, {}),
    ],
)
def test_an_event_without_a_usable_key_fails_without_retries(key: Any, event: Any) -> None:
    context = Context(request_id="r", function_name="f", deadline=time.time() + 3, call_platform=lambda op, a: None)
    with pytest.raises(NonRetryable, match="@idempotent"):
        idempotent(key)(lambda event, context: "ran")(event, context)


@pytest.mark.parametrize(
    ("key", "window", "match"),
    [
        ("", 60, "takes a JSON path"),
        (5, 60, "takes a JSON path"),
        ("{}", 60, "placeholder"),
        ("$", 60, "names no field"),
        ("a..[x]", 60, "cannot read"),
        ("a", 0, "window"),
        ("a", True, "window"),
    ],
)
def test_bad_declarations_are_refused(key: Any, window: Any, match: str) -> None:
    with pytest.raises(DeclarationError, match=match):
        idempotent(key, window=window)


def test_idempotent_is_exported_from_the_package() -> None:
    assert getattr(triggerfish, "idempotent") is idempotent  # noqa: B009 (mypy cannot see the lazy export)


PROCESS_APP = """
from pathlib import Path
import triggerfish
from triggerfish.app import App

app = App("payments")


@app.function
@triggerfish.idempotent(key="$.order_id")
def charge(event, context):
    with Path(event["ledger"]).open("a") as ledger:
        ledger.write(f"charged {event['order_id']} in {context.aws_request_id}\\n")
    return "charged"
"""


async def test_double_delivery_through_worker_processes_charges_once(tmp_path: Path) -> None:
    from triggerfish.runtime.process_runner import ProcessRunner

    app_file = tmp_path / "payments.py"
    app_file.write_text(PROCESS_APP)
    ledger = tmp_path / "ledger.txt"
    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    runner = await ProcessRunner.start(str(app_file), work_dir=tmp_path / "runtime", platform=StorePlatform(store))
    invoker = Invoker(runner, store, retry_policy=RetryPolicy(base=0.0, ceiling=0.0))
    try:
        await invoker.start()
        event = {"order_id": "o-9", "ledger": str(ledger)}
        requests = [await invoker.invoke_async("charge", event) for _ in range(3)]
        async with asyncio.timeout(20):
            await invoker.drain()
        records = [await invoker.records.get(r) for r in requests]
    finally:
        await invoker.stop()
        await runner.close()
        await store.close()
    assert ledger.read_text().count("charged o-9") == 1
    assert [r.status for r in records if r is not None] == ["succeeded"] * 3
