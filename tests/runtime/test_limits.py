"""Process and memory limits: the pids cgroup (or RLIMIT_NPROC), RLIMIT_AS sizing, reporting, cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.conftest import app, eventually, request
from triggerfish.runtime import limits, memory
from triggerfish.runtime.process_runner import ProcessRunner


async def test_a_handler_cannot_fork_past_the_process_limit(tmp_path: Path) -> None:
    runner = await ProcessRunner.start(app("faults"), work_dir=tmp_path, max_processes=10)
    try:
        if runner.limits.processes == "none":
            pytest.skip("neither the pids cgroup nor RLIMIT_NPROC can be enforced here")
        outcome = await runner.run(request("forks", 50))
        assert outcome.ok, outcome.error
        result = outcome.result
        # The worker itself counts: at most 9 children at once, and no fork past that.
        assert 1 <= result["started"] <= 9
        assert result["failed"] >= 41
        assert result["errors"] == ["BlockingIOError: Resource temporarily unavailable"]
        stats = runner.stats("forks")
        assert stats["limits"]["max_processes"] == 10
        assert stats["limits"]["unenforced"] == []
        again = await runner.run(request("ok", 1))
        assert again.ok
    finally:
        await runner.close()


@pytest.mark.skipif(not limits.cgroup_available(), reason="needs a writable pids cgroup")
async def test_each_worker_gets_its_own_pids_cgroup_removed_at_close(tmp_path: Path) -> None:
    runner = await ProcessRunner.start(app("faults"), work_dir=tmp_path, max_processes=12)
    tree = runner._cgroups.path
    try:
        outcome = await runner.run(request("ok"))
        pid = str(outcome.worker_pid)
        # The worker was born in a cgroup of its own (the zygote already waits in the next one).
        groups = [p for p in tree.iterdir() if p.is_dir() and pid in (p / "cgroup.procs").read_text().split()]
        assert len(groups) == 1
        # The zygote leaves a moment after the fork, and the limit tightens to exactly max_processes.
        await eventually(lambda: (groups[0] / "pids.max").read_text().strip() == "12", 2.0)
        assert (groups[0] / "pids.max").read_text().strip() == "12"
        assert (groups[0] / "cgroup.procs").read_text().split() == [pid]
    finally:
        await runner.close()
    assert not tree.exists()


SCRIPT = """
import json, os, sys, time
from triggerfish.runtime import limits, memory
os.setgid(65534)
os.setuid(65534)
unenforced = limits.apply_in_child(8 << 30, 5, in_cgroup=False)
started = failed = 0
for _ in range(40):
    try:
        pid = os.fork()
    except BlockingIOError:
        failed += 1
        continue
    if pid == 0:
        time.sleep(0.3)
        os._exit(0)
    started += 1
print(json.dumps({"unenforced": unenforced, "started": started, "failed": failed}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an unprivileged user")
def test_without_a_cgroup_an_unprivileged_worker_gets_rlimit_nproc() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30, check=True)
    result = json.loads(done.stdout)
    assert result["unenforced"] == []
    # Five more tasks than the user had: the rest of the 40 forks fail instead of piling up.
    assert 1 <= result["started"] <= 5
    assert result["failed"] >= 35


def test_the_fallback_address_space_limit_is_the_zygote_baseline_plus_memory_mb_plus_a_wide_margin() -> None:
    baseline = limits.address_space_bytes()
    assert baseline > 10 * 1024 * 1024  # an interpreter maps at least that much
    margin = memory.ADDRESS_SPACE_MARGIN_MB * 1024 * 1024
    assert margin >= 1024 * 1024 * 1024  # ten threads' stacks and arenas reserve about 400 MB they never use
    assert limits.memory_limit_bytes(128, baseline) == baseline + 128 * 1024 * 1024 + margin


def test_limits_report_what_is_not_enforced(caplog: pytest.LogCaptureFixture) -> None:
    assert limits.describe("cgroup").unenforced == []
    assert limits.describe("rlimit").processes == "RLIMIT_NPROC"
    with caplog.at_level("WARNING", logger="triggerfish.runtime"):
        none = limits.describe("none")
    assert none.unenforced == ["processes"]
    assert "cannot be enforced" in caplog.text


def test_the_method_matches_this_machine() -> None:
    method = limits.process_limit_method()
    if limits.cgroup_available():
        assert method == "cgroup"
    elif os.geteuid() != 0:
        assert method == "rlimit"
    else:
        assert method == "none"


@pytest.mark.skipif(not limits.cgroup_available(), reason="needs a writable pids cgroup")
def test_cgroups_left_by_a_runner_that_was_killed_are_swept() -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = limits.PIDS_CGROUP_ROOT / "triggerfish" / f"{dead.stdout.strip()}-deadbeef"
    (stale / "w1-1").mkdir(parents=True)
    tree = limits.CgroupTree(f"{os.getpid()}-sweeper")
    try:
        assert not stale.exists()
        assert tree.path.exists()
    finally:
        tree.close()
    assert not tree.path.exists()
