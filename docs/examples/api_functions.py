"""Invoke functions through the control API, as Lambda's Invoke API does, and read their invocation records."""

import asyncio
import tempfile
from pathlib import Path

import httpx

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("quotes")


@app.function(memory_mb=256)
def quote(event, context):
    print("quoting", event["items"], "items")
    return {"total": 10 * event["items"]}


@app.function()
def refund(event, context):
    raise ValueError("order o-1 was never paid")
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "app.py").write_text(APP)
        async with (
            Platform(str(Path(directory) / "app.py"), data_dir=Path(directory) / "data") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
            httpx.AsyncClient(base_url=f"{server.url}/-/api/v1") as api,
        ):
            functions = (await api.get("/functions")).json()["functions"]
            assert [f["name"] for f in functions] == ["quote", "refund"]
            assert functions[0]["settings"]["memory_mb"] == 256

            # Synchronous (RequestResponse): the result, and the request id in a header.
            answer = await api.post("/functions/quote/invoke", json={"items": 3})
            assert answer.json() == {"total": 30}
            request_id = answer.headers["x-triggerfish-request-id"]
            record = (await api.get(f"/invocations/{request_id}")).json()
            assert record["status"] == "succeeded"
            assert "quoting 3 items" in record["attempts"][0]["output"]

            # A handler error is 200 with Lambda's error document and X-Amz-Function-Error.
            failed = await api.post("/functions/refund/invoke", json={})
            assert failed.status_code == 200
            assert failed.headers["x-amz-function-error"] == "Unhandled"
            assert failed.json()["errorMessage"] == "order o-1 was never paid"

            # Asynchronous (Event): 202 once the invocation is durably queued; it runs soon after.
            queued = await api.post("/functions/quote/invoke", json={"items": 5}, params={"type": "Event"})
            assert queued.status_code == 202
            async with asyncio.timeout(10):
                while True:
                    found = await api.get(f"/invocations/{queued.json()['request_id']}")
                    if found.status_code == 200:
                        break
                    await asyncio.sleep(0.05)
            assert found.json()["attempts"][0]["trigger"] == "async"

            failures = (await api.get("/invocations", params={"status": "failed"})).json()["invocations"]
            assert [r["function"] for r in failures] == ["refund"]


asyncio.run(main())
