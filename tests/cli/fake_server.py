"""A small stand-in for `triggerfish serve`'s server-wide endpoints (apps, versions, rollback, keys), in the
shapes triggerfish/server/host_http.py answers, served on a loopback socket from a thread so CLI tests can run
in-process (the end-to-end tests against a real `triggerfish serve` are elsewhere).

It checks keys as the real server will (Bearer or x-api-key; 401 for an unknown or revoked key, 403 for a
role that may not, 404 for an app the key cannot see) and records every request's key, so tests can see
what the CLI sent.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.threaded_server import serve_in_thread

ADMIN_KEY = "tfk_a0000001_" + "A" * 32
VIEWER_KEY = "tfk_b0000002_" + "B" * 32


@dataclass
class Key:
    id: str
    name: str
    role: str
    app: str | None
    digest: str
    created_at: float = field(default_factory=time.time)
    revoked_at: float | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prefix": f"tfk_{self.id}",
            "name": self.name,
            "role": self.role,
            "app": self.app,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class FakeServer:
    """The state behind the endpoints; `url` once served."""

    url: str = ""
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, list[int]] = field(default_factory=dict)
    keys: list[Key] = field(default_factory=list)
    seen_keys: list[str | None] = field(default_factory=list)
    healthy: bool = True
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.apps = {
            "shop": {
                "name": "shop",
                "version": 3,
                "canary": {"version": 4, "weight": 0.1},
                "functions": ["quote", "refund"],
            },
            "blog": {"name": "blog", "version": 1, "canary": None, "functions": ["render"]},
        }
        self.versions = {"shop": [1, 2, 3, 4], "blog": [1]}
        self.add_key(ADMIN_KEY, "root", "admin", None)
        self.add_key(VIEWER_KEY, "shop-viewer", "viewer", "shop")

    def add_key(self, text: str, name: str, role: str, app: str | None) -> Key:
        key = Key(text[4:12], name, role, app, _digest(text))
        self.keys.append(key)
        return key

    # --- checks ------------------------------------------------------------------------------------

    def caller(self, request: Request) -> Key:
        header = request.headers.get("authorization", "")
        text = header.removeprefix("Bearer ") if header.startswith("Bearer ") else request.headers.get("x-api-key")
        self.seen_keys.append(text)
        if not text:
            raise Refused(401, "Unauthorized", "this endpoint needs an API key (Authorization: Bearer KEY)")
        found = next((k for k in self.keys if k.digest == _digest(text) and k.revoked_at is None), None)
        if found is None:
            raise Refused(401, "Unauthorized", "the API key is unknown or revoked")
        return found

    def admin(self, request: Request) -> Key:
        key = self.caller(request)
        if key.role != "admin":
            raise Refused(403, "Forbidden", f"a {key.role} key may not do this; it needs admin")
        return key

    def app_of(self, request: Request, key: Key) -> dict[str, Any]:
        name = request.path_params["app"]
        if name not in self.apps or (key.app is not None and key.app != name):
            raise Refused(404, "AppNotFound", f"no app named {name!r}")
        return self.apps[name]

    # --- endpoints ---------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        apps = {name: app["version"] for name, app in sorted(self.apps.items())}
        return JSONResponse(
            {"status": "ok" if self.healthy else "degraded", "triggerfish": "0.1.0", "apps": apps, "uptime": 12.5}
        )

    async def list_apps(self, request: Request) -> Response:
        key = self.caller(request)
        visible = [a for n, a in sorted(self.apps.items()) if key.app is None or key.app == n]
        return JSONResponse({"apps": visible})

    async def list_nodes(self, request: Request) -> Response:
        key = self.caller(request)
        versions = {n: [a["version"]] for n, a in sorted(self.apps.items()) if key.app is None or key.app == n}
        node = {
            "id": "a1b2c3d4e5f6",
            "host": "box",
            "pid": 4242,
            "address": "http://10.0.0.5:8080",
            "roles": ["gateway", "worker"],
            "started_at": time.time() - 60,
            "heartbeat_at": time.time() - 1,
            "versions": versions,
            "in_flight": 3,
            "state": "up",
        }
        return JSONResponse({"nodes": [node], "this": node["id"]})

    async def remove_app(self, request: Request) -> Response:
        key = self.admin(request)
        app = self.app_of(request, key)
        del self.apps[app["name"]]
        return Response(status_code=204)

    async def list_versions(self, request: Request) -> Response:
        app = self.app_of(request, self.caller(request))
        numbers = self.versions[app["name"]]
        listed = [{"version": n, "created_at": 1e9 + n, "live": n == app["version"]} for n in numbers]
        return JSONResponse({"versions": listed})

    async def rollback(self, request: Request) -> Response:
        key = self.caller(request)
        app = self.app_of(request, key)
        if key.role not in ("admin", "deployer"):
            raise Refused(403, "Forbidden", f"a {key.role} key may not roll back")
        body = await request.json()
        versions = self.versions[app["name"]]
        to = body.get("to", max([v for v in versions if v < app["version"]], default=0))
        if to not in versions:
            raise Refused(422, "DeployFailed", f"app {app['name']!r} has no version {to}; it has {versions}")
        app["version"] = to
        return JSONResponse({"app": app["name"], "version": to})

    async def invoke(self, request: Request) -> Response:
        # A per-app endpoint, to see the CLI route calls to /-/api/v1/apps/{app}/...
        key = self.caller(request)
        app = self.app_of(request, key)
        return JSONResponse(
            {"app": app["name"], "function": request.path_params["name"], "event": await request.json()}
        )

    async def create_key(self, request: Request) -> Response:
        self.admin(request)
        body = await request.json()
        text = f"tfk_{next(self._ids):08x}_" + "C" * 32
        key = self.add_key(text, body["name"], body["role"], body["app"])
        return JSONResponse({"key": text, **key.public()}, status_code=201)

    async def list_keys(self, request: Request) -> Response:
        self.admin(request)
        app = request.query_params.get("app")
        return JSONResponse({"keys": [k.public() for k in self.keys if app is None or k.app == app]})

    async def revoke_key(self, request: Request) -> Response:
        self.admin(request)
        found = next((k for k in self.keys if k.id == request.path_params["id"]), None)
        if found is None:
            raise Refused(404, "KeyNotFound", f"no key {request.path_params['id']!r}")
        found.revoked_at = time.time()
        return JSONResponse(found.public())

    def asgi(self) -> Starlette:
        async def refused(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, Refused)
            return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status)

        async def not_found(request: Request, exc: Exception) -> Response:
            message = f"no platform endpoint {request.method} {request.url.path}"
            return JSONResponse({"error": {"code": "NotFound", "message": message}}, status_code=404)

        api = "/-/api/v1"
        return Starlette(
            routes=[
                Route("/-/health", self.health, methods=["GET"]),
                Route(f"{api}/apps", self.list_apps, methods=["GET"]),
                Route(f"{api}/nodes", self.list_nodes, methods=["GET"]),
                Route(f"{api}/apps/{{app}}", self.remove_app, methods=["DELETE"]),
                Route(f"{api}/apps/{{app}}/rollback", self.rollback, methods=["POST"]),
                Route(f"{api}/apps/{{app}}/versions", self.list_versions, methods=["GET"]),
                Route(f"{api}/apps/{{app}}/functions/{{name}}/invoke", self.invoke, methods=["POST"]),
                Route(f"{api}/keys", self.create_key, methods=["POST"]),
                Route(f"{api}/keys", self.list_keys, methods=["GET"]),
                Route(f"{api}/keys/{{id}}", self.revoke_key, methods=["DELETE"]),
            ],
            exception_handlers={Refused: refused, 404: not_found},
        )


@contextmanager
def served(fake: FakeServer) -> Iterator[FakeServer]:
    """Serve `fake` on a loopback port from a thread with its own event loop, until the block ends."""
    with serve_in_thread(fake.asgi()) as url:
        fake.url = url
        yield fake
