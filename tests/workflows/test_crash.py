"""Kill -9 the platform's process in the middle of a workflow (a real process, a real SQLite file): started again,
the workflow goes on from its checkpoints, and no step that was checkpointed runs again.

The child process runs the platform on `flows.py` and prints the workflow's operations whenever they change. The
test kills it (its whole process group: zygote and workers too) first while a step runs (the step was not
checkpointed, so it runs again: the at-least-once edge docs/workflows.md tells of), then while the workflow sleeps
(a timer in the store ends the sleep in the next process).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).with_name("flows.py")

CHILD = """
import asyncio, json, sys
from pathlib import Path
from triggerfish.server.platform import Platform

async def main(flows, data, work):
    platform = Platform(flows, data_dir=Path(data), lease_margin=0.5)
    await platform.start()
    if await platform.workflows.state.get("crash-1") is None:
        await platform.workflows.start_workflow("crashy", {"dir": work, "sleep": 1.5}, workflow_id="crash-1")
    seen = None
    while True:
        stored = await platform.workflows.state.get("crash-1")
        if stored is not None:
            now = [stored.record["status"], [[op["name"], op["status"]] for op in stored.record["ops"]]]
            if now != seen:
                seen = now
                print(json.dumps(now), flush=True)
        await asyncio.sleep(0.02)

asyncio.run(main(*sys.argv[1:]))
"""


class Child:
    """The platform in a process of its own, its printed states read by a thread."""

    def __init__(self, data: Path, work: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(FLOWS), str(data), str(work)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        self.states: queue.Queue[Any] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.states.put(json.loads(line))

    def until(self, check: Any, within: float = 60.0) -> Any:
        deadline = time.monotonic() + within
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the workflow never got there"
            try:
                state = self.states.get(timeout=remaining)
            except queue.Empty:
                continue
            if check(state):
                return state

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.reader.join(timeout=10)  # the pipe ends with the process
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        if child.process.poll() is None:
            child.kill()


def runs(work: Path) -> list[str]:
    return (work / "runs.log").read_text().split()


def test_a_killed_platform_resumes_the_workflow_from_its_checkpoints(tmp_path: Path, children: list[Child]) -> None:
    data, work = tmp_path / "data", tmp_path / "work"
    work.mkdir()
    first = Child(data, work)
    children.append(first)
    # Killed while the second step runs: the first is checkpointed, the second is not.
    first.until(lambda state: state[1] == [["add", "SUCCEEDED"]])
    deadline = time.monotonic() + 30
    while "waiting-go" not in runs(work):
        assert time.monotonic() < deadline, "the second step never started"
        time.sleep(0.02)
    first.kill()
    assert runs(work) == ["add", "waiting-go"]

    (work / "go").touch()
    second = Child(data, work)
    children.append(second)
    # Killed while the workflow sleeps: the timer that ends the sleep is in the store.
    second.until(lambda state: state[1][-1] == ["sleep", "WAITING"])
    second.kill()

    third = Child(data, work)
    children.append(third)
    status, ops = third.until(lambda state: state[0] != "RUNNING")
    assert status == "SUCCEEDED"
    assert ops == [["add", "SUCCEEDED"], ["wait_for_file", "SUCCEEDED"], ["sleep", "SUCCEEDED"], ["add", "SUCCEEDED"]]
    # The first step ran once; the step that was killed ran again (never checkpointed); nothing else twice.
    assert runs(work) == ["add", "waiting-go", "waiting-go", "add"]
