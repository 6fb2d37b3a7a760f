"""A batch of queue messages from several traces: the invocation continues the first message's trace and links
the others' (OpenTelemetry's messaging conventions for batch processing), in its record, its span and the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.test_nodes_in_process import eventually
from tests.server.conftest import Served, serve_app
from triggerfish.observe.spans import invocation_span
from triggerfish.runtime.records import InvocationRecord

APP = """
import triggerfish

app = triggerfish.App("batches")


@app.http("POST", "/parcels")
def post(event, context):
    context.send("parcels", {"from": context.trace_id})
    return {"trace": context.trace_id}


@app.on_queue("parcels", batch_size=10, batch_window=2.0)
def deliver(event, context):
    return None
"""
CALLERS = [
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
]


@pytest.fixture
async def batches(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serve_app(tmp_path, APP):
        yield served


async def test_a_batch_continues_the_first_trace_and_links_the_others(batches: Served) -> None:
    async with httpx.AsyncClient(base_url=batches.url) as http:
        sent = await asyncio.gather(*(http.post("/parcels", json={}, headers={"traceparent": c}) for c in CALLERS))
        traces = [answer.json()["trace"] for answer in sent]

        found: list[dict[str, Any]] = []

        async def delivered() -> bool:
            answer = await http.get("/-/api/v1/invocations", params={"function": "deliver"})
            found[:] = answer.json()["invocations"]
            return bool(found)

        await eventually(delivered, 30)
        [record] = found
        first = traces.index(str(record["trace_id"]))
        other = traces[1 - first]
        assert [link.split("-")[1] for link in record["links"]] == [other]
        spans = (await http.get(f"/-/api/v1/traces/{record['trace_id']}")).json()["spans"]
    [span] = [s for s in spans if s["name"] == "deliver"]
    assert [link["trace_id"] for link in span["links"]] == [other]
    # The span is built from the record alone (as after a restart), links and all.
    rebuilt = invocation_span(InvocationRecord(**record))
    assert rebuilt is not None
    assert rebuilt.links == span["links"]
