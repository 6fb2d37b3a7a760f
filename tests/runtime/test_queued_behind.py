"""Requests queued behind a running invocation on its worker (`ProcessRunner.run_behind`, the async prefetch):
they run next on the same worker with their own output and time limit, within the function's concurrency, and
run elsewhere when that worker goes first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.runtime.conftest import app, eventually, request
from triggerfish.errors import ThrottledError
from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.runtime.types import InvokeOutcome, PlatformCall

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Platform:
    def __init__(self) -> None:
        self.calls: list[PlatformCall] = []

    async def __call__(self, call: PlatformCall) -> Any:
        self.calls.append(call)
        return "event-id"


PLATFORM = Platform()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def runner(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ProcessRunner]:
    runner = await ProcessRunner.start(app("queued"), work_dir=tmp_path_factory.mktemp("queued"), platform=PLATFORM)
    yield runner
    await runner.close()


async def running(runner: ProcessRunner, **event: Any) -> asyncio.Task[InvokeOutcome]:
    """An invocation of `step` started and seen running on its worker (its slot taken)."""
    task = asyncio.ensure_future(runner.run(request("step", event)))
    await eventually(lambda: runner.stats("step")["busy"] == 1 and runner.stats("step")["workers"] >= 1, 5.0)
    await asyncio.sleep(0.05)  # the request is in the worker's socket
    return task


async def test_a_request_queued_behind_runs_next_on_the_same_worker_with_its_own_output(
    runner: ProcessRunner,
) -> None:
    await runner.run(request("step", {"say": "warm"}))  # a warm worker: a cold one cannot take a queue
    first = await running(runner, say="first", sleep=0.3)
    # wait=0: with the only slot taken, anything but queueing behind would be throttled at once.
    second = await runner.run_behind(request("step", {"say": "second"}), wait=0.0)
    leader = await first
    assert leader.ok
    assert second.ok
    assert second.result["pid"] == leader.result["pid"] == leader.worker_pid
    assert second.result["started"] >= leader.result["ended"]
    assert leader.output == "start first\nend first\n"
    assert second.output == "start second\nend second\n"


async def test_requests_queued_behind_in_one_turn_run_in_order_on_the_same_worker_each_with_its_own_output(
    runner: ProcessRunner,
) -> None:
    """Queued in the same turn of the loop, their frames often reach the worker in one read: it runs each in turn,
    with its own output, as if each had come alone."""
    first = await running(runner, say="lead", sleep=0.3)
    queued = await asyncio.gather(
        *(runner.run_behind(request("step", {"say": say}), wait=0.0) for say in ("a", "b", "c"))
    )
    leader = await first
    assert leader.ok
    assert [outcome.ok for outcome in queued] == [True, True, True]
    assert {outcome.result["pid"] for outcome in queued} == {leader.worker_pid}
    starts = [outcome.result["started"] for outcome in queued]
    assert leader.result["ended"] <= starts[0] <= starts[1] <= starts[2]
    assert [outcome.output for outcome in queued] == [f"start {say}\nend {say}\n" for say in ("a", "b", "c")]


async def test_a_leader_s_platform_calls_are_answered_while_a_request_waits_behind_it(runner: ProcessRunner) -> None:
    before = len(PLATFORM.calls)
    first = await running(runner, say="caller", sleep=0.2, call=True)
    second = await runner.run_behind(request("step", {"say": "after", "call": True}), wait=0.0)
    leader = await first
    assert leader.ok, leader.error
    assert second.ok, second.error
    assert [call.args["event"]["data"] for call in PLATFORM.calls[before:]] == [{"say": "caller"}, {"say": "after"}]
    assert [call.request_id for call in PLATFORM.calls[before:]] == [leader.request_id, second.request_id]


async def test_a_queued_request_s_time_limit_counts_from_its_start(runner: ProcessRunner) -> None:
    first = await running(runner, say="long", sleep=0.6)
    # 0.6 s behind 0.6 s: over the 1 s limit if counted from when it was sent.
    second = await runner.run_behind(request("step", {"say": "late", "sleep": 0.6}), wait=0.0)
    assert (await first).ok
    assert second.ok, second.error
    assert second.result["remaining_ms"] > 900


async def test_a_queued_request_that_runs_too_long_times_out_at_its_own_deadline(runner: ProcessRunner) -> None:
    # The worker's one timer is armed for the first's deadline, 0.4 s into the second: there it must be armed
    # again for the second's, not end it (see triggerfish.runtime.worker_process).
    first = await running(runner, say="short", sleep=0.6)
    second = await runner.run_behind(request("step", {"say": "stuck", "sleep": 3.0}), wait=0.0)
    assert (await first).ok
    assert not second.ok
    assert second.error is not None
    assert second.error["errorType"] == "Runtime.Timeout"
    assert 900 <= second.duration_ms < 2500


async def test_concurrency_still_bounds_what_runs_the_queued_request_holds_the_slot(runner: ProcessRunner) -> None:
    first = await running(runner, say="one", sleep=0.2)
    second = asyncio.ensure_future(runner.run_behind(request("step", {"say": "two", "sleep": 0.5}), wait=0.0))
    assert (await first).ok
    with pytest.raises(ThrottledError):
        await runner.run(request("step", {"say": "three"}), wait=0.0)
    assert (await second).ok
    assert (await runner.run(request("step", {"say": "four"}), wait=0.0)).ok


async def test_a_request_queued_behind_one_that_times_out_runs_on_another_worker(runner: ProcessRunner) -> None:
    first = await running(runner, say="stuck", sleep=3.0)
    second = await runner.run_behind(request("step", {"say": "moved"}), wait=0.0)
    leader = await first
    assert not leader.ok
    assert leader.error is not None
    assert leader.error["errorType"] == "Runtime.Timeout"
    assert second.ok, second.error
    assert second.result["pid"] != leader.worker_pid
    assert second.output == "start moved\nend moved\n"
    # Its slot was handed on and freed: the next invocation runs at once.
    assert (await runner.run(request("step", {"say": "next"}), wait=0.0)).ok


async def test_without_a_running_invocation_run_behind_is_an_ordinary_run(runner: ProcessRunner) -> None:
    outcome = await runner.run_behind(request("step", {"say": "alone"}), wait=0.0)
    assert outcome.ok
    assert outcome.output == "start alone\nend alone\n"


async def test_up_to_three_requests_queue_behind_one_each_with_its_own_output_in_order(runner: ProcessRunner) -> None:
    first = await running(runner, say="a", sleep=0.3)
    queued = [
        asyncio.ensure_future(runner.run_behind(request("step", {"say": say}), wait=0.0)) for say in ("b", "c", "d")
    ]
    await asyncio.sleep(0)  # all three queued on the worker
    with pytest.raises(ThrottledError):  # a fourth finds no room: the queue is full and the only slot taken
        await runner.run_behind(request("step", {"say": "e"}), wait=0.0)
    outcomes = [await first, *[await task for task in queued]]
    assert [outcome.output for outcome in outcomes] == [f"start {say}\nend {say}\n" for say in "abcd"]
    assert len({outcome.worker_pid for outcome in outcomes}) == 1
    starts = [outcome.result["started"] for outcome in outcomes]
    ends = [outcome.result["ended"] for outcome in outcomes]
    assert all(ends[i] <= starts[i + 1] for i in range(3))  # one after another, never two at once


async def test_a_sync_caller_waiting_for_a_slot_is_not_overtaken_by_requests_queueing_behind(
    runner: ProcessRunner,
) -> None:
    first = await running(runner, say="busy", sleep=0.2)
    queued = [asyncio.ensure_future(runner.run_behind(request("step", {"say": say}), wait=5.0)) for say in "xyz"]
    await asyncio.sleep(0)
    caller = asyncio.ensure_future(runner.run(request("step", {"say": "sync"}), wait=5.0))
    await asyncio.sleep(0.02)  # the caller waits for the slot
    late = await runner.run_behind(request("step", {"say": "late"}), wait=5.0)
    waited = await caller
    assert waited.ok
    assert late.ok
    assert waited.result["started"] < late.result["started"]
    assert all(outcome.ok for outcome in [await task for task in [first, *queued]])


async def test_an_event_that_cannot_be_sent_is_refused_without_taking_the_worker_or_a_slot(
    runner: ProcessRunner,
) -> None:
    first = await running(runner, say="holding", sleep=0.3)
    refused = await runner.run_behind(request("step", {"say": object()}), wait=0.0)
    assert not refused.ok
    assert refused.error is not None
    assert refused.error["errorType"] == "InvalidRequestContentException"
    assert runner.stats("step")["busy"] == 1  # its worker was not handed back as idle while it runs
    with pytest.raises(ThrottledError):  # the only slot is still the running invocation's
        await runner.run(request("step", {"say": "sync"}), wait=0.0)
    assert (await first).ok
