"""`GET /-/` lists the platform's endpoints, on `dev` and on `serve`, and each listed endpoint is routed."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.server.devserver import DevServer

APP = """\
import triggerfish

app = triggerfish.App("greeter")


@app.function
def hello(event, context):
    return "hi"
"""


def listing(url: str) -> dict[str, object]:
    answer = httpx.get(f"{url}/-/", timeout=10)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert isinstance(document, dict)
    return document


def test_dev_lists_its_endpoints_and_every_one_without_parameters_answers(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    dev = DevServer("app.py", "--port", "0", "--no-reload", cwd=tmp_path).start()
    try:
        document = listing(dev.url)
        assert document["server"] == "dev"
        assert document["openapi"] == "/-/api/v1/openapi.json"
        endpoints = document["endpoints"]
        assert isinstance(endpoints, list)
        paths = {(e["method"], e["path"]) for e in endpoints}
        assert {("GET", "/-/"), ("GET", "/-/health"), ("POST", "/-/events"), ("GET", "/-/api/v1/functions")} <= paths
        assert {("GET", "/-/metrics"), ("POST", "/-/aws")} <= paths
        assert all(e["summary"] for e in endpoints)
        plain = sorted(p for m, p in paths if m == "GET" and "{" not in p and not p.endswith("/logs"))
        for path in plain:
            answer = httpx.get(f"{dev.url}{path}", timeout=10)
            assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"
    finally:
        dev.stop()


def test_serve_lists_its_endpoints_to_anyone_as_it_answers_health(tmp_path: Path) -> None:
    serve = DevServer(
        "--port", "0", "--no-isolation", "--data-dir", "server", cwd=tmp_path, verb="serve"
    ).start(60)  # fmt: skip
    try:
        document = listing(serve.url)  # no key
        assert document["server"] == "serve"
        endpoints = document["endpoints"]
        assert isinstance(endpoints, list)
        paths = {(e["method"], e["path"]) for e in endpoints}
        assert {
            ("GET", "/-/"),
            ("GET", "/-/health"),
            ("POST", "/-/apps/{app}/events"),
            ("GET", "/-/api/v1/apps/{app}/versions"),
            ("PUT", "/-/api/v1/apps/{app}/aliases/{alias}"),
            ("GET", "/-/api/v1/apps/{app}/invocations"),
            ("POST", "/-/aws"),
        } <= paths
        # Everything but the AWS endpoint (AWS's own protocols, documented in docs/aws.md) is in the OpenAPI document.
        openapi = httpx.get(f"{serve.url}/-/api/v1/openapi.json", timeout=10).json()
        assert {(m.upper(), p) for p, item in openapi["paths"].items() for m in item} == paths - {("POST", "/-/aws")}
    finally:
        serve.stop()
