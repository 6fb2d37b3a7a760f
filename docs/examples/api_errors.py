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
            # The control API takes JSON, and a request that changes anything must say so, body or not.
            httpx.AsyncClient(base_url=f"{server.url}/-/api/v1", headers={"content-type": "application/json"}) as api,
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

            wrong = await api.post("/queues/nope/receive", json={"max": 5})
            assert wrong.status_code == 404
            assert wrong.json()["error"]["code"] == "QueueNotFound"

            # Every input is checked against the schema the OpenAPI document states, before anything runs.
            too_many = await api.post("/queues/nope/receive", json={"max": 50})
            assert too_many.status_code == 400
            assert too_many.json()["error"]["message"] == "body.max must be a whole number from 1 to 10, not 50"

            # A form, or a body that does not say it is JSON, is refused: a web page could send those.
            form = await api.post("/functions/quote/invoke", content=b"{}", headers={"content-type": "text/plain"})
            assert form.status_code == 415


asyncio.run(main())
