"""Worker pools: warm reuse, cold starts, concurrency and throttling, min_warm, scale to zero,
isolation (environment, working directory), captured output, async handlers and platform calls."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.patience import scaled
from tests.runtime.conftest import app, eventually, request
from triggerfish.errors import FunctionNotFoundError, ThrottledError
from triggerfish.runtime import protocol
from triggerfish.runtime.pool import QUEUE_DEPTH, WorkerPool
from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.runtime.types import PlatformCall

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Platform:
    """Answers publish like the real platform and refuses kv_get, remembering every call."""

    def __init__(self) -> None:
        self.calls: list[PlatformCall] = []

    async def __call__(self, call: PlatformCall) -> Any:
        self.calls.append(call)
        await asyncio.sleep(0)
        if call.op == "kv_get":
            raise KeyError("no such namespace")
        return None


PLATFORM = Platform()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pool")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def runner(work_dir: Path) -> AsyncIterator[ProcessRunner]:
    runner = await ProcessRunner.start(app("basic"), work_dir=work_dir, platform=PLATFORM)
    yield runner
    await runner.close()


async def test_the_first_invocation_is_cold_and_the_next_reuse_the_warm_worker(runner: ProcessRunner) -> None:
    first = await runner.run(request("echo", {"n": 1}))
    second = await runner.run(request("echo", {"n": 2}))
    assert first.ok
    assert first.result["event"] == {"n": 1}
    assert first.cold_start
    assert first.init_duration_ms is not None
    assert first.init_duration_ms > 0
    assert not second.cold_start
    assert second.init_duration_ms is None
    assert second.result["pid"] == first.result["pid"] == first.worker_pid
    assert first.result["pid"] != os.getpid()
    assert second.result["request_id"] == second.request_id


async def test_each_function_runs_in_its_own_processes(runner: ProcessRunner) -> None:
    echo = await runner.run(request("echo"))
    warm = await runner.run(request("warm"))
    assert echo.worker_pid != warm.worker_pid


async def test_min_warm_workers_are_started_ahead_of_the_first_invocation(runner: ProcessRunner) -> None:
    # The runner starts them in the background as it starts: on a loaded machine (or first in its xdist worker,
    # just after the module's runner started) the invocation must come once one is up, not while it boots.
    await eventually(lambda: runner.stats("warm")["idle"] >= 1, scaled(30))
    assert runner.stats("warm")["idle"] >= 1, "the min_warm worker never came up"
    outcome = await runner.run(request("warm"))
    assert outcome.ok
    assert not outcome.cold_start


async def test_a_worker_sees_only_its_declared_environment_and_its_own_directory(
    runner: ProcessRunner, work_dir: Path
) -> None:
    os.environ["TRIGGERFISH_TEST_SECRET"] = "parent-only"  # set after the zygote started: must not leak anyway
    try:
        outcome = await runner.run(request("environment"))
    finally:
        del os.environ["TRIGGERFISH_TEST_SECRET"]
    env = outcome.result["env"]
    cwd = str(work_dir / "functions" / "environment")
    assert outcome.result["cwd"] == cwd
    assert env["GREETING"] == "hello"
    assert env["HOME"] == cwd
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "basic-environment"  # the Lambda name: <app>-<function>
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["_HANDLER"] == "basic:environment"
    assert env["TRIGGERFISH_FUNCTION"] == "environment"
    assert set(env) <= {
        *("PATH", "LANG", "TZ", "HOME", "GREETING", "_HANDLER"),
        *("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        *("AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE"),
        *("AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_X_AMZN_TRACE_ID"),
        *("AWS_REGION", "AWS_DEFAULT_REGION", "TRIGGERFISH_APP", "TRIGGERFISH_FUNCTION", "TRIGGERFISH_VERSION"),
    }


async def test_output_of_every_kind_is_captured_per_invocation(runner: ProcessRunner) -> None:
    outcome = await runner.run(request("chatty", "hi", request_id="chatty-1"))
    assert outcome.ok
    lines = outcome.output.splitlines()
    assert "to stdout hi" in lines
    assert "to stderr" in lines
    assert any("[chatty-1] through the logger" in line for line in lines)
    assert "C-level write" in lines
    assert "from a child process" in lines
    assert not outcome.output_truncated
    quiet = await runner.run(request("echo"))
    assert quiet.output == ""


async def test_an_async_handler_keeps_one_event_loop_for_the_workers_life(runner: ProcessRunner) -> None:
    results = [await runner.run(request("aecho", i)) for i in range(3)]
    assert all(r.ok for r in results)
    assert [r.result["event"] for r in results] == [0, 1, 2]
    assert results[-1].result["loops"] == 1


async def test_platform_calls_reach_the_parent_and_errors_come_back_as_exceptions(runner: ProcessRunner) -> None:
    PLATFORM.calls.clear()
    outcome = await runner.run(request("publisher", 5, traceparent=None, hop_count=2))
    assert outcome.ok, outcome.error
    publish, kv_get = PLATFORM.calls
    assert publish.op == "publish"
    assert publish.function == "publisher"
    assert publish.request_id == outcome.request_id
    assert publish.args["event"]["type"] == "thing.happened"
    assert publish.args["event"]["data"] == {"n": 5}
    assert outcome.result["event_id"] == publish.args["event"]["id"]
    assert kv_get.op == "kv_get"
    assert "KeyError" in outcome.result["error"]
    assert "no such namespace" in outcome.result["error"]


async def test_a_caller_past_the_concurrency_limit_is_throttled_after_waiting(runner: ProcessRunner) -> None:
    busy = asyncio.ensure_future(runner.run(request("slow", 0.5)))
    await asyncio.sleep(0.1)
    began = time.monotonic()
    with pytest.raises(ThrottledError) as caught:
        await runner.run(request("slow", 0), wait=0.1)
    assert caught.value.function == "slow"
    assert 0.09 <= time.monotonic() - began < 0.4
    # A caller willing to wait longer gets the slot once it frees up.
    waited = await runner.run(request("slow", 0), wait=2.0)
    assert waited.ok
    assert (await busy).ok


async def test_unknown_functions_and_versions_are_not_found(runner: ProcessRunner) -> None:
    with pytest.raises(FunctionNotFoundError, match=r"'nope'.*echo"):
        await runner.run(request("nope"))
    with pytest.raises(FunctionNotFoundError, match="version '7'"):
        await runner.run(request("echo", version="7"))
    with pytest.raises(FunctionNotFoundError):
        runner.settings("nope")
    assert runner.settings("environment").memory_mb == 256


async def test_idle_workers_stop_after_the_idle_timeout(tmp_path: Path) -> None:
    runner = await ProcessRunner.start(app("basic"), work_dir=tmp_path, idle_timeout=0.2)
    try:
        first = await runner.run(request("echo"))
        assert runner.stats("echo")["workers"] == 1
        await eventually(lambda: runner.stats("echo")["workers"] == 0, 3.0)
        assert runner.stats("echo")["workers"] == 0
        assert runner.stats("warm")["workers"] == 1  # min_warm keeps one
        again = await runner.run(request("echo"))
        assert again.cold_start
        assert again.worker_pid != first.worker_pid
    finally:
        await runner.close()


async def test_an_event_that_is_not_json_is_refused_without_hurting_the_worker(runner: ProcessRunner) -> None:
    outcome = await runner.run(request("echo", {1, 2}))
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == "InvalidRequestContentException"
    assert "set" in outcome.error["errorMessage"]
    assert not outcome.retryable
    assert (await runner.run(request("echo", [1, 2]))).result["event"] == [1, 2]


async def test_an_event_over_the_frame_limit_is_refused(runner: ProcessRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "MAX_FRAME", 1024)  # the parent's side of the limit, kept small for speed
    outcome = await runner.run(request("echo", "x" * 2000))
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == "InvalidRequestContentException"
    assert "too large" in outcome.error["errorMessage"]
    monkeypatch.undo()
    assert (await runner.run(request("echo", "small"))).ok


async def test_a_cancelled_caller_does_not_leave_a_busy_worker_behind(runner: ProcessRunner) -> None:
    task = asyncio.ensure_future(runner.run(request("slow", 1.0), wait=2.0))
    await asyncio.sleep(0.2)
    busy = runner.stats("slow")["pids"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The slot is free at once and the abandoned worker is gone; the next caller gets a fresh one.
    outcome = await runner.run(request("slow", 0), wait=0.1)
    assert outcome.ok
    assert outcome.worker_pid not in busy


class _Busy:
    """A running worker as `WorkerPool._queueable` sees it: how many wait behind it, and whether one more may."""

    def __init__(self, queued: int, alive: bool = True) -> None:
        self.queued = queued
        self.alive = alive

    def can_queue(self, depth: int) -> bool:
        return self.alive and self.queued < depth


def _queueable(busy: list[_Busy], stale: list[_Busy]) -> Any:
    pool = object.__new__(WorkerPool)
    pool._busy = set(busy)  # type: ignore[arg-type]
    pool._stale = set(stale)  # type: ignore[arg-type]
    return pool._queueable()


async def test_a_request_queues_behind_the_least_queued_worker_that_may_take_it() -> None:
    full, two, one, stale_idle, dead_idle = _Busy(QUEUE_DEPTH), _Busy(2), _Busy(1), _Busy(0), _Busy(0, alive=False)
    assert _queueable([full, two, one, stale_idle, dead_idle], stale=[stale_idle]) is one
    idle = _Busy(0)
    assert _queueable([full, two, one, idle, stale_idle], stale=[stale_idle]) is idle
    assert _queueable([full, stale_idle, dead_idle], stale=[stale_idle]) is None
