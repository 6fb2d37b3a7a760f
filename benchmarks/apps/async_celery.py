"""The Celery side of the async benchmarks: the same no-op as `async_app.py`, as a Celery task.

The broker is the Redis at TFBENCH_REDIS_URL (a server the benchmark
started); each run appends one byte to TFBENCH_DONE_FILE. Workers:
`celery -A benchmarks.apps.async_celery worker --pool prefork --concurrency N`.
Celery's defaults otherwise: it acknowledges a task when a worker receives
it (`acks_late` off), so a worker that dies mid-task loses it.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

app = Celery("tfbench", broker=os.environ["TFBENCH_REDIS_URL"])
app.conf.task_default_queue = "tfbench"
app.conf.worker_hijack_root_logger = False
_done: list[int] = []


@app.task(ignore_result=True)
def noop(payload: dict[str, Any]) -> None:
    if not _done:
        _done.append(os.open(os.environ["TFBENCH_DONE_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    os.write(_done[0], b"x")
