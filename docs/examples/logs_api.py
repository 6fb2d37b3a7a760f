"""Read an app's log lines through the control API, then follow new ones as server-sent events."""

import asyncio
import json
import tempfile
from pathlib import Path

import httpx

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("shop")


@app.function(memory_mb=256)
def ship(event, context):
    print("packing", event["order"])
    context.logger.warning("courier is slow today")
    return {"shipped": event["order"]}


@app.function()
def refund(event, context):
    raise ValueError(f"order {event['order']} was never paid")
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "app.py").write_text(APP)
        async with (
            Platform(str(Path(directory) / "app.py"), data_dir=Path(directory) / "data") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
            httpx.AsyncClient(base_url=f"{server.url}/-/api/v1", timeout=30) as api,
        ):
            shipped = await api.post("/functions/ship/invoke", json={"order": "o-1"})
            request_id = shipped.headers["x-triggerfish-request-id"]

            # One invocation: START, its output (prints are INFO, logging keeps its level), END and REPORT.
            lines = (await api.get("/logs", params={"request_id": request_id})).json()["lines"]
            assert [(line["kind"], line["level"]) for line in lines] == [
                ("start", "INFO"),
                ("output", "INFO"),
                ("output", "WARNING"),
                ("end", "INFO"),
                ("report", "INFO"),
            ]
            assert lines[1]["message"] == "packing o-1"
            report = lines[-1]
            assert report["message"].startswith(f"REPORT RequestId: {request_id}\tDuration: ")
            assert "\tMemory Size: 256 MB" in report["message"]
            assert report["report"]["cold_start"] is True  # the first invocation started a worker

            # A failed invocation has an ERROR line with the error's type and message (then its traceback).
            await api.post("/functions/refund/invoke", json={"order": "o-2"})
            errors = (await api.get("/logs", params={"level": "error", "since": "10m"})).json()["lines"]
            assert errors[0]["message"] == "ValueError: order o-2 was never paid"

            # Following: an event stream that starts now and sends each invocation's lines once it finished.
            async with api.stream("GET", "/logs", params={"follow": "1", "function": "ship"}) as stream:
                events = stream.aiter_lines()
                assert await anext(events) == ": following"
                later = await api.post("/functions/ship/invoke", json={"order": "o-3"})
                followed = []
                async for text in events:
                    if text.startswith("data: "):
                        followed.append(json.loads(text.removeprefix("data: ")))
                        if followed[-1]["kind"] == "report":
                            break
                assert {line["request_id"] for line in followed} == {later.headers["x-triggerfish-request-id"]}
                assert followed[1]["message"] == "packing o-3"


asyncio.run(main())
