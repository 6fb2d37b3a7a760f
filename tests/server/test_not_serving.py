"""An app route asked before the platform has loaded the app, or after it stopped: 503 with Retry-After, not 500."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx

from tests.server.conftest import RECORDER_APP
from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform


async def test_a_request_before_the_start_and_after_the_stop_is_told_to_come_back(tmp_path: Path) -> None:
    app_file = tmp_path / "app.py"
    app_file.write_text(textwrap.dedent(RECORDER_APP))
    platform = Platform(str(app_file), data_dir=tmp_path / "data")
    # Bound first, as `triggerfish dev` and `serve` do (the functions are told the server's address).
    async with (
        GatewayServer(platform_asgi(platform), port=0) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        early = await client.get("/ping")
        assert early.status_code == 503
        assert early.headers["retry-after"] == "1"
        assert "not loaded yet" in early.json()["message"]
        assert early.json()["requestId"] == early.headers["x-triggerfish-request-id"]
        await platform.start()
        try:
            served = await client.get("/ping")
            assert (served.status_code, served.json()) == (200, {"pong": True})
        finally:
            await platform.stop()
        late = await client.get("/ping")
        assert late.status_code == 503
        assert late.headers["retry-after"] == "1"
