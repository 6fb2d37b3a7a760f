"""What the broker-source tests share: the platform run on an app until its source subscribed, the rows its handler
wrote, and waiting for them (deadlines stretched by load: tests/patience.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.patience import scaled, until
from triggerfish.server.platform import Platform


def lines(path: Path) -> list[Any]:
    """The JSON lines a handler appended to `path` (none yet when it does not exist)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def handled(tmp_path: Path) -> list[list[Any]]:
    """The rows the test app's handler wrote to `out.jsonl`, in the order it wrote them."""
    return lines(tmp_path / "out.jsonl")


async def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    await until(condition, seconds, "the source's records")


@asynccontextmanager
async def subscribed_platform(tmp_path: Path, app: Path, kind: str) -> AsyncIterator[Platform]:
    """The platform on `app` (data under `tmp_path/data`), once its `kind` source ("mqtt", "amqp", "nats",
    "redis") subscribed; stopped after."""
    running = Platform(str(app), data_dir=tmp_path / "data")
    await running.start()
    try:
        sources: Any = getattr(running.sources, kind) if kind in ("mqtt", "amqp") else running.sources.clients[kind][0]
        assert sources is not None, f"the app declares no {kind} source"
        async with asyncio.timeout(scaled(10)):
            await sources.wait_subscribed()
        yield running
    finally:
        await running.stop()
