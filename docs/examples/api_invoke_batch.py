"""Queue many asynchronous invocations in one request and one durable write, and see each of them run."""

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


@app.function(concurrency=2)
def send_mail(event, context):
    print("mailing", event["to"])
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "app.py").write_text(APP)
        async with (
            Platform(str(Path(directory) / "app.py"), data_dir=Path(directory) / "data") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
            httpx.AsyncClient(base_url=f"{server.url}/-/api/v1") as api,
        ):
            events = [{"to": f"user-{n}@example.com"} for n in range(100)]
            queued = await api.post("/functions/send_mail/invoke-batch", json={"events": events})
            assert queued.status_code == 202
            request_ids = queued.json()["request_ids"]
            assert len(request_ids) == 100  # one per event, in their order

            async with asyncio.timeout(30):
                for number, request_id in enumerate(request_ids):
                    while True:
                        found = await api.get(f"/invocations/{request_id}")
                        if found.status_code == 200:
                            break
                        await asyncio.sleep(0.05)
                    assert f"mailing user-{number}@example.com" in found.json()["attempts"][0]["output"]

            # All or nothing: one event too large refuses the batch, naming it, and queues none of it.
            too_large = [{"to": "a@example.com"}, {"to": "b@example.com", "pad": "x" * 300_000}]
            refused = await api.post("/functions/send_mail/invoke-batch", json={"events": too_large})
            assert refused.status_code == 400
            assert refused.json()["error"]["message"].startswith("event 1: ")


asyncio.run(main())
