"""Secrets on a real server: set over the API with real keys, seen by real workers in their environment and in
`context.secrets`, changed without a redeploy, kept from other apps, and every operation in the audit log."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest_asyncio

from triggerfish.deploy.bundle import pack
from triggerfish.gateway import GatewayServer
from triggerfish.server.host import Host
from triggerfish.server.host_http import HostASGI

STRIPE = "sk_live_51HrMtest0value0never0shown"
SHOP = """
import os
import triggerfish

app = triggerfish.App("shop")


@app.function(secrets=["STRIPE_KEY"])
def charge(event, context):
    return {
        "environ": os.environ.get("STRIPE_KEY"),
        "context": context.secrets["STRIPE_KEY"],
        "shown": repr(context.secrets),
    }


@app.function
def nosy(event, context):
    # Declares nothing: sees nothing, whatever the app has set.
    try:
        context.secrets["STRIPE_KEY"]
    except KeyError as exc:
        refused = str(exc)
    return {"environ": os.environ.get("STRIPE_KEY"), "refused": refused}
"""
BLOG = """
import os
import triggerfish

app = triggerfish.App("blog")


@app.function(secrets=["STRIPE_KEY"])
def steal(event, context):
    return os.environ.get("STRIPE_KEY")
"""


@dataclass
class Server:
    host: Host
    http: httpx.AsyncClient
    keys: dict[str, str]

    def key(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}", "content-type": "application/json"}

    async def deploy(self, app: str, directory: Path, who: str = "admin") -> httpx.Response:
        bundle = pack(directory)
        base = f"/-/api/v1/apps/{app}"
        headers = {**self.key(who), "content-type": "application/gzip"}
        stored = await self.http.put(f"{base}/bundles/{bundle.sha256}", content=bundle.data, headers=headers)
        assert stored.status_code in (200, 201), stored.text
        return await self.http.post(f"{base}/deploys", json={"bundle": bundle.sha256}, headers=self.key(who))

    async def invoke(self, app: str, function: str, who: str = "admin") -> httpx.Response:
        return await self.http.post(f"/-/api/v1/apps/{app}/functions/{function}/invoke", headers=self.key(who))

    async def set(self, app: str, name: str, value: str, who: str = "deployer") -> httpx.Response:
        url = f"/-/api/v1/apps/{app}/secrets/{name}"
        return await self.http.put(url, json={"value": value}, headers=self.key(who))


def write(directory: Path, code: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "app.py").write_text(textwrap.dedent(code))
    return directory


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    host = Host(data_dir=tmp_path / "server", idle_timeout=60)
    await host.start()
    try:
        async with (
            GatewayServer(HostASGI(host), port=0) as served,
            httpx.AsyncClient(base_url=served.url, timeout=30) as http,
        ):
            keys = {"admin": host.first_admin_key or ""}
            server = Server(host, http, keys)
            assert (await server.deploy("shop", write(tmp_path / "shop", SHOP))).status_code == 201
            assert (await server.deploy("blog", write(tmp_path / "blog", BLOG))).status_code == 201
            for who, role, app in (("deployer", "deployer", "shop"), ("viewer", "viewer", "shop")):
                keys[who], _ = await host.keys.create(who, role, app)
            keys["blog"], _ = await host.keys.create("blog ci", "deployer", "blog")
            yield server
    finally:
        await host.stop()


async def test_a_function_sees_its_secret_in_its_environment_and_context_and_nothing_shows_it(server: Server) -> None:
    answer = await server.set("shop", "STRIPE_KEY", STRIPE)
    assert answer.status_code == 201
    assert STRIPE not in answer.text
    assert answer.json()["version"] == 1
    seen = (await server.invoke("shop", "charge")).json()
    assert seen == {"environ": STRIPE, "context": STRIPE, "shown": "<secrets STRIPE_KEY: values not shown>"}
    other = (await server.invoke("shop", "nosy")).json()
    assert other["environ"] is None
    assert "declares no secret of that name" in other["refused"]
    listed = await server.http.get("/-/api/v1/apps/shop/secrets", headers=server.key("viewer"))
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()["secrets"]] == ["STRIPE_KEY"]
    assert STRIPE not in listed.text
    functions = await server.http.get("/-/api/v1/apps/shop/functions/charge", headers=server.key("viewer"))
    assert functions.json()["settings"]["secrets"] == ["STRIPE_KEY"]


async def test_a_change_reaches_warm_workers_without_a_redeploy(server: Server) -> None:
    await server.set("shop", "STRIPE_KEY", STRIPE)
    assert (await server.invoke("shop", "charge")).json()["environ"] == STRIPE
    pool = server.host.apps["shop"].current.runner.stats("charge")
    assert pool["idle"] == 1  # a warm worker holds the old value
    changed = await server.set("shop", "STRIPE_KEY", STRIPE + "-rotated")
    assert changed.status_code == 200
    assert changed.json()["version"] == 2
    assert (await server.invoke("shop", "charge")).json()["environ"] == STRIPE + "-rotated"
    assert (
        await server.http.delete("/-/api/v1/apps/shop/secrets/STRIPE_KEY", headers=server.key("deployer"))
    ).status_code == 204
    failed = await server.invoke("shop", "charge")
    assert failed.headers["x-amz-function-error"] == "Unhandled"
    error = failed.json()
    assert error["errorType"] == "Runtime.SecretNotSet"
    assert "triggerfish secrets set shop STRIPE_KEY" in error["errorMessage"]
    assert STRIPE not in failed.text


async def test_another_app_cannot_read_a_secret_through_its_handler_or_the_api(server: Server) -> None:
    await server.set("shop", "STRIPE_KEY", STRIPE)
    stolen = await server.invoke("blog", "steal", who="blog")
    assert stolen.json()["errorType"] == "Runtime.SecretNotSet"
    assert "app 'blog' has no secret STRIPE_KEY" in stolen.json()["errorMessage"]
    for method, path in (("GET", "/secrets"), ("PUT", "/secrets/STRIPE_KEY"), ("DELETE", "/secrets/STRIPE_KEY")):
        answer = await server.http.request(
            method, f"/-/api/v1/apps/shop{path}", json={"value": "x"}, headers=server.key("blog")
        )
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "AppNotFound")
    assert (await server.invoke("shop", "charge")).json()["environ"] == STRIPE  # untouched
    # Its own secret of the same name is its own.
    assert (await server.set("blog", "STRIPE_KEY", "blog's own", who="blog")).status_code == 201
    assert (await server.invoke("blog", "steal", who="blog")).json() == "blog's own"


async def test_a_viewer_lists_names_and_may_not_set_or_remove(server: Server) -> None:
    refused = await server.set("shop", "STRIPE_KEY", STRIPE, who="viewer")
    assert refused.status_code == 403
    assert "deployer" in refused.json()["error"]["message"]
    assert STRIPE not in refused.text


async def test_a_bad_value_is_refused_without_repeating_it(server: Server) -> None:
    for body in ({"value": ""}, {"value": "x" * 40_000}, {"value": 12345}, {"value": "a\u0000b"}, {}):
        answer = await server.http.put(
            "/-/api/v1/apps/shop/secrets/STRIPE_KEY", json=body, headers=server.key("deployer")
        )
        assert answer.status_code == 400, answer.text
        assert "xxxx" not in answer.text
        assert "12345" not in answer.text
    bad_name = await server.set("shop", "AWS_LAMBDA_FUNCTION_NAME", "hidden")
    assert bad_name.status_code == 400
    assert "hidden" not in bad_name.text
    assert (await server.http.get("/-/api/v1/apps/shop/secrets", headers=server.key("viewer"))).json()["secrets"] == []


async def test_the_audit_log_records_who_did_what_refusals_and_failures_too(server: Server, tmp_path: Path) -> None:
    await server.set("shop", "STRIPE_KEY", STRIPE)
    await server.http.delete("/-/api/v1/apps/shop/secrets/NOPE", headers=server.key("deployer"))
    refused_key = await server.http.post(
        "/-/api/v1/keys", json={"name": "sneaky", "role": "admin"}, headers=server.key("deployer")
    )
    assert refused_key.status_code == 403
    broken = write(tmp_path / "broken", "raise RuntimeError('broken at import')\n")
    assert (await server.deploy("shop", broken, who="deployer")).status_code == 422
    created = await server.http.post(
        "/-/api/v1/keys", json={"name": "ops", "role": "viewer", "app": "shop"}, headers=server.key("admin")
    )
    revoked = await server.http.delete(f"/-/api/v1/keys/{created.json()['id']}", headers=server.key("admin"))
    assert revoked.status_code == 200
    await server.http.post(
        "/-/api/v1/apps/shop/rollback",
        json={},
        headers={"authorization": "Bearer tfk_00000000_" + "x" * 32, "content-type": "application/json"},
    )

    for who in ("deployer", "viewer", "blog"):
        assert (await server.http.get("/-/api/v1/audit", headers=server.key(who))).status_code == 403
    assert (await server.http.get("/-/api/v1/audit")).status_code == 401
    answer = await server.http.get("/-/api/v1/audit", headers=server.key("admin"))
    assert answer.status_code == 200
    assert STRIPE not in answer.text
    assert server.keys["deployer"] not in answer.text
    assert server.keys["admin"] not in answer.text
    entries = answer.json()["entries"]
    seen = [(e["operation"], e["outcome"], e["app"], e["object"], e["status"]) for e in entries]
    deploys = [row for row in seen if row[0] == "deploy"]
    assert deploys[:2] == [("deploy", "ok", "shop", "version 1", 201), ("deploy", "ok", "blog", "version 1", 201)]
    assert seen[2:] == [
        ("secret.set", "ok", "shop", "STRIPE_KEY", 201),
        ("secret.remove", "failed", "shop", "NOPE", 404),
        ("key.create", "refused", None, None, 403),
        ("deploy", "failed", "shop", None, 422),
        ("key.create", "ok", "shop", f"tfk_{created.json()['id']}", 201),
        ("key.revoke", "ok", "shop", f"tfk_{created.json()['id']}", 200),
        ("rollback", "refused", "shop", None, 401),
    ]
    by_deployer = entries[2]
    assert by_deployer["actor"]["name"] == "deployer"
    assert by_deployer["actor"]["role"] == "deployer"
    assert by_deployer["actor"]["key"] == server.keys["deployer"][:12]
    assert by_deployer["client"] == "127.0.0.1"
    assert by_deployer["details"]["version"] == 1
    assert entries[5]["details"]["phase"] == "import"
    assert entries[-1]["actor"] == {"key": "tfk_00000000", "state": "unknown"}
    only = await server.http.get(
        "/-/api/v1/audit", params={"operation": "key.create", "outcome": "refused"}, headers=server.key("admin")
    )
    assert [e["actor"]["name"] for e in only.json()["entries"]] == ["deployer"]
    first = await server.http.get("/-/api/v1/audit", params={"limit": 3}, headers=server.key("admin"))
    rest = await server.http.get("/-/api/v1/audit", params={"after": first.json()["next"]}, headers=server.key("admin"))
    assert [e["offset"] for e in first.json()["entries"] + rest.json()["entries"]] == [e["offset"] for e in entries]
    assert rest.json()["next"] is None


async def test_removing_an_app_removes_its_secrets(server: Server, tmp_path: Path) -> None:
    await server.set("shop", "STRIPE_KEY", STRIPE)
    assert (await server.http.delete("/-/api/v1/apps/shop", headers=server.key("admin"))).status_code == 204
    listed = await server.http.get("/-/api/v1/apps/shop/secrets", headers=server.key("admin"))
    assert listed.json()["secrets"] == []


async def test_secrets_may_be_set_before_the_first_deploy(server: Server, tmp_path: Path) -> None:
    assert (await server.set("later", "TOKEN", "ready", who="admin")).status_code == 201
    code = SHOP.replace('App("shop")', 'App("later")').replace("STRIPE_KEY", "TOKEN")
    assert (await server.deploy("later", write(tmp_path / "later", code))).status_code == 201
    assert (await server.invoke("later", "charge")).json()["context"] == "ready"


async def test_a_reseal_is_admin_only_and_audited(server: Server) -> None:
    await server.set("shop", "STRIPE_KEY", STRIPE)
    assert (
        await server.http.post("/-/api/v1/secrets/reseal", json={}, headers=server.key("deployer"))
    ).status_code == 403
    answer = await server.http.post("/-/api/v1/secrets/reseal", json={}, headers=server.key("admin"))
    assert answer.status_code == 200
    ring = server.host.secrets.keyring
    assert ring is not None
    assert answer.json() == {"key_id": ring.sealing.id, "resealed": 0, "unchanged": 1, "unreadable": []}
    log = await server.http.get("/-/api/v1/audit", params={"operation": "secrets.reseal"}, headers=server.key("admin"))
    assert [e["outcome"] for e in log.json()["entries"]] == ["refused", "ok"]
