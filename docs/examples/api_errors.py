"""Every error of the control API is JSON with a code and a message, and the status says what kind it is."""

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


@app.function()
def quote(event, context):
    return 1
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "app.py").write_text(APP)
        async with (
            Platform(str(Path(directory) / "app.py"), data_dir=Path(directory) / "data") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
            httpx.AsyncClient(base_url=f"{server.url}/-/api/v1") as api,
        ):
            missing = await api.post("/functions/qoute/invoke", json={})
            assert missing.status_code == 404
            assert missing.json() == {
                "error": {
                    "code": "FunctionNotFound",
                    "message": "no function named 'qoute'; the app declares: quote",
                }
            }

            bad = await api.post("/functions/quote/invoke", content=b'{"items": 3,}')
            assert bad.status_code == 400
            error = bad.json()["error"]
            assert (error["code"], error["line"], error["column"]) == ("InvalidJSON", 1, 12)

            wrong = await api.post("/queues/nope/receive", json={"max": 50})
            assert wrong.status_code == 404
            assert wrong.json()["error"]["code"] == "QueueNotFound"


asyncio.run(main())
