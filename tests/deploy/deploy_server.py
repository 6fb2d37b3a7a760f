"""A stand-in for the deploy endpoints of `triggerfish serve` (HEAD/PUT bundles, POST deploys), as
docs/notes of issue 5 fix them, served on a loopback socket from a thread so the CLI can run in-process.

Uploads go through the real `BundleStore`, so the hash is verified and the bundle unpacked as the server
will; every call is recorded with the key it carried, for tests to see what the CLI sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.threaded_server import serve_in_thread
from triggerfish.deploy.bundles import BundleStore
from triggerfish.errors import BundleError

DEPLOYER_KEY = "tfk_dep10yer_" + "D" * 32
VIEWER_KEY = "tfk_v1ewer00_" + "V" * 32
API = "/-/api/v1"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    key: str | None
    body: bytes


@dataclass
class DeployServer:
    """The state behind the endpoints; `url` once served. `failure` makes the next deploys fail with it."""

    bundles: BundleStore
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    failure: dict[str, Any] | None = None

    def _refuse(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        key = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        if key not in (DEPLOYER_KEY, VIEWER_KEY):
            return _error(401, "Unauthorized", "the API key is unknown or revoked")
        if key == VIEWER_KEY and request.method != "HEAD":
            return _error(403, "Forbidden", "a viewer key may not deploy; it needs deployer")
        return None

    async def _record(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        body = await request.body()
        self.calls.append(Call(request.method, request.url.path, header.removeprefix("Bearer ") or None, body))
        return self._refuse(request)

    async def bundle(self, request: Request) -> Response:
        refused = await self._record(request)
        if refused is not None:
            return refused
        sha = request.path_params["sha"]
        app = request.path_params["app"]
        if request.method == "HEAD":
            return Response(status_code=200 if self.bundles.has(app, sha) else 404)
        try:
            self.bundles.put(app, sha, self.calls[-1].body)
        except BundleError as exc:
            return _error(400, "BadBundle", str(exc))
        return JSONResponse({"bundle": sha}, status_code=201)

    async def deploys(self, request: Request) -> Response:
        refused = await self._record(request)
        if refused is not None:
            return refused
        app = request.path_params["app"]
        body = await request.json()
        if not self.bundles.has(app, body["bundle"]):
            return _error(404, "BundleNotFound", f"no bundle {body['bundle']}; upload it first")
        if self.failure is not None:
            return JSONResponse({"error": self.failure}, status_code=422)
        version = self.versions.get(app, 0) + 1
        self.versions[app] = version
        first = version == 1
        return JSONResponse(
            {
                "version": version,
                "functions": {
                    "changed": [] if first else ["quote"],
                    "unchanged": [] if first else ["refund"],
                    "added": ["quote", "refund"] if first else [],
                    "removed": [],
                },
                "phases": [
                    {
                        "name": "install",
                        "seconds": 1.25,
                        "output": "Successfully installed tinylib-1.0",
                        "cached": not first,
                    },
                    {"name": "import", "seconds": 0.25, "output": ""},
                    {"name": "switch", "seconds": 0.01, "output": ""},
                ],
            },
            status_code=201,
        )

    def files(self, sha: str, app: str = "shop") -> list[str]:
        """The files of an uploaded bundle, as the server unpacked them."""
        root = self.bundles.path(app, sha)
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def asgi(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{API}/apps/{{app}}/bundles/{{sha}}", self.bundle, methods=["HEAD", "PUT"]),
                Route(f"{API}/apps/{{app}}/deploys", self.deploys, methods=["POST"]),
            ]
        )


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@contextmanager
def served(root: Path) -> Iterator[DeployServer]:
    """A DeployServer keeping bundles under `root`, on a loopback port in a thread with its own loop."""
    server = DeployServer(BundleStore(root))
    with serve_in_thread(server.asgi()) as url:
        server.url = url
        yield server
