"""The HTTP face of `triggerfish serve`: every app's routes, the per-app control API, deploys and keys.

| path | what | action needed |
|---|---|---|
| `/<app>/<route>` | the app's `@app.http` routes (prefix stripped) | the route's own `auth=` |
| `GET /-/health` | liveness, the apps and their live versions | none |
| `GET /-/api/v1/openapi.json` | the OpenAPI 3.1 document of all of this (openapi_server.py) | none |
| `POST /-/apps/{app}/events` | publish events to the app's buses | publish |
| `/-/api/v1/apps/{app}/...` | the per-app control API (docs/api.md) | read (GET), invoke, publish, configure |
| `GET /-/api/v1/apps`, `/apps/{app}`, `/versions`, `/aliases` | what is deployed | read |
| `.../bundles/{sha}`, `.../deploys`, `PUT .../aliases/{alias}`, `.../rollback` | deploying | deploy |
| `/-/api/v1/keys`, `DELETE /-/api/v1/apps/{app}` | API keys, removing an app | admin |

Every `/-/` endpoint but health and the OpenAPI document asks
`authorize(request, action, app)` first; it raises ApiError (401, 403, or 404
for another app's URLs, so apps cannot be enumerated). Which action a
server-wide endpoint needs is in tables here (`ROOT_ENDPOINTS`,
`SERVER_ENDPOINTS`), a per-app one in `auth.APP_ENDPOINT_ACTIONS`.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from triggerfish import __version__
from triggerfish.deploy.bundle import check_sha256
from triggerfish.errors import BundleError, DeployError, KeyNotFoundError
from triggerfish.gateway.asgi import lifespan
from triggerfish.server.auth import APP_ENDPOINT_ACTIONS, principal_of
from triggerfish.server.auth import guarded as guarded_endpoint
from triggerfish.server.control import control_routes
from triggerfish.server.control_io import ApiError, endpoint, fields, json_body, json_response
from triggerfish.server.errors import error_response
from triggerfish.server.host import AppNotFoundError, Host
from triggerfish.server.logs import close_follows
from triggerfish.server.publish import publish_events
from triggerfish.server.registry import Alias, check_alias, check_app_name


def guarded_routes(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """The per-app control routes, each asking `authorize` for its action before it runs."""
    result: list[BaseRoute] = []
    for route in routes:
        assert isinstance(route, Route), route
        methods = sorted(route.methods or {"GET"})
        for method in methods:
            if method == "HEAD" and "GET" in methods:
                continue
            action = APP_ENDPOINT_ACTIONS[(method, route.path)]
            result.append(Route(route.path, guarded_endpoint(route.endpoint, action), methods=[method]))
    return result


def _host(request: Request) -> Host:
    host: Host = request.app.state.host
    return host


def _app(request: Request) -> str:
    app = request.path_params["app"]
    try:
        return check_app_name(app)
    except ValueError as exc:
        raise ApiError(400, "InvalidInput", str(exc)) from None


def _deployed(request: Request) -> str:
    app = _app(request)
    if app not in _host(request).apps:
        raise ApiError(404, "AppNotFound", f"no app named {app!r} is deployed here", app=app)
    return app


# --- server-wide endpoints --------------------------------------------------------------------------


async def health(request: Request) -> Response:
    # Public, so it names no app: a key of one app must not learn which others a server hosts.
    host = _host(request)
    uptime = round(time.time() - host.started_at, 3)
    return json_response({"status": "ok", "triggerfish": __version__, "apps": len(host.apps), "uptime": uptime})


def _describe(host: Host, app: str) -> dict[str, Any]:
    platform = host.apps[app]
    canary = platform.canary
    return {
        "name": app,
        "version": platform.current.number,
        "canary": None if canary is None else {"version": canary[0].number, "weight": canary[1]},
        "functions": sorted(platform.current.specs),
    }


async def list_apps(request: Request) -> Response:
    host = _host(request)
    caller = await principal_of(request)
    return json_response({"apps": [_describe(host, app) for app in sorted(host.apps) if caller.may("read", app)]})


# --- keys (admin only) ------------------------------------------------------------------------------


async def create_key(request: Request) -> Response:
    document = fields(await json_body(request), ("name", "role", "app"))
    app = document.get("app")
    if app is not None and app not in _host(request).apps:
        raise ApiError(404, "AppNotFound", f"no app named {app!r} is deployed here; deploy it before making its keys")
    text, info = await _host(request).keys.create(document.get("name"), document.get("role"), app)  # type: ignore[arg-type]
    return json_response({"key": text, **info.as_dict()}, status=201)


async def list_keys(request: Request) -> Response:
    app = request.query_params.get("app")
    return json_response({"keys": [info.as_dict() for info in await _host(request).keys.list(app)]})


async def revoke_key(request: Request) -> Response:
    try:
        info = await _host(request).keys.revoke(request.path_params["id"])
    except KeyNotFoundError as exc:
        raise ApiError(404, "KeyNotFound", str(exc)) from None
    return json_response(info.as_dict())


async def get_app(request: Request) -> Response:
    return json_response(_describe(_host(request), _deployed(request)))


async def remove_app(request: Request) -> Response:
    app = _deployed(request)
    await _host(request).remove(app)
    return Response(status_code=204)


async def has_bundle(request: Request) -> Response:
    # Another app's bundle is 404 too: a key of one app must not learn what another deployed.
    app = _app(request)
    return Response(status_code=200 if await _host(request).artifacts.available(app, _sha(request)) else 404)


async def put_bundle(request: Request) -> Response:
    app = _app(request)
    sha = _sha(request)
    host = _host(request)
    if await host.artifacts.available(app, sha):
        return json_response({"bundle": sha, "stored": False}, status=200)
    # Spooled to disk past 1 MB: a slow upload holds a file, not its size in memory.
    with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as upload:
        actual = await _receive(request, upload, host.bundles.limits.max_upload_bytes)
        if actual != sha:
            raise ApiError(
                400,
                "BundleHashMismatch",
                f"the body's sha256 is {actual}, not {sha}: the upload was cut short or changed; nothing was stored",
            )
        try:
            stored = await host.artifacts.put(app, sha, upload)
        except BundleError as exc:
            raise ApiError(400, "InvalidBundle", str(exc)) from None
    return json_response({"bundle": sha, "stored": stored}, status=201 if stored else 200)


async def _receive(request: Request, into: IO[bytes], limit: int) -> str:
    """Stream the body into `into`, refused with 413 as soon as it is past `limit` bytes; its sha256."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _upload_too_large(limit)
    digest = hashlib.sha256()
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _upload_too_large(limit)
            digest.update(chunk)
            into.write(chunk)
    except ClientDisconnect:
        raise ApiError(400, "ClientDisconnected", "the client closed the connection before the body arrived") from None
    return digest.hexdigest()


def _upload_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "RequestTooLarge",
        f"a bundle may be at most {limit} bytes as uploaded (the server's bundle_max_upload_bytes); leave large"
        " files out of it with .triggerfishignore",
        limit=limit,
    )


async def deploy(request: Request) -> Response:
    app = _app(request)
    document = fields(await json_body(request), ("bundle", "stage"))
    bundle = document.get("bundle")
    if not isinstance(bundle, str):
        raise ApiError(400, "InvalidInput", "body.bundle must be the sha256 of an uploaded bundle")
    stage = document.get("stage")
    if stage is not None and not isinstance(stage, str):
        raise ApiError(400, "InvalidInput", "body.stage must be a string or null")
    try:
        result = await _host(request).deploy(app, check_sha256(bundle), stage=stage)
    except DeployError as exc:  # BundleError included: a bundle that does not unpack
        raise ApiError(422, "DeployFailed", str(exc), phase=exc.phase, details=exc.details) from None
    return json_response(result.to_dict(), status=201)


async def list_versions(request: Request) -> Response:
    app = _deployed(request)
    host = _host(request)
    live = await host.registry.alias(app)
    versions = [
        {
            "version": v.version,
            "created_at": v.created_at,
            "bundle": v.bundle,
            "stage": v.stage,
            "functions": sorted(v.functions),
            "live": live is not None and v.version == live.version,
        }
        for v in await host.registry.versions(app)
    ]
    return json_response({"versions": versions})


async def list_aliases(request: Request) -> Response:
    app = _deployed(request)
    return json_response({"aliases": [a.to_dict() for a in await _host(request).registry.aliases(app)]})


async def put_alias(request: Request) -> Response:
    app = _deployed(request)
    name = request.path_params["alias"]
    document = fields(await json_body(request), ("version", "weights"))
    try:
        check_alias(name)
        version = document.get("version")
        weights = document.get("weights") or {}
        if isinstance(version, bool) or not isinstance(version, int):
            raise ApiError(400, "InvalidInput", "body.version must be a version number")
        if not isinstance(weights, dict) or not all(isinstance(k, str) and k.isdigit() for k in weights):
            raise ApiError(400, "InvalidInput", 'body.weights maps a version number to its share: {"4": 0.1}')
        alias = Alias(name, version, {int(k): w for k, w in weights.items()})
    except ValueError as exc:
        raise ApiError(400, "InvalidInput", str(exc)) from None
    try:
        await _host(request).set_alias(app, alias)
    except DeployError as exc:
        raise ApiError(422, "DeployFailed", str(exc), phase=exc.phase, details=exc.details) from None
    return json_response(alias.to_dict())


async def rollback(request: Request) -> Response:
    app = _deployed(request)
    document = fields(await json_body(request, required=False) or {}, ("to",))
    to = document.get("to")
    if to is not None and (isinstance(to, bool) or not isinstance(to, int)):
        raise ApiError(400, "InvalidInput", "body.to must be a version number")
    try:
        version = await _host(request).rollback(app, to)
    except AppNotFoundError as exc:
        raise ApiError(404, "AppNotFound", str(exc)) from None
    except DeployError as exc:
        raise ApiError(422, "DeployFailed", str(exc), phase=exc.phase, details=exc.details) from None
    return json_response({"app": app, "version": version})


def _sha(request: Request) -> str:
    try:
        return check_sha256(request.path_params["sha256"])
    except ValueError as exc:
        raise ApiError(400, "InvalidInput", str(exc)) from None


#: (method, path under /-/api/v1, endpoint, action) of every server-wide endpoint.
SERVER_ENDPOINTS: tuple[tuple[str, str, Callable[[Request], Awaitable[Response]], str], ...] = (
    ("GET", "/apps", list_apps, "list"),
    ("GET", "/apps/{app}", get_app, "read"),
    ("DELETE", "/apps/{app}", remove_app, "admin"),
    ("HEAD", "/apps/{app}/bundles/{sha256}", has_bundle, "deploy"),
    ("PUT", "/apps/{app}/bundles/{sha256}", put_bundle, "deploy"),
    ("POST", "/apps/{app}/deploys", deploy, "deploy"),
    ("GET", "/apps/{app}/versions", list_versions, "read"),
    ("GET", "/apps/{app}/aliases", list_aliases, "read"),
    ("PUT", "/apps/{app}/aliases/{alias}", put_alias, "deploy"),
    ("POST", "/apps/{app}/rollback", rollback, "deploy"),
    ("POST", "/keys", create_key, "admin"),
    ("GET", "/keys", list_keys, "admin"),
    ("DELETE", "/keys/{id}", revoke_key, "admin"),
)


async def openapi_document(request: Request) -> Response:
    # Imported here: the document is built from this module's tables, so openapi_server imports this module.
    from triggerfish.server.openapi_server import server_document

    return json_response(server_document())


#: (method, path from the server's root, endpoint, action or None: no key asked) of the endpoints beside
#: the API's. The OpenAPI document is public, like health: it describes the software (the same on every
#: server of this version, and printed in its docs), names no app, key or record, and a client reads it
#: before it has a key.
ROOT_ENDPOINTS: tuple[tuple[str, str, Callable[[Request], Awaitable[Response]], str | None], ...] = (
    ("GET", "/-/health", health, None),
    ("GET", "/-/api/v1/openapi.json", openapi_document, None),
    ("POST", "/-/apps/{app}/events", publish_events, "publish"),
)


def host_endpoints(host: Host, *, open_access: bool = False) -> Starlette:
    """The Starlette app serving everything under `/-/` of a server.

    Every endpoint but health and the OpenAPI document asks for an API key; with `open_access`
    (tests of the host alone) everything is allowed, as under `triggerfish dev`.
    """
    server_routes: list[BaseRoute] = []
    for method, path, handler, action in SERVER_ENDPOINTS:
        # Listing apps asks about each app itself: it shows what the key may read instead of refusing.
        guard = endpoint(handler) if action == "list" else guarded_endpoint(handler, action)
        server_routes.append(Route(path, guard, methods=[method]))
    root_routes: list[BaseRoute] = [
        Route(path, endpoint(handler) if action is None else guarded_endpoint(handler, action), methods=[method])
        for method, path, handler, action in ROOT_ENDPOINTS
    ]
    app = Starlette(
        routes=[
            *root_routes,  # before the mount: /-/api/v1/openapi.json is one of them
            Mount(
                "/-/api/v1",
                routes=[*server_routes, Mount("/apps/{app}", routes=guarded_routes(control_routes()))],
            ),
        ],
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.state.host = host
    app.state.keys = None if open_access else host.keys
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, "NotFound", f"no endpoint {request.method} {request.url.path}")


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.url.path}")


class HostASGI:
    """`/-/...` to the server's endpoints; `/<app>/...` to that app's serving version, the prefix stripped."""

    def __init__(self, host: Host, *, open_access: bool = False) -> None:
        self.host = host
        self.endpoints = host_endpoints(host, open_access=open_access)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith("/-/") or path == "/-":
            await self.endpoints(scope, receive, send)
            return
        name, _, rest = path[1:].partition("/")
        platform = self.host.apps.get(name)
        if platform is None:
            response = error_response(404, "NotFound", f"no app named {name!r} is deployed here")
            await response(scope, receive, send)
            return
        raw: bytes = scope.get("raw_path") or path.encode()
        prefix = b"/" + raw[1:].split(b"/", 1)[0]
        inner = dict(scope, path="/" + rest, raw_path=raw[len(prefix) :] or b"/", root_path=f"/{name}")
        await platform.pick().gateway(inner, receive, send)

    def close_streams(self) -> None:
        """End the log follows in progress (GatewayServer.stop calls this before it stops serving)."""
        close_follows(self.endpoints.state)
