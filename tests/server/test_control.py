"""The control API (`/-/api/v1/...`) over a real socket, against a real platform running worker processes."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from tests.patience import until
from triggerfish.events.http_binding import STRUCTURED_CONTENT_TYPE
from triggerfish.gateway import GatewayServer
from triggerfish.server.control import control_routes
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

JSON = {"content-type": "application/json"}

APP = """
import time

from triggerfish import App

app = App("control")


@app.function()
def echo(event, context):
    print("echo got", event)
    return {"event": event}


@app.function()
def fails(event, context):
    print("about to fail")
    raise ValueError("bad order")


@app.function(concurrency=1, timeout=10)
def slow(event, context):
    time.sleep(float(event["seconds"]))
    return "slept"


@app.on_event({"type": ["OrderPlaced"]})
def on_order(event, context):
    return event["id"]


@app.on_queue("orders")
def consume(event, context):
    return None


@app.on_topic("alerts", filter={"severity": ["high"]})
def paged(event, context):
    return None


@app.schedule("rate(1 hour)")
def hourly(event, context):
    return None
"""

CONFIG = """
[queues.jobs]
visibility_timeout = 30

[queues.scratch]

[queues.retry]

[queues.audit]

[queues.ordered]
fifo = true
"""


@dataclass
class Served:
    platform: Platform
    api: httpx.AsyncClient
    root: httpx.AsyncClient


@asynccontextmanager
async def serving(platform: Platform) -> AsyncIterator[Served]:
    """`platform` started and served on a real socket, with a client of its control API and one of its root;
    stopped after."""
    await platform.start()
    try:
        server = GatewayServer(platform_asgi(platform), port=0)
        await server.start()
        try:
            async with (
                # Every request says JSON, as a client of the API must for anything that changes something.
                httpx.AsyncClient(base_url=f"{server.url}/-/api/v1", timeout=30, headers=JSON) as api,
                httpx.AsyncClient(base_url=server.url, timeout=30) as root,
            ):
                yield Served(platform, api, root)
        finally:
            await server.stop()
    finally:
        await platform.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    directory = tmp_path_factory.mktemp("control")
    (directory / "app.py").write_text(APP, encoding="utf-8")
    (directory / "triggerfish.toml").write_text(CONFIG, encoding="utf-8")
    platform = Platform(str(directory / "app.py"), data_dir=directory / "data")
    async with serving(platform) as served:
        yield served


def error_of(answer: httpx.Response) -> dict[str, Any]:
    document: dict[str, Any] = answer.json()["error"]
    return document


async def eventually(check: Callable[[], Awaitable[Any]], *, within: float = 20.0) -> Any:
    """Poll `check` until it returns something truthy, for at most `within` seconds (stretched by load)."""
    return await until(check, within, "the condition")


# --- functions -------------------------------------------------------------------------------


async def test_functions_are_listed_with_triggers_settings_and_pool(served: Served) -> None:
    answer = await served.api.get("/functions")
    assert answer.status_code == 200
    document = answer.json()
    assert document["app"] == "control"
    functions = {f["name"]: f for f in document["functions"]}
    assert set(functions) == {"echo", "fails", "slow", "on_order", "consume", "paged", "hourly"}
    assert functions["slow"]["settings"]["concurrency"] == 1
    assert functions["slow"]["settings"]["timeout"] == 10
    [trigger] = functions["on_order"]["triggers"]
    assert trigger["kind"] == "event"
    assert trigger["pattern"] == {"type": ["OrderPlaced"]}
    assert trigger["description"].startswith("event default")
    assert functions["hourly"]["triggers"][0]["description"] == "schedule rate(1 hour)"
    pool = functions["echo"]["pool"]
    assert {"workers", "idle", "busy", "cold_starts", "invocations"} <= set(pool)


async def test_one_function_and_an_unknown_one(served: Served) -> None:
    answer = await served.api.get("/functions/echo")
    assert answer.status_code == 200
    assert answer.json()["name"] == "echo"
    missing = await served.api.get("/functions/nope")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "FunctionNotFound"
    assert "'nope'" in error_of(missing)["message"]
    assert "echo" in error_of(missing)["message"]


async def test_pool_stats_count_a_cold_start(served: Served) -> None:
    assert (await served.api.post("/functions/echo/invoke", json={"n": 1})).status_code == 200
    pool = (await served.api.get("/functions/echo")).json()["pool"]
    assert pool["invocations"] >= 1
    assert pool["cold_starts"] >= 1
    assert pool["workers"] == pool["idle"] + pool["busy"] >= 1


# --- invoking --------------------------------------------------------------------------------


async def test_sync_invoke_returns_the_result_with_its_request_id(served: Served) -> None:
    answer = await served.api.post("/functions/echo/invoke", json={"order": 7})
    assert answer.status_code == 200
    assert answer.json() == {"event": {"order": 7}}
    request_id = answer.headers["x-triggerfish-request-id"]
    record = (await served.api.get(f"/invocations/{request_id}")).json()
    assert record["function"] == "echo"
    assert record["status"] == "succeeded"
    [attempt] = record["attempts"]
    assert "echo got {'order': 7}" in attempt["output"]


async def test_an_empty_body_is_the_event_of_lambda(served: Served) -> None:
    answer = await served.api.post("/functions/echo/invoke")
    assert answer.json() == {"event": {}}


async def test_a_handler_error_is_200_with_lambdas_error_document(served: Served) -> None:
    answer = await served.api.post("/functions/fails/invoke", json={})
    assert answer.status_code == 200
    assert answer.headers["x-amz-function-error"] == "Unhandled"
    assert answer.json()["errorType"] == "ValueError"
    assert answer.json()["errorMessage"] == "bad order"
    record = (await served.api.get(f"/invocations/{answer.headers['x-triggerfish-request-id']}")).json()
    assert record["status"] == "failed"
    assert "about to fail" in record["attempts"][0]["output"]


async def test_log_tail_returns_the_end_of_the_output(served: Served) -> None:
    answer = await served.api.post("/functions/echo/invoke", json="tail me", headers={"X-Amz-Log-Type": "Tail"})
    assert answer.status_code == 200
    assert "echo got tail me" in base64.b64decode(answer.headers["x-amz-log-result"]).decode()


@pytest.mark.parametrize("how", [{"params": {"type": "Event"}}, {"headers": {"X-Amz-Invocation-Type": "Event"}}])
async def test_async_invoke_is_queued_and_runs(served: Served, how: dict[str, Any]) -> None:
    answer = await served.api.post("/functions/echo/invoke", json={"later": True}, **how)
    assert answer.status_code == 202
    request_id = answer.json()["request_id"]
    assert answer.headers["x-triggerfish-request-id"] == request_id

    async def finished() -> Any:
        found = await served.api.get(f"/invocations/{request_id}")
        return found.status_code == 200 and found.json()["status"] == "succeeded" and found.json()

    record = await eventually(finished)
    assert record["attempts"][0]["trigger"] == "async"


async def test_dry_run_checks_the_request_and_runs_nothing(served: Served) -> None:
    answer = await served.api.post("/functions/echo/invoke", json={}, headers={"X-Amz-Invocation-Type": "DryRun"})
    assert answer.status_code == 204
    assert "x-triggerfish-request-id" not in answer.headers
    bad = await served.api.post("/functions/echo/invoke", content=b"{", headers={"X-Amz-Invocation-Type": "DryRun"})
    assert bad.status_code == 400


async def test_invoke_refuses_bad_input(served: Served) -> None:
    unknown = await served.api.post("/functions/nope/invoke", json={})
    assert unknown.status_code == 404
    assert "'nope'" in error_of(unknown)["message"]

    bad_json = await served.api.post("/functions/echo/invoke", content=b'{\n  "a": 1,\n  "b": }')
    assert bad_json.status_code == 400
    error = error_of(bad_json)
    assert (error["code"], error["line"], error["column"]) == ("InvalidJSON", 3, 8)
    assert "line 3 column 8" in error["message"]

    kind = await served.api.post("/functions/echo/invoke", json={}, params={"type": "Later"})
    assert kind.status_code == 400
    assert "RequestResponse" in error_of(kind)["message"]

    extra = await served.api.post("/functions/echo/invoke", json={}, params={"wait": "5"})
    assert extra.status_code == 400
    assert "'wait'" in error_of(extra)["message"]


async def test_invoke_refuses_oversize_payloads(served: Served) -> None:
    big_async = await served.api.post(
        "/functions/echo/invoke", json={"pad": "x" * 300_000}, headers={"X-Amz-Invocation-Type": "Event"}
    )
    assert big_async.status_code == 413
    assert error_of(big_async)["limit"] == 256 * 1024

    too_big = b'"' + b"x" * (6 * 1024 * 1024) + b'"'
    declared = await served.api.post("/functions/echo/invoke", content=too_big)
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(7):
            yield b" " * (1024 * 1024)

    streamed = await served.api.post("/functions/echo/invoke", content=chunks())
    assert streamed.status_code == 413
    assert error_of(streamed)["code"] == "RequestTooLarge"


async def test_a_throttled_invoke_is_429(served: Served) -> None:
    first = asyncio.ensure_future(served.api.post("/functions/slow/invoke", json={"seconds": 3}))

    async def busy() -> bool:
        pool = (await served.api.get("/functions/slow")).json()["pool"]
        return bool(pool["busy"] >= 1)

    await eventually(busy)
    second = await served.api.post("/functions/slow/invoke", json={"seconds": 0})
    assert second.status_code == 429
    assert error_of(second)["code"] == "TooManyRequestsException"
    assert second.headers["retry-after"] == "1"
    request_id = second.headers["x-triggerfish-request-id"]
    assert (await first).json() == "slept"
    record = (await served.api.get(f"/invocations/{request_id}")).json()
    assert record["status"] == "throttled"


# --- invocation records ----------------------------------------------------------------------


async def test_invocations_are_listed_and_filtered(served: Served) -> None:
    began = time.time() - 1
    ids = []
    for n in range(3):
        answer = await served.api.post("/functions/echo/invoke", json={"n": n})
        ids.append(answer.headers["x-triggerfish-request-id"])
    await served.api.post("/functions/fails/invoke", json={})

    oldest = await served.api.get("/invocations", params={"function": "echo", "since": began, "limit": 2})
    assert [r["request_id"] for r in oldest.json()["invocations"]] == ids[:2]
    newest = await served.api.get(
        "/invocations", params={"function": "echo", "since": began, "order": "desc", "limit": 1}
    )
    assert [r["request_id"] for r in newest.json()["invocations"]] == ids[-1:]
    failed = await served.api.get("/invocations", params={"status": "failed", "since": began})
    assert {r["function"] for r in failed.json()["invocations"]} == {"fails"}
    one = await served.api.get("/invocations", params={"request_id": ids[1]})
    assert [r["request_id"] for r in one.json()["invocations"]] == [ids[1]]
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began))
    by_iso = await served.api.get("/invocations", params={"function": "echo", "since": iso})
    assert set(ids) <= {r["request_id"] for r in by_iso.json()["invocations"]}


@pytest.mark.parametrize(
    ("params", "status", "mentions"),
    [
        ({"status": "exploded"}, 400, "succeeded"),
        ({"since": "yesterday"}, 400, "ISO 8601"),
        ({"since": "2024-05-01T12:00:00"}, 400, "zone"),
        ({"limit": "0"}, 400, "limit"),
        ({"limit": "many"}, 400, "limit"),
        ({"order": "random"}, 400, "desc"),
        ({"colour": "red"}, 400, "'colour'"),
        ({"function": "nope"}, 404, "'nope'"),
    ],
)
async def test_invocation_queries_refuse_bad_parameters(
    served: Served, params: dict[str, str], status: int, mentions: str
) -> None:
    answer = await served.api.get("/invocations", params=params)
    assert answer.status_code == status
    assert mentions in error_of(answer)["message"]


async def test_an_unknown_invocation_is_404(served: Served) -> None:
    answer = await served.api.get("/invocations/0f4b1d3e-0000-4000-8000-000000000000")
    assert answer.status_code == 404
    assert error_of(answer)["code"] == "InvocationNotFound"


# --- buses and rules -------------------------------------------------------------------------


async def test_buses_and_the_apps_rules(served: Served) -> None:
    buses = {b["name"]: b for b in (await served.api.get("/buses")).json()["buses"]}
    assert buses["default"]["rules"] >= 1
    rules = {r["id"]: r for r in (await served.api.get("/buses/default/rules")).json()["rules"]}
    assert rules["on_order"]["source"] == "app"
    assert rules["on_order"]["pattern"] == {"type": ["OrderPlaced"]}
    assert rules["on_order"]["targets"][0]["kind"] == "function"
    missing = await served.api.get("/buses/nope/rules")
    assert missing.status_code == 404
    assert "'nope'" in error_of(missing)["message"]


async def publish(served: Served, event_type: str, data: Any) -> str:
    event_id = f"e-{time.monotonic_ns()}"
    document = {"specversion": "1.0", "id": event_id, "source": "tests", "type": event_type, "data": data}
    answer = await served.root.post(
        "/-/events", content=orjson.dumps(document), headers={"content-type": STRUCTURED_CONTENT_TYPE}
    )
    assert answer.status_code == 202
    return event_id


async def receive(served: Served, queue: str, *, wait: float = 10.0) -> list[dict[str, Any]]:
    answer = await served.api.post(f"/queues/{queue}/receive", json={"max": 10, "wait": wait})
    assert answer.status_code == 200
    messages: list[dict[str, Any]] = answer.json()["messages"]
    if messages:
        acked = await served.api.post(f"/queues/{queue}/ack", json={"receipts": [m["receipt"] for m in messages]})
        assert all(acked.json()["acked"])
    return messages


async def test_a_rule_put_at_run_time_routes_events_and_replays_them(served: Served) -> None:
    rule = {"pattern": {"type": ["Audited"]}, "targets": [{"id": "audit", "kind": "queue", "name": "audit"}]}
    created = await served.api.put("/buses/default/rules/audit-all", json=rule)
    assert created.status_code == 201
    assert created.json()["source"] == "api"
    listed = {r["id"] for r in (await served.api.get("/buses/default/rules")).json()["rules"]}
    assert "audit-all" in listed

    began = time.time() - 1
    event_id = await publish(served, "Audited", {"who": "ada"})
    [message] = await receive(served, "audit")
    delivered = orjson.loads(message["body"])
    assert (delivered["id"], delivered["data"]) == (event_id, {"who": "ada"})

    replayed = await served.api.post(
        "/buses/default/replay", json={"start": began, "end": time.time() + 1, "rule": "audit-all", "name": "again"}
    )
    assert replayed.status_code == 202
    assert replayed.json()["queued"] == 1
    [again] = await receive(served, "audit")
    assert orjson.loads(again["body"])["id"] == event_id
    assert orjson.loads(again["body"])["replayname"] == "again"

    replaced = await served.api.put("/buses/default/rules/audit-all", json={**rule, "pattern": {"type": ["Other"]}})
    assert replaced.status_code == 200
    removed = await served.api.delete("/buses/default/rules/audit-all")
    assert removed.status_code == 204
    gone = await served.api.delete("/buses/default/rules/audit-all")
    assert gone.status_code == 404
    assert error_of(gone)["code"] == "RuleNotFound"


async def test_a_buses_recent_events_come_newest_first_with_the_rules_they_match(served: Served) -> None:
    began = time.time()
    first = await publish(served, "OrderPlaced", {"n": 1})
    second = await publish(served, "Unrouted", {"n": 2})
    answer = await served.api.get("/buses/default/events", params={"since": began - 1, "limit": 2})
    assert answer.status_code == 200, answer.text
    events = answer.json()["events"]
    assert [e["event"]["id"] for e in events] == [second, first]
    assert [e["matched"] for e in events] == [[], ["on_order"]]
    assert events[1]["event"]["data"] == {"n": 1}
    assert [e["near"] for e in events] == [[], []]  # on_order's pattern has one field: nothing to miss by one
    missing = await served.api.get("/buses/nope/events")
    assert missing.status_code == 404
    assert "'nope'" in error_of(missing)["message"]
    too_many = await served.api.get("/buses/default/events", params={"limit": 501})
    assert too_many.status_code == 400


async def test_a_webhook_secret_is_never_shown(served: Served) -> None:
    target = {"id": "hook", "kind": "webhook", "name": "http://127.0.0.1:9/hook", "secret": "s3cret"}
    answer = await served.api.put("/buses/hooks/rules/signed", json={"pattern": {"type": ["X"]}, "targets": [target]})
    assert answer.status_code == 201
    assert "s3cret" not in answer.text
    assert answer.json()["targets"][0]["signed"] is True
    listed = await served.api.get("/buses/hooks/rules")
    assert "s3cret" not in listed.text
    assert "hooks" in {b["name"] for b in (await served.api.get("/buses")).json()["buses"]}
    assert (await served.api.delete("/buses/hooks/rules/signed")).status_code == 204


@pytest.mark.parametrize(
    ("body", "code", "mentions"),
    [
        (b'{"pattern": {"type": ["X"]}, "targets": [}', "InvalidJSON", "line 1 column 42"),
        (b"[]", "InvalidInput", "JSON object"),
        (b'{"pattern": {"type": "X"}, "targets": [{"kind": "queue", "name": "q"}]}', "InvalidPattern", "array"),
        (b'{"pattern": {"type": ["X"]}, "targets": "q"}', "InvalidInput", "targets"),
        (b'{"pattern": {"type": ["X"]}, "targets": [{"kind": "lambda", "name": "q"}]}', "InvalidInput", "kind"),
        (
            b'{"pattern": {"type": ["X"]}, "targets": [{"kind": "function", "name": "ghost"}]}',
            "UnknownFunction",
            "ghost",
        ),
        (b'{"pattern": {"type": ["X"]}, "targets": [], "colour": 1}', "InvalidInput", "'colour'"),
        (
            b'{"id": "other", "pattern": {"type": ["X"]}, "targets": [{"kind": "queue", "name": "q"}]}',
            "InvalidInput",
            "path",
        ),
        (b"", "MissingBody", "JSON body"),
    ],
)
async def test_bad_rules_are_refused_naming_the_fault(served: Served, body: bytes, code: str, mentions: str) -> None:
    answer = await served.api.put("/buses/default/rules/bad", content=body)
    assert answer.status_code == 400
    assert error_of(answer)["code"] == code
    assert mentions in error_of(answer)["message"]
    assert (await served.api.delete("/buses/default/rules/bad")).status_code == 404


async def test_the_apps_rules_change_only_with_the_code(served: Served) -> None:
    rule = {"pattern": {"type": ["X"]}, "targets": [{"kind": "queue", "name": "audit"}]}
    replaced = await served.api.put("/buses/default/rules/on_order", json=rule)
    assert replaced.status_code == 409
    assert error_of(replaced)["code"] == "RuleFromApp"
    removed = await served.api.delete("/buses/default/rules/on_order")
    assert removed.status_code == 409


@pytest.mark.parametrize(
    ("path", "body", "status", "mentions"),
    [
        ("/buses/nope/replay", {"start": 0, "end": 1}, 404, "'nope'"),
        ("/buses/default/replay", {"end": 1}, 400, "start"),
        ("/buses/default/replay", {"start": "soon", "end": 1}, 400, "start"),
        ("/buses/default/replay", {"start": 10, "end": 5}, 400, "after start"),
        ("/buses/default/replay", {"start": 0, "end": 1, "rule": "ghost"}, 404, "'ghost'"),
        ("/buses/default/replay", {"start": 0, "end": 1, "name": "Bad Name"}, 400, "replay name"),
    ],
)
async def test_replay_refuses_bad_input(
    served: Served, path: str, body: dict[str, Any], status: int, mentions: str
) -> None:
    answer = await served.api.post(path, json=body)
    assert answer.status_code == status
    assert mentions in error_of(answer)["message"]


# --- queues ----------------------------------------------------------------------------------


async def test_a_queue_shows_its_config_stats_consumers_and_dead_letters(served: Served) -> None:
    jobs = (await served.api.get("/queues/jobs")).json()
    assert jobs["config"]["visibility_timeout"] == 30
    assert jobs["dead_letter"]["name"] == "jobs.dlq"
    orders = (await served.api.get("/queues/orders")).json()
    assert orders["consumers"] == ["consume"]
    listed = {q["name"] for q in (await served.api.get("/queues")).json()["queues"]}
    assert {"jobs", "jobs.dlq", "orders", "scratch"} <= listed
    missing = await served.api.get("/queues/nope")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "QueueNotFound"
    assert "jobs" in error_of(missing)["message"]


async def test_send_receive_and_acknowledge(served: Served) -> None:
    sent = await served.api.post(
        "/queues/jobs/messages", json={"body": "hello", "attributes": {"kind": "greeting"}, "dedup_id": "d-1"}
    )
    assert sent.status_code == 200
    assert sent.json()["duplicate"] is False
    repeat = await served.api.post("/queues/jobs/messages", json={"body": "hello", "dedup_id": "d-1"})
    assert repeat.json() == {"message_id": sent.json()["message_id"], "duplicate": True}
    await served.api.post("/queues/jobs/messages", json={"body": {"as": "json"}})
    assert (await served.api.get("/queues/jobs")).json()["stats"]["visible"] == 2

    got = (await served.api.post("/queues/jobs/receive", json={"max": 10, "visibility_timeout": 60})).json()
    bodies = [m["body"] for m in got["messages"]]
    assert bodies == ["hello", '{"as":"json"}']
    assert got["messages"][0]["attributes"] == {"kind": "greeting"}
    assert got["messages"][0]["receive_count"] == 1
    assert (await served.api.get("/queues/jobs")).json()["stats"]["in_flight"] == 2
    acked = await served.api.post("/queues/jobs/ack", json={"receipts": [m["receipt"] for m in got["messages"]]})
    assert acked.json() == {"acked": [True, True]}
    assert (await served.api.get("/queues/jobs")).json()["stats"]["depth"] == 0


async def test_purge_empties_a_queue(served: Served) -> None:
    for n in range(3):
        await served.api.post("/queues/scratch/messages", json={"body": str(n), "delay": 60})
    purged = await served.api.delete("/queues/scratch/messages")
    assert purged.json() == {"queue": "scratch", "purged": 3}
    assert (await served.api.get("/queues/scratch")).json()["stats"]["depth"] == 0


async def test_redrive_moves_dead_letters_back(served: Served) -> None:
    store = served.platform.store
    for n in range(3):
        await store.queues.send("retry.dlq", f"dead {n}".encode(), attributes={"n": str(n)})
    moved = await served.api.post("/queues/retry/redrive")
    assert moved.json() == {"queue": "retry", "dead_letter": "retry.dlq", "moved": 3}
    queue = (await served.api.get("/queues/retry")).json()
    assert queue["stats"]["visible"] == 3
    assert queue["dead_letter"]["depth"] == 0
    messages = await receive(served, "retry", wait=0)
    assert [(m["body"], m["attributes"], m["receive_count"]) for m in messages] == [
        (f"dead {n}", {"n": str(n)}, 1) for n in range(3)
    ]
    none_left = await served.api.post("/queues/retry/redrive", json={"max": 5})
    assert none_left.json()["moved"] == 0


@pytest.mark.parametrize(
    ("path", "body", "status", "mentions"),
    [
        ("/queues/nope/messages", {"body": "x"}, 404, "'nope'"),
        ("/queues/jobs/messages", {"delay": 1}, 400, "body is required"),
        ("/queues/jobs/messages", {"body": "x", "delay": "soon"}, 400, "delay"),
        ("/queues/jobs/messages", {"body": "x", "delay": 901}, 400, "delay"),
        ("/queues/jobs/messages", {"body": "x", "attributes": {"n": 1}}, 400, "attributes"),
        ("/queues/jobs/messages", {"body": "x", "attributes": {"triggerfish.hop": "1"}}, 400, "platform"),
        ("/queues/jobs/messages", {"body": "x", "group": 7}, 400, "group"),
        ("/queues/ordered/messages", {"body": "x"}, 400, "FIFO"),
        ("/queues/jobs/messages", {"body": "x", "colour": "red"}, 400, "'colour'"),
        ("/queues/jobs/receive", {"max": 11}, 400, "max"),
        ("/queues/jobs/receive", {"max": 2.5}, 400, "whole number"),
        ("/queues/jobs/receive", {"wait": 21}, 400, "wait"),
        ("/queues/jobs/receive", {"visibility_timeout": True}, 400, "visibility_timeout"),
        ("/queues/jobs/ack", {"receipts": []}, 400, "receipts"),
        ("/queues/jobs.dlq/redrive", {}, 400, "no dead-letter queue"),
        ("/queues/jobs/redrive", {"dead_letter": "ghost"}, 404, "'ghost'"),
    ],
)
async def test_queue_endpoints_refuse_bad_input(
    served: Served, path: str, body: dict[str, Any], status: int, mentions: str
) -> None:
    answer = await served.api.post(path, json=body)
    assert answer.status_code == status
    assert mentions in error_of(answer)["message"]


async def test_queue_bodies_have_limits(served: Served) -> None:
    limit = served.platform.store.queues.max_record_bytes
    message = await served.api.post("/queues/jobs/messages", json={"body": "x" * (limit + 1)})
    assert message.status_code == 413
    assert error_of(message)["code"] == "MessageTooLarge"
    request = await served.api.post("/queues/jobs/messages", content=b" " * (3 * 1024 * 1024))
    assert request.status_code == 413
    assert error_of(request)["code"] == "RequestTooLarge"
    bad_json = await served.api.post("/queues/jobs/messages", content=b'{"body": "x",}')
    assert (bad_json.status_code, error_of(bad_json)["line"], error_of(bad_json)["column"]) == (400, 1, 13)


# --- topics --------------------------------------------------------------------------------


async def test_topics_and_the_apps_subscriptions(served: Served) -> None:
    topics = {t["name"]: t for t in (await served.api.get("/topics")).json()["topics"]}
    assert topics["alerts"]["subscriptions"] >= 1
    listed = (await served.api.get("/topics/alerts/subscriptions")).json()["subscriptions"]
    [paged] = [s for s in listed if s["endpoint"] == "paged"]
    assert (paged["kind"], paged["source"], paged["filter"]) == ("function", "app", {"severity": ["high"]})
    assert paged["arn"].endswith(f":alerts:{paged['id']}")
    missing = await served.api.get("/topics/nope/subscriptions")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "TopicNotFound"
    app_owned = await served.api.delete(f"/topics/alerts/subscriptions/{paged['id']}")
    assert app_owned.status_code == 409


async def test_a_published_message_reaches_a_subscribed_queue(served: Served) -> None:
    subscription = {"kind": "queue", "endpoint": "alert-copies", "raw": True, "filter": {"severity": ["low"]}}
    added = await served.api.post("/topics/alerts/subscriptions", json=subscription)
    assert added.status_code == 201
    assert (await served.api.post("/topics/alerts/subscriptions", json=subscription)).status_code == 200

    skipped = await served.api.post(
        "/topics/alerts/messages", json={"message": "ignored", "attributes": {"severity": "mid"}}
    )
    assert skipped.status_code == 202
    published = await served.api.post(
        "/topics/alerts/messages",
        json={"message": {"disk": "full"}, "subject": "disk", "attributes": {"severity": "low"}},
    )
    assert published.status_code == 202
    assert published.json()["message_id"]

    async def arrived() -> bool:
        return (await served.api.get("/queues/alert-copies")).status_code == 200

    await eventually(arrived)
    [message] = await receive(served, "alert-copies")
    assert message["body"] == '{"disk":"full"}'
    assert message["attributes"]["severity"] == "low"

    removed = await served.api.delete(f"/topics/alerts/subscriptions/{added.json()['id']}")
    assert removed.status_code == 204
    assert (await served.api.delete(f"/topics/alerts/subscriptions/{added.json()['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "status", "mentions"),
    [
        ("/topics/nope/messages", {"message": "x"}, 404, "'nope'"),
        ("/topics/alerts/messages", {"subject": "x"}, 400, "message is required"),
        ("/topics/alerts/messages", {"message": ""}, 400, "empty"),
        ("/topics/alerts/messages", {"message": "x", "subject": 3}, 400, "subject"),
        ("/topics/alerts/messages", {"message": "x", "attributes": ["a"]}, 400, "attributes"),
        ("/topics/alerts/messages", {"message": "x" * (256 * 1024 + 1)}, 413, "256"),
        ("/topics/alerts/subscriptions", {"endpoint": "q"}, 400, "kind is required"),
        ("/topics/alerts/subscriptions", {"kind": "email", "endpoint": "q"}, 400, "kind"),
        ("/topics/alerts/subscriptions", {"kind": "function", "endpoint": "ghost"}, 400, "ghost"),
        ("/topics/alerts/subscriptions", {"kind": "queue", "endpoint": "q", "filter": {"a": "b"}}, 400, "array"),
        ("/topics/alerts/subscriptions", {"kind": "queue", "endpoint": "q", "colour": 1}, 400, "'colour'"),
    ],
)
async def test_topic_endpoints_refuse_bad_input(
    served: Served, path: str, body: dict[str, Any], status: int, mentions: str
) -> None:
    answer = await served.api.post(path, json=body)
    assert answer.status_code == status
    assert mentions in error_of(answer)["message"]


# --- schedules -------------------------------------------------------------------------------


async def test_schedules_list_their_next_fire_times_and_pause_and_resume(served: Served) -> None:
    [hourly] = (await served.api.get("/schedules", params={"count": 3})).json()["schedules"]
    assert (hourly["name"], hourly["function"], hourly["expression"]) == ("hourly", "hourly", "rate(1 hour)")
    assert hourly["paused"] is False
    fires = hourly["next_fires"]
    assert len(fires) == 3
    assert fires == sorted(fires)
    paused = await served.api.post("/schedules/hourly/pause")
    assert (paused.json()["paused"], paused.json()["next_fires"]) == (True, [])
    resumed = await served.api.post("/schedules/hourly/resume")
    assert resumed.json()["paused"] is False
    assert len(resumed.json()["next_fires"]) == 5


async def test_schedule_endpoints_refuse_bad_input(served: Served) -> None:
    missing = await served.api.post("/schedules/nope/pause")
    assert missing.status_code == 404
    assert "hourly" in error_of(missing)["message"]
    assert (await served.api.get("/schedules", params={"count": "0"})).status_code == 400


# --- every endpoint that reads a body --------------------------------------------------------

BODY_ENDPOINTS = [
    ("PUT", "/buses/default/rules/any"),
    ("POST", "/buses/default/replay"),
    ("POST", "/queues/jobs/messages"),
    ("POST", "/queues/jobs/receive"),
    ("POST", "/queues/jobs/ack"),
    ("POST", "/queues/retry/redrive"),
    ("POST", "/topics/alerts/messages"),
    ("POST", "/topics/alerts/subscriptions"),
    ("POST", "/functions/echo/invoke"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
async def test_every_body_is_strict_json_with_the_fault_located(served: Served, method: str, path: str) -> None:
    answer = await served.api.request(method, path, content=b'{\n  "max": 1,\n  "max": 2\n}')
    assert answer.status_code == 400
    assert error_of(answer)["code"] == "InvalidJSON"
    assert "duplicate" in error_of(answer)["message"]
    broken = await served.api.request(method, path, content=b'{"a": tru}')
    assert (broken.status_code, error_of(broken)["line"], error_of(broken)["column"]) == (400, 1, 7)


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
async def test_every_body_has_a_size_limit(served: Served, method: str, path: str) -> None:
    answer = await served.api.request(method, path, content=b" " * (7 * 1024 * 1024))
    assert answer.status_code == 413
    assert error_of(answer)["code"] == "RequestTooLarge"


# --- the document and the edges --------------------------------------------------------------


def _template(path: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


async def test_the_openapi_document_describes_every_route(served: Served) -> None:
    document = (await served.api.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    served_routes: dict[str, set[str]] = {}
    for route in control_routes():
        methods = {m.lower() for m in getattr(route, "methods", set())} - {"head"}
        served_routes.setdefault(_template(getattr(route, "path", "")), set()).update(methods)
    described = {path: set(operations) for path, operations in document["paths"].items()}
    assert described == served_routes
    for path, operations in document["paths"].items():
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), path
            for response in operation["responses"].values():
                ref = response.get("$ref")
                if ref is not None:
                    assert ref.rsplit("/", 1)[1] in document["components"]["responses"]


async def test_unknown_endpoints_and_methods_answer_json(served: Served) -> None:
    missing = await served.api.get("/nothing")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "NotFound"
    wrong = await served.api.delete("/functions")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD"
    assert error_of(wrong)["code"] == "MethodNotAllowed"
    both = await served.api.patch("/queues/jobs/messages")
    assert both.status_code == 405
    assert set(both.headers["allow"].split(", ")) == {"POST", "DELETE"}
