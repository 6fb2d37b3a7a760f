"""A function's worker process runs under SCHED_BATCH (`triggerfish.runtime.wakeups`): woken by the platform's next
request, it waits for a free core instead of preempting the event loop that sent it; the event loop's own thread
keeps the normal policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.runtime.conftest import app, request
from triggerfish.runtime.process_runner import ProcessRunner

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux's scheduling policies")


async def test_a_worker_process_runs_under_sched_batch_and_the_platform_does_not(tmp_path: Path) -> None:
    runner = await ProcessRunner.start(app("basic"), work_dir=tmp_path)
    try:
        outcome = await runner.run(request("echo", {"say": "hi"}))
        assert outcome.ok
        assert outcome.result["event"] == {"say": "hi"}
        assert outcome.worker_pid is not None
        assert os.sched_getscheduler(outcome.worker_pid) == os.SCHED_BATCH
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # this thread runs the event loop: untouched
    finally:
        await runner.close()
