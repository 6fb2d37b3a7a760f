"""The DBOS Transact side of the workflows benchmark: one round in a process of its own.

    python -m benchmarks.dbos_workflows sqlite:///path/to/file.sqlite 300 200
    python -m benchmarks.dbos_workflows postgresql://postgres@127.0.0.1:5432/some_db 300 200

DBOS is a singleton per process (configured and launched once in a program's
life), so each round runs in a fresh process, as the platform is started
afresh for each of Triggerfish's rounds. DBOS runs as its documentation
recommends: `DBOS(config={"name": ..., "system_database_url": ...})`, then
`DBOS.launch()`, nothing else set (its own defaults for threads, pools and
durability). The workflow is the same as Triggerfish's: three no-op steps,
each checkpointed to the system database before the workflow goes on.

It starts WORKFLOWS workflows at once with `DBOS.start_workflow` and waits
for every result; workflows per second is WORKFLOWS over the time from the
first start to the last end as the system database records it (its
`updated_at` of the last to finish). Then a workflow of CHAIN no-op steps
runs alone; the gap between one step's end and the next one's start (from
`DBOS.list_workflow_steps`) is a step's checkpoint, as Triggerfish's side
measures it. Prints one line of JSON.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def measure(url: str, workflows: int, chain_length: int) -> dict[str, Any]:
    from dbos import DBOS, DBOSConfig

    @DBOS.step()
    def noop(value: int) -> int:
        return value

    @DBOS.workflow()
    def three(value: int) -> int:
        noop(1)
        noop(2)
        return noop(3) + value * 0

    @DBOS.workflow()
    def chain(count: int) -> int:
        for index in range(count):
            noop(index)
        return count

    config: DBOSConfig = {"name": "bench-workflows", "system_database_url": url}
    DBOS(config=config)
    DBOS.launch()
    try:
        # Warm up as Triggerfish's side does (its pool of 16 workers): connections made, code paths taken.
        for handle in [DBOS.start_workflow(three, n) for n in range(16)]:
            handle.get_result()
        began = time.time()
        handles = [DBOS.start_workflow(three, n) for n in range(workflows)]
        for handle in handles:
            handle.get_result()
        ended = time.time()
        ids = {handle.get_workflow_id() for handle in handles}
        recorded = [w.updated_at for w in DBOS.list_workflows(workflow_ids=list(ids)) if w.updated_at]
        # DBOS records milliseconds since the epoch; fall back on the wall clock if it recorded none.
        last = max(recorded) / 1000 if recorded else ended
        seconds = max(last, began) - began
        handle = DBOS.start_workflow(chain, chain_length)
        handle.get_result()
        steps = DBOS.list_workflow_steps(handle.get_workflow_id())
        gaps = _gaps(steps)
        return {"per_second": workflows / seconds, "steps_per_second": 3 * workflows / seconds, "gaps": gaps}
    finally:
        DBOS.destroy()


def _gaps(steps: list[Any]) -> list[float]:
    """Milliseconds from one step's end to the next one's start, where DBOS recorded both."""
    timed = [s for s in steps if s.get("started_at_epoch_ms") and s.get("completed_at_epoch_ms")]
    timed.sort(key=lambda s: s["function_id"])
    return [
        float(timed[i + 1]["started_at_epoch_ms"] - timed[i]["completed_at_epoch_ms"]) for i in range(len(timed) - 1)
    ]


def main(argv: list[str]) -> int:
    url, workflows, chain_length = argv[0], int(argv[1]), int(argv[2])
    print(json.dumps(measure(url, workflows, chain_length)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
