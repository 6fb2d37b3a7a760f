"""Kill -9 the platform's process in the middle of a projection's batch (a real process, a real SQLite file): started
again, the projection goes on from its checkpoint and every event is applied to its records exactly once, though the
handler's own side effects (a log file) ran again for the batch that was cut short."""

from __future__ import annotations

import json
import os
import queue
import shutil
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
EVENTS = 40

CHILD = """
import asyncio, json, sys
from pathlib import Path
from triggerfish.server.platform import Platform

async def main(app, data, count):
    platform = Platform(app, data_dir=Path(data))
    await platform.start()
    if await platform.eventstore.events.version("acct-1") == 0:
        events = [{"type": "Deposited", "data": {"amount": n}} for n in range(1, int(count) + 1)]
        await platform.eventstore.append("acct-1", events, expected_version=0)
    seen = None
    while True:
        [status] = await platform.projections.status()
        values = {}
        for key in ("count", "sum"):
            record = await platform.store.kv.get("projection.totals", key)
            values[key] = None if record is None else json.loads(record.value)
        now = [status["position"], values]
        if now != seen:
            seen = now
            print(json.dumps(now), flush=True)
        await asyncio.sleep(0.02)

asyncio.run(main(*sys.argv[1:]))
"""


class Child:
    def __init__(self, app: Path, data: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(app), str(data), str(EVENTS)],
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
            assert remaining > 0, "the projection never got there"
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


def applied(work: Path) -> list[int]:
    path = work / "applied.log"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_a_projection_killed_mid_batch_applies_every_event_exactly_once(tmp_path: Path, children: list[Child]) -> None:
    work = tmp_path / "app"
    work.mkdir()
    app = work / "app.py"
    shutil.copy(Path(__file__).with_name("crash_app.py"), app)
    data = tmp_path / "data"

    first = Child(app, data)
    children.append(first)
    # Batches of 5: positions 21-25 are one batch, stopped at 23 with 21 and 22 applied but not committed.
    deadline = time.monotonic() + 60
    while 23 not in applied(work):
        assert time.monotonic() < deadline, "the projection never reached position 23"
        assert first.process.poll() is None, "the platform died by itself"
        time.sleep(0.02)
    first.until(lambda state: state[0] == 20)
    first.kill()

    (work / "go").touch()
    second = Child(app, data)
    children.append(second)
    _, values = second.until(lambda state: state[0] == EVENTS)
    assert values == {"count": EVENTS, "sum": EVENTS * (EVENTS + 1) // 2}
    # The handler itself ran again for the batch that was cut short: side effects are at least once, records not.
    log = applied(work)
    assert sorted(set(log)) == list(range(1, EVENTS + 1))
    assert [p for p in log if log.count(p) > 1] == [21, 22, 23, 21, 22, 23]
