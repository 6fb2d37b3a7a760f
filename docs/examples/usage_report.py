"""An app's usage, rolled up from its invocation records, with Lambda's prices."""

import asyncio
import tempfile
from pathlib import Path

import httpx

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("shop")


@app.function(memory_mb=512)
def quote(event, context):
    return {"total": event["items"] * 10}
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "app.py").write_text(APP)
        async with (
            Platform(str(Path(directory) / "app.py"), data_dir=Path(directory) / "data") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
            httpx.AsyncClient(base_url=f"{server.url}/-/api/v1") as api,
        ):
            for items in range(1, 4):
                await api.post("/functions/quote/invoke", json={"items": items})
            await platform.current.invoker.records.settled()

            prices = {"gb_second_price": 0.0000166667, "million_requests_price": 0.20}  # Lambda, x86, US East
            report = (await api.get("/usage", params={"by": "function", **prices})).json()
            (quote,) = report["rows"]
            assert quote["key"] == "quote"
            assert (quote["invocations"], quote["requests"], quote["errors"]) == (3, 3, 0)
            # Billed milliseconds times memory, as Lambda bills: 512 MB is half a GB.
            assert abs(quote["gb_seconds"] - quote["billed_ms"] / 1000 * 0.5) < 1e-9
            expected = quote["gb_seconds"] * 0.0000166667 + 3 / 1_000_000 * 0.20
            assert abs(quote["cost"] - expected) < 1e-12
            assert report["total"]["requests"] == 3
            # Data in and out: the events' JSON ({"items":1}, 11 bytes each) and the results' ({"total":10}, 12).
            assert (quote["bytes_in"], quote["bytes_out"]) == (33, 36)


asyncio.run(main())
