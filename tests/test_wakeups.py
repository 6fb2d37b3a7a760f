"""The tasks the platform's event loop wakes per invocation run under SCHED_BATCH (`triggerfish._wakeups`): a
function's worker process and the SQLite store's writer and reader threads. Woken, such a task waits for a free
core instead of preempting the event loop that woke it; the event loop's own thread keeps the normal policy."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.runtime.conftest import app, request
from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.store import open_store

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


async def test_the_sqlite_stores_writer_and_reader_threads_run_under_sched_batch(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        await store.kv.put("ns", "key", b"value")
        found = await store.kv.get("ns", "key")
        assert found is not None
        assert found.value == b"value"
        threads = {
            thread.name.split(":")[0]: thread.native_id
            for thread in threading.enumerate()
            if thread.name.startswith("triggerfish-store-") and str(tmp_path) in thread.name
        }
        assert set(threads) >= {"triggerfish-store-writer", "triggerfish-store-reader"}
        for name in ("triggerfish-store-writer", "triggerfish-store-reader"):
            native_id = threads[name]
            assert native_id is not None
            assert os.sched_getscheduler(native_id) == os.SCHED_BATCH, name
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
    finally:
        await store.close()
