"""A platform killed outright (SIGKILL) takes its apps' boxes with it: nothing of the app's uid is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.isolation.conftest import require_bwrap
from tests.runtime.conftest import app
from tests.runtime.test_box import UID, _processes_of

PLATFORM = """
import asyncio, sys
from pathlib import Path
from triggerfish.isolation.box import Box
from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.runtime.types import InvokeRequest

async def main() -> None:
    uid = int(sys.argv[3])
    runner = await ProcessRunner.start(sys.argv[1], work_dir=Path(sys.argv[2]), box=Box(uid=uid, gid=uid))
    print("started", flush=True)
    await runner.run(InvokeRequest(request_id="slow", function="loops", event="forever"), wait=5)

asyncio.run(main())
"""


@pytest.mark.slow
def test_sigkill_of_the_platform_takes_its_whole_box_with_it(tmp_path: Path) -> None:
    require_bwrap()
    if os.geteuid() != 0:
        pytest.skip("needs root: the box's processes are told apart by their uid")
    uid = UID + 2
    root = Path(__file__).resolve().parents[2]
    with subprocess.Popen(
        [sys.executable, "-c", PLATFORM, app("boxed"), str(tmp_path), str(uid)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    ) as platform:
        assert platform.stdout is not None
        assert platform.stdout.readline() == "started\n"
        _wait_for(lambda: len(_processes_of(uid)) >= 3)  # base zygote, app zygote, the looping worker
        platform.send_signal(signal.SIGKILL)
        platform.wait()
    _wait_for(lambda: not _processes_of(uid))
    assert _processes_of(uid) == []


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():
        time.sleep(0.02)
