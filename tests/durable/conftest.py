"""A real platform whose functions reach its `/-/aws` as under `triggerfish dev`: the SDK's boto3 calls land there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.server.conftest import Served
from triggerfish.aws.credentials import DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY, function_environment
from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform


async def serve_durable(tmp_path: Path, app_file: Path, *, store_url: str = "") -> AsyncIterator[Served]:
    """The app served on a loopback port its functions know before they start (their AWS_ENDPOINT_URL): bound
    first, on a port the kernel picks (as `triggerfish dev --port 0` does), so no other process can take it
    between a pick and the bind."""
    platform = Platform(str(app_file), data_dir=tmp_path / "data", store_url=store_url)
    server = GatewayServer(platform_asgi(platform, None), port=0)
    await server.start()
    try:
        platform.environment = function_environment(server.url, DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY)
        await platform.start()
    except BaseException:
        await server.stop()
        raise
    try:
        yield Served(platform, server.url)
    finally:
        try:
            await server.stop()
        finally:
            await platform.stop()


async def until(check: Callable[[], Awaitable[Any]], *, within: float = 60.0) -> Any:
    """Wait until `check()` gives something truthy (polled), and give it; fail after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached in {within} s: {check}")
        await asyncio.sleep(0.05)
