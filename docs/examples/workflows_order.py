import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import json

import triggerfish
from triggerfish.workflows import Saga, StepFailedError, WaitTimeoutError

app = triggerfish.App("shop")


def reserve(order):
    return {"reserved": order["items"]}


def release(order):
    print("released the stock of", order["id"])


def charge(order, key):
    # `key` is the same every time this step runs: the payment API charges once per key.
    return {"charged": order["total"], "idempotency_key": key}


def refund(order, key):
    print("refunded", order["id"])


def ship(order):
    return {"tracking": "TRK-" + order["id"]}


@app.http("POST", "/orders")
@app.workflow
def order(ctx, request):
    # The input is what the trigger delivers: for an HTTP route, API Gateway's event.
    order = json.loads(request["body"])
    with Saga(ctx) as saga:
        stock = saga.step(reserve, order, compensate=release)
        payment = saga.step(charge, order, ctx.key(), compensate=refund)
        # Costs no worker while it waits: the bus wakes the workflow when the event comes.
        try:
            paid = ctx.wait_for_event(
                {"type": ["payment.settled"], "data": {"order": [order["id"]]}}, timeout=3600
            )
        except WaitTimeoutError:
            raise StepFailedError("payment", {"errorType": "NotSettled", "errorMessage": "no settlement"})
        # A person approves big orders: the token goes to them, the answer comes over the API or the CLI.
        approval = ctx.callback(timeout=86400)
        ctx.step(print, "approve with:", approval.token, name="ask")
        approved = approval.result()
        ctx.sleep(1)  # seconds to a year: a timer in the store resumes it, across restarts
        shipped = saga.step(ship, order)
    return {**stock, **payment, **shipped, "settled": paid["data"]["amount"], "by": approved["by"]}
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        app_file = Path(directory) / "app.py"
        app_file.write_text(APP)
        async with (
            Platform(str(app_file), data_dir=Path(directory) / ".triggerfish") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            order = {"id": "o-1", "items": 2, "total": 30}
            started = await http.post("/orders", json=order)
            workflow_id = started.json()["workflow_id"]
            assert started.json()["status"] == "RUNNING"  # it waits for the payment

            async def workflow() -> dict:
                return (await http.get(f"/-/api/v1/workflows/{workflow_id}")).json()

            settled = {
                "specversion": "1.0",
                "id": "p-1",
                "source": "payments",
                "type": "payment.settled",
                "data": {"order": "o-1", "amount": 30},
            }
            headers = {"content-type": "application/cloudevents+json"}
            assert (await http.post("/-/events", json=settled, headers=headers)).status_code == 202

            deadline = time.monotonic() + 30
            while not [op for op in (await workflow())["ops"] if op["kind"] == "callback"]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            token = next(op["token"] for op in (await workflow())["ops"] if op["kind"] == "callback")
            answer = await http.post(f"/-/api/v1/workflows/callbacks/{token}/succeed", json={"result": {"by": "ann"}})
            assert answer.status_code == 200

            while (record := await workflow())["status"] == "RUNNING":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert record["status"] == "SUCCEEDED", record
            assert record["result"] == {
                "reserved": 2,
                "charged": 30,
                "idempotency_key": f"{workflow_id}#2",
                "tracking": "TRK-o-1",
                "settled": 30,
                "by": "ann",
            }
            kinds = [(op["kind"], op["name"]) for op in record["ops"]]
            assert kinds == [
                ("step", "reserve"),
                ("step", "charge"),
                ("event", "event"),
                ("callback", "callback"),
                ("step", "ask"),
                ("sleep", "sleep"),
                ("step", "ship"),
            ]


asyncio.run(main())
