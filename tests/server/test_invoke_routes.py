"""`POST /-/api/v1/functions/{name}/invoke-batch`, and `.../invoke` of type Event, the lean way
(server/invoke_routes.py): the same answers as the operation's way, for less."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from tests.server.test_control import Served, serving
from tests.server.test_invoke_batch import APP, queued, records_of
from triggerfish.server.http import PlatformASGI
from triggerfish.server.invoke_routes import InvokeBatchRoute, InvokeEventRoute, event_head, function_of, lean_head
from triggerfish.server.platform import Platform

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")
PATH = "/-/api/v1/functions/work/invoke-batch"
JSON = {"content-type": "application/json"}


def scope(path: str = PATH, query: bytes = b"", **headers: str) -> dict[str, Any]:
    pairs = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"type": "http", "method": "POST", "path": path, "query_string": query, "headers": pairs}


@pytest.mark.parametrize(
    ("path", "function"),
    [
        (PATH, "work"),
        ("/-/api/v1/functions/a.b-c_d/invoke-batch", "a.b-c_d"),
        ("/-/api/v1/functions//invoke-batch", None),
        ("/-/api/v1/functions/a/b/invoke-batch", None),
        ("/-/api/v1/functions/work/invoke", None),
        ("/-/api/v1/apps/x/functions/work/invoke-batch", None),
    ],
)
def test_the_function_is_one_plain_path_segment(path: str, function: str | None) -> None:
    assert function_of(path) == function


@pytest.mark.parametrize(
    ("request_scope", "expected"),
    [
        (scope(content_type="application/json", content_length="10"), ("work", None, 10)),
        (scope(content_type="Application/JSON; charset=utf-8", content_length="0"), ("work", None, 0)),
        (
            scope(content_type="application/json", content_length="7", traceparent="00-ab-cd-01"),
            ("work", "00-ab-cd-01", 7),
        ),
        # Everything else is the operation's: another type, a query, chunked, oversize, repeated headers.
        (scope(content_type="text/plain", content_length="10"), None),
        (scope(content_length="10"), None),
        (scope(query=b"x=1", content_type="application/json", content_length="10"), None),
        (scope(content_type="application/json", transfer_encoding="chunked"), None),
        (scope(content_type="application/json", content_length=str(6 * 1024 * 1024 + 1)), None),
        (scope(content_type="application/json", content_length="1x"), None),
        (scope("/-/api/v1/functions/a/b/invoke-batch", content_type="application/json", content_length="1"), None),
    ],
)
def test_only_a_common_json_head_takes_the_lean_way(
    request_scope: dict[str, Any], expected: tuple[str, str | None, int] | None
) -> None:
    head = lean_head(request_scope)
    assert (None if head is None else (head.function, head.traceparent, head.length)) == expected


def test_a_repeated_header_is_left_to_the_operation() -> None:
    for name in (b"content-type", b"content-length", b"traceparent"):
        request_scope = scope(content_type="application/json", content_length="2", traceparent="00-ab-cd-01")
        request_scope["headers"].append((name, dict(request_scope["headers"])[name]))
        assert lean_head(request_scope) is None


# A function that takes any event (work's handler fails on one without "n", and its retries stay queued).
LENIENT = """

@app.function()
def lenient(event, context):
    return event
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    directory = tmp_path_factory.mktemp("batch-route")
    (directory / "app.py").write_text(APP + LENIENT, encoding="utf-8")
    platform = Platform(str(directory / "app.py"), data_dir=directory / "data")
    async with serving(platform) as served:
        yield served


@pytest_asyncio.fixture(loop_scope="module")
async def both_ways(served: Served) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients of the served platform's invoke-batch route, and of the endpoints it falls back to."""
    route = PlatformASGI(served.platform)._invoke_batch
    assert isinstance(route, InvokeBatchRoute)
    lean = httpx.AsyncClient(transport=httpx.ASGITransport(app=route), base_url="http://127.0.0.1")
    full = httpx.AsyncClient(transport=httpx.ASGITransport(app=route.full), base_url="http://127.0.0.1")
    async with lean, full:
        yield lean, full


def body(value: Any) -> bytes:
    return orjson.dumps(value)


async def drained(served: Served) -> int:
    """0, once the invocations queued by earlier tests have run (what a refused batch must leave queued)."""
    for _ in range(600):
        if await queued(served) == 0:
            return 0
        await asyncio.sleep(0.05)
    raise AssertionError("the earlier tests' invocations did not run in time")


@MODULE_LOOP
@pytest.mark.parametrize(
    ("function", "headers", "content"),
    [
        ("work", JSON, body({"events": [{"n": 1}, {"n": 2}]})),
        ("work", {**JSON, "traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}, body({"events": [{"n": 3}]})),
        ("work", {**JSON, "traceparent": "not-a-trace"}, body({"events": [{"n": 4}]})),
        ("work", JSON, b""),
        ("work", JSON, b"  \n"),
        ("work", JSON, b'{"events": [1,'),
        ("work", JSON, b'{"events": [NaN]}'),
        ("work", JSON, body([{"n": 1}])),
        ("work", JSON, body({"events": []})),
        ("work", JSON, body({"events": {"n": 1}})),
        ("work", JSON, body({"events": [{"n": 1}], "more": 1})),
        ("work", JSON, body({})),
        ("work", JSON, body({"events": [{"n": n} for n in range(1001)]})),
        ("work", JSON, body({"events": [{"n": 1}, {"pad": "x" * (256 * 1024)}]})),
        ("nope", JSON, body({"events": [{"n": 1}]})),
        ("bad%20name", JSON, body({"events": [{"n": 1}]})),
    ],
)
async def test_the_lean_way_answers_as_the_operation_does(
    served: Served,
    both_ways: tuple[httpx.AsyncClient, httpx.AsyncClient],
    function: str,
    headers: dict[str, str],
    content: bytes,
) -> None:
    before = await drained(served)
    answers = []
    for client in both_ways:
        answer = await client.post(f"/-/api/v1/functions/{function}/invoke-batch", content=content, headers=headers)
        document = answer.json()
        if answer.status_code == 202:  # fresh ids each time: compare their number
            document = len(document["request_ids"])
        answers.append((answer.status_code, answer.headers.get("content-type"), document))
    assert answers[0] == answers[1]
    if answers[0][0] == 202:
        assert answers[0][2] == len(orjson.loads(content)["events"])
    else:
        assert answers[0][2]["error"]["message"]
        assert await queued(served) == before


@MODULE_LOOP
async def test_a_batch_over_the_socket_builds_no_framework_request_and_every_event_runs(
    served: Served, monkeypatch: pytest.MonkeyPatch, framework_requests: list[str]
) -> None:
    built = framework_requests
    answer = await served.api.post("/functions/work/invoke-batch", json={"events": [{"n": n} for n in range(30)]})
    assert answer.status_code == 202
    assert answer.headers["content-type"] == "application/json"
    assert built == []
    request_ids = answer.json()["request_ids"]
    monkeypatch.undo()
    documents = await records_of(served, request_ids)
    for n, document in enumerate(documents):
        [attempt] = document["attempts"]
        assert f"work got {{'n': {n}}}" in attempt["output"]


@MODULE_LOOP
async def test_a_body_that_does_not_arrive_is_408_and_queues_nothing(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served.platform, "body_timeout", 0.05)
    route = PlatformASGI(served.platform)._invoke_batch
    sent: list[MutableMapping[str, Any]] = []

    async def never() -> dict[str, Any]:
        await asyncio.sleep(10)
        raise AssertionError("the route waited past its body timeout")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    before = await drained(served)
    await route(scope(content_type="application/json", content_length="20"), never, send)
    assert sent[0]["status"] == 408
    assert dict(sent[0]["headers"])[b"connection"] == b"close"
    assert orjson.loads(sent[1]["body"])["error"]["message"] == "the request body did not arrive within 0.05 s"
    assert await queued(served) == before


# --- Invoke, type Event -----------------------------------------------------------------------------

EVENT_PATH = "/-/api/v1/functions/work/invoke"
EVENT = {"content-type": "application/json", "x-amz-invocation-type": "Event"}


@pytest.mark.parametrize(
    ("request_scope", "expected"),
    [
        (scope(EVENT_PATH, content_type="application/json", x_amz_invocation_type="Event", content_length="9"), 9),
        (scope(EVENT_PATH, content_type="application/json", x_amz_invocation_type="event", content_length="0"), 0),
        # Everything else is the operation's: another type, none, a log tail, a query, oversize, repeated.
        (scope(EVENT_PATH, content_type="application/json", content_length="9"), None),
        (scope(EVENT_PATH, content_type="application/json", x_amz_invocation_type="DryRun", content_length="9"), None),
        (
            scope(
                EVENT_PATH,
                content_type="application/json",
                x_amz_invocation_type="Event",
                x_amz_log_type="None",
                content_length="9",
            ),
            None,
        ),
        (
            scope(EVENT_PATH, b"type=Event", content_type="application/json", content_length="9"),
            None,
        ),
        (
            scope(EVENT_PATH, content_type="application/json", x_amz_invocation_type="Event", content_length="262145"),
            None,
        ),
        (scope(EVENT_PATH, content_type="text/plain", x_amz_invocation_type="Event", content_length="9"), None),
        (scope(PATH, content_type="application/json", x_amz_invocation_type="Event", content_length="9"), None),
    ],
)
def test_only_a_common_event_invoke_takes_the_lean_way(request_scope: dict[str, Any], expected: int | None) -> None:
    head = event_head(request_scope)
    assert (None if head is None else head.length) == expected
    if expected is not None:
        request_scope["headers"].append((b"x-amz-invocation-type", b"Event"))
        assert event_head(request_scope) is None  # the type given twice


@pytest_asyncio.fixture(loop_scope="module")
async def both_event_ways(served: Served) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    route = PlatformASGI(served.platform)._invoke_event
    assert isinstance(route, InvokeEventRoute)
    lean = httpx.AsyncClient(transport=httpx.ASGITransport(app=route), base_url="http://127.0.0.1")
    full = httpx.AsyncClient(transport=httpx.ASGITransport(app=route.full), base_url="http://127.0.0.1")
    async with lean, full:
        yield lean, full


@MODULE_LOOP
@pytest.mark.parametrize(
    ("function", "headers", "content"),
    [
        ("work", EVENT, body({"n": 1})),
        ("lenient", EVENT, b""),
        ("lenient", EVENT, b"null"),
        ("lenient", EVENT, b"[1, 2]"),
        ("work", {**EVENT, "traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}, body({"n": 2})),
        ("work", {**EVENT, "traceparent": "not-a-trace"}, body({"n": 3})),
        ("work", {**EVENT, "x-amz-invocation-type": "EVENT"}, body({"n": 4})),
        ("work", EVENT, b'{"n": '),
        ("work", EVENT, b'{"n": NaN}'),
        ("work", EVENT, body({"n": 1, "pad": "x" * (256 * 1024 - 20)})),
        ("nope", EVENT, body({"n": 1})),
        ("nope", EVENT, b'{"n": '),
    ],
)
async def test_an_event_invoke_the_lean_way_answers_as_the_operation_does(
    served: Served,
    both_event_ways: tuple[httpx.AsyncClient, httpx.AsyncClient],
    function: str,
    headers: dict[str, str],
    content: bytes,
) -> None:
    before = await drained(served)
    answers = []
    for client in both_event_ways:
        answer = await client.post(f"/-/api/v1/functions/{function}/invoke", content=content, headers=headers)
        document = answer.json()
        request_id = answer.headers.get("x-triggerfish-request-id")
        if answer.status_code == 202:  # a fresh id each time: the header must carry the document's
            assert document == {"request_id": request_id}
            document = request_id = "fresh"
        answers.append((answer.status_code, answer.headers.get("content-type"), request_id, document))
    assert answers[0] == answers[1]
    if answers[0][0] != 202:
        assert answers[0][3]["error"]["message"]
        assert await queued(served) == before


@MODULE_LOOP
async def test_event_invokes_over_the_socket_build_no_framework_request_and_each_runs(
    served: Served, monkeypatch: pytest.MonkeyPatch, framework_requests: list[str]
) -> None:
    built = framework_requests
    request_ids = []
    for n in range(10):
        answer = await served.api.post(
            "/functions/work/invoke", json={"n": n}, headers={"X-Amz-Invocation-Type": "Event"}
        )
        assert answer.status_code == 202
        request_ids.append(answer.json()["request_id"])
    assert built == []
    monkeypatch.undo()
    for n, document in enumerate(await records_of(served, request_ids)):
        [attempt] = document["attempts"]
        assert f"work got {{'n': {n}}}" in attempt["output"]
