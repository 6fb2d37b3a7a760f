"""`GET /-/metrics`: the Prometheus text format, on `triggerfish dev` (open, as every dev endpoint) and on each
`triggerfish serve` node (a key whose role holds `read`; a key of one app sees only that app's series).

The Starlette app serving it says whose metrics they are: `state.metrics` (a `Metrics`), and either
`state.platform` (dev's one app) or `state.host` (a server's apps).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.observe.metrics import CONTENT_TYPE, Metrics
from triggerfish.server.auth import principal_of
from triggerfish.server.operations import Answer, Operation

PATH = "/-/metrics"


async def get_metrics(request: Request) -> Response:
    state = request.app.state
    metrics: Metrics = state.metrics
    host = getattr(state, "host", None)
    if host is None:
        body = await metrics.render([state.platform], store=state.platform.store)
    else:
        principal = await principal_of(request)
        platforms = [platform for name, platform in list(host.apps.items()) if principal.sees(name)]
        body = await metrics.render(platforms, app=principal.app, store=host.store)
    return Response(body, media_type=CONTENT_TYPE)


OPERATION = Operation(
    "GET",
    PATH,
    get_metrics,
    "Metrics in the Prometheus text format: invocations, durations, cold starts, workers, queues, dead letters,"
    " buses and topics (docs/observability.md)",
    {
        200: Answer(
            "The text format, version 0.0.4",
            content={"text/plain; version=0.0.4; charset=utf-8": {"schema": {"type": "string"}}},
        )
    },
    "read",
)
