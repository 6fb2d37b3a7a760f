"""What clients get when things go wrong: JSON errors with the request id, never a stack trace."""

import asyncio

import httpx

from triggerfish import App
from triggerfish.gateway import Gateway, RouteTable
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.store import open_store

app = App("errors")


@app.http("GET", "/boom")
def boom(event, context):
    raise RuntimeError("database password is hunter2")


@app.http("POST", "/upload")
def upload(event, context):
    return {"size": len(event.get("body", ""))}


async def main():
    store = await open_store("memory://")
    invoker = Invoker(InProcessRunner(app.functions), store)
    gateway = Gateway(RouteTable.from_specs(app.functions), invoker.invoke, max_body=1024)
    # The gateway is a plain ASGI app: httpx can call it without a server, as a test would.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://test") as client:
        failed = await client.get("/boom")
        request_id = failed.headers["x-triggerfish-request-id"]
        assert failed.status_code == 500
        assert failed.json() == {"message": "Internal Server Error", "requestId": request_id}
        assert "hunter2" not in failed.text
        # The details stay on the platform, in the invocation record under the same id.
        record = await invoker.records.get(request_id)
        assert "hunter2" in record.error["errorMessage"]

        assert (await client.get("/nowhere")).status_code == 404
        wrong = await client.get("/upload")
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
        too_big = await client.post("/upload", content=b"x" * 2048)
        assert too_big.status_code == 413
    await store.close()


asyncio.run(main())
