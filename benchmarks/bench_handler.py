"""What the handler contract costs on the warm-invoke path: run_handler and Context around a trivial handler.

The warm invoke's whole round trip has a 200 µs p50 target; the part that
calls the handler should be a few microseconds of it. Measured in one
process (no worker, no IPC): building a Context, calling the handler
through run_handler, encoding its result as JSON, against calling the
handler and encoding its result directly.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from triggerfish.runtime.context import Context
from triggerfish.runtime.handler import run_handler

CALLS = 50_000
RUNS = 7
#: Overhead per call that still leaves the warm path its budget.
TARGET_US = 5.0

EVENT = {"order": {"id": "o-1", "items": [1, 2, 3]}}


def trivial(event: Any, context: Any) -> Any:
    return {"ok": True}


def failing(event: Any, context: Any) -> Any:
    raise ValueError("no such order")


async def trivial_async(event: Any, context: Any) -> Any:
    return {"ok": True}


def per_call_us(body: Callable[[], object]) -> float:
    """The median over RUNS of the time per call, in microseconds."""
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for _ in range(CALLS):
            body()
        samples.append((time.perf_counter() - start) / CALLS * 1e6)
    return statistics.median(samples)


def context() -> Context:
    return Context(request_id="r-1", function_name="bench", deadline=time.time() + 3, app_name="bench")


def main() -> str:
    loop = asyncio.new_event_loop()
    try:
        direct = per_call_us(lambda: orjson.dumps(trivial(EVENT, None)))
        sync = per_call_us(lambda: run_handler(trivial, EVENT, context()))
        on_loop = per_call_us(lambda: run_handler(trivial_async, EVENT, context(), loop=loop))
        error = per_call_us(lambda: run_handler(failing, EVENT, context()))
    finally:
        loop.close()
    overhead = sync - direct
    verdict = "met" if overhead <= TARGET_US else "not met"
    return "\n".join(
        [
            "## Handler contract overhead (`run_handler` + `Context`)",
            "",
            f"Median of {RUNS} runs of {CALLS:,} calls each, one process, no IPC.",
            "",
            "| what | µs per call |",
            "|---|---|",
            f"| trivial sync handler called directly, result encoded with orjson | {direct:.2f} |",
            f"| the same through `Context(...)` + `run_handler` | {sync:.2f} |",
            f"| async handler on a kept event loop | {on_loop:.2f} |",
            f"| handler raising (Lambda error document with stack trace) | {error:.2f} |",
            "",
            f"Overhead of the contract on the success path: **{overhead:.2f} µs** per call; "
            f"target ≤ {TARGET_US:g} µs (ratio to target {overhead / TARGET_US:.2f}): **{verdict}**. "
            "That is "
            f"{overhead / 200 * 100:.1f}% of the 200 µs warm-invoke budget.",
        ]
    )


if __name__ == "__main__":
    print(main())
