"""Kill -9 the platform's process in the middle of a workflow (a real process, a real SQLite file): started again,
the workflow goes on from its checkpoints, and no step that was checkpointed runs again.

The child process runs the platform on `flows.py` and prints the workflow's operations whenever they change. The
test kills it (its whole process group: zygote and workers too) first while a step runs (the step was not
checkpointed, so it runs again: the at-least-once edge docs/workflows.md tells of), then while the workflow sleeps
(a timer in the store ends the sleep in the next process).

"While it sleeps" means once the run that took the sleep has ended too: the child prints how many of the
workflow's invocations are leased. Killed between the sleep's checkpoint and that run's acknowledgement, the run's
invocation comes back when its lease ends (`lease_margin=0.5` past the timeout here), and under load that was at
the moment the timer resumed the workflow: two runs at once. That run now finds it ended and runs nothing
(tests/workflows/test_platform.py drives it exactly); the wait keeps this test on the crash it is about.
"""

from __future__ import annotations

from pathlib import Path

from tests.crash_child import Child, children
from tests.patience import eventually

__all__ = ["children"]  # the fixture, used by name

FLOWS = Path(__file__).with_name("flows.py")

CHILD = """
import asyncio, json, sys
from pathlib import Path
from triggerfish.names import function_queue
from triggerfish.server.platform import Platform

async def main(flows, data, work):
    platform = Platform(flows, data_dir=Path(data), lease_margin=0.5)
    await platform.start()
    if await platform.workflows.state.get("crash-1") is None:
        await platform.workflows.start_workflow("crashy", {"dir": work, "sleep": 2.5}, workflow_id="crash-1")
    seen = None
    while True:
        stored = await platform.workflows.state.get("crash-1")
        if stored is not None:
            leased = (await platform.store.queues.stats(function_queue("crashy"))).in_flight
            now = [stored.record["status"], [[op["name"], op["status"]] for op in stored.record["ops"]], leased]
            if now != seen:
                seen = now
                print(json.dumps(now), flush=True)
        await asyncio.sleep(0.02)

asyncio.run(main(*sys.argv[1:]))
"""


def start(data: Path, work: Path) -> Child:
    return Child(CHILD, FLOWS, data, work, what="the workflow")


def runs(work: Path) -> list[str]:
    return (work / "runs.log").read_text().split()


def test_a_killed_platform_resumes_the_workflow_from_its_checkpoints(tmp_path: Path, children: list[Child]) -> None:
    data, work = tmp_path / "data", tmp_path / "work"
    work.mkdir()
    first = start(data, work)
    children.append(first)
    # Killed while the second step runs: the first is checkpointed, the second is not.
    first.until(lambda state: state[1] == [["add", "SUCCEEDED"]])
    eventually(lambda: "waiting-go" in runs(work), 30, "the second step", interval=0.02)
    first.kill()
    assert runs(work) == ["add", "waiting-go"]

    (work / "go").touch()
    second = start(data, work)
    children.append(second)
    # Killed while the workflow sleeps (no run of it in flight): the timer that ends the sleep is in the store.
    second.until(lambda state: state[1][-1] == ["sleep", "WAITING"] and state[2] == 0)
    second.kill()

    third = start(data, work)
    children.append(third)
    status, ops, _ = third.until(lambda state: state[0] != "RUNNING")
    assert status == "SUCCEEDED"
    assert ops == [["add", "SUCCEEDED"], ["wait_for_file", "SUCCEEDED"], ["sleep", "SUCCEEDED"], ["add", "SUCCEEDED"]]
    # The first step ran once; the step that was killed ran again (never checkpointed); nothing else twice.
    assert runs(work) == ["add", "waiting-go", "waiting-go", "add"]
