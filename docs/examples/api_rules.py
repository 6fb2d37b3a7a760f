"""Add a bus rule at run time, watch it route an event to a queue, then replay the event."""

import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import triggerfish

app = triggerfish.App("shop")


@app.on_event({"type": ["OrderPlaced"]})
def reserve_stock(event, context):
    return None
"""
CONFIG = """
[queues.big-orders]
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "app.py").write_text(APP)
        (Path(directory) / "triggerfish.toml").write_text(CONFIG)
        async with (
            Platform(str(Path(directory) / "app.py"), data_dir=Path(directory) / "data") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
            httpx.AsyncClient() as http,
        ):
            api = f"{server.url}/-/api/v1"
            rule = {
                "pattern": {"type": ["OrderPlaced"], "data": {"total": [{"numeric": [">=", 100]}]}},
                "targets": [{"id": "review", "kind": "queue", "name": "big-orders"}],
            }
            created = await http.put(f"{api}/buses/default/rules/big-orders", json=rule)
            assert created.status_code == 201
            rules = (await http.get(f"{api}/buses/default/rules")).json()["rules"]
            assert [(r["id"], r["source"]) for r in rules] == [("reserve_stock", "app"), ("big-orders", "api")]

            start = time.time()
            event = {
                "specversion": "1.0",
                "id": "o-1",
                "source": "shop",
                "type": "OrderPlaced",
                "data": {"total": 250},
            }
            await http.post(
                f"{server.url}/-/events", json=event, headers={"content-type": "application/cloudevents+json"}
            )
            got = await http.post(f"{api}/queues/big-orders/receive", json={"max": 10, "wait": 10})
            [message] = got.json()["messages"]
            assert json.loads(message["body"])["id"] == "o-1"
            await http.post(f"{api}/queues/big-orders/ack", json={"receipts": [message["receipt"]]})

            # Replay what the bus archived in a time range, to this rule only.
            replay = {"start": start - 1, "end": time.time() + 1, "rule": "big-orders", "name": "audit"}
            replayed = await http.post(f"{api}/buses/default/replay", json=replay)
            assert replayed.json()["queued"] == 1
            got = await http.post(f"{api}/queues/big-orders/receive", json={"wait": 10})
            again = json.loads(got.json()["messages"][0]["body"])
            assert (again["id"], again["replayname"]) == ("o-1", "audit")

            assert (await http.delete(f"{api}/buses/default/rules/big-orders")).status_code == 204


asyncio.run(main())
