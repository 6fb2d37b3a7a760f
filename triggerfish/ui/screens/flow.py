"""The event-flow map: the app's declarations drawn as a graph with live rates on the edges (ui/flow.py lays it
out; the template draws it as SVG on the server, with a table of the same edges for screen readers)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.ui.api import ApiFailure, ControlApi
from triggerfish.ui.flow import flow_graph, lay_out, rate_text
from triggerfish.ui.render import page
from triggerfish.ui.screen import screen
from triggerfish.ui.screens.overview import WINDOW, recent_records
from triggerfish.ui.stats import trigger_counts

#: Recent traces read for what handlers publish and send (each is one more request to the API).
TRACES_READ = 20


async def _observed(api: ControlApi, buses: set[str], topics: set[str]) -> list[tuple[str, str, str, int]]:
    """(function, "bus" | "queue" | "topic", name, count) from the producer spans of recent traces."""
    counts: dict[tuple[str, str, str], int] = {}
    # The traces of the map's window only: GET /traces summarises every record since `since` (an hour by default).
    listed = (await api.get("/traces", since=time.time() - WINDOW, limit=TRACES_READ))["traces"]

    async def spans_of(trace_id: str) -> list[dict[str, Any]]:
        try:
            found: list[dict[str, Any]] = (await api.get(f"/traces/{trace_id}"))["spans"]
        except ApiFailure as failure:
            if failure.status != 404:
                raise
            return []  # trimmed meanwhile
        return found

    # Read side by side: each is a read of the store's trace index, and the page waits for the slowest only.
    every = await asyncio.gather(*(spans_of(trace["trace_id"]) for trace in listed))
    for span in (span for spans in every for span in spans):
        if span.get("kind") != "producer" or not span.get("function"):
            continue
        attributes = span.get("attributes") or {}
        name = str(attributes.get("messaging.destination.name", ""))
        operation = attributes.get("messaging.operation.type")
        if operation == "send":
            kind = "queue"
        elif name in topics and name not in buses:
            kind = "topic"
        else:
            kind = "bus"
        key = (str(span["function"]), kind, name)
        counts[key] = counts.get(key, 0) + 1
    return [(f, k, n, c) for (f, k, n), c in sorted(counts.items())]


@screen
async def flow(request: Request, api: ControlApi) -> Response:
    functions = (await api.get("/functions"))["functions"]
    buses = [b["name"] for b in (await api.get("/buses"))["buses"]]
    answers = await asyncio.gather(*(api.get(f"/buses/{bus}/rules") for bus in buses))
    rules = {bus: answer["rules"] for bus, answer in zip(buses, answers, strict=True)}
    queues = (await api.get("/queues"))["queues"]
    topics = {t["name"] for t in (await api.get("/topics"))["topics"]}
    records = await recent_records(api)
    observed = await _observed(api, set(buses), topics)
    graph = flow_graph(functions, rules, queues, observed=observed, counts=trigger_counts(records), window=WINDOW)
    layout = lay_out(graph)
    return page(
        request,
        "flow.html",
        title="Flow map",
        current="Flow map",
        layout=layout,
        graph=graph,
        rate_text=rate_text,
        window_minutes=int(WINDOW // 60),
    )
