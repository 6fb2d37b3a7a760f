"""How long a test waits, stretched with the machine's load, and the waits that use it.

A test's deadlines (the per-test timeout, a server's start, "eventually this holds") guard against a hang; they
are not performance checks (performance lives in benchmarks/). On a quiet machine they are what the test says.
With more runnable processes than cores, each process gets a smaller share of a core and everything takes longer
by about the load per core: the deadlines stretch by that much, at most `MOST` times, so a real hang still fails.
TRIGGERFISH_TEST_PATIENCE sets the factor outright (1 holds every deadline as written).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: The most a deadline is stretched by load.
MOST = 6.0


def patience() -> float:
    """The factor deadlines are stretched by now: the 1-minute load average per core, from 1 to `MOST`."""
    fixed = os.environ.get("TRIGGERFISH_TEST_PATIENCE")
    if fixed:
        return float(fixed)
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 1.0
    return min(max(load / (os.cpu_count() or 1), 1.0), MOST)


def scaled(seconds: float) -> float:
    """`seconds` stretched by `patience()`."""
    return seconds * patience()


def eventually(check: Callable[[], T | None], within: float, what: str, *, interval: float = 0.05) -> T:
    """`check()`'s first truthy value, polling; AssertionError naming `what` when none came within `within` s
    (stretched by load)."""
    limit = scaled(within)
    deadline = time.monotonic() + limit
    while True:
        last = check()
        if last:
            return last
        assert time.monotonic() < deadline, f"{what}: not within {limit:.0f} s (last value: {last!r})"
        time.sleep(interval)


async def until(check: Callable[[], object], within: float, what: str, *, interval: float = 0.05) -> Any:
    """The async `eventually`: `check` may be a plain or an async function; its first truthy value."""
    limit = scaled(within)
    deadline = time.monotonic() + limit
    while True:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        assert time.monotonic() < deadline, f"{what}: not within {limit:.0f} s (last value: {last!r})"
        await asyncio.sleep(interval)
