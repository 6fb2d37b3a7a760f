"""Memory counted as Lambda counts it: a memory cgroup per worker on resident memory, the OOM kill reported in
Lambda's words, the peak as Max Memory Used, and RLIMIT_AS with a wide margin where there is no controller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.runtime.conftest import app, request
from triggerfish.runtime import memory
from triggerfish.runtime.process_runner import ProcessRunner

CONTROLLER = memory.detect()
needs_controller = pytest.mark.skipif(CONTROLLER is None, reason="no writable memory controller (cgroup v2 or v1)")


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[ProcessRunner]:
    started = await ProcessRunner.start(app("memory"), work_dir=tmp_path)
    try:
        yield started
    finally:
        await started.close()


@needs_controller
async def test_ten_threads_zipping_and_uploading_run_at_128_mb(runner: ProcessRunner) -> None:
    assert runner.limits.memory.startswith("memory cgroup v")
    outcome = await runner.run(request("transfers"))
    assert outcome.ok, outcome.error
    assert outcome.result["threads"] == 10
    assert outcome.max_memory_used_mb is not None
    assert 0 < outcome.max_memory_used_mb <= 128


@needs_controller
async def test_allocating_past_the_setting_is_killed_reported_as_lambda_does_and_the_next_gets_a_fresh_worker(
    runner: ProcessRunner,
) -> None:
    first = await runner.run(request("allocates", 0))
    killed = await runner.run(request("allocates", 200, request_id="past-it"))
    assert not killed.ok
    assert killed.error is not None
    assert killed.error["errorType"] == "Runtime.OutOfMemory"
    assert killed.error["errorMessage"] == "RequestId: past-it Error: Runtime exited with error: signal: killed"
    # The peak is the setting, as Lambda's REPORT line shows for a function it killed.
    assert killed.max_memory_used_mb is not None
    assert 120 <= killed.max_memory_used_mb <= 128
    after = await runner.run(request("allocates", 0))
    assert after.ok, after.error
    assert after.result["kept_mb"] == 0  # nothing survived from the killed worker
    assert after.result["pid"] != first.result["pid"]
    assert runner.stats("allocates")["crashes"] == 1


@needs_controller
async def test_max_memory_used_grows_with_what_a_warm_worker_keeps(runner: ProcessRunner) -> None:
    small = await runner.run(request("allocates", 0))
    grown = await runner.run(request("allocates", 60))
    assert grown.ok, grown.error
    assert small.max_memory_used_mb is not None
    assert grown.max_memory_used_mb is not None
    assert grown.max_memory_used_mb >= small.max_memory_used_mb + 55
    assert grown.result["pid"] == small.result["pid"]


@needs_controller
async def test_each_worker_has_its_own_memory_cgroup_removed_at_close(tmp_path: Path) -> None:
    runner = await ProcessRunner.start(app("memory"), work_dir=tmp_path)
    tree = runner._memory.path
    assert tree is not None
    try:
        outcome = await runner.run(request("allocates", 0))
        pid = str(outcome.worker_pid)
        groups = [p for p in tree.iterdir() if p.is_dir() and pid in (p / "cgroup.procs").read_text().split()]
        assert len(groups) == 1
        assert CONTROLLER is not None
        assert int((groups[0] / CONTROLLER.limit_file).read_text()) == 128 * 1024 * 1024
    finally:
        await runner.close()
    assert not tree.exists()


def test_the_controller_is_found_v2_first_then_v1(tmp_path: Path) -> None:
    v2, v1, neither = tmp_path / "unified", tmp_path / "memory", tmp_path / "none"
    for directory in (v2, v1, neither):
        directory.mkdir()
    (v2 / "cgroup.controllers").write_text("cpu io memory pids\n")
    (v2 / "cgroup.subtree_control").write_text("")
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (v1 / "cgroup.procs").write_text("")
    assert memory.detect((v2,), v1) == memory.MemoryController(2, v2)
    assert memory.detect((neither,), v1) == memory.MemoryController(1, v1)
    (v2 / "cgroup.controllers").write_text("cpu io pids\n")  # an empty or memory-less v2 hierarchy: not used
    assert memory.detect((v2,), neither) is None
    assert memory.MemoryController(2, v2).limit_file == "memory.max"
    assert memory.MemoryController(1, v1).peak_file == "memory.max_usage_in_bytes"


def test_oom_kills_and_peak_are_read_from_either_version(tmp_path: Path) -> None:
    v1 = memory.MemoryController(1, tmp_path)
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (tmp_path / "memory.max_usage_in_bytes").write_text("134217728\n")
    assert memory.oom_kills(v1, str(tmp_path)) == 2
    assert memory.megabytes(memory.peak_bytes(v1, str(tmp_path))) == 128
    v2 = memory.MemoryController(2, tmp_path)
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert memory.oom_kills(v2, str(tmp_path)) == 1
    assert memory.peak_bytes(v2, str(tmp_path / "gone")) is None


THREADS = """
import json, resource, sys
from concurrent.futures import ThreadPoolExecutor
from triggerfish.runtime import limits
limit = limits.memory_limit_bytes(128, limits.address_space_bytes())
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
with ThreadPoolExecutor(max_workers=10) as pool:
    sizes = list(pool.map(lambda n: len(bytearray(4 * 1024 * 1024)) + n, range(40)))
try:
    bytearray(limit)
    refused = False
except MemoryError:
    refused = True
print(json.dumps({"done": len(sizes), "refused": refused}))
"""


def test_without_a_controller_the_address_space_limit_leaves_room_for_threads() -> None:
    # What a worker gets where no memory cgroup can be used: ten threads work at 128 MB, and the limit still holds.
    done = subprocess.run([sys.executable, "-c", THREADS], capture_output=True, text=True, timeout=60, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"done": 40, "refused": True}
