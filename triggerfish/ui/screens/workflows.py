"""Workflows: executions, newest first; one execution's input, result or error and its operations on a timeline."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.ui.api import ControlApi
from triggerfish.ui.render import page
from triggerfish.ui.screen import screen


@screen
async def workflows(request: Request, api: ControlApi) -> Response:
    found = (await api.get("/workflows", limit=100))["workflows"]
    return page(request, "workflows.html", title="Workflows", current="Workflows", workflows=found)


@dataclass(frozen=True, slots=True)
class Step:
    """One operation on the workflow's time line (percent of the run so far); `running` when it has not ended."""

    op: Mapping[str, Any]
    left: float
    width: float
    seconds: float
    running: bool


def timeline(record: Mapping[str, Any], now: float) -> list[Step]:
    """The operations placed on the run's time line, from its start to its end (or `now`, while it runs)."""
    start = float(record["started"])
    end = float(record.get("ended") or now)
    ops = list(record.get("ops") or ())
    for op in ops:
        end = max(end, float(op.get("ended") or op.get("started") or start))
    total = max(end - start, 1e-6)
    steps = []
    for op in ops:
        began = float(op.get("started") or start)
        finished = op.get("ended")
        stop = float(finished) if finished is not None else end
        left = (began - start) / total * 100
        width = max((stop - began) / total * 100, 0.5)
        steps.append(Step(op, round(left, 2), round(min(width, 100 - left), 2), stop - began, finished is None))
    return steps


@screen
async def workflow(request: Request, api: ControlApi) -> Response:
    record = await api.get(f"/workflows/{request.path_params['id']}")
    return page(
        request,
        "workflow.html",
        title=f"Workflow {record['id']}",
        current="Workflows",
        record=record,
        steps=timeline(record, time.time()),
    )
