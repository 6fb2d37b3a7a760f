"""Publish to a topic and subscribe a queue to it; list schedules with their next fire times, pause one."""

import asyncio
import tempfile
from pathlib import Path

import httpx

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("ops")


@app.on_topic("alerts", filter={"severity": ["high"]})
def page(event, context):
    return None


@app.schedule("cron(0 3 * * ? *)")
def nightly_report(event, context):
    return None
"""
CONFIG = """
[queues.alert-log]
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "app.py").write_text(APP)
        (Path(directory) / "triggerfish.toml").write_text(CONFIG)
        async with (
            Platform(str(Path(directory) / "app.py"), data_dir=Path(directory) / "data") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
            # The control API takes JSON, and a request that changes anything must say so, body or not.
            httpx.AsyncClient(base_url=f"{server.url}/-/api/v1", headers={"content-type": "application/json"}) as api,
        ):
            subscribed = await api.post(
                "/topics/alerts/subscriptions", json={"kind": "queue", "endpoint": "alert-log", "raw": True}
            )
            assert subscribed.status_code == 201
            kinds = [s["kind"] for s in (await api.get("/topics/alerts/subscriptions")).json()["subscriptions"]]
            assert kinds == ["function", "queue"]

            published = await api.post(
                "/topics/alerts/messages", json={"message": "disk full", "attributes": {"severity": "low"}}
            )
            assert published.status_code == 202
            got = await api.post("/queues/alert-log/receive", json={"wait": 10})
            assert got.json()["messages"][0]["body"] == "disk full"

            [schedule] = (await api.get("/schedules", params={"count": 2})).json()["schedules"]
            assert schedule["name"] == "nightly_report"
            assert [t[11:] for t in schedule["next_fires"]] == ["03:00:00Z", "03:00:00Z"]
            paused = (await api.post("/schedules/nightly_report/pause")).json()
            assert (paused["paused"], paused["next_fires"]) == (True, [])
            await api.post("/schedules/nightly_report/resume")


asyncio.run(main())
