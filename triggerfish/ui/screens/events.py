"""Events: send one to a bus, see each bus's recent events with the rules they match, replay a time range."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from triggerfish._json import loads
from triggerfish.errors import InvalidInputError
from triggerfish.ui.api import ApiFailure, ControlApi
from triggerfish.ui.render import page
from triggerfish.ui.screen import form_of, screen

#: The replay form's default range: the last hour.
REPLAY_WINDOW = 3600.0


def _events_path(request: Request) -> str:
    """Where events are published: `POST /-/events` under dev, `/-/apps/{app}/events` under serve."""
    app = request.path_params.get("app")
    return "/-/events" if app is None else f"/-/apps/{app}/events"


async def _events_page(request: Request, api: ControlApi, status: int = 200, **context: Any) -> Response:
    buses = (await api.get("/buses"))["buses"]
    chosen = request.query_params.get("bus") or context.pop("bus", None) or "default"
    names = [b["name"] for b in buses]
    if chosen not in names:
        chosen = "default"
    rules = (await api.get(f"/buses/{chosen}/rules"))["rules"]
    recent = (await api.get(f"/buses/{chosen}/events", limit=50))["events"]
    now = time.time()
    context.setdefault("sent", {"source": "/dashboard", "type": "", "data": "{}"})
    return page(
        request,
        "events.html",
        status,
        title="Events",
        current="Events",
        buses=buses,
        bus=chosen,
        rules=rules,
        recent=recent,
        replay_start=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - REPLAY_WINDOW)),
        replay_end=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 60)),
        **context,
    )


@screen
async def events(request: Request, api: ControlApi) -> Response:
    return await _events_page(request, api)


@screen
async def send_event(request: Request, api: ControlApi) -> Response:
    """Publish one CloudEvent (structured mode) from the form; bad JSON data or a refused event is shown back."""
    form = await form_of(request)
    bus = form.get("bus") or "default"
    sent = {k: form.get(k, "") for k in ("source", "type", "data")}
    try:
        data = loads(sent["data"] or "null", where="data")
    except InvalidInputError as exc:
        return await _events_page(request, api, 400, bus=bus, sent=sent, send_error=str(exc))
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": sent["source"],
        "type": sent["type"],
        "datacontenttype": "application/json",
        "data": data,
    }
    try:
        answer = await api.call(
            "POST",
            _events_path(request),
            event,
            params={"bus": bus},
            headers={"Content-Type": "application/cloudevents+json"},
            root="",
        )
    except ApiFailure as failure:
        if failure.status not in (400, 413):
            raise
        return await _events_page(request, api, 400, bus=bus, sent=sent, send_error=failure.message)
    ids = (answer.body or {}).get("ids") or [event["id"]]
    return await _events_page(request, api, bus=bus, sent=sent, published=ids)


@screen
async def replay(request: Request, api: ControlApi) -> Response:
    form = await form_of(request)
    bus = request.path_params["bus"]
    document = {"start": form.get("start", ""), "end": form.get("end", "")}
    if form.get("rule"):
        document["rule"] = form["rule"]
    try:
        done = await api.post(f"/buses/{bus}/replay", document)
    except ApiFailure as failure:
        if failure.status != 400:
            raise
        return await _events_page(request, api, 400, bus=bus, replay_error=failure.message)
    return await _events_page(request, api, bus=bus, replayed=done)
