"""Kill -9 the platform (a real process, a real SQLite file) between two steps of an AWS SDK durable handler:
started again on the same store, the execution completes, and the step checkpointed before the kill
does not run again (the step that was running runs again: the at-least-once edge docs/workflows.md tells of)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash_child import Child, children
from tests.patience import eventually

__all__ = ["children"]  # the fixture, used by name


pytestmark = pytest.mark.slow

FLOWS = Path(__file__).with_name("flows.py")

CHILD = """
import asyncio, json, sys
from pathlib import Path
from triggerfish.aws.credentials import function_environment
from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

async def main(flows, data, work):
    platform = Platform(flows, data_dir=Path(data), lease_margin=0.5)
    # Bound first, on a port the kernel picks (as `triggerfish dev --port 0` does), and the functions told it: a
    # port picked free by the test could be taken by another process before the child bound it.
    server = GatewayServer(platform_asgi(platform, None), port=0)
    await server.start()
    platform.environment = function_environment(server.url, "test", "test")
    await platform.start()
    if await platform.workflows.state.get("crash-1") is None:
        await platform.workflows.start_workflow("gated", {"dir": work}, workflow_id="crash-1")
    seen = None
    while True:  # until killed
        stored = await platform.workflows.state.get("crash-1")
        if stored is not None:
            now = [stored.record["status"], [[op["name"], op["status"]] for op in stored.record["ops"]]]
            if now != seen:
                seen = now
                print(json.dumps(now), flush=True)
        await asyncio.sleep(0.02)

asyncio.run(main(*sys.argv[1:]))
"""


def start(data: Path, work: Path) -> Child:
    return Child(CHILD, FLOWS, data, work, what="the execution")


def runs(work: Path) -> list[str]:
    log = work / "runs.log"
    return log.read_text().split() if log.exists() else []


def test_a_killed_platform_completes_the_durable_execution_without_running_a_checkpointed_step_again(
    tmp_path: Path, children: list[Child]
) -> None:
    data, work = tmp_path / "data", tmp_path / "work"
    work.mkdir()
    first = start(data, work)
    children.append(first)
    first.until(lambda state: ["add", "SUCCEEDED"] in state[1])
    eventually(lambda: "gate" in runs(work), 30, "the second step", interval=0.02)
    first.kill()
    assert runs(work) == ["add", "gate"]

    (work / "go").touch()
    second = start(data, work)
    children.append(second)
    done = second.until(lambda state: state[0] != "RUNNING")
    assert done == ["SUCCEEDED", [["add", "SUCCEEDED"], ["gate", "SUCCEEDED"]]]
    # `add` was checkpointed before the kill: replayed, not run again. `gate` was running: it ran again.
    assert runs(work) == ["add", "gate", "gate"]
    second.kill()
