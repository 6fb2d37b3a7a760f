"""What a web page can make a browser send to the platform's endpoints, refused: DNS rebinding, cross-site forms.

Real servers on real sockets: `triggerfish dev`'s platform and `triggerfish serve`'s host, sent the requests a
hostile page can make a browser send (text/plain, form and multipart bodies, its own Host name, its own Origin).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import RECORDER_APP, Served, serve_app
from tests.server.test_host import write_app
from triggerfish.deploy.bundle import pack
from triggerfish.errors import InvalidInputError
from triggerfish.gateway import GatewayServer
from triggerfish.server.host import Host
from triggerfish.server.host_http import HostASGI
from triggerfish.server.request_guard import RequestRules

JSON = {"content-type": "application/json"}
EVENT = b'{"specversion": "1.0", "id": "e-1", "source": "tests", "type": "T"}'


@pytest.fixture
async def dev(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serve_app(tmp_path, RECORDER_APP):
        yield served


def error_of(answer: httpx.Response) -> dict[str, Any]:
    document: dict[str, Any] = answer.json()["error"]
    return document


# --- the content type: what a cross-site form can send ------------------------------------------------

FORMS = [
    {"content-type": "text/plain"},
    {"content-type": "application/x-www-form-urlencoded"},
    {"content-type": "multipart/form-data; boundary=x"},
    {},  # a script's fetch() without a body sends none, and needs no preflight either
]


@pytest.mark.parametrize("headers", FORMS, ids=["text", "form", "multipart", "none"])
async def test_a_form_cannot_invoke_change_rules_or_publish(dev: Served, headers: dict[str, str]) -> None:
    rule = b'{"pattern": {"source": ["x"]}, "targets": [{"kind": "webhook", "name": "https://evil.example/"}]}'
    async with httpx.AsyncClient(base_url=dev.url) as http:
        invoked = await http.post("/-/api/v1/functions/seen/invoke", content=b"{}", headers=headers)
        ruled = await http.post("/-/api/v1/buses/default/replay", content=rule, headers=headers)
        published = await http.post("/-/events", content=EVENT, headers=headers)
        paused = await http.post("/-/api/v1/schedules/nope/pause", headers=headers)
        rules = (await http.get("/-/api/v1/buses/default/rules")).json()["rules"]
    for answer in (invoked, ruled, published, paused):
        assert answer.status_code == 415, answer.text
        error = error_of(answer)
        assert error["code"] == "UnsupportedMediaType"
        assert "Content-Type: application/json" in error["message"] or "application/cloudevents+json" in str(error)
    assert all(rule["source"] == "app" for rule in rules)
    assert await dev.platform.store.log.read("bus.default") == []


async def test_json_and_the_cloudevents_types_are_accepted(dev: Served) -> None:
    async with httpx.AsyncClient(base_url=dev.url) as http:
        structured = await http.post(
            "/-/events", content=EVENT, headers={"content-type": "application/cloudevents+json"}
        )
        batch = await http.post(
            "/-/events",
            content=b"[" + EVENT.replace(b"e-1", b"e-2") + b"]",
            headers={"content-type": "application/cloudevents-batch+json"},
        )
        # Binary mode: any content type, since its ce- headers are what no form can send without a preflight.
        binary = await http.post(
            "/-/events",
            content=b"hello",
            headers={
                "content-type": "text/plain",
                "ce-specversion": "1.0",
                "ce-id": "e-3",
                "ce-source": "t",
                "ce-type": "T",
            },
        )
        invoked = await http.post("/-/api/v1/functions/seen/invoke?type=DryRun", headers=JSON)
    assert [structured.status_code, batch.status_code, binary.status_code, invoked.status_code] == [202, 202, 202, 204]


# --- Host: DNS rebinding ------------------------------------------------------------------------------


async def test_a_host_name_the_server_does_not_answer_to_is_refused(dev: Served) -> None:
    async with httpx.AsyncClient(base_url=dev.url) as http:
        rebound = await http.get("/-/api/v1/invocations", headers={"host": "attacker.example:8080"})
        health = await http.get("/-/health", headers={"host": "attacker.example"})
        for name in ("localhost", "127.0.0.1", "[::1]", "LOCALHOST"):
            assert (await http.get("/-/health", headers={"host": f"{name}:8080"})).status_code == 200, name
        # An app's own routes are the app's business.
        route = await http.get("/ping", headers={"host": "attacker.example"})
    for answer in (rebound, health):
        assert answer.status_code == 403
        error = error_of(answer)
        assert error["code"] == "HostNotAllowed"
        assert "--allowed-host attacker.example" in error["message"]
    assert route.status_code == 200


async def test_allowed_hosts_and_origins_can_be_added(tmp_path: Path) -> None:
    rules = RequestRules.local(hosts=["dev.internal", "*.corp.example"], origins=["http://localhost:3000"])
    async for served in serve_app(tmp_path, RECORDER_APP, rules=rules):
        async with httpx.AsyncClient(base_url=served.url) as http:
            for host in ("dev.internal", "a.corp.example", "localhost"):
                assert (await http.get("/-/health", headers={"host": host})).status_code == 200, host
            assert (await http.get("/-/health", headers={"host": "corp.example"})).status_code == 403
            tool = await http.post(
                "/-/api/v1/functions/seen/invoke?type=DryRun", headers={**JSON, "origin": "http://localhost:3000"}
            )
            assert tool.status_code == 204


# --- Origin: a page of another site -------------------------------------------------------------------


async def test_a_page_of_another_origin_is_refused_and_the_servers_own_is_not(dev: Served) -> None:
    port = dev.url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(base_url=dev.url, headers=JSON) as http:
        for origin in ("https://evil.example", "null", f"http://127.0.0.1:{int(port) + 1}", "http://localhost:80"):
            answer = await http.post("/-/api/v1/functions/seen/invoke?type=DryRun", headers={"origin": origin})
            assert answer.status_code == 403, origin
            assert error_of(answer)["code"] == "OriginNotAllowed"
            assert "--allowed-origin" in error_of(answer)["message"]
        own = await http.post(
            "/-/api/v1/functions/seen/invoke?type=DryRun",
            headers={"origin": f"http://127.0.0.1:{port}", "host": f"127.0.0.1:{port}"},
        )
        assert own.status_code == 204


# --- serve: any host by default, the same Origin and content rules, keys beside -----------------------


async def test_serve_answers_any_host_by_default_and_applies_the_same_origin_and_content_rules(
    tmp_path: Path,
) -> None:
    host = Host(data_dir=tmp_path / "server")
    await host.start()
    try:
        admin = {"authorization": f"Bearer {host.first_admin_key}"}
        bundle = pack(write_app(tmp_path / "shop", "shop", 1))
        await host.artifacts.put("shop", bundle.sha256, bundle.data)
        await host.deploy("shop", bundle.sha256)
        async with (
            GatewayServer(HostASGI(host), port=0) as server,
            httpx.AsyncClient(base_url=server.url, headers=admin) as http,
        ):
            proxied = await http.get("/-/api/v1/apps", headers={"host": "api.example.com"})
            assert proxied.status_code == 200
            form = await http.post(
                "/-/api/v1/apps/shop/functions/hello/invoke", content=b"{}", headers={"content-type": "text/plain"}
            )
            assert form.status_code == 415
            page = await http.get("/-/api/v1/apps", headers={"origin": "https://evil.example"})
            assert page.status_code == 403
            assert error_of(page)["code"] == "OriginNotAllowed"
        rules = RequestRules.serving(hosts=["api.example.com"])
        async with (
            GatewayServer(HostASGI(host, rules=rules), port=0) as server,
            httpx.AsyncClient(base_url=server.url, headers=admin) as http,
        ):
            assert (await http.get("/-/health", headers={"host": "api.example.com"})).status_code == 200
            other = await http.get("/-/health", headers={"host": "other.example.com"})
            assert other.status_code == 403
            assert "--allowed-host" in error_of(other)["message"]
    finally:
        await host.stop()


# --- the rules themselves -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "origin", "refused"),
    [
        ("localhost:8080", None, None),
        ("127.0.0.1", None, None),
        ("[::1]:8080", None, None),
        ("localhost.:8080", None, None),
        ("evil.example", None, "HostNotAllowed"),
        ("127.0.0.1.evil.example", None, "HostNotAllowed"),
        ("", None, "HostNotAllowed"),
        ("localhost:8080", "http://localhost:8080", None),
        ("localhost:8080", "http://LOCALHOST:8080/", None),
        ("localhost", "http://localhost", None),
        ("localhost:8080", "http://localhost:8081", "OriginNotAllowed"),
        ("localhost:8080", "http://127.0.0.1:8080", "OriginNotAllowed"),
        ("localhost:8080", "null", "OriginNotAllowed"),
        ("localhost:8080", "http://localhost:8080/path", "OriginNotAllowed"),
        ("localhost:8080", "file://", "OriginNotAllowed"),
    ],
)
def test_the_rules_for_dev(host: str, origin: str | None, refused: str | None) -> None:
    headers = [(b"host", host.encode())] if host else []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    refusal = RequestRules.local().check(headers)
    assert (refusal.code if refusal else None) == refused


@pytest.mark.parametrize(
    ("hosts", "origins"),
    [(["http://x"], []), (["a b"], []), (["*x"], []), ([], ["localhost:3000"]), ([], ["http://x/path"])],
)
def test_bad_allowed_hosts_and_origins_are_refused_saying_what_one_looks_like(
    hosts: list[str], origins: list[str]
) -> None:
    with pytest.raises(InvalidInputError, match=r"allowed (host|origin)"):
        RequestRules.local(hosts=hosts, origins=origins)
