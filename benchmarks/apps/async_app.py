"""The no-op function `benchmarks/bench_async.py` and `bench_nodes.py` invoke asynchronously on Triggerfish.

Two worker processes at most (`concurrency=2`), as the peers get two. Each
run appends one byte to the file its BENCH_ASYNC_DONE_FILE setting names
(when set), as the peers' tasks (`async_dramatiq.py`, `async_celery.py`)
do: the benchmark counts the bytes to see the last task finish.
"""

from __future__ import annotations

import os
from typing import Any

from triggerfish.app import App

app = App("bench-async")

DONE_FILE = "BENCH_ASYNC_DONE_FILE"
_done: list[int] = []  # this worker's file descriptor, opened on its first invocation


def finished() -> None:
    """One byte for the benchmark: a task finished (an O_APPEND write: never interleaved)."""
    path = os.environ.get(DONE_FILE)
    if not path:
        return
    if not _done:
        _done.append(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    os.write(_done[0], b"x")


@app.function(concurrency=2)
def noop(event: dict[str, Any], context: Any) -> None:
    finished()
