"""The async path end to end: retries, backoff, destinations, dead letters, event age, concurrency, leases."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.patience import until
from triggerfish.app import App
from triggerfish.errors import InvocationError, NonRetryable, Retry
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.store import Store, open_store
from triggerfish.store.atomic import Ack

ROOT = Path(__file__).resolve().parent.parent
FAST = RetryPolicy(base=0.0, ceiling=0.0)

app = App("shop")
calls: dict[str, list[Any]] = {}
running = {"now": 0, "most": 0}
lock = threading.Lock()


def note(name: str, value: Any) -> None:
    with lock:
        calls.setdefault(name, []).append(value)


@app.function(on_success="queue:shipped")
def ship(event: dict[str, Any], context: Any) -> dict[str, Any]:
    note("ship", context.attempt)
    return {"shipped": event["order"]}


@app.function
def flaky(event: Any, context: Any) -> str:
    note("flaky", context.attempt)
    raise RuntimeError(f"attempt {context.attempt} failed")


@app.function(retries=5, on_failure="queue:refused")
def refuses(event: Any, context: Any) -> None:
    note("refuses", context.attempt)
    raise NonRetryable("the order is invalid")


@app.function(retries=1)
def later(event: Any, context: Any) -> str:
    note("later", time.monotonic())
    if context.attempt == 1:
        raise Retry("not yet", delay=0.3)
    return "ok"


@app.function(retries=0, on_failure="function:on_failure_handler")
def fails_to_function(event: Any) -> None:
    raise ValueError("boom")


@app.function
def on_failure_handler(event: dict[str, Any], context: Any) -> None:
    note("on_failure_handler", (event, context.hop_count))


@app.function(retries=0, dead_letter="queue:graveyard", on_success="bus:results")
def to_graveyard(event: Any) -> str:
    if event.get("fail"):
        raise ValueError("no")
    return "fine"


@app.function(on_success="function:echo")
def echo(event: Any, context: Any) -> str:
    note("echo", context.hop_count)
    return "again"


@app.function(concurrency=2)
def busy(event: Any) -> None:
    with lock:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
    time.sleep(0.05)
    with lock:
        running["now"] -= 1


@app.function
def pack(event: Any) -> None:
    note("pack", event["order"])


@app.function
def label(event: Any) -> None:
    note("label", event["order"])


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    running.update(now=0, most=0)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/s.db"
    store = await open_store(url)
    yield store
    await store.close()


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
async def invoker(store: Store) -> AsyncIterator[Invoker]:
    invoker = Invoker(InProcessRunner(app.functions), store, retry_policy=FAST)
    await invoker.start()
    yield invoker
    await invoker.stop(drain=False)


async def drain(invoker: Invoker) -> None:
    async with asyncio.timeout(10):
        await invoker.drain()


async def queued(store: Store, queue: str) -> list[dict[str, Any]]:
    messages = await store.queues.receive(queue, max_messages=100)
    return [orjson.loads(m.body) for m in messages]


async def test_an_async_invocation_runs_and_its_result_goes_to_on_success(invoker: Invoker, store: Store) -> None:
    request_id = await invoker.invoke_async("ship", {"order": 7})
    await drain(invoker)
    assert calls["ship"] == [1]
    record = await invoker.records.get(request_id)
    assert record is not None
    assert (record.status, record.trigger) == ("succeeded", "async")
    [success] = await queued(store, "shipped")
    assert success["version"] == "1.0"
    assert success["requestContext"]["requestId"] == request_id
    assert success["requestContext"]["condition"] == "Success"
    assert success["requestContext"]["approximateInvokeCount"] == 1
    assert success["requestContext"]["functionArn"].endswith(":function:app-ship:1")
    assert success["requestPayload"] == {"order": 7}
    assert success["responsePayload"] == {"shipped": 7}
    assert success["responseContext"] == {"statusCode": 200, "executedVersion": "1"}
    assert (await store.queues.stats("fn.ship")).depth == 0


async def test_failures_are_retried_twice_then_kept_in_the_platform_dead_letter_queue(
    invoker: Invoker, store: Store
) -> None:
    request_id = await invoker.invoke_async("flaky", {"n": 1})
    await drain(invoker)
    assert calls["flaky"] == [1, 2, 3]
    attempts = await invoker.records.attempts(request_id)
    assert [(r.attempt, r.status) for r in attempts] == [(1, "failed"), (2, "failed"), (3, "failed")]
    [dead] = await queued(store, "dlq.flaky")
    assert dead["requestContext"]["condition"] == "RetriesExhausted"
    assert dead["requestContext"]["approximateInvokeCount"] == 3
    assert dead["responseContext"]["functionError"] == "Unhandled"
    assert dead["responsePayload"]["errorMessage"] == "attempt 3 failed"
    assert [a["error"]["errorMessage"] for a in dead["attempts"]] == [f"attempt {n} failed" for n in (1, 2, 3)]
    assert dead["requestPayload"] == {"n": 1}


async def test_non_retryable_goes_straight_to_on_failure(invoker: Invoker, store: Store) -> None:
    await invoker.invoke_async("refuses", {})
    await drain(invoker)
    assert calls["refuses"] == [1]
    [failure] = await queued(store, "refused")
    assert failure["requestContext"]["condition"] == "NonRetryable"
    assert failure["responsePayload"]["errorType"] == "NonRetryable"
    assert await queued(store, "dlq.refuses") == []


async def test_retry_with_a_delay_waits_that_long(invoker: Invoker) -> None:
    request_id = await invoker.invoke_async("later", {})
    await drain(invoker)
    first, second = calls["later"]
    assert second - first >= 0.29
    record = await invoker.records.get(request_id)
    assert record is not None
    assert (record.attempt, record.status) == (2, "succeeded")


async def test_a_function_failure_destination_is_invoked_with_the_record(invoker: Invoker) -> None:
    request_id = await invoker.invoke_async("fails_to_function", {"x": 1}, hop_count=2)
    await drain(invoker)
    [(record, hops)] = calls["on_failure_handler"]
    assert record["requestContext"]["requestId"] == request_id
    assert record["responsePayload"]["errorType"] == "ValueError"
    assert hops == 3  # the destination is one hop further along the chain


async def test_dead_letter_is_used_without_on_failure_and_success_reaches_a_bus(invoker: Invoker, store: Store) -> None:
    await invoker.invoke_async("to_graveyard", {"fail": True})
    ok = await invoker.invoke_async("to_graveyard", {"fail": False})
    await drain(invoker)
    [dead] = await queued(store, "graveyard")
    assert dead["requestContext"]["condition"] == "RetriesExhausted"
    [published] = await store.log.read("bus.results")
    event = orjson.loads(published.data)
    assert event["type"] == "Lambda Function Invocation Result - Success"
    assert event["source"] == "lambda"
    assert event["data"]["requestContext"]["requestId"] == ok


async def test_an_invocation_older_than_max_event_age_is_not_run_but_kept(store: Store) -> None:
    clock = Clock()
    invoker = Invoker(InProcessRunner(app.functions), store, retry_policy=FAST, clock=clock)
    request_id = await invoker.invoke_async("ship", {"order": 1})
    clock.offset = 6 * 3600 + 1  # the default max_event_age is six hours
    await invoker.start()
    try:
        await drain(invoker)
    finally:
        await invoker.stop()
    assert "ship" not in calls
    record = await invoker.records.get(request_id)
    assert record is not None
    assert record.status == "expired"
    [dead] = await queued(store, "dlq.ship")
    assert dead["requestContext"]["condition"] == "EventAgeExceeded"
    assert dead["responsePayload"]["errorType"] == "EventAgeExceeded"


async def test_never_more_in_flight_than_the_concurrency(invoker: Invoker) -> None:
    for n in range(12):
        await invoker.invoke_async("busy", {"n": n})
    await drain(invoker)
    assert running["most"] == 2
    assert len(await invoker.records.query(function="busy", status="succeeded")) == 12


async def test_settled_invocations_leave_nothing_in_flight_and_a_stop_mid_drain_loses_none(store: Store) -> None:
    """Each invocation's task takes itself out of what is in flight when it settles (no done callback): after a
    drain nothing is in flight, after a stop mid-drain (tasks cancelled, some before they began) nothing either, and
    what the stop cut short runs after a restart (once its lease ends), each invocation recorded as succeeded."""
    # busy runs 0.05 s under a timeout of 3 s: leases of 3.1 s, so what the stop leaves leased comes back soon.
    invoker = Invoker(InProcessRunner(app.functions), store, retry_policy=FAST, lease_margin=0.1)
    await invoker.start()
    try:
        await _stop_mid_drain(invoker)
    finally:
        await invoker.stop(drain=False)


async def _stop_mid_drain(invoker: Invoker) -> None:
    dispatcher = invoker.dispatcher
    for n in range(12):
        await invoker.invoke_async("busy", {"n": n})
    await drain(invoker)
    assert dispatcher.in_flight == 0
    ids = [await invoker.invoke_async("busy", {"n": n}) for n in range(40)]
    await until(lambda: dispatcher.in_flight > 0, 10, "the dispatcher took invocations")
    await dispatcher.stop(drain=False)
    assert dispatcher.in_flight == 0
    await dispatcher.start()
    await drain(invoker)
    assert dispatcher.in_flight == 0
    settled = await invoker.records.query(function="busy", status="succeeded", limit=1000)
    assert {record.request_id for record in settled} >= set(ids)


async def test_invocations_of_several_functions_settle_in_one_write_each_acknowledged_with_its_record(
    invoker: Invoker, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fanned-out event's invocations finish together on their functions' queues: their records and
    acknowledgements go in one store write, and every invocation is recorded and taken off its own queue."""
    writes: list[set[str]] = []
    atomic = store.atomic

    async def counted(ops: Any) -> Any:
        acks = {op.queue for op in ops if isinstance(op, Ack)}
        if acks:
            writes.append(acks)
            if len(writes) == 1:  # the first settle holds the rest back until every handler ran
                await until(lambda: len(calls.get("pack", [])) + len(calls.get("label", [])) >= 20, 10, "all ran")
        return await atomic(ops)

    monkeypatch.setattr(store, "atomic", counted)
    for n in range(10):
        await invoker.invoke_async("pack", {"order": n})
        await invoker.invoke_async("label", {"order": n})
    await drain(invoker)
    assert sorted(calls["pack"]) == sorted(calls["label"]) == list(range(10))
    assert {"fn.pack", "fn.label"} in writes  # settled together, not one write per function's queue
    assert len(writes) < 20
    for function in ("pack", "label"):
        assert len(await invoker.records.query(function=function, status="succeeded")) == 10
        assert (await store.queues.stats(f"fn.{function}")).depth == 0


async def test_a_malformed_message_is_moved_to_the_dead_letter_queue_not_retried(
    invoker: Invoker, store: Store
) -> None:
    await store.queues.send("fn.ship", b"\xff not json")
    await store.queues.send("fn.ship", b'{"request_id": 5}')
    await drain(invoker)
    kept = await store.queues.receive("dlq.ship", max_messages=10)
    assert sorted(m.body for m in kept) == [b'{"request_id": 5}', b"\xff not json"]
    assert "ship" not in calls


async def test_work_queued_while_stopped_runs_after_start_and_drain_says_when_not_running(store: Store) -> None:
    invoker = Invoker(InProcessRunner(app.functions), store, retry_policy=FAST)
    await invoker.invoke_async("ship", {"order": 2})
    with pytest.raises(InvocationError, match="dispatcher is not running"):
        await invoker.drain()
    await invoker.start()
    await drain(invoker)
    await invoker.stop()
    assert calls["ship"] == [1]


WORKER_APP = """
import os, sys, time
from pathlib import Path
from triggerfish.app import App

app = App("crash")


@app.function(timeout=1.0)
def work(event, context):
    marks = Path(event["marks"])
    with marks.open("a") as f:
        f.write(f"start {context.request_id} at {time.time()}\\n")
    if event.get("hang") and len(marks.read_text().splitlines()) == 1:
        time.sleep(30)
    return "done"


@app.function(retries=1)
def dies(event, context):
    if context.attempt == 1:
        os._exit(3)  # the worker process dies mid-invocation
    return {"survived": context.attempt}
"""

CHILD = """
import asyncio, sys
from pathlib import Path
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.store import open_store

async def main():
    store = await open_store(sys.argv[1])
    runner = await ProcessRunner.start(sys.argv[4], work_dir=Path(sys.argv[5]))
    invoker = Invoker(runner, store, lease_margin=0.5)
    if sys.argv[3] == "hang":
        await invoker.invoke_async("work", {"marks": sys.argv[2], "hang": True})
    await invoker.start()
    await asyncio.sleep(30 if sys.argv[3] == "hang" else 0)
    async with asyncio.timeout(20):
        await invoker.drain()
    record = (await invoker.records.query(function="work", status="succeeded"))[0]
    print(record.request_id)
    await invoker.stop()
    await runner.close()
    await store.close()

asyncio.run(main())
"""


@pytest.mark.slow
def test_a_dispatcher_killed_mid_invocation_loses_its_lease_and_the_invocation_runs_again(tmp_path: Path) -> None:
    """Through real worker processes: the parent dies (SIGKILL) while a worker runs the handler."""
    url = f"sqlite:///{tmp_path}/s.db"
    marks = tmp_path / "marks.txt"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    app_file = tmp_path / "worker_app.py"
    app_file.write_text(textwrap.dedent(WORKER_APP))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    common = [str(app_file), str(tmp_path / "runtime")]
    # Its own session, so that killing it takes its zygotes and workers too, as a machine failure would.
    first = subprocess.Popen(
        [sys.executable, str(script), url, str(marks), "hang", *common], env=env, start_new_session=True
    )
    deadline = time.monotonic() + 15
    while not (marks.exists() and marks.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marks.exists(), "the first dispatcher never started the invocation"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(5)
    second = subprocess.run(
        [sys.executable, str(script), url, str(marks), "finish", *common],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 0, second.stderr
    starts = marks.read_text().splitlines()
    assert len(starts) == 2
    request_id = starts[0].split()[1]
    assert starts[1].split()[1] == request_id  # the same invocation, run again by the new dispatcher
    assert second.stdout.strip() == request_id
    # Not before the first lease (timeout 1 s + margin 0.5 s) ran out.
    assert float(starts[1].split()[3]) - float(starts[0].split()[3]) >= 1.4


async def test_async_through_worker_processes_retries_a_worker_that_died(tmp_path: Path) -> None:
    from triggerfish.runtime.process_runner import ProcessRunner

    app_file = tmp_path / "worker_app.py"
    app_file.write_text(textwrap.dedent(WORKER_APP))
    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    runner = await ProcessRunner.start(str(app_file), work_dir=tmp_path / "runtime")
    invoker = Invoker(runner, store, retry_policy=FAST)
    try:
        await invoker.start()
        done = await invoker.invoke_async("work", {"marks": str(tmp_path / "marks.txt")})
        died = await invoker.invoke_async("dies", {})
        async with asyncio.timeout(20):
            await invoker.drain()
    finally:
        await invoker.stop()
        await runner.close()
    first = await invoker.records.get(done)
    assert first is not None
    assert (first.status, first.worker_pid is not None) == ("succeeded", True)
    attempts = await invoker.records.attempts(died)
    assert [r.status for r in attempts] == ["failed", "succeeded"]
    assert attempts[0].error is not None
    assert "exit" in str(attempts[0].error["errorMessage"]).lower()
    assert attempts[0].worker_pid != attempts[1].worker_pid
    await store.close()


async def test_a_function_that_is_its_own_destination_is_stopped_by_the_loop_guard(
    invoker: Invoker, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="triggerfish.loopguard"):
        await invoker.invoke_async("echo", {})
        await drain(invoker)
    assert calls["echo"] == list(range(17))  # hops 0 to 16 run; the 17th is stopped
    assert "stopped a destination to 'function:echo' from function 'echo'" in caplog.text
    [stopped] = await store.log.read("platform.loop-stopped")
    kept = orjson.loads(stopped.data)
    assert (kept["op"], kept["target"], kept["hop_count"]) == ("destination", "function:echo", 17)
    assert kept["payload"]["requestContext"]["condition"] == "Success"


PIPELINED_APP = """
import os, time
from triggerfish.app import App

app = App("pipelined")

@app.function(concurrency=1, timeout=5.0)
def say(event, context):
    os.write(1, f"start {event['n']}\\n".encode())
    time.sleep(event.get("sleep", 0.0))
    print("end", event["n"], flush=True)
    return os.getpid()
"""


async def pipelined(tmp_path: Path) -> tuple[Store, Any, Invoker]:
    from triggerfish.runtime.process_runner import ProcessRunner

    app_file = tmp_path / "pipelined_app.py"
    app_file.write_text(textwrap.dedent(PIPELINED_APP))
    store = await open_store(f"sqlite:///{tmp_path}/s.db")
    runner = await ProcessRunner.start(str(app_file), work_dir=tmp_path / "runtime")
    return store, runner, Invoker(runner, store, retry_policy=FAST)


async def test_through_worker_processes_each_queued_invocation_keeps_its_own_output(tmp_path: Path) -> None:
    store, runner, invoker = await pipelined(tmp_path)
    try:
        assert invoker.dispatcher.pipelined
        ids = await invoker.invoke_async_many("say", [{"n": n} for n in range(60)])
        await invoker.start()
        async with asyncio.timeout(30):
            await invoker.drain()
        records = [await invoker.records.get(request_id) for request_id in ids]
    finally:
        await invoker.stop()
        await runner.close()
        await store.close()
    assert all(record is not None and record.status == "succeeded" for record in records)
    assert [record.output for record in records if record is not None] == [f"start {n}\nend {n}\n" for n in range(60)]


async def test_through_worker_processes_a_worker_killed_mid_drain_loses_no_invocation(tmp_path: Path) -> None:
    store, runner, invoker = await pipelined(tmp_path)
    try:
        ids = await invoker.invoke_async_many("say", [{"n": n, "sleep": 0.02} for n in range(40)])
        recorded: list[str] = []
        five = asyncio.Event()

        def count(record: Any) -> None:
            recorded.append(record.request_id)
            if len(recorded) >= 5:
                five.set()

        invoker.records.listeners.append(count)
        await invoker.start()
        async with asyncio.timeout(30):
            await five.wait()
            (pid,) = runner.stats("say")["pids"]
            os.kill(pid, signal.SIGKILL)
            await invoker.drain()
        attempts = [await invoker.records.attempts(request_id) for request_id in ids]
    finally:
        await invoker.stop()
        await runner.close()
        await store.close()
    # Every invocation ran to success; the one running when its worker was killed failed once, then ran again.
    assert all(runs and runs[-1].status == "succeeded" for runs in attempts)
    failed = [runs[0] for runs in attempts if runs[0].status != "succeeded"]
    assert len(failed) <= 1
    assert all(run.worker_pid == pid for run in failed)
    assert any(runs[-1].worker_pid != pid for runs in attempts)
