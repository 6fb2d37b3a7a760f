"""Send, receive and acknowledge queue messages over the control API, and redrive dead letters."""

import asyncio
import tempfile
from pathlib import Path

import httpx

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("mailer")


@app.function()
def send_email(event, context):
    return None
"""
CONFIG = """
[queues.emails]
visibility_timeout = 60
max_receives = 5
dead_letter = "emails.failed"
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
            sent = await api.post(
                "/queues/emails/messages",
                json={"body": {"to": "ada@example.com"}, "attributes": {"kind": "welcome"}},
            )
            assert sent.json()["duplicate"] is False

            queue = (await api.get("/queues/emails")).json()
            assert queue["stats"]["visible"] == 1
            assert queue["dead_letter"]["name"] == "emails.failed"

            got = (await api.post("/queues/emails/receive", json={"max": 10})).json()["messages"]
            assert [m["body"] for m in got] == ['{"to":"ada@example.com"}']
            acked = await api.post("/queues/emails/ack", json={"receipts": [got[0]["receipt"]]})
            assert acked.json() == {"acked": [True]}

            # Two messages that failed too often sit in the dead-letter queue; move them back.
            for address in ("bob@example.com", "eve@example.com"):
                await platform.store.queues.send("emails.failed", address.encode())
            moved = await api.post("/queues/emails/redrive")
            assert moved.json() == {"queue": "emails", "dead_letter": "emails.failed", "moved": 2}

            purged = await api.delete("/queues/emails/messages")
            assert purged.json() == {"queue": "emails", "purged": 2}


asyncio.run(main())
