"""A platform process killed outright takes its zygotes and workers with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.runtime.conftest import app

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    from pathlib import Path
    from triggerfish.runtime.process_runner import ProcessRunner
    from triggerfish.runtime.types import InvokeRequest

    async def main() -> None:
        runner = await ProcessRunner.start(sys.argv[1], work_dir=Path(sys.argv[2]))
        print("base", runner._base.pid, flush=True)
        await runner.run(InvokeRequest(request_id="slow", function="slow", event=4.5), wait=5)

    asyncio.run(main())
    """
)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().split(") ")[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.add(int(entry))
    return found


@pytest.mark.slow
def test_sigkill_of_the_platform_kills_its_zygotes_and_workers(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT, app("basic"), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    ) as platform:
        assert platform.stdout is not None
        line = platform.stdout.readline()
        assert line.startswith("base "), line
        base = int(line.split()[1])
        time.sleep(0.5)  # the slow handler is running now
        app_zygotes = descendants(base)
        workers = {w for z in app_zygotes for w in descendants(z)}
        assert app_zygotes
        assert workers, "the slow handler's worker should be running"
        platform.send_signal(signal.SIGKILL)
        platform.wait()
        deadline = time.monotonic() + 5
        survivors = {base, *app_zygotes, *workers}
        while survivors and time.monotonic() < deadline:
            survivors = {pid for pid in survivors if alive(pid)}
            time.sleep(0.05)
        assert not survivors, f"still running after the platform died: {survivors}"
