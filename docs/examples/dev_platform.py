import asyncio
import tempfile
from pathlib import Path

import httpx

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("greeter")


@app.http("GET", "/hello/{name}")
def hello(event, context):
    return {"hello": event["pathParameters"]["name"]}


@app.on_event({"type": ["Greeted"]})
def remember(event, context):
    context.send("greetings", event["data"]["name"])
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        app_file = Path(directory) / "app.py"
        app_file.write_text(APP)
        async with (
            Platform(str(app_file), data_dir=Path(directory) / ".triggerfish") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
            httpx.AsyncClient() as http,
        ):
            answer = await http.get(f"{server.url}/hello/ada")
            assert answer.json() == {"hello": "ada"}

            event = {
                "specversion": "1.0",
                "id": "g-1",
                "source": "docs",
                "type": "Greeted",
                "data": {"name": "ada"},
            }
            published = await http.post(
                f"{server.url}/-/events", json=event, headers={"content-type": "application/cloudevents+json"}
            )
            assert published.status_code == 202
            assert published.json() == {"ids": ["g-1"]}

            # The rule invokes `remember`, which sends a message: a long-polling receive waits for it.
            (message,) = await platform.store.queues.receive("greetings", wait=10)
            assert message.body == b"ada"


asyncio.run(main())
