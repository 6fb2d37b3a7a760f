"""One step span's trace-index write alone (its fields, its JSON, its `Put`), COUNT times, for callgrind.

    PYTHONPATH=<tree> valgrind --tool=callgrind python benchmarks/step_span_costs.py 0
    PYTHONPATH=<tree> valgrind --tool=callgrind python benchmarks/step_span_costs.py 2000

The difference of the two totals over 2,000 is one span's instructions. Run by path, not with -m, so that
PYTHONPATH picks the tree: it uses only `operation_spans` and `span_writes`, which older trees have too.
"""

from __future__ import annotations

import sys
import time

from triggerfish.workflows.spans import operation_spans, span_writes

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def main(count: int) -> None:
    now = time.time()
    ops = [
        {"seq": seq, "kind": "step", "name": f"step{seq}", "status": "SUCCEEDED", "started": now, "ended": now}
        | {"result": seq, "error": None, "trace": TRACEPARENT}
        for seq in range(3)
    ]
    record = {"id": "0123456789abcdef01234567", "function": "three", "ops": ops}
    for _ in range(count):
        span_writes(operation_spans(record, [2], now))


if __name__ == "__main__":
    main(int(sys.argv[1]))
