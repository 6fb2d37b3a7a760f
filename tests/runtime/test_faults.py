"""Section 6 of the issue: every way a handler can fail gets a clear error on its own invocation,
the same function serves the next invocation, and other functions never notice."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.runtime.conftest import app, eventually, request
from triggerfish.errors import InvalidInputError
from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.runtime.types import DEFAULT_OUTPUT_LIMIT, PlatformCall

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def platform(call: PlatformCall) -> Any:
    if call.args["key"] == "hang":
        await asyncio.sleep(30)  # a store that never answers
    if call.args["key"] == "refuse":
        raise InvalidInputError("refused here")
    return call.args["key"]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def runner(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ProcessRunner]:
    work_dir: Path = tmp_path_factory.mktemp("faults")
    runner = await ProcessRunner.start(app("faults"), work_dir=work_dir, max_processes=10, platform=platform)
    yield runner
    await runner.close()


async def then_still_serves(runner: ProcessRunner, function: str, event: object, expected: object) -> None:
    """The pool of `function` answers again, and an unrelated function is unaffected."""
    again = await runner.run(request(function, event))
    assert again.ok, again.error
    assert again.result == expected
    other = await runner.run(request("ok", 7))
    assert other.ok
    assert other.result["ok"] == 7


async def test_a_handler_that_raises_reports_its_exception(runner: ProcessRunner) -> None:
    outcome = await runner.run(request("raises", 42))
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == "ValueError"
    assert outcome.error["errorMessage"] == "bad event 42"
    assert any("raise ValueError" in line for line in outcome.error["stackTrace"])
    # The worker survives a Python exception: the same process answers next.
    assert (await runner.run(request("ok", 1))).ok


async def test_a_result_that_is_not_json_is_a_marshal_error(runner: ProcessRunner) -> None:
    outcome = await runner.run(request("unserialisable"))
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.MarshalError"
    assert "object" in outcome.error["errorMessage"]
    assert (await runner.run(request("ok", 2))).ok


async def test_an_endless_loop_times_out_and_its_worker_is_replaced(runner: ProcessRunner) -> None:
    began = time.monotonic()
    outcome = await runner.run(request("loops"))
    took = time.monotonic() - began
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.Timeout"
    assert outcome.error["errorMessage"] == "Task timed out after 1.00 seconds"
    assert 0.9 <= took < 3.0
    assert outcome.worker_pid is not None
    await asyncio.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(outcome.worker_pid, 0)  # the looping worker is gone, not left spinning
    await then_still_serves(runner, "loops", "quick", "quick")
    assert runner.stats("loops")["timeouts"] == 1


async def test_unbounded_allocation_is_an_out_of_memory_error(runner: ProcessRunner) -> None:
    outcome = await runner.run(request("hog"))
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.OutOfMemory"
    if runner.limits.memory == "RLIMIT_AS":  # the fallback: Python's MemoryError, reported naming the limit
        assert "128 MB" in outcome.error["errorMessage"]
    else:  # the OOM killer, reported in Lambda's words
        assert outcome.error["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
    # Well within the limit, the next invocation allocates fine (a fresh worker replaced the spent one).
    await then_still_serves(runner, "hog", "small", 10 * 1024 * 1024)


async def test_os_exit_fails_only_its_invocation_with_the_exit_code(runner: ProcessRunner) -> None:
    outcome = await runner.run(request("exits"))
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.ExitError"
    assert "exit code 3" in outcome.error["errorMessage"]
    await then_still_serves(runner, "exits", "stay", "stayed")


async def test_a_segfault_fails_only_its_invocation_naming_the_signal(runner: ProcessRunner) -> None:
    outcome = await runner.run(request("segfaults"))
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.ExitError"
    assert "signal 11 (SIGSEGV)" in outcome.error["errorMessage"]
    await then_still_serves(runner, "segfaults", "stay", "stayed")


async def test_printing_100_mb_keeps_the_first_bytes_and_finishes(runner: ProcessRunner) -> None:
    began = time.monotonic()
    outcome = await runner.run(request("prints", 100))
    assert outcome.ok, outcome.error
    assert outcome.result == "printed"
    assert outcome.output_truncated
    assert len(outcome.output) == DEFAULT_OUTPUT_LIMIT
    assert outcome.output.startswith("x" * 1023 + "\n")
    assert time.monotonic() - began < 4.0
    # Nothing of the flood leaks into the next invocation's output.
    quiet = await runner.run(request("prints", 0))
    assert quiet.output == ""
    assert not quiet.output_truncated


async def test_children_that_would_outlive_the_handler_are_killed(
    runner: ProcessRunner, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="triggerfish.runtime"):
        outcome = await runner.run(request("leaves_children", request_id="litter-1"))
    assert outcome.ok, outcome.error
    child = outcome.result
    await eventually(lambda: not _alive(child), 2.0)
    assert not _alive(child), f"the handler's `sleep 60` (pid {child}) outlived its invocation"
    again = await runner.run(request("leaves_children"))
    assert again.ok
    assert again.worker_pid == outcome.worker_pid  # killing the child left the worker itself alone
    # The worker tells the platform's log (a Log frame), not the handler's output.
    assert "request litter-1: killed 1 process(es) the handler left behind" in caplog.text
    assert "killed" not in outcome.output


async def test_a_fault_in_one_function_leaves_the_others_running(runner: ProcessRunner) -> None:
    # A slow function in flight while another crashes next to it: the slow one completes.
    slow = asyncio.ensure_future(runner.run(request("sleeps", 0.3)))
    crash = await runner.run(request("segfaults"))
    assert not crash.ok
    finished = await slow
    assert finished.ok
    assert finished.result == "woke"


async def test_a_result_over_6_mb_is_refused_with_lambdas_error(runner: ProcessRunner) -> None:
    outcome = await runner.run(request("huge_result", "huge"))
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Function.ResponseSizeTooLarge"
    assert "exceeded maximum allowed payload size (6291456 bytes)" in outcome.error["errorMessage"]
    await then_still_serves(runner, "huge_result", "small", "small")


async def test_a_platform_call_that_never_answers_still_times_out(runner: ProcessRunner) -> None:
    began = time.monotonic()
    outcome = await runner.run(request("asks_forever", "hang"))
    assert time.monotonic() - began < 3.0
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.Timeout"
    await then_still_serves(runner, "asks_forever", "answered", "answered")


async def test_a_call_sent_with_the_result_gives_the_result_its_failure_or_its_timeout(runner: ProcessRunner) -> None:
    # Context.finish_with_platform_call: the call goes in the result frame and its answer is the result.
    answered = await runner.run(request("finishes_with", "dict"))
    assert answered.ok, answered.error
    assert answered.result == "dict"
    assert answered.output_bytes == len(b'"dict"')
    # A refused call fails the invocation as the handler's own call would have (the same error class and text).
    refused = await runner.run(request("finishes_with", "refuse"))
    assert not refused.ok
    assert refused.error is not None
    assert (refused.error["errorType"], refused.error["errorMessage"]) == ("InvalidInputError", "refused here")
    # And one that never answers ends at the invocation's timeout.
    began = time.monotonic()
    hung = await runner.run(request("finishes_with", "hang"))
    assert time.monotonic() - began < 3.0
    assert hung.error is not None
    assert hung.error["errorType"] == "Runtime.Timeout"
    await then_still_serves(runner, "finishes_with", "again", "again")


@pytest.mark.parametrize("after", ["hang", "sleep"])
async def test_what_follows_an_answered_platform_call_still_times_out(runner: ProcessRunner, after: str) -> None:
    # The invocation's frames after its first platform call are read within one timeout scope: a second call that
    # hangs, or the handler running past its timeout after the first, ends at the timeout; the function serves again.
    began = time.monotonic()
    outcome = await runner.run(request("asks_twice", after))
    assert time.monotonic() - began < 3.0
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.Timeout"
    await then_still_serves(runner, "asks_twice", "answered", ["answered", "answered"])


@pytest.mark.parametrize("forgery", ["ready", "result", "garbage"])
async def test_frames_forged_by_the_handler_fail_its_invocation_and_nothing_else(
    runner: ProcessRunner, forgery: str
) -> None:
    outcome = await runner.run(request("forges_frames", forgery))
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.ProtocolError"
    assert os.getpid() > 1  # still here: no kill went to pid 1 or to the root cgroup
    await then_still_serves(runner, "forges_frames", "log", "logged")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
