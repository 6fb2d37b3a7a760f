"""One trace from an HTTP request through an event and a queue message, read back by its id."""

import asyncio
import itertools
import tempfile
from pathlib import Path

import httpx

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("shop")


@app.http("POST", "/orders")
def place(event, context):
    context.publish("order.placed", {"id": "o-1"})
    return {"trace": context.trace_id}


@app.on_event({"type": ["order.placed"]})
def ship(event, context):
    context.send("parcels", {"order": event["data"]["id"]})


@app.on_queue("parcels")
def deliver(event, context):
    return None
"""

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"  # a W3C traceparent from the caller


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "app.py").write_text(APP)
        async with (
            Platform(str(Path(directory) / "app.py"), data_dir=Path(directory) / "data") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            placed = await http.post("/orders", json={}, headers={"traceparent": CALLER})
            trace_id = placed.json()["trace"]
            assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"  # the caller's trace goes on

            spans: list[dict[str, str]] = []
            for _ in range(300):  # the event and the message are delivered in the background
                answer = await http.get(f"/-/api/v1/traces/{trace_id}")
                spans = answer.json()["spans"] if answer.status_code == 200 else []
                if any(span["name"] == "deliver" for span in spans):
                    break
                await asyncio.sleep(0.05)

            # Parents first: each span is the child of the one before it.
            assert [(s["name"], s["kind"]) for s in spans] == [
                ("place", "server"),
                ("publish default", "producer"),
                ("ship", "consumer"),
                ("send parcels", "producer"),
                ("deliver", "consumer"),
            ]
            assert spans[0]["parent_span_id"] == "00f067aa0ba902b7"  # the caller's span
            for parent, child in itertools.pairwise(spans):
                assert child["parent_span_id"] == parent["span_id"]

            # The invocation records carry the trace, and are found by it.
            found = await http.get("/-/api/v1/invocations", params={"trace_id": trace_id})
            assert [r["function"] for r in found.json()["invocations"]] == ["place", "ship", "deliver"]


asyncio.run(main())
