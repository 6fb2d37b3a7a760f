"""Invocation inputs kept with their records (`keep_inputs`), read through the control API and re-run, over a real
socket against a real platform with worker processes, on a SQLite file and on PostgreSQL (a schema of its own)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.server.test_control import Served, eventually, serving
from tests.services import POSTGRES_URL, drop_schema, require_postgres
from triggerfish.runtime.inputs import INPUT_CAP, REDACTED
from triggerfish.runtime.records import InvocationRecords
from triggerfish.server.platform import Platform
from triggerfish.store import open_store

pytestmark = pytest.mark.asyncio(loop_scope="module")

APP = """
import json

from triggerfish import App

app = App("inputs")


@app.function()
def echo(event, context):
    return {"got": event}


@app.function(keep_inputs=False)
def private(event, context):
    return "ok"


@app.function()
def picky(event, context):
    if event.get("broken"):
        raise ValueError("broken order")
    return "fine"


@app.http("POST", "/hello")
def hello(event, context):
    return {"statusCode": 200, "body": "hi"}


@app.http("GET", "/echo")
def echo_http(event, context):
    return {"statusCode": 200, "body": json.dumps(event)}


@app.function()
def configured_off(event, context):
    return None
"""

CONFIG = """
[functions.configured_off]
keep_inputs = false
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["sqlite", "postgres"])
async def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    directory = tmp_path_factory.mktemp("inputs")
    (directory / "app.py").write_text(APP, encoding="utf-8")
    (directory / "triggerfish.toml").write_text(CONFIG, encoding="utf-8")
    options: dict[str, Any] = {}
    schema = f"dash13_inputs_{uuid.uuid4().hex[:8]}"
    if request.param == "postgres":
        require_postgres()
        options["store_url"] = f"{POSTGRES_URL}?schema={schema}&pool_size=4"
    platform = Platform(str(directory / "app.py"), data_dir=directory / "data", **options)
    platform.keep_inputs = True  # as `triggerfish dev` sets it
    try:
        async with serving(platform) as served:
            yield served
    finally:
        if request.param == "postgres":
            await drop_schema(schema)


async def invoke(served: Served, function: str, event: Any, **headers: str) -> str:
    answer = await served.api.post(f"/functions/{function}/invoke", json=event, headers=headers)
    assert answer.status_code in (200, 202), answer.text
    request_id: str = answer.headers["x-triggerfish-request-id"]
    return request_id


async def test_an_invocation_shows_the_input_it_was_given(served: Served) -> None:
    request_id = await invoke(served, "echo", {"order": 7, "items": ["a", "b"]})
    document = (await served.api.get(f"/invocations/{request_id}")).json()
    kept = document["input"]
    assert kept["event"] == {"order": 7, "items": ["a", "b"]}
    assert kept["truncated"] is False
    assert kept["rerunnable"] is True
    assert kept["redacted"] == []
    assert kept["size"] == len(b'{"order":7,"items":["a","b"]}')


async def test_a_rerun_invokes_the_same_function_with_that_input_as_a_new_invocation(served: Served) -> None:
    original = await invoke(served, "echo", {"order": 8})
    answer = await served.api.post(f"/invocations/{original}/rerun")
    assert answer.status_code == 200, answer.text
    rerun = answer.json()
    assert rerun["ok"] is True
    assert rerun["result"] == {"got": {"order": 8}}
    assert rerun["rerun_of"] == original
    assert rerun["request_id"] != original
    assert rerun["version"] == str(served.platform.current.number)
    assert rerun["note"] is None
    again = (await served.api.get(f"/invocations/{rerun['request_id']}")).json()
    assert again["function"] == "echo"
    assert again["status"] == "succeeded"
    assert again["input"]["event"] == {"order": 8}


async def test_a_rerun_of_a_failed_invocation_reports_the_handler_error(served: Served) -> None:
    original = await invoke(served, "picky", {"broken": True})
    rerun = (await served.api.post(f"/invocations/{original}/rerun")).json()
    assert rerun["ok"] is False
    assert rerun["error"]["errorType"] == "ValueError"
    assert rerun["error"]["errorMessage"] == "broken order"


async def test_an_asynchronous_invocation_keeps_its_input_too(served: Served) -> None:
    request_id = await invoke(served, "echo", {"queued": True}, **{"X-Amz-Invocation-Type": "Event"})

    async def kept() -> Any:
        answer = await served.api.get(f"/invocations/{request_id}")
        return answer.status_code == 200 and answer.json()["input"]

    assert (await eventually(kept))["event"] == {"queued": True}


async def test_a_function_that_does_not_keep_inputs_has_none_and_cannot_be_rerun(served: Served) -> None:
    for function in ("private", "configured_off"):  # the decorator, and triggerfish.toml
        request_id = await invoke(served, function, {"email": "someone@example.com"})
        assert (await served.api.get(f"/invocations/{request_id}")).json()["input"] is None
        refused = await served.api.post(f"/invocations/{request_id}/rerun")
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "InputNotKept"
        assert "keep_inputs = true" in error["message"]


async def test_an_input_over_the_cap_is_kept_truncated_and_not_rerunnable(served: Served) -> None:
    big = {"blob": "x" * (INPUT_CAP + 10)}
    request_id = await invoke(served, "echo", big)
    kept = (await served.api.get(f"/invocations/{request_id}")).json()["input"]
    assert kept["truncated"] is True
    assert kept["rerunnable"] is False
    assert kept["event"] is None
    assert kept["size"] == INPUT_CAP + 10 + len('{"blob":""}')
    assert kept["text"].startswith('{"blob":"xxx')
    assert len(kept["text"].encode()) == INPUT_CAP
    refused = await served.api.post(f"/invocations/{request_id}/rerun")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "InputTruncated"
    assert f"more than the {INPUT_CAP} kept" in refused.json()["error"]["message"]


async def test_credentials_in_an_http_event_are_never_stored(served: Served) -> None:
    answer = await served.root.post(
        "/hello?page=1",
        content=b"{}",
        headers={
            "Authorization": "Bearer tfk_secret_key_value",
            "X-Api-Key": "another-secret",
            "Cookie": "session=abc123",
            "X-Order": "42",
        },
    )
    assert answer.status_code == 200
    request_id = answer.headers["x-triggerfish-request-id"]
    document = await served.api.get(f"/invocations/{request_id}")
    kept = document.json()["input"]
    headers = kept["event"]["headers"]
    assert headers["authorization"] == REDACTED
    assert headers["x-api-key"] == REDACTED
    assert headers["x-order"] == "42"
    assert kept["event"]["cookies"] == [REDACTED]
    assert kept["event"]["rawQueryString"] == "page=1"
    assert set(kept["redacted"]) >= {"headers.authorization", "headers.x-api-key", "cookies"}
    assert b"tfk_secret_key_value" not in document.content
    assert b"another-secret" not in document.content
    assert b"abc123" not in document.content


async def test_an_http_event_with_nothing_to_redact_is_kept_as_the_handler_got_it(served: Served) -> None:
    # Its JSON is the one the worker was sent (encoded once, for both): byte for byte the handler's event.
    answer = await served.root.get("/echo?page=2", headers={"X-Order": "42"})
    assert answer.status_code == 200
    handler_saw = answer.json()
    document = await served.api.get(f"/invocations/{answer.headers['x-triggerfish-request-id']}")
    kept = document.json()["input"]
    assert kept["event"] == handler_saw
    assert kept["event"]["headers"]["x-order"] == "42"
    assert kept["redacted"] == []
    assert kept["rerunnable"] is True


async def test_an_unknown_invocation_cannot_be_rerun(served: Served) -> None:
    answer = await served.api.post("/invocations/no-such-request/rerun")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "InvocationNotFound"


async def test_a_rerun_on_a_version_that_is_not_serving_is_refused_with_the_serving_ones(served: Served) -> None:
    original = await invoke(served, "echo", {"order": 9})
    answer = await served.api.post(f"/invocations/{original}/rerun", params={"version": "999"})
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "VersionNotServing"
    assert str(served.platform.current.number) in answer.json()["error"]["message"]


async def test_serve_keeps_no_inputs_unless_the_app_says_so(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    (tmp_path / "triggerfish.toml").write_text("[functions.picky]\nkeep_inputs = true\n", encoding="utf-8")
    platform = Platform(str(tmp_path / "app.py"), data_dir=tmp_path / "data")  # keep_inputs: off, as serve
    await platform.start()
    try:
        records = platform.current.invoker.records
        await platform.invoke("echo", {"email": "someone@example.com"}, request_id="not-kept")
        await platform.invoke("picky", {"n": 1}, request_id="kept")
        assert await records.input("not-kept") is None
        kept = await records.input("kept")
        assert kept is not None
        assert kept["event"] == {"n": 1}
    finally:
        await platform.stop()


async def test_a_kept_input_expires_with_the_records(tmp_path: Path) -> None:
    from triggerfish.runtime.inputs import keep_input
    from triggerfish.runtime.records import InvocationRecord
    from triggerfish.runtime.types import InvokeRequest

    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        records = InvocationRecords(store, retention=0.5, clock=time.time)
        request = InvokeRequest(request_id="short-lived", function="echo", event={"n": 1})
        now = time.time()
        record = InvocationRecord("short-lived", "echo", None, "direct", 1, "succeeded", now, now, 1.0, 1, 128, 0.0)
        await records.add(record, keep_input(request))
        assert (await records.input("short-lived") or {}).get("event") == {"n": 1}

        async def gone() -> bool:
            return await records.input("short-lived") is None and await records.get("short-lived") is None

        await eventually(gone, within=10)
    finally:
        await store.close()
