"""The platform in a process of its own for the kill -9 tests: it prints its state as a JSON line whenever the
state changes, a thread reads the lines, and the test waits on a state, kills the process with its whole group
(zygote and workers too), and starts it again on the same store."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.patience import scaled

ROOT = Path(__file__).resolve().parents[1]
_SERVING = re.compile(rb"serving on http://[^\s:]+:(\d+)")


class Child:
    """`python -c script *args` in its own session; `what` names what it runs, in the message of a wait that
    timed out."""

    def __init__(self, script: str, *args: object, what: str) -> None:
        self.what = what
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, *map(str, args)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        self.states: queue.Queue[Any] = queue.Queue()
        self.seen: list[Any] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.states.put(json.loads(line))

    def until(self, check: Callable[[Any], object], within: float = 60.0) -> Any:
        """The first printed state passing `check`; AssertionError, with the last states seen, after `within` s
        (stretched by load: tests/patience.py)."""
        limit = scaled(within)
        deadline = time.monotonic() + limit
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{self.what} never got there within {limit:.0f} s; its last states: {self.seen[-5:]}"
            try:
                state = self.states.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(state)
            if check(state):
                return state

    def kill(self) -> None:
        """SIGKILL the process and everything it started: no drain, no goodbye."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.reader.join(timeout=10)  # the pipe ends with the process
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """The children a test started, killed after it if still running."""
    started: list[Child] = []
    yield started
    for child in started:
        if child.process.poll() is None:
            child.kill()


def start_dev(
    app: Path, data: Path, log: Path, *options: str, port: int = 0, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`triggerfish dev app --port port --data-dir data --no-reload *options` in the app's directory, as a user runs
    it, its output appended to `log` (a crash test starts it again on the same data)."""
    command = [sys.executable, "-m", "triggerfish", "dev", str(app), "--port", str(port), "--data-dir", str(data)]
    command += ["--no-reload", *options]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=app.parent, env=environment, stdout=out, stderr=subprocess.STDOUT)


def rows(out: Path) -> list[Any]:
    """The JSON lines a handler appended to `out` (a line cut short by a kill is passed over: it ends no row)."""
    return [json.loads(line) for line in out.read_text().splitlines() if line] if out.exists() else []


async def wait_logged(condition: Callable[[], object], seconds: float, what: str, log: Path) -> None:
    """Wait until `condition()` holds; after `seconds` (stretched by load), fail showing the platform's last output."""
    deadline = time.monotonic() + scaled(seconds)
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; the platform said:\n{log.read_text()[-3000:]}")  # noqa: ASYNC240
        await asyncio.sleep(0.05)


async def wait_served(log: Path, since: int, seconds: float) -> int:
    """The port a `start_dev(..., port=0)` serves on, from its banner in `log` past byte `since` (the log's size
    when it was started). A port picked free before the start can be taken by another process before the platform
    binds it (a busy machine's outgoing connections draw from the same range): port 0 cannot be."""
    port = 0

    def banner() -> bool:
        nonlocal port
        found = _SERVING.search(log.read_bytes()[since:]) if log.exists() else None
        port = int(found.group(1)) if found else 0
        return bool(port)

    await wait_logged(banner, seconds, "the platform to serve", log)
    return port


def lines_until_killed(command: list[str], *, started_within: float) -> list[str]:
    """Run `command` (PYTHONPATH: this checkout) until its first complete output line, let it work for half a
    second to a second, kill -9 it, and return every complete line it wrote: the acknowledgements it made
    before it died. A line the kill cut short was never a complete acknowledgement, so it is left out."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
    assert child.stdout is not None
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for raw in child.stdout:
            if raw.endswith(b"\n"):
                lines.append(raw.decode())
                ready.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert ready.wait(started_within), "the child never started"
    time.sleep(random.uniform(0.5, 1.0))
    assert child.poll() is None, "the child stopped before it was killed"
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    reader.join(10)
    child.stdout.close()
    return lines
