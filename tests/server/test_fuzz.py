"""The control APIs fuzzed from their own OpenAPI documents: no 5xx, and every answer is one the document describes.

`triggerfish dev` and `triggerfish serve` run as a user runs them (subprocesses on real sockets); schemathesis
reads each one's document from the server and, for every operation, sends requests it generates from the
declared schemas: valid ones (positive) and ones that break a declared constraint (negative). Each answer is
checked: not a server error, a documented status, content type, headers and body, and a request that breaks
the document refused (negative data rejected). The number of examples is bounded so the suite runs in well
under a minute; set TRIGGERFISH_FUZZ_EXAMPLES for a longer run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.devserver import DevServer
from tests.server.test_host import write_app
from triggerfish.deploy.bundle import pack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("TRIGGERFISH_FUZZ_EXAMPLES", "6"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
APP = """
import triggerfish

app = triggerfish.App("fuzzed")


@app.http("GET", "/hello")
def hello(event, context):
    return {"hello": "world"}


@app.function()
def echo(event, context):
    return event


@app.on_event({"source": ["fuzz"]})
def seen(event, context):
    return None


@app.on_queue("jobs")
def work(event, context):
    return None


@app.schedule("rate(1 hour)")
def hourly(event, context):
    return None
"""


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    directory = tmp_path_factory.mktemp("fuzz-dev")
    (directory / "app.py").write_text(APP)
    server = DevServer("app.py", "--port", "0", "--data-dir", str(directory / "data"), "--no-reload", cwd=directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevServer, str]]:
    directory = tmp_path_factory.mktemp("fuzz-serve")
    server = DevServer("--port", "0", "--data-dir", str(directory / "server"), cwd=ROOT, verb="serve").start()
    try:
        admin = re.search(r"(tfk_\S+)", next(line for line in server.lines if line.startswith("admin key")))
        assert admin is not None
        key = admin.group(1)
        app_dir = write_app(directory / "shop", "shop", 1)
        bundle = pack(app_dir)
        headers = {"authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            put = http.put(
                f"/-/api/v1/apps/shop/bundles/{bundle.sha256}",
                content=bundle.data,
                headers={"content-type": "application/gzip"},
            )
            assert put.status_code == 201, put.text
            deployed = http.post("/-/api/v1/apps/shop/deploys", json={"bundle": bundle.sha256})
            assert deployed.status_code == 201, deployed.text
        yield server, key
    finally:
        server.stop()


def harmless(case: Any) -> bool:
    """Whether sending `case` is safe for the run: bounded in time, and traffic to this machine only."""
    query = case.query or {}
    if str(query.get("follow", "")).lower() in ("1", "true", "yes"):
        return False  # a log follow streams until the server stops
    body = case.body if isinstance(case.body, dict | list) else None
    text = json.dumps(body, default=str) if body is not None else ""
    # A generated webhook target or subscription would send events to whatever host it names.
    if "://" in text:
        return False
    if isinstance(body, dict) and isinstance(body.get("wait"), int | float) and not isinstance(body["wait"], bool):
        body["wait"] = min(body["wait"], 0.5)  # a long poll of up to 20 s, shortened (still in range)
    return True


def fuzz(document_url: str, base_url: str, headers: dict[str, str]) -> int:
    """Fuzz every operation of the document at `document_url`; how many requests were sent."""
    schema = schemathesis.openapi.from_url(document_url, headers=headers)
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # a document that does not load fails here
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            checks = [*CHECKS, negative_data_rejection] if mode == GenerationMode.NEGATIVE else CHECKS

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                nonlocal sent
                if not harmless(case):
                    return
                response = case.call(base_url=base_url, headers=headers, timeout=30)
                sent += 1
                case.validate_response(response, checks=checks)  # noqa: B023  # run() runs within this iteration

            try:
                run()
            except Unsatisfiable:
                # Nothing of the operation can be sent wrong (no parameters, no body): no negative case exists.
                assert mode == GenerationMode.NEGATIVE, operation.label
    return sent


def test_the_dev_servers_control_api_holds_to_its_document(dev: DevServer) -> None:
    sent = fuzz(f"{dev.url}/-/api/v1/openapi.json", f"{dev.url}/-/api/v1", {})
    assert sent > 100
    # Still serving, and its own routes untouched.
    assert httpx.get(f"{dev.url}/hello").json() == {"hello": "world"}


def test_the_servers_api_holds_to_its_document(serve: tuple[DevServer, str]) -> None:
    server, key = serve
    headers = {"authorization": f"Bearer {key}"}
    sent = fuzz(f"{server.url}/-/api/v1/openapi.json", server.url, headers)
    assert sent > 100
    assert httpx.get(f"{server.url}/-/health").status_code == 200
