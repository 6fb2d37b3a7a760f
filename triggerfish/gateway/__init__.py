"""The HTTP gateway: `@app.http` routes served as API Gateway HTTP API (payload 2.0) would serve them.

    from triggerfish.gateway import Gateway, GatewayServer, RouteTable

    gateway = Gateway(RouteTable.from_specs(app.functions), invoker.invoke)
    async with GatewayServer(gateway, port=8080) as server:
        ...

See docs/http.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from triggerfish.gateway.apigw import HttpRequest, HttpResponse, MalformedResponseError, http_event, http_response
from triggerfish.gateway.asgi import DEFAULT_MAX_BODY, Gateway
from triggerfish.gateway.routes import MethodNotAllowed, Route, RouteMatch, RouteTable

# The server (uvicorn, and the click and watchfiles it imports) is loaded on first use: every platform imports
# this package for its ASGI gateway, and a platform that is not served (triggerfish.testing, a test's
# subprocess) would pay a tenth of a second or more at each start for a server it never runs.
_SERVER_EXPORTS = ("GatewayServer", "serve_gateway", "server_config")

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name not in _SERVER_EXPORTS:
        raise AttributeError(f"module 'triggerfish.gateway' has no attribute {name!r}")
    value = getattr(importlib.import_module("triggerfish.gateway.server"), name)
    globals()[name] = value
    return value
