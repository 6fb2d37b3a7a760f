"""A real platform for the server tests: an app file, worker processes, a SQLite store, a loopback socket."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import starlette.requests

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform
from triggerfish.server.request_guard import RequestRules

#: An app whose functions leave what they received in the key-value records, for tests to read.
RECORDER_APP = """
import triggerfish

app = triggerfish.App("recorder")


@app.http("GET", "/ping")
def ping(event, context):
    return {"pong": True}


@app.on_event({"source": ["tests"]})
def seen(event, context):
    context.send("seen", event["id"])


@app.on_event({"source": ["tests"]}, bus="other")
def seen_other(event, context):
    context.send("seen-other", event["id"])
"""


@dataclass
class Served:
    platform: Platform
    url: str


async def serve_app(
    tmp_path: Path, source: str, *, rules: RequestRules | None = None, **options: object
) -> AsyncIterator[Served]:
    app_file = tmp_path / "app.py"
    app_file.write_text(textwrap.dedent(source))
    platform = Platform(str(app_file), data_dir=tmp_path / "data", **options)  # type: ignore[arg-type]
    await platform.start()
    try:
        async with GatewayServer(platform_asgi(platform, rules), port=0) as server:
            yield Served(platform, server.url)
    finally:
        await platform.stop()


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serve_app(tmp_path, RECORDER_APP, body_timeout=0.5):
        yield served


@pytest.fixture
def framework_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the Starlette `Request`s built while a test runs: what a lean route must not build."""
    built: list[str] = []
    original = starlette.requests.Request.__init__

    def counting(self: starlette.requests.Request, *args: Any, **kwargs: Any) -> None:
        built.append(args[0]["path"])
        original(self, *args, **kwargs)

    monkeypatch.setattr(starlette.requests.Request, "__init__", counting)
    return built
