"""Spans a handler starts with the OpenTelemetry API join its invocation's trace, are kept in the trace index beside
the platform's, and reach the dashboard's waterfall; a span claiming another trace is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import Served, serve_app
from triggerfish.errors import InvalidInputError
from triggerfish.observe.spans import handler_span

pytest.importorskip("opentelemetry.sdk", reason="the OpenTelemetry SDK is the otel extra (and in the test extra)")

APP = """
import triggerfish
from opentelemetry import trace

app = triggerfish.App("traced")
tracer = trace.get_tracer("traced.handlers")


@app.http("POST", "/price")
def price(event, context):
    with tracer.start_as_current_span("price the basket") as span:
        span.set_attribute("basket.items", 3)
        with tracer.start_as_current_span("look up the tax"):
            pass
    return {"trace": context.trace_id}
"""
CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serve_app(tmp_path, APP):
        yield served


async def test_a_handlers_own_spans_are_children_of_its_invocation_in_the_same_trace(traced: Served) -> None:
    async with httpx.AsyncClient(base_url=traced.url) as http:
        priced = await http.post("/price", json={}, headers={"traceparent": CALLER})
        assert priced.status_code == 200, priced.text
        trace_id = priced.json()["trace"]
        spans = (await http.get(f"/-/api/v1/traces/{trace_id}")).json()["spans"]
        page = await http.get(f"/-/ui/invocations?trace_id={trace_id}")
    by_name: dict[str, dict[str, Any]] = {s["name"]: s for s in spans}
    assert list(by_name) == ["price", "price the basket", "look up the tax"]  # parents first
    invocation, own, inner = by_name["price"], by_name["price the basket"], by_name["look up the tax"]
    assert own["parent_span_id"] == invocation["span_id"]
    assert inner["parent_span_id"] == own["span_id"]
    assert own["attributes"] == {"basket.items": 3}
    assert (own["kind"], own["function"], own["request_id"]) == ("internal", "price", invocation["request_id"])
    assert invocation["start"] <= own["start"] <= own["end"] <= invocation["end"]
    assert page.status_code == 200


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_span_of_another_trace_or_malformed_is_refused() -> None:
    good: dict[str, Any] = {
        "trace_id": TRACE,
        "span_id": "00f067aa0ba902b7",
        "parent_span_id": None,
        "name": "work",
        "kind": "internal",
        "start": 1.0,
        "end": 2.0,
        "attributes": {"a": 1},
    }
    span = handler_span(good, TRACE, "f", "r-1")
    assert (span.function, span.request_id, span.attributes) == ("f", "r-1", {"a": 1})
    changes: list[tuple[dict[str, Any], str]] = [
        ({"trace_id": "0" * 31 + "1"}, "is not in this invocation's"),
        ({"span_id": "XYZ"}, "span_id must be 16 lowercase hex digits"),
        ({"end": 0.5}, "end not before start"),
        ({"name": ""}, "name must be non-empty text"),
    ]
    for change, message in changes:
        with pytest.raises(InvalidInputError, match=message):
            handler_span({**good, **change}, TRACE, "f", "r-1")
