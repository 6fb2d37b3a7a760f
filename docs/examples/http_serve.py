"""Serve an app's HTTP routes with the gateway on a real socket, and call them."""

import asyncio
import json

import httpx

from triggerfish import App
from triggerfish.gateway import Gateway, GatewayServer, RouteTable
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.store import open_store

app = App("shop")


@app.http("GET", "/orders/{id}")
def get_order(event, context):
    # A plain dict becomes a 200 application/json response.
    return {"id": event["pathParameters"]["id"], "fields": event.get("queryStringParameters", {})}


@app.http("POST", "/orders")
def create_order(event, context):
    order = json.loads(event["body"])
    # The Lambda proxy form: status, headers, cookies, body.
    return {
        "statusCode": 201,
        "headers": {"Location": f"/orders/{order['id']}", "Content-Type": "application/json"},
        "cookies": ["last_order=" + str(order["id"])],
        "body": json.dumps(order),
    }


async def main():
    store = await open_store("memory://")
    invoker = Invoker(InProcessRunner(app.functions), store)
    gateway = Gateway(RouteTable.from_specs(app.functions), invoker.invoke)
    async with GatewayServer(gateway, port=0) as server:  # port 0: any free port
        client = httpx.AsyncClient(base_url=server.url)
        got = await client.get("/orders/42", params=[("fields", "id"), ("fields", "total")])
        created = await client.post("/orders", json={"id": 7})
        await client.aclose()
    assert got.json() == {"id": "42", "fields": {"fields": "id,total"}}  # repeated keys joined by commas
    assert created.status_code == 201
    assert created.headers["location"] == "/orders/7"
    assert created.headers["set-cookie"] == "last_order=7"
    await store.close()


asyncio.run(main())
