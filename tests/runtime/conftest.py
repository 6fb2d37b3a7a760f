"""Shared helpers for the process-runtime tests: real runners over the apps in tests/runtime/apps."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from triggerfish.runtime.types import InvokeRequest

APPS = Path(__file__).parent / "apps"
_ids = itertools.count(1)


def request(function: str, event: Any = None, **fields: Any) -> InvokeRequest:
    """An InvokeRequest with a fresh request id."""
    fields.setdefault("request_id", f"req-{next(_ids)}")
    return InvokeRequest(function=function, event=event, **fields)


def tmp_tops_of_this_interpreter() -> set[str]:
    """The top directories under /tmp holding this interpreter or its import path (a checkout or a virtualenv
    made in /tmp): a worker's private /tmp binds them back, so its listing shows them beside the app's own."""
    paths = [sys.prefix, *sys.path]
    return {real.split("/")[2] for real in map(os.path.realpath, filter(None, paths)) if real.startswith("/tmp/")}


def app(name: str) -> str:
    return str(APPS / f"{name}.py")


async def eventually(condition: Callable[[], bool], seconds: float) -> None:
    """Wait until `condition()` holds, checking every 20 ms for at most `seconds` (the caller asserts)."""
    for _ in range(int(seconds / 0.02) + 1):
        if condition():
            return
        await asyncio.sleep(0.02)
