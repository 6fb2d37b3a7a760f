"""`POST /functions/{name}/invoke-batch`: many asynchronous invocations in one request and one durable write."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.backends import platform_store
from tests.server.test_control import Served, serving
from triggerfish.names import function_queue
from triggerfish.server.platform import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

APP = """
from triggerfish import App

app = App("batch")


@app.function(concurrency=2)
def work(event, context):
    print("work got", event)
    return {"twice": event["n"] * 2}
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["sqlite", "postgres"])
async def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    directory = tmp_path_factory.mktemp("batch")
    (directory / "app.py").write_text(APP, encoding="utf-8")
    async with platform_store(request.param) as store_url:
        platform = Platform(str(directory / "app.py"), data_dir=directory / "data", store_url=store_url)
        async with serving(platform) as served:
            yield served


async def queued(served: Served) -> int:
    """Invocations of `work` still queued or running."""
    return (await served.platform.store.queues.stats(function_queue("work"))).depth


async def records_of(served: Served, request_ids: list[str], within: float = 30.0) -> list[dict[str, Any]]:
    """The invocation document of each request id, once every one has succeeded."""
    deadline = time.monotonic() + within
    while True:
        found = [await served.api.get(f"/invocations/{request_id}") for request_id in request_ids]
        if all(r.status_code == 200 and r.json()["status"] == "succeeded" for r in found):
            return [r.json() for r in found]
        assert time.monotonic() < deadline, "the batch's invocations did not all run in time"
        await asyncio.sleep(0.05)


async def test_a_batch_is_queued_at_once_and_every_event_runs_once(served: Served) -> None:
    events = [{"n": n} for n in range(25)]
    answer = await served.api.post("/functions/work/invoke-batch", json={"events": events})
    assert answer.status_code == 202
    request_ids = answer.json()["request_ids"]
    assert len(request_ids) == len(set(request_ids)) == 25
    documents = await records_of(served, request_ids)
    # Each request id belongs to the event at its place in the batch, and ran exactly once.
    for n, document in enumerate(documents):
        [attempt] = document["attempts"]
        assert attempt["trigger"] == "async"
        assert f"work got {{'n': {n}}}" in attempt["output"]
    assert await queued(served) == 0


async def test_batches_sent_side_by_side_all_run(served: Served) -> None:
    async def send(first: int) -> list[str]:
        events = [{"n": n} for n in range(first, first + 40)]
        answer = await served.api.post("/functions/work/invoke-batch", json={"events": events})
        assert answer.status_code == 202
        ids: list[str] = answer.json()["request_ids"]
        return ids

    batches = await asyncio.gather(*(send(first) for first in range(0, 200, 40)))
    request_ids = [request_id for batch in batches for request_id in batch]
    assert len(set(request_ids)) == 200
    await records_of(served, request_ids, within=60.0)


async def test_the_invocations_carry_the_callers_trace(served: Served) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace}-00f067aa0ba902b7-01"
    answer = await served.api.post(
        "/functions/work/invoke-batch", json={"events": [{"n": 1}, {"n": 2}]}, headers={"traceparent": parent}
    )
    assert answer.status_code == 202
    for document in await records_of(served, answer.json()["request_ids"]):
        assert document["attempts"][0]["trace_id"] == trace


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"events": []}, "events"),
        ({"events": {"n": 1}}, "array"),
        ({"event": [{"n": 1}]}, "'event'"),
        ({}, "events is required"),
        ({"events": [{"n": n} for n in range(1001)]}, "1001"),
    ],
)
async def test_a_bad_batch_is_refused_and_queues_nothing(served: Served, body: dict[str, Any], says: str) -> None:
    before = await queued(served)
    answer = await served.api.post("/functions/work/invoke-batch", json=body)
    assert answer.status_code == 400
    assert says in answer.json()["error"]["message"]
    assert await queued(served) == before


async def test_one_event_too_large_refuses_the_whole_batch(served: Served) -> None:
    # One event over an `Event` invocation's 256 KiB, in a body well within the request's limit.
    events: list[Any] = [{"n": 1}, {"n": 2, "pad": "x" * (256 * 1024)}, {"n": 3}]
    answer = await served.api.post("/functions/work/invoke-batch", json={"events": events})
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert message.startswith("event 1: ")
    assert "262144 bytes" in message
    await asyncio.sleep(0.2)
    assert await queued(served) == 0


async def test_an_unknown_function_is_404(served: Served) -> None:
    answer = await served.api.post("/functions/nope/invoke-batch", json={"events": [{"n": 1}]})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "FunctionNotFound"
    assert "work" in answer.json()["error"]["message"]


async def test_the_endpoint_is_in_the_openapi_document(served: Served) -> None:
    document = (await served.api.get("/openapi.json")).json()
    operation = document["paths"]["/functions/{name}/invoke-batch"]["post"]
    assert "202" in operation["responses"]
