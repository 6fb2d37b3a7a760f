"""The OpenAPI document of `triggerfish serve`: exactly the routes it serves, what each needs, valid 3.1, true answers.

The paths are checked against the Starlette routes `host_endpoints` serves (both ways), the actions
against the tables that guard them, and the documented answers against a real server's, over a real
socket, with real keys.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_schema_validator import validate as validate_instance
from openapi_spec_validator import OpenAPIV31SpecValidator
from openapi_spec_validator import validate as validate_document
from starlette.routing import BaseRoute, Mount, Route

from tests.server.test_host import write_app
from triggerfish.deploy.bundle import pack
from triggerfish.gateway import GatewayServer
from triggerfish.server import control, openapi
from triggerfish.server.auth import APP_ENDPOINT_ACTIONS, roles_holding
from triggerfish.server.host import Host
from triggerfish.server.host_http import ROOT_OPERATIONS, SERVER_OPERATIONS, HostASGI, host_endpoints
from triggerfish.server.openapi_server import ACTION_EXTENSION, server_document

DOCUMENT = "/-/api/v1/openapi.json"


def document() -> dict[str, Any]:
    """The dev server's document: the control API alone."""
    return openapi.document(control.OPERATIONS)


def _template(path: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def served_routes(routes: Iterable[BaseRoute], prefix: str = "") -> dict[str, set[str]]:
    """Path template -> methods of every route, mounted ones included (HEAD only where it is not GET's)."""
    found: dict[str, set[str]] = {}
    for route in routes:
        if isinstance(route, Mount) and route.path == "/-/ui":
            continue  # the dashboard: HTML pages for a browser, not the API (docs/dashboard.md)
        if isinstance(route, Mount):
            for path, methods in served_routes(route.routes, prefix + route.path).items():
                found.setdefault(path, set()).update(methods)
        else:
            assert isinstance(route, Route), route
            methods = {m.lower() for m in route.methods or ()}
            if "get" in methods:
                methods.discard("head")  # Starlette answers HEAD for every GET route by itself
            found.setdefault(_template(prefix + route.path), set()).update(methods)
    return found


def operations(openapi: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_the_document_describes_exactly_the_routes_a_server_serves(tmp_path: Path) -> None:
    served = served_routes(host_endpoints(Host(data_dir=tmp_path), open_access=True).routes)
    described = {path: set(item) for path, item in server_document()["paths"].items()}
    assert described == served
    # The per-app part is the dev server's document, each path under the app's root.
    per_app = {f"/-/api/v1/apps/{{app}}{path}": set(item) for path, item in document()["paths"].items()}
    assert per_app.items() <= described.items()
    assert {"/-/health", DOCUMENT, "/-/apps/{app}/events", "/-/api/v1/keys"} <= set(described)


def test_every_operation_states_the_action_its_key_needs_as_the_tables_say() -> None:
    expected: dict[tuple[str, str], str | None] = {}
    for row in ROOT_OPERATIONS:
        expected[row.method.lower(), row.path] = row.action
    for row in SERVER_OPERATIONS:
        expected[row.method.lower(), f"/-/api/v1{row.path}"] = row.action
    for (method, path), action in APP_ENDPOINT_ACTIONS.items():
        expected[method.lower(), f"/-/api/v1/apps/{{app}}{_template(path)}"] = action
    openapi = server_document()
    stated = {(method, path): operation[ACTION_EXTENSION] for method, path, operation in operations(openapi)}
    assert stated == expected

    public = {(method, path) for (method, path), action in stated.items() if action is None}
    # Public: what describes the software and its liveness, naming no app, key or record.
    assert public == {("get", "/-/"), ("get", "/-/health"), ("get", DOCUMENT)}
    assert {scheme["type"] for scheme in openapi["components"]["securitySchemes"].values()} == {"http", "apiKey"}
    assert openapi["components"]["securitySchemes"]["headerKey"]["name"] == "x-api-key"
    for method, path, operation in operations(openapi):
        action = operation[ACTION_EXTENSION]
        where = f"{method} {path}"
        if action is None:
            assert operation["security"] == [], where
            assert "401" not in operation["responses"], where
            continue
        # No override: the document's own security (a bearer key, or x-api-key) applies.
        assert "security" not in operation, where
        assert "401" in operation["responses"], where
        # 403 everywhere: a Host or an Origin the server does not accept; and a role without the action.
        assert "403" in operation["responses"], where
        if action == "list":
            assert "of any role" in operation["description"], where
        else:
            assert f"`{action}`: {', '.join(roles_holding(action))}" in operation["description"], where
        if "{app}" in path:
            assert "404" in operation["responses"], where
    assert openapi["security"] == [{"bearerKey": []}, {"headerKey": []}]


@pytest.mark.parametrize("make", [document, server_document], ids=["dev", "serve"])
def test_both_documents_are_valid_openapi_3_1(make: Any) -> None:
    openapi = make()
    assert openapi["openapi"] == "3.1.0"
    validate_document(openapi, cls=OpenAPIV31SpecValidator)


# --- served by a real server -------------------------------------------------------------------------


class Served:
    def __init__(self, http: httpx.AsyncClient, admin: str, openapi: dict[str, Any]) -> None:
        self.http = http
        self.admin = {"authorization": f"Bearer {admin}"}
        self.openapi = openapi

    async def call(
        self, method: str, template: str, values: dict[str, str], *, status: int, **kwargs: Any
    ) -> httpx.Response:
        """Ask the server as the document says, and check that the answer is one the document describes."""
        kwargs.setdefault("headers", self.admin)
        if method in ("POST", "PUT") and "content-type" not in kwargs["headers"]:
            kind = "application/gzip" if "/bundles/" in template else "application/json"
            kwargs["headers"] = {**kwargs["headers"], "content-type": kind}
        url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
        answer = await self.http.request(method, url, **kwargs)
        where = f"{method} {url} -> {answer.status_code} {answer.text[:300]}"
        assert answer.status_code == status, where
        response = self.openapi["paths"][template][method.lower()]["responses"].get(str(status))
        assert response is not None, f"{where}: the document lists no {status} answer"
        if "$ref" in response:
            response = self.openapi["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        content = response.get("content")
        if content is None:
            assert answer.content == b"", where
            return answer
        assert answer.headers["content-type"].startswith("application/json"), where
        schema = {**content["application/json"]["schema"], "components": self.openapi["components"]}
        validate_instance(answer.json(), schema, cls=OAS31Validator)
        for header in response.get("headers", {}):
            assert header in answer.headers, f"{where}: no {header} header"
        return answer


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    host = Host(data_dir=tmp_path / "server")
    await host.start()
    try:
        assert host.first_admin_key is not None
        async with (
            GatewayServer(HostASGI(host), port=0) as server,
            httpx.AsyncClient(base_url=server.url, timeout=60) as http,
        ):
            yield Served(http, host.first_admin_key, server_document())
    finally:
        await host.stop()


async def test_a_server_serves_the_document_to_anyone_and_nothing_else_without_a_key(served: Served) -> None:
    answer = await served.http.get(DOCUMENT)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == served.openapi
    # It is public because it names no app and no key; the endpoints it describes still need one.
    refused = await served.http.get("/-/api/v1/apps")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"


async def test_a_servers_answers_are_the_ones_its_document_describes(served: Served, tmp_path: Path) -> None:
    bundle = pack(write_app(tmp_path / "shop", "shop", 1))
    values = {"app": "shop", "sha256": bundle.sha256, "alias": "live"}
    bundles = "/-/api/v1/apps/{app}/bundles/{sha256}"
    call = served.call

    await call("HEAD", bundles, values, status=404)
    await call("PUT", bundles, values, status=201, content=bundle.data)
    await call("PUT", bundles, values, status=200, content=bundle.data)
    await call("HEAD", bundles, values, status=200)
    deployed = await call("POST", "/-/api/v1/apps/{app}/deploys", values, status=201, json={"bundle": bundle.sha256})
    assert deployed.json()["version"] == 1

    broken = pack(write_app(tmp_path / "broken", "shop", 2, extra="\nraise RuntimeError('not today')\n"))
    await call("PUT", bundles, {**values, "sha256": broken.sha256}, status=201, content=broken.data)
    failed = await call("POST", "/-/api/v1/apps/{app}/deploys", values, status=422, json={"bundle": broken.sha256})
    assert failed.json()["error"]["phase"] == "import"

    health = await call("GET", "/-/health", values, status=200, headers={})
    assert health.json()["apps"] == 1
    assert [a["name"] for a in (await call("GET", "/-/api/v1/apps", values, status=200)).json()["apps"]] == ["shop"]
    await call("GET", "/-/api/v1/apps/{app}", values, status=200)
    await call("GET", "/-/api/v1/apps/{app}/versions", values, status=200)
    await call("PUT", "/-/api/v1/apps/{app}/aliases/{alias}", values, status=200, json={"version": 1})
    await call("GET", "/-/api/v1/apps/{app}/aliases", values, status=200)
    await call("POST", "/-/api/v1/apps/{app}/rollback", values, status=400, json={})

    created = await call(
        "POST", "/-/api/v1/keys", values, status=201, json={"name": "viewer", "role": "viewer", "app": "shop"}
    )
    viewer = {"authorization": f"Bearer {created.json()['key']}"}
    listed = (await call("GET", "/-/api/v1/keys", values, status=200)).json()["keys"]
    assert "key" not in listed[0]
    await call("POST", "/-/api/v1/apps/{app}/deploys", values, status=403, headers=viewer, json={})
    await call("GET", "/-/api/v1/apps/{app}/functions", values, status=200, headers=viewer)
    await call("GET", "/-/api/v1/apps/{app}/functions", {"app": "blog"}, status=404)
    await call(
        "POST",
        "/-/apps/{app}/events",
        values,
        status=202,
        json={"specversion": "1.0", "id": "e-1", "source": "test", "type": "Ping"},
        headers={**served.admin, "content-type": "application/cloudevents+json"},
    )
    await call("DELETE", "/-/api/v1/keys/{id}", {"id": created.json()["id"]}, status=200)
    await call("GET", "/-/api/v1/apps/{app}/versions", values, status=401, headers=viewer)
