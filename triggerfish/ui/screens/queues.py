"""Queues and topics (depth, age, in flight, dead letters with redrive) and schedules (next fires, pause, resume)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.names import is_platform_queue
from triggerfish.ui.api import ApiFailure, ControlApi
from triggerfish.ui.render import page
from triggerfish.ui.screen import screen


async def _queues_page(request: Request, api: ControlApi, status: int = 200, **context: Any) -> Response:
    queues = (await api.get("/queues"))["queues"]
    topics = (await api.get("/topics"))["topics"]
    for topic in topics:
        topic["targets"] = (await api.get(f"/topics/{topic['name']}/subscriptions"))["subscriptions"]
    dead_letters = {q["dead_letter"]["name"] for q in queues if q.get("dead_letter")}
    # The app's own queues first; the platform's (asynchronous invocations, deliveries, their dead letters) after.
    queues.sort(key=lambda q: (is_platform_queue(q["name"]), q["name"]))
    platform_queues = {q["name"] for q in queues if is_platform_queue(q["name"])}
    return page(
        request,
        "queues.html",
        status,
        title="Queues and topics",
        current="Queues and topics",
        queues=queues,
        topics=topics,
        dead_letters=dead_letters,
        platform_queues=platform_queues,
        **context,
    )


@screen
async def queues(request: Request, api: ControlApi) -> Response:
    return await _queues_page(request, api)


@screen
async def redrive(request: Request, api: ControlApi) -> Response:
    """Move a queue's dead letters back to it (the control API's redrive), then show the queues again."""
    name = request.path_params["name"]
    try:
        done = await api.post(f"/queues/{name}/redrive")
    except ApiFailure as failure:
        if failure.status != 400:
            raise
        return await _queues_page(request, api, 400, redrive_error=failure.message)
    return await _queues_page(request, api, redriven=done)


@screen
async def schedules(request: Request, api: ControlApi) -> Response:
    found = (await api.get("/schedules", count=3))["schedules"]
    return page(request, "schedules.html", title="Schedules", current="Schedules", schedules=found)


@screen
async def steer_schedule(request: Request, api: ControlApi) -> Response:
    """Pause or resume (the URL's last part) one schedule, then show the schedules again."""
    name, action = request.path_params["name"], request.path_params["action"]
    changed = await api.post(f"/schedules/{name}/{action}")
    found = (await api.get("/schedules", count=3))["schedules"]
    return page(request, "schedules.html", title="Schedules", current="Schedules", schedules=found, changed=changed)
