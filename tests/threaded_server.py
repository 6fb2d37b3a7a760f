"""An ASGI app served on a loopback port from a thread with its own event loop, for tests that are not async
(CLI tests run the CLI in this thread, so the server cannot share its loop)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from triggerfish.gateway import GatewayServer


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve `app` until the block ends; yields its URL."""
    ready = threading.Event()
    loop: asyncio.AbstractEventLoop | None = None
    stop: asyncio.Event | None = None
    url: list[str] = []
    failure: list[BaseException] = []

    async def run() -> None:
        nonlocal loop, stop
        loop, stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with GatewayServer(app, port=0, handle_signals=False) as server:
                url.append(server.url)
                ready.set()
                await stop.wait()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            raise

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the test server did not start"
    assert not failure, failure
    try:
        yield url[0]
    finally:
        assert loop is not None
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
