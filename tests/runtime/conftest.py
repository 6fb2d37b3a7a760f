"""Shared helpers for the process-runtime tests: real runners over the apps in tests/runtime/apps."""

from __future__ import annotations

import asyncio
import itertools
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


def app(name: str) -> str:
    return str(APPS / f"{name}.py")


async def eventually(condition: Callable[[], bool], seconds: float) -> None:
    """Wait until `condition()` holds, checking every 20 ms for at most `seconds` (the caller asserts)."""
    for _ in range(int(seconds / 0.02) + 1):
        if condition():
            return
        await asyncio.sleep(0.02)
