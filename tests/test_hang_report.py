"""A hung async test ends its xdist worker; the run's report then ends with what its tasks were waiting on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent

HUNG = """
import asyncio

import pytest


async def wait_for_a_reply_that_never_comes() -> None:
    await asyncio.Event().wait()


@pytest.mark.timeout(1)
async def test_hangs() -> None:
    await wait_for_a_reply_that_never_comes()


def test_goes_on_after_the_hung_one() -> None:
    assert sorted([3, 1, 2]) == [1, 2, 3]
"""


@pytest.mark.slow
def test_a_hung_async_test_is_reported_with_its_tasks_at_the_end_of_the_run(tmp_path: Path) -> None:
    (tmp_path / "test_hung.py").write_text(HUNG)
    # The project's conftest, as the suite's own runs have it.
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "TRIGGERFISH_TEST_PATIENCE": "1"}
    environment.pop("TRIGGERFISH_TEST_HANG_REPORTS", None)  # this run's own directory, not the outer run's
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "1", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", str(tmp_path)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = run.stdout
    assert run.returncode == 1, output + run.stderr
    assert "worker 'gw0' crashed while running 'test_hung.py::test_hangs'" in output
    assert "1 passed" in output
    report = output[output.index("hung test (report") :]
    assert "test_hung.py::test_hangs was still running after its timeout of 1 s" in report
    # The task's stack, down to the await that never returned: what the thread dump alone does not show.
    assert "in wait_for_a_reply_that_never_comes" in report
    assert "await asyncio.Event().wait()" in report
