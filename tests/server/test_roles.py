"""Every endpoint of `triggerfish serve`, asked with every role, a key of another app, a revoked key and none.

The expected answer comes from the role matrix (triggerfish.server.auth.ROLE_ACTIONS) and the action
each endpoint needs (triggerfish.server.host_http): allowed → anything but 401/403/AppNotFound (the
request itself may still be a bad one: that is the endpoint's business); the role lacks the action →
403; a key of another app → 404 AppNotFound, the same as for an app that does not exist; no key or a
revoked one → 401.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from tests.server.test_host import write_app
from triggerfish.deploy.bundle import pack
from triggerfish.gateway import GatewayServer
from triggerfish.server.auth import APP_ENDPOINT_ACTIONS, ROLE_ACTIONS
from triggerfish.server.control import control_routes
from triggerfish.server.host import Host
from triggerfish.server.host_http import SERVER_OPERATIONS, HostASGI

PARAMETERS = {
    "app": "shop",
    "name": "hello",
    "name:path": "notes",
    "bus:path": "default",
    "id": "r-1",
    "sha256": "0" * 64,
    "alias": "live",
    "request_id": "req-1",
    "token": "not-a-token",
    "trace_id": "a" * 32,
    "stream": "account-1",
}


@dataclass
class Server:
    url: str
    keys: dict[str, str]


def endpoints() -> list[tuple[str, str, str | None, str]]:
    """(method, path template, app or None, action) of every endpoint behind a key."""
    found: list[tuple[str, str, str | None, str]] = []
    for row in SERVER_OPERATIONS:
        found.append((row.method, f"/-/api/v1{row.path}", "shop" if "{app}" in row.path else None, str(row.action)))
    for route in control_routes():
        for method in sorted(route.methods or ()):  # type: ignore[attr-defined]
            if method == "HEAD":
                continue
            path = route.path  # type: ignore[attr-defined]
            found.append((method, f"/-/api/v1/apps/{{app}}{path}", "shop", APP_ENDPOINT_ACTIONS[(method, path)]))
    found.append(("POST", "/-/apps/{app}/events", "shop", "publish"))
    return found


def fill(template: str, app: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: app if m.group(1) == "app" else PARAMETERS[m.group(1)], template)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    root = tmp_path_factory.mktemp("roles")
    host = Host(data_dir=root / "server")
    await host.start()
    try:
        for app in ("shop", "blog"):
            bundle = pack(write_app(root / app, app, 1))
            host.bundles.put(app, bundle.sha256, bundle.data)
            await host.deploy(app, bundle.sha256)
        keys = {"admin": host.first_admin_key or ""}
        for role in ("deployer", "publisher", "invoker", "viewer"):
            keys[role], _ = await host.keys.create(f"{role} of shop", role, "shop")
        keys["blog deployer"], _ = await host.keys.create("blog's", "deployer", "blog")
        keys["revoked"], info = await host.keys.create("gone", "admin")
        await host.keys.revoke(info.id)
        async with GatewayServer(HostASGI(host), port=0) as served:
            yield Server(served.url, keys)
    finally:
        await host.stop()


#: Every endpoint but removing the app, which would change what the other cases see
#: (test_a_revoked_key_stops_working_at_once removes one as a deployer, refused, then as an admin).
ENDPOINTS = [e for e in endpoints() if (e[0], e[1]) != ("DELETE", "/-/api/v1/apps/{app}")]
pytestmark = pytest.mark.asyncio(loop_scope="module")


#: Who holds each key of the fixture: (role, app).
HOLDERS = {
    "admin": ("admin", None),
    "deployer": ("deployer", "shop"),
    "publisher": ("publisher", "shop"),
    "invoker": ("invoker", "shop"),
    "viewer": ("viewer", "shop"),
    "blog deployer": ("deployer", "blog"),
}


@pytest.mark.parametrize(("method", "template", "app", "action"), ENDPOINTS, ids=lambda v: str(v))
async def test_every_endpoint_answers_every_role_as_the_matrix_says(
    server: Server, method: str, template: str, app: str | None, action: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for who, key in server.keys.items():
            answer = await http.request(method, fill(template, "shop"), headers={"authorization": f"Bearer {key}"})
            # HEAD answers carry no body: the status alone must tell.
            code = answer.json().get("error", {}).get("code") if answer.content else None
            where = f"{who}: {method} {template} -> {answer.status_code} {answer.text[:200]}"
            if who == "revoked":
                assert answer.status_code == 401, where
                continue
            role, own_app = HOLDERS[who]
            if app is not None and own_app not in (None, app):
                assert answer.status_code == 404, where
                assert code in ("AppNotFound", None), where
            elif action == "list" or action in ROLE_ACTIONS[role]:
                assert answer.status_code not in (401, 403), where
                assert code != "AppNotFound", where
            else:
                assert answer.status_code == 403, where
                assert code in ("Forbidden", None), where
        anonymous = await http.request(method, fill(template, "shop"))
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"


async def test_another_apps_key_cannot_tell_an_app_that_exists_from_one_that_does_not(server: Server) -> None:
    headers = {"authorization": f"Bearer {server.keys['blog deployer']}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        real = await http.get("/-/api/v1/apps/shop/functions", headers=headers)
        missing = await http.get("/-/api/v1/apps/nowhere/functions", headers=headers)
        listed = await http.get("/-/api/v1/apps", headers=headers)
    assert (real.status_code, real.json()["error"]["code"]) == (missing.status_code, missing.json()["error"]["code"])
    assert [a["name"] for a in listed.json()["apps"]] == ["blog"]


async def test_a_revoked_key_stops_working_at_once(tmp_path: Path) -> None:
    host = Host(data_dir=tmp_path / "server")
    await host.start()
    try:
        bundle = pack(write_app(tmp_path / "shop", "shop", 1))
        host.bundles.put("shop", bundle.sha256, bundle.data)
        await host.deploy("shop", bundle.sha256)
        key, info = await host.keys.create("ci", "viewer", "shop")
        async with GatewayServer(HostASGI(host), port=0) as served, httpx.AsyncClient(base_url=served.url) as http:
            headers = {"authorization": f"Bearer {key}"}
            for _ in range(5):
                assert (await http.get("/-/api/v1/apps/shop/functions", headers=headers)).status_code == 200
            admin = {"authorization": f"Bearer {host.first_admin_key}"}
            assert (await http.delete(f"/-/api/v1/keys/{info.id}", headers=admin)).status_code == 200
            refused = await http.get("/-/api/v1/apps/shop/functions", headers=headers)
            assert refused.status_code == 401
            assert "revoked" in refused.json()["error"]["message"]
            # Removing an app takes an admin (a deployer of it may not); then it is gone for everyone.
            deployer, _ = await host.keys.create("ship", "deployer", "shop")
            refused = await http.delete("/-/api/v1/apps/shop", headers={"authorization": f"Bearer {deployer}"})
            assert refused.status_code == 403
            removed = await http.delete("/-/api/v1/apps/shop", headers=admin)
            assert removed.status_code == 204
            assert (await http.get("/shop/hello")).status_code == 404
    finally:
        await host.stop()


PRIVATE_APP = """
import triggerfish

app = triggerfish.App("vault")


@app.http("GET", "/open")
def public(event, context):
    return "anyone"


@app.http("GET", "/private", auth="api_key")
def private(event, context):
    # The key that let the request in is not passed on to the app's code.
    headers = event["headers"]
    return {"saw_key": "authorization" in headers or "x-api-key" in headers}
"""


async def test_a_route_declared_with_an_api_key_takes_a_key_of_its_app_that_may_invoke(tmp_path: Path) -> None:
    (tmp_path / "vault").mkdir()
    (tmp_path / "vault" / "app.py").write_text(PRIVATE_APP)
    host = Host(data_dir=tmp_path / "server")
    await host.start()
    try:
        bundle = pack(tmp_path / "vault")
        host.bundles.put("vault", bundle.sha256, bundle.data)
        await host.deploy("vault", bundle.sha256)
        invoker, _ = await host.keys.create("caller", "invoker", "vault")
        viewer, _ = await host.keys.create("looker", "viewer", "vault")
        async with GatewayServer(HostASGI(host), port=0) as served, httpx.AsyncClient(base_url=served.url) as http:
            assert (await http.get("/vault/open")).text == "anyone"
            assert (await http.get("/vault/private")).status_code == 401
            allowed = await http.get("/vault/private", headers={"x-api-key": invoker})
            assert allowed.status_code == 200
            assert allowed.json() == {"saw_key": False}
            assert (await http.get("/vault/private", headers={"x-api-key": viewer})).status_code == 403
    finally:
        await host.stop()
