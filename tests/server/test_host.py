"""The multi-app host behind `triggerfish serve`: deploys, versions, aliases, rollback, isolation, restarts.

Real bundles packed from real directories, real worker processes, a real SQLite store, a real socket.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.packages import wheel
from tests.patience import scaled
from triggerfish.deploy.bundle import pack
from triggerfish.gateway import GatewayServer
from triggerfish.server.host import Host
from triggerfish.server.host_http import HostASGI

#: What a client of the control API says of its bodies: JSON, or a gzip for a bundle.
JSON = {"content-type": "application/json"}
GZIP = {"content-type": "application/gzip"}

APP = """
import triggerfish

app = triggerfish.App({name!r})


@app.http("GET", "/hello")
def hello(event, context):
    return {{"app": {name!r}, "version": {version}}}


@app.http("GET", "/stable")
def stable(event, context):
    return "same in every version"


@app.http("POST", "/remember")
def remember(event, context):
    context.send("notes", event["body"])
    return "sent"
"""


def write_app(directory: Path, name: str, version: int, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.py").write_text(textwrap.dedent(APP).format(name=name, version=version) + extra)
    return directory


class Served:
    def __init__(self, host: Host, url: str, http: httpx.AsyncClient) -> None:
        self.host = host
        self.url = url
        self.http = http

    async def deploy(self, app: str, directory: Path) -> httpx.Response:
        bundle = pack(directory)
        base = f"/-/api/v1/apps/{app}"
        if (await self.http.head(f"{base}/bundles/{bundle.sha256}")).status_code == 404:
            stored = await self.http.put(f"{base}/bundles/{bundle.sha256}", content=bundle.data, headers=GZIP)
            assert stored.status_code == 201, stored.text
        return await self.http.post(f"{base}/deploys", json={"bundle": bundle.sha256})


async def serve(data_dir: Path, *, store_url: str | None = None) -> AsyncIterator[Served]:
    host = Host(data_dir=data_dir, store_url=store_url)
    await host.start()
    try:
        async with (
            GatewayServer(HostASGI(host, open_access=True), port=0) as server,
            # A hang guard, not a check of speed: under load a write may wait behind the other node's on one file.
            httpx.AsyncClient(base_url=server.url, headers=JSON, timeout=scaled(30)) as http,
        ):
            yield Served(host, server.url, http)
    finally:
        await host.stop()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async for one in serve(tmp_path / "server"):
        yield one


async def test_a_deploy_publishes_version_1_and_serves_it_under_the_apps_prefix(served: Served, tmp_path: Path) -> None:
    answer = await served.deploy("shop", write_app(tmp_path / "shop", "shop", 1))
    assert answer.status_code == 201, answer.text
    result = answer.json()
    assert result["version"] == 1
    assert result["functions"]["added"] == ["hello", "remember", "stable"]
    assert [p["name"] for p in result["phases"]] == ["install", "import", "switch"]
    assert (await served.http.get("/shop/hello")).json() == {"app": "shop", "version": 1}
    health = (await served.http.get("/-/health")).json()
    assert health["apps"] == 1  # a count: health needs no key, so it names no app


async def test_a_second_deploy_reports_changed_and_unchanged_functions_and_rollback_goes_back(
    served: Served, tmp_path: Path
) -> None:
    source = tmp_path / "shop"
    assert (await served.deploy("shop", write_app(source, "shop", 1))).status_code == 201
    second = (await served.deploy("shop", write_app(source, "shop", 2))).json()
    assert second["version"] == 2
    assert second["functions"]["changed"] == ["hello"]
    assert second["functions"]["unchanged"] == ["remember", "stable"]
    assert (await served.http.get("/shop/hello")).json()["version"] == 2

    versions = (await served.http.get("/-/api/v1/apps/shop/versions")).json()["versions"]
    assert [(v["version"], v["live"]) for v in versions] == [(1, False), (2, True)]
    back = await served.http.post("/-/api/v1/apps/shop/rollback", json={})
    assert back.json() == {"app": "shop", "version": 1}
    assert (await served.http.get("/shop/hello")).json()["version"] == 1
    assert (await served.http.post("/-/api/v1/apps/shop/rollback", json={"to": 2})).json()["version"] == 2
    assert (await served.http.get("/shop/hello")).json()["version"] == 2


async def test_a_deploy_whose_import_fails_changes_nothing_and_says_why(served: Served, tmp_path: Path) -> None:
    source = tmp_path / "shop"
    await served.deploy("shop", write_app(source, "shop", 1))
    broken = write_app(source, "shop", 2, extra="\nraise RuntimeError('not today')\n")
    answer = await served.deploy("shop", broken)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "DeployFailed"
    assert error["phase"] == "import"
    assert "RuntimeError: not today" in error["details"]
    assert (await served.http.get("/shop/hello")).json()["version"] == 1
    versions = (await served.http.get("/-/api/v1/apps/shop/versions")).json()["versions"]
    assert [v["version"] for v in versions] == [1]
    # The failed import did not take a number: the next good deploy is version 2.
    assert (await served.deploy("shop", write_app(source, "shop", 3))).json()["version"] == 2


async def test_an_alias_splits_traffic_between_two_versions_by_weight(served: Served, tmp_path: Path) -> None:
    source = tmp_path / "shop"
    await served.deploy("shop", write_app(source, "shop", 1))
    await served.deploy("shop", write_app(source, "shop", 2))
    answer = await served.http.put("/-/api/v1/apps/shop/aliases/live", json={"version": 1, "weights": {"2": 0.5}})
    assert answer.status_code == 200, answer.text
    seen = [(await served.http.get("/shop/hello")).json()["version"] for _ in range(200)]
    # Half of 200 requests, give or take chance: far from all or none.
    assert 40 < seen.count(2) < 160
    assert seen.count(1) + seen.count(2) == 200
    aliases = (await served.http.get("/-/api/v1/apps/shop/aliases")).json()["aliases"]
    assert aliases == [{"name": "live", "version": 1, "weights": {"2": 0.5}}]
    await served.http.put("/-/api/v1/apps/shop/aliases/live", json={"version": 2})
    assert {(await served.http.get("/shop/hello")).json()["version"] for _ in range(20)} == {2}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"version": 9}, "no version 9"),
        ({"version": 1, "weights": {"1": 0.5}}, "must differ"),
        ({"version": 1, "weights": {"2": 1.5}}, "from 0 to 1"),
        ({"version": "1"}, "whole number"),
    ],
)
async def test_bad_aliases_are_refused_with_the_reason(
    served: Served, tmp_path: Path, body: dict[str, object], message: str
) -> None:
    source = tmp_path / "shop"
    await served.deploy("shop", write_app(source, "shop", 1))
    await served.deploy("shop", write_app(source, "shop", 2))
    answer = await served.http.put("/-/api/v1/apps/shop/aliases/live", json=body)
    assert answer.status_code == 400
    assert message in answer.json()["error"]["message"]
    assert (await served.http.get("/shop/hello")).json()["version"] == 2


async def test_two_apps_are_isolated_by_name(served: Served, tmp_path: Path) -> None:
    await served.deploy("shop", write_app(tmp_path / "shop", "shop", 1))
    await served.deploy("blog", write_app(tmp_path / "blog", "blog", 7))
    assert (await served.http.get("/blog/hello")).json() == {"app": "blog", "version": 7}
    await served.http.post("/shop/remember", content=b"for the shop", headers={"content-type": "text/plain"})
    shop = (await served.http.get("/-/api/v1/apps/shop/queues/notes")).json()
    assert shop["stats"]["depth"] == 1
    blog = await served.http.get("/-/api/v1/apps/blog/queues/notes")
    assert blog.status_code == 404
    received = await served.http.post("/-/api/v1/apps/shop/queues/notes/receive", json={"max": 10})
    assert [m["body"] for m in received.json()["messages"]] == ["for the shop"]
    apps = (await served.http.get("/-/api/v1/apps")).json()["apps"]
    assert [a["name"] for a in apps] == ["blog", "shop"]


async def test_a_restarted_server_serves_each_apps_live_version(tmp_path: Path) -> None:
    data = tmp_path / "server"
    async for first in serve(data):
        await first.deploy("shop", write_app(tmp_path / "shop", "shop", 1))
        await first.deploy("shop", write_app(tmp_path / "shop", "shop", 2))
        await first.http.post("/-/api/v1/apps/shop/rollback", json={})
    async for second in serve(data):
        assert (await second.http.get("/shop/hello")).json()["version"] == 1
        versions = (await second.http.get("/-/api/v1/apps/shop/versions")).json()["versions"]
        assert [v["version"] for v in versions] == [1, 2]


async def test_unknown_apps_and_bundles_are_404_and_a_cut_upload_stores_nothing(served: Served, tmp_path: Path) -> None:
    assert (await served.http.get("/nope/hello")).status_code == 404
    assert (await served.http.get("/-/api/v1/apps/nope/functions")).json()["error"]["code"] == "AppNotFound"
    bundle = pack(write_app(tmp_path / "shop", "shop", 1))
    cut = await served.http.put(
        f"/-/api/v1/apps/shop/bundles/{bundle.sha256}", content=bundle.data[:-100], headers=GZIP
    )
    assert cut.status_code == 400
    assert cut.json()["error"]["code"] == "BundleHashMismatch"
    assert (await served.http.head(f"/-/api/v1/apps/shop/bundles/{bundle.sha256}")).status_code == 404
    deploy = await served.http.post("/-/api/v1/apps/shop/deploys", json={"bundle": bundle.sha256})
    assert deploy.status_code == 400
    assert "PUT it" in deploy.json()["error"]["message"]
    assert (await served.http.get("/-/api/v1/apps")).json()["apps"] == []


USES_PACKAGE = """
import triggerfish
import tinyquote

app = triggerfish.App("quotes")


@app.http("GET", "/quote")
def quote(event, context):
    return {"quote": tinyquote.QUOTE}
"""


async def test_a_deploy_installs_its_requirements_once_and_the_app_imports_them(tmp_path: Path) -> None:
    project = tmp_path / "quotes"
    project.mkdir()
    index = tmp_path / "index"
    wheel(index, "tinyquote", "QUOTE = 'fish are friends'\n")
    (project / "requirements.txt").write_text("tinyquote==1.0\n")
    (project / "app.py").write_text(USES_PACKAGE)
    host = Host(data_dir=tmp_path / "server", pip_args=("--no-index", "--find-links", str(index)))
    await host.start()
    try:
        async with GatewayServer(HostASGI(host, open_access=True), port=0) as server:
            served = Served(host, server.url, httpx.AsyncClient(base_url=server.url, timeout=60, headers=JSON))
            first = (await served.deploy("quotes", project)).json()
            install = first["phases"][0]
            assert install["name"] == "install"
            assert "tinyquote" in install["output"]
            assert (await served.http.get("/quotes/quote")).json() == {"quote": "fish are friends"}
            (project / "app.py").write_text(USES_PACKAGE.replace('"quote":', '"said":'))
            second = (await served.deploy("quotes", project)).json()
            assert "cached" in second["phases"][0]["output"]
            assert (await served.http.get("/quotes/quote")).json() == {"said": "fish are friends"}

            (project / "requirements.txt").write_text("no-such-package-anywhere==1.0\n")
            failed = await served.deploy("quotes", project)
            assert failed.status_code == 422
            error = failed.json()["error"]
            assert error["phase"] == "install"
            assert "no-such-package-anywhere" in error["details"]
            assert (await served.http.get("/quotes/quote")).json() == {"said": "fish are friends"}
            await served.http.aclose()
    finally:
        await host.stop()


async def test_an_apps_own_api_document_names_its_prefix_on_a_server(served: Served, tmp_path: Path) -> None:
    await served.deploy("shop", write_app(tmp_path / "shop", "shop", 1))
    document = (await served.http.get("/-/api/v1/apps/shop/openapi.json")).json()
    assert document["servers"] == [{"url": "/-/api/v1/apps/shop"}]
    assert "/functions" in document["paths"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"name": "ci", "role": "deployer", "app": 5}, "body.app must be a string"),
        ({"name": "ci", "role": "deployer", "app": ["shop"]}, "body.app must be a string"),
        ({"name": "ci", "role": "deployer", "app": {"a": 1}}, "body.app must be a string"),
        ({"name": "ci", "role": "god"}, "body.role must be one of admin"),
        ({"name": "", "role": "admin"}, "body.name must be a string of 1 to 64"),
        ({"role": "admin"}, "body: name is required"),
        ({"name": "ci", "role": "admin", "scopes": []}, "unknown field 'scopes'"),
    ],
)
async def test_bad_keys_are_400_naming_the_field_never_500(served: Served, body: dict[str, object], says: str) -> None:
    answer = await served.http.post("/-/api/v1/keys", json=body)
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["error"]["message"]
