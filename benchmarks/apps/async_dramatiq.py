"""The Dramatiq side of the async benchmarks: the same no-op as `async_app.py`, as a Dramatiq actor.

The broker is the Redis at TFBENCH_REDIS_URL (a server the benchmark
started); each run appends one byte to TFBENCH_DONE_FILE. Workers:
`python -m dramatiq benchmarks.apps.async_dramatiq --processes N`.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ["TFBENCH_REDIS_URL"])
dramatiq.set_broker(broker)
_done: list[int] = []


@dramatiq.actor(max_retries=0, queue_name="tfbench")
def noop(payload: dict[str, Any]) -> None:
    if not _done:
        _done.append(os.open(os.environ["TFBENCH_DONE_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    os.write(_done[0], b"x")
