"""The platform's ASGI app: `/-/...` is the platform's, every other path is the app's `@app.http` routes.

    asgi = platform_asgi(platform)
    async with GatewayServer(asgi, port=8080): ...

User routes go straight to the serving version's Gateway, a plain ASGI
callable, so the hot path pays no framework routing. The platform's own
endpoints are a Starlette app (they are few and not hot):

| endpoint | what |
|---|---|
| `GET /-/` | the list of these endpoints (see triggerfish.server.index) |
| `GET /-/health` | liveness and what is loaded: app, version, functions; MQTT and AMQP clients and partitions read |
| `POST /-/events` | publish events (see triggerfish.server.publish) |
| `GET /-/metrics` | Prometheus metrics (see triggerfish.server.metrics) |
| `/-/api/v1/...` | the control API (see triggerfish.server.control) |
| `/-/aws` | the AWS endpoint for boto3 and the AWS CLI (see triggerfish.aws.endpoint, docs/aws.md) |
| `/-/ui` | the web dashboard (see triggerfish.ui, docs/dashboard.md) |
"""

from __future__ import annotations

import time

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from triggerfish import __version__
from triggerfish.aws.credentials import OpenCredentials
from triggerfish.aws.endpoint import AwsEndpoint, is_aws_path
from triggerfish.aws.services import SERVICES
from triggerfish.gateway.asgi import lifespan
from triggerfish.gateway.routes import RESERVED_PREFIX
from triggerfish.observe.metrics import Metrics
from triggerfish.runtime.invoke import new_request_id
from triggerfish.server import index, invoke_routes, publish
from triggerfish.server.auth import ACTIONS
from triggerfish.server.control import OPERATIONS, control_routes
from triggerfish.server.errors import error_response, method_not_allowed
from triggerfish.server.invoke_routes import InvokeBatchRoute, InvokeEventRoute
from triggerfish.server.logs import close_follows
from triggerfish.server.metrics import OPERATION as METRICS_OPERATION
from triggerfish.server.operations import routes, run
from triggerfish.server.platform import Platform
from triggerfish.server.publish_route import PublishRoute
from triggerfish.server.request_guard import RequestRules
from triggerfish.ui import routes as ui_routes


async def health(request: Request) -> Response:
    platform: Platform = request.app.state.platform
    version = platform.current
    answer = {
        "status": "ok",
        "triggerfish": __version__,
        "app": version.app_name,
        "version": version.number,
        "functions": sorted(version.specs),
        "uptime": round(time.time() - platform.started_at, 3),
    }
    sources = getattr(platform, "sources", None)
    if sources is not None and sources.active:
        answer["sources"] = sources.status()
    pg_changes = getattr(platform, "pg_changes", None)
    if pg_changes is not None and pg_changes.active:
        answer["changes"] = pg_changes.status()
    return JSONResponse(answer)


#: What dev's health answers, for the list at `GET /-/` (health is a plain route, not an operation).
HEALTH_SUMMARY = "Liveness and what is loaded: the app, its version and functions (and stream sources read)"


async def endpoint_index(request: Request) -> Response:
    endpoints = [
        {"method": "GET", "path": "/-/health", "summary": HEALTH_SUMMARY},
        *index.listed([publish.OPERATION, METRICS_OPERATION]),
        *index.listed(OPERATIONS, "/-/api/v1"),
    ]
    return index.index_response("dev", endpoints)


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, "NotFound", f"no platform endpoint {request.method} {request.url.path}")


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return method_not_allowed(request, exc)


def platform_endpoints(platform: Platform, metrics: Metrics | None = None) -> Starlette:
    """The Starlette app serving everything under `/-/`; `metrics` counts the platform's invocations (default: a
    new `Metrics` watching it from now on)."""
    app = Starlette(
        routes=[
            Route(index.PATH, endpoint_index, methods=["GET"]),
            Route("/-/health", health, methods=["GET"]),
            *routes([publish.OPERATION, METRICS_OPERATION]),
            Mount("/-/api/v1", routes=control_routes()),
            Mount("/-/ui", routes=ui_routes.dev_routes()),
        ],
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.state.platform = platform
    if metrics is None:
        metrics = Metrics()
        metrics.watch(platform)
    app.state.metrics = metrics
    app.state.body_timeout = platform.body_timeout
    return app


class PlatformASGI:
    """Dispatches a request to the platform's endpoints or to the serving version's gateway.

    `rules` say which Host and Origin headers the platform's endpoints accept (request_guard.py):
    by default loopback names only, and browsers from the server's own origin.
    """

    def __init__(self, platform: Platform, rules: RequestRules | None = None, metrics: Metrics | None = None) -> None:
        self.platform = platform
        self.endpoints = platform_endpoints(platform, metrics)
        self.rules = rules or RequestRules.local()
        # The hot platform endpoint, served without Starlette's routing and middleware: a common request the
        # lean way, any other through the operation (its checks and its JSON errors: `run` answers every failure).
        self._publish = PublishRoute(platform, full=self._full_publish)
        self._publish_operation = run(publish.OPERATION)
        # The hot control operations (a producer's async invocations, in batches or one by one), the same way;
        # any other request to them goes through the endpoints' router to the operation.
        self._invoke_batch = InvokeBatchRoute(platform, full=self.endpoints)
        self._invoke_event = InvokeEventRoute(platform, full=self.endpoints)
        # `triggerfish dev` takes any well-formed SigV4 credentials, as local AWS emulators do (docs/aws.md).
        self.aws = AwsEndpoint(SERVICES, identify=OpenCredentials(ACTIONS), platform_for=lambda app: platform)

    async def _full_publish(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.endpoints  # what `request.app.state` reads, as under the router
        response = await self._publish_operation(Request(scope, receive, send))
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith(RESERVED_PREFIX) or path == RESERVED_PREFIX[:-1]:
            if await self.rules.guard(scope, receive, send):
                return
            if path == publish.PATH and scope.get("method") == "POST":
                await self._publish(scope, receive, send)
                return
            if path.startswith(invoke_routes.PREFIX) and scope.get("method") == "POST":
                if path.endswith(invoke_routes.BATCH_SUFFIX):
                    await self._invoke_batch(scope, receive, send)
                    return
                if path.endswith(invoke_routes.EVENT_SUFFIX):
                    await self._invoke_event(scope, receive, send)
                    return
            if is_aws_path(path):
                await self.aws(scope, receive, send)
                return
            await self.endpoints(scope, receive, send)
            return
        if not self.platform.running:
            # `dev` and `serve` bind before the app is loaded (its functions are told the server's address):
            # a request in that moment, or after the stop, is told to come back rather than answered 500.
            await _not_serving(send)
            return
        # Read once: a reload that lands now changes the next request, not this one.
        gateway = self.platform.current.gateway
        await gateway(scope, receive, send)

    def close_streams(self) -> None:
        """End the log follows in progress (GatewayServer.stop calls this before it stops serving)."""
        close_follows(self.endpoints.state)


async def _not_serving(send: Send) -> None:
    """503 in the gateway's error form (JSON with the request id, in the body and the headers)."""
    request_id = new_request_id()
    message = "Service Unavailable: the app is not loaded yet (starting) or any more (stopping)"
    body = orjson.dumps({"message": message, "requestId": request_id})
    id_bytes = request_id.encode("ascii")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"retry-after", b"1"),
        (b"x-triggerfish-request-id", id_bytes),
        (b"apigw-requestid", id_bytes),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def platform_asgi(
    platform: Platform, rules: RequestRules | None = None, metrics: Metrics | None = None
) -> PlatformASGI:
    return PlatformASGI(platform, rules, metrics)
