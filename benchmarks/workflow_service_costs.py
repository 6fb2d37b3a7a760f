"""The workflow service's own part of a three-step workflow, alone: what `Workflows` costs the platform's event loop
and its SQLite writer, without worker processes, frames or the dispatcher.

    python -m benchmarks.workflow_service_costs [--workflows 2000] [--rounds 3] [--profile 25]

Each round starts WORKFLOWS workflows at once (`Workflows.start_workflow`: the record and its first invocation,
queued where no worker takes it) and answers for each the platform calls its run makes, as a worker running
`benchmarks/bench_workflows.py`'s three no-op steps sends them: `begin` (the resume), a checkpoint per step, the
last with the outcome. The platform calls are `Workflows.call` itself, with the requests `context.py` builds, so
what changes in the service shows here and nothing else does. Printed per workflow, median of the rounds: the
CPU of the event loop and of the store's writer and reader threads (Linux: /proc), and the writer's transactions.

`benchmarks/workflow_costs.py` measures the whole round (the workers and their frames too); the difference
between the two is the runtime's part.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import profile_text
from benchmarks.workflow_costs import _thread_cpu
from triggerfish.runtime.invocation_message import encode_event
from triggerfish.runtime.types import PlatformCall
from triggerfish.store import OutgoingMessage, open_store
from triggerfish.workflows.service import Workflows

FUNCTION = "three"
TRACEPARENT = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"


class _Queued:
    """The invocations the service queues, built as the invoker builds them, for a queue no worker reads."""

    def message(self, function: str, event: Any, **options: Any) -> tuple[str, OutgoingMessage, str]:
        return f"fn.{function}", OutgoingMessage(encode_event(event)), "request"

    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
        raise NotImplementedError

    async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str:
        raise NotImplementedError


def _step(seq: int) -> dict[str, Any]:
    now = time.time()
    done = {"seq": seq, "kind": "step", "name": "noop", "started": now, "attempts": 1}
    return {"op": {**done, "status": "SUCCEEDED", "result": seq + 1, "ended": now}, "expect": None}


async def _run(workflows: Workflows, workflow_id: str, run: str) -> None:
    call = PlatformCall("workflow", {}, FUNCTION, run, TRACEPARENT)
    if not os.environ.get("WF12E_NOBEGIN"):
        begun = await workflows.call(call, {"action": "begin", "resume": workflow_id})
        assert begun["record"]["status"] == "RUNNING", begun
    for seq in range(3):
        request: dict[str, Any] = {"action": "checkpoint", "id": workflow_id, "ops": [_step(seq)], "markers": {}}
        if seq == 2:
            request["finish"] = {"status": "SUCCEEDED", "result": 3}
        answer = await workflows.call(call, request)
        assert answer == {"ok": True}, answer


async def _round(workflows: Workflows, count: int, store: Any) -> dict[str, float]:
    ids = list(await asyncio.gather(*(workflows.start_workflow(FUNCTION, n) for n in range(count))))
    threads, batches = _thread_cpu(), store.write_stats.batches
    await asyncio.gather(*(_run(workflows, workflow_id, f"run-{workflow_id}") for workflow_id in ids))
    after = _thread_cpu()
    found = {name: (seconds - threads.get(name, 0.0)) * 1000 / count for name, seconds in after.items()}
    found["writer transactions"] = (store.write_stats.batches - batches) / count
    return found


async def _measure(count: int, rounds: int, directory: Path, profile: cProfile.Profile | None) -> dict[str, float]:
    store = await open_store(f"sqlite:///{directory / 'store.db'}")
    workflows = Workflows(store, _Queued())
    try:
        await _round(workflows, 50, store)  # warm up: imports, the statement cache
        found: list[dict[str, float]] = []
        for _ in range(rounds):
            if profile is not None:
                profile.enable()
            found.append(await _round(workflows, count, store))
            if profile is not None:
                profile.disable()
        names = sorted({name for one in found for name in one})
        return {name: statistics.median(one.get(name, 0.0) for one in found) for name in names}
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions (cProfile)")
    options = parser.parse_args()
    profile = cProfile.Profile(time.thread_time) if options.profile else None
    with tempfile.TemporaryDirectory() as directory:
        found = asyncio.run(_measure(options.workflows, options.rounds, Path(directory), profile))
    print(f"The workflow service's part of a three-step workflow, {options.workflows} at once, median of rounds:\n")
    print("| per workflow | |\n|---|---:|")
    for name, value in found.items():
        unit = "" if name == "writer transactions" else " CPU ms"
        print(f"| {name}{unit} | {value:.3f} |")
    if profile is not None:
        print(profile_text(profile, options.profile))


if __name__ == "__main__":
    main()
