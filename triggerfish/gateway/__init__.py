"""The HTTP gateway: `@app.http` routes served as API Gateway HTTP API (payload 2.0) would serve them.

    from triggerfish.gateway import Gateway, GatewayServer, RouteTable

    gateway = Gateway(RouteTable.from_specs(app.functions), invoker.invoke)
    async with GatewayServer(gateway, port=8080) as server:
        ...

See docs/http.md.
"""

from triggerfish.gateway.apigw import HttpRequest, HttpResponse, MalformedResponseError, http_event, http_response
from triggerfish.gateway.asgi import DEFAULT_MAX_BODY, Gateway
from triggerfish.gateway.routes import MethodNotAllowed, Route, RouteMatch, RouteTable
from triggerfish.gateway.server import GatewayServer, serve_gateway, server_config

__all__ = [
    "DEFAULT_MAX_BODY",
    "Gateway",
    "GatewayServer",
    "HttpRequest",
    "HttpResponse",
    "MalformedResponseError",
    "MethodNotAllowed",
    "Route",
    "RouteMatch",
    "RouteTable",
    "http_event",
    "http_response",
    "serve_gateway",
    "server_config",
]
