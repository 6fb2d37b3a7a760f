"""The crash matrix: the platform dies right after each durable write an execution causes (its record made, each
run begun, each checkpoint, the wait's end, the outcome), one case per write, for the same three operations
written with AWS's SDK (`steps`) and as a native workflow (`native_steps`): one engine under both. Started again on
the same store, every execution finishes with the right result, and a step whose success was checkpointed
before the crash never runs again (one that was running when it died may: the at-least-once edge).

The child process counts the workflow store's atomic writes and exits (`os._exit`, no cleanup, as a kill -9
would leave it) right after the Nth; it prints the execution's operations after every write, so the test
knows what was checkpointed when it died.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.patience import scaled

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).with_name("flows.py")
#: The writes one execution makes, when this was written: a case past its last write would be no crash (it
#: only checks that the execution finished).
WRITES = {"steps": 9, "native_steps": 6}
CASES = [(function, after) for function, count in WRITES.items() for after in range(1, count + 1)]

CHILD = """
import asyncio, contextlib, json, os, sys
from pathlib import Path
from triggerfish.events.cloudevent import Event
from triggerfish.aws.credentials import function_environment
from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform
from triggerfish.workflows.state import WorkflowState

flows, data, work, crash_after, function = sys.argv[1:]
crash_after = int(crash_after)
writes = 0
original = WorkflowState.atomic

async def counted(self, ops):
    global writes
    result = await original(self, ops)
    writes += 1
    stored = await self.get("crash-1")
    if stored is not None:
        state = [stored.record["status"], [[op["name"], op["status"]] for op in stored.record["ops"]]]
        print(json.dumps({"write": writes, "state": state}), flush=True)
    if writes == crash_after:
        os._exit(9)
    return result

WorkflowState.atomic = counted

async def main():
    platform = Platform(flows, data_dir=Path(data), lease_margin=0.5)
    # Bound first, on a port the kernel picks (as `triggerfish dev --port 0` does), and the functions told it: a
    # port picked free by the test could be taken by another process before the child bound it.
    server = GatewayServer(platform_asgi(platform, None), port=0)
    await server.start()
    platform.environment = function_environment(server.url, "test", "test")
    await platform.start()
    if await platform.workflows.state.get("crash-1") is None:
        await platform.workflows.start_workflow(function, {"n": 4, "dir": work}, workflow_id="crash-1")
    while True:
        stored = await platform.workflows.state.get("crash-1")
        if stored is not None and stored.record["status"] != "RUNNING":
            print(json.dumps({"done": stored.record["status"], "result": stored.record["result"]}), flush=True)
        # The outside world: answers a waiting callback, publishes the event a wait is for.
        for op in [] if stored is None else stored.record["ops"]:
            if op["status"] == "WAITING" and op["kind"] == "callback":
                with contextlib.suppress(Exception):
                    await platform.workflows.complete_callback(op["token"], result={"by": "ann"})
            if op["status"] == "WAITING" and op["kind"] == "event":
                await platform.publish("default", [Event.create("payment.done", "/tests", data={"amount": 3})])
        await asyncio.sleep(0.05)

asyncio.run(main())
"""


def run_child(data: Path, work: Path, crash_after: int, function: str, within: float = 50.0) -> list[dict[str, Any]]:
    """Run the platform until it crashes after write `crash_after` (0: never) or the execution is done; what it
    printed."""
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(FLOWS), str(data), str(work), str(crash_after), function],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + scaled(within)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(json.loads(line))
            if "done" in lines[-1]:
                break
            assert time.monotonic() < deadline, f"no end in {scaled(within):.0f} s: {lines[-3:]}"
    finally:
        # The crash left the workers behind (a kill -9 takes them with the group): end them all.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
    return lines


def runs(work: Path) -> list[str]:
    log = work / "runs.log"
    return log.read_text().split() if log.exists() else []


@pytest.mark.parametrize(("function", "crash_after"), CASES)
def test_a_crash_after_each_durable_write_loses_nothing_and_repeats_no_checkpointed_step(
    tmp_path: Path, function: str, crash_after: int
) -> None:
    data, work = tmp_path / "data", tmp_path / "work"
    work.mkdir()
    before = run_child(data, work, crash_after, function)
    if "done" in before[-1]:
        assert before[-1] == {"done": "SUCCEEDED", "result": {"first": 5, "second": 50}}
        return
    assert before[-1]["write"] == crash_after
    checkpointed = {name for name, status in before[-1]["state"][1] if status == "SUCCEEDED"}
    ran_before = runs(work)

    after = run_child(data, work, 0, function)
    assert after[-1] == {"done": "SUCCEEDED", "result": {"first": 5, "second": 50}}
    ran_after = runs(work)[len(ran_before) :]
    for step in ("add", "times"):
        if step in checkpointed:
            assert step not in ran_after, f"{step} was checkpointed before the crash, yet it ran again"
        # At most once more: after a crash while it ran (its success not checkpointed).
        assert ran_before.count(step) + ran_after.count(step) <= 2
    assert set(ran_before + ran_after) == {"add", "times"}


#: What a waiting execution ends with, once the matrix's outside world answered it.
WAITED = {
    "native_waits": {"first": 5, "paid": {"amount": 3}, "approved": {"by": "ann"}},
    "signed": {"first": 5, "approved": {"by": "ann"}},
}


@pytest.mark.timeout(600)  # one clean run, then a crashed and a resumed run per crash point
@pytest.mark.parametrize("function", sorted(WAITED))
def test_a_crash_while_waiting_for_a_callback_or_an_event_loses_neither(tmp_path: Path, function: str) -> None:
    """The crash points are the writes while the callback or the event wait is open, and the one that closes
    it: found by a run that does not crash, then each crashed at in a store of its own."""
    (tmp_path / "clean-work").mkdir()
    clean = run_child(tmp_path / "clean", tmp_path / "clean-work", 0, function)
    assert clean[-1] == {"done": "SUCCEEDED", "result": WAITED[function]}
    states = [line for line in clean if "write" in line]
    waiting = [s["write"] for s in states if any(status == "WAITING" for _, status in s["state"][1])]
    assert waiting, "the execution never waited"
    points = sorted({*waiting, max(waiting) + 1})
    crashed = 0
    for crash_after in points:
        data, work = tmp_path / f"data-{crash_after}", tmp_path / f"work-{crash_after}"
        work.mkdir()
        before = run_child(data, work, crash_after, function)
        if "done" in before[-1]:
            continue
        crashed += 1
        after = run_child(data, work, 0, function)
        assert after[-1] == {"done": "SUCCEEDED", "result": WAITED[function]}, crash_after
        assert runs(work).count("add") == 1, crash_after  # checkpointed before every wait: never again
    assert crashed >= 2, points
