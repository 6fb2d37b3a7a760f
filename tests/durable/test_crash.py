"""Kill -9 the platform (a real process, a real SQLite file) between two steps of an AWS SDK durable handler:
started again on the same store and port, the execution completes, and the step checkpointed before the kill
does not run again (the step that was running runs again: the at-least-once edge docs/workflows.md tells of)."""

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

from tests.durable.conftest import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).with_name("flows.py")

CHILD = """
import asyncio, json, sys
from pathlib import Path
from triggerfish.aws.credentials import function_environment
from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

async def main(flows, data, work, port):
    url = f"http://127.0.0.1:{port}"
    platform = Platform(flows, data_dir=Path(data), lease_margin=0.5)
    platform.environment = function_environment(url, "test", "test")
    await platform.start()
    async with GatewayServer(platform_asgi(platform, None), port=int(port)):
        if await platform.workflows.state.get("crash-1") is None:
            await platform.workflows.start_workflow("gated", {"dir": work}, workflow_id="crash-1")
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
    """The platform in a process of its own (its own session: the kill takes its workers too)."""

    def __init__(self, data: Path, work: Path, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(FLOWS), str(data), str(work), str(port)],
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
            assert remaining > 0, "the execution never got there"
            try:
                state = self.states.get(timeout=remaining)
            except queue.Empty:
                continue
            if check(state):
                return state

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.reader.join(timeout=10)
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
    log = work / "runs.log"
    return log.read_text().split() if log.exists() else []


def test_a_killed_platform_completes_the_durable_execution_without_running_a_checkpointed_step_again(
    tmp_path: Path, children: list[Child]
) -> None:
    data, work, port = tmp_path / "data", tmp_path / "work", free_port()
    work.mkdir()
    first = Child(data, work, port)
    children.append(first)
    first.until(lambda state: ["add", "SUCCEEDED"] in state[1])
    deadline = time.monotonic() + 30
    while "gate" not in runs(work):
        assert time.monotonic() < deadline, "the second step never started"
        time.sleep(0.02)
    first.kill()
    assert runs(work) == ["add", "gate"]

    (work / "go").touch()
    second = Child(data, work, port)
    children.append(second)
    done = second.until(lambda state: state[0] != "RUNNING")
    assert done == ["SUCCEEDED", [["add", "SUCCEEDED"], ["gate", "SUCCEEDED"]]]
    # `add` was checkpointed before the kill: replayed, not run again. `gate` was running: it ran again.
    assert runs(work) == ["add", "gate", "gate"]
    second.kill()
