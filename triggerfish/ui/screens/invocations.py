"""Invocations: a filterable list of attempts; one invocation's input, attempts (output, error, logs, timings) and
its trace drawn as a waterfall across the functions it reached; re-running it with its input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from triggerfish.runtime.records import STATUSES
from triggerfish.ui.api import ApiFailure, ControlApi
from triggerfish.ui.render import base, page
from triggerfish.ui.screen import screen

#: The filters the list takes, each passed to GET /invocations as it is (the API checks them and says what is wrong).
FILTERS = ("function", "status", "request_id", "trace_id", "since", "until")
PAGE = 100


@screen
async def invocations(request: Request, api: ControlApi) -> Response:
    given = {name: request.query_params.get(name, "").strip() for name in FILTERS}
    names = [f["name"] for f in (await api.get("/functions"))["functions"]]
    error = None
    records: list[dict[str, Any]] = []
    try:
        records = (await api.get("/invocations", **given, limit=PAGE, order="desc"))["invocations"]
    except ApiFailure as failure:
        if failure.status not in (400, 404):
            raise
        error = failure.message  # a bad filter: shown beside the form, which keeps what was typed
    return page(
        request,
        "invocations.html",
        400 if error else 200,
        title="Invocations",
        current="Invocations",
        given=given,
        names=names,
        statuses=STATUSES,
        records=records,
        error=error,
        page_size=PAGE,
    )


@dataclass(frozen=True, slots=True)
class Bar:
    """One span of the waterfall: its indent, where it starts and how wide it is (percent of the trace)."""

    span: Mapping[str, Any]
    depth: int
    left: float
    width: float
    duration_ms: float


def waterfall(spans: Sequence[Mapping[str, Any]]) -> list[Bar]:
    """The spans (parents before children, as the API orders them) placed on the trace's time line."""
    if not spans:
        return []
    start = min(float(s["start"]) for s in spans)
    total = max(max(float(s["end"]) for s in spans) - start, 1e-6)
    by_id = {s["span_id"]: s for s in spans}
    bars = []
    for span in spans:
        depth, parent, seen = 0, span.get("parent_span_id"), {span["span_id"]}
        while parent in by_id and parent not in seen:
            seen.add(parent)
            depth += 1
            parent = by_id[parent].get("parent_span_id")
        left = (float(span["start"]) - start) / total * 100
        width = max((float(span["end"]) - float(span["start"])) / total * 100, 0.5)
        duration = (float(span["end"]) - float(span["start"])) * 1000
        bars.append(Bar(span, depth, round(left, 2), round(min(width, 100 - left), 2), duration))
    return bars


@screen
async def invocation(request: Request, api: ControlApi) -> Response:
    request_id = request.path_params["request_id"]
    found = await api.get(f"/invocations/{request_id}")
    attempts = found["attempts"]
    trace_id = next((a.get("trace_id") for a in reversed(attempts) if a.get("trace_id")), None)
    bars: list[Bar] = []
    trace_error = None
    if trace_id:
        try:
            bars = waterfall((await api.get(f"/traces/{trace_id}"))["spans"])
        except ApiFailure as failure:
            if failure.status != 404:
                raise
            trace_error = failure.message
    return page(
        request,
        "invocation.html",
        title=f"Invocation {request_id}",
        current="Invocations",
        invocation=found,
        attempts=attempts,
        trace_id=trace_id,
        bars=bars,
        trace_error=trace_error,
        kept=found.get("input"),
        # Set by a re-run's redirect: what this invocation re-ran, and why on another version (shown escaped).
        rerun_of=request.query_params.get("rerun_of"),
        rerun_note=request.query_params.get("note"),
    )


@screen
async def rerun(request: Request, api: ControlApi) -> Response:
    """Run the invocation again with its kept input (the control API's rerun), then show the new invocation."""
    request_id = request.path_params["request_id"]
    done = await api.post(f"/invocations/{request_id}/rerun")
    query = {"rerun_of": request_id, **({"note": done["note"]} if done.get("note") else {})}
    return RedirectResponse(f"{base(request)}/invocations/{done['request_id']}?{urlencode(query)}", status_code=303)
