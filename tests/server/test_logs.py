"""Logs (`GET /-/api/v1/logs`): lines made from invocation records, listed and followed over a real socket.

A real platform with worker processes and a SQLite store; the pure line model
(log_lines.py) is tested against hand-made records at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from triggerfish.deploy.bundle import pack
from triggerfish.gateway import GatewayServer
from triggerfish.runtime.records import InvocationRecord, InvocationRecords
from triggerfish.server import logs
from triggerfish.server.host import Host
from triggerfish.server.host_http import HostASGI
from triggerfish.server.http import PlatformASGI, platform_asgi
from triggerfish.server.log_lines import LogFilter
from triggerfish.server.platform import Platform
from triggerfish.store import open_store

pytestmark = pytest.mark.asyncio(loop_scope="module")

APP = """
import logging

import triggerfish

app = triggerfish.App("logs")
orders = logging.getLogger("shop.orders")
orders.setLevel(logging.DEBUG)


@app.function(memory_mb=256)
def ship(event, context):
    print("packing", event["order"])
    orders.debug("weighing %s", event["order"])
    context.logger.info("shipping %s", event["order"])
    context.logger.warning("courier is slow today")
    return {"shipped": event["order"]}


@app.function()
def refund(event, context):
    print("refunding", event["order"])
    raise ValueError(f"order {event['order']} was never paid")


@app.function()
def quiet(event, context):
    return None


@app.function()
def fresh(event, context):
    print("first words")
"""

WAIT = 20.0


@dataclass
class Served:
    platform: Platform
    asgi: PlatformASGI
    server: GatewayServer
    api: httpx.AsyncClient

    async def invoke(self, function: str, event: Any) -> str:
        answer = await self.api.post(f"/functions/{function}/invoke", json=event)
        assert answer.status_code == 200, answer.text
        return answer.headers["x-triggerfish-request-id"]

    async def lines(self, **params: Any) -> list[dict[str, Any]]:
        answer = await self.api.get("/logs", params=params)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["lines"]
        return found


async def serve(tmp_path: Path) -> AsyncIterator[Served]:
    (tmp_path / "app.py").write_text(APP)
    platform = Platform(str(tmp_path / "app.py"), data_dir=tmp_path / "data")
    await platform.start()
    asgi = platform_asgi(platform)
    try:
        async with (
            GatewayServer(asgi, port=0) as server,
            httpx.AsyncClient(base_url=f"{server.url}/-/api/v1", timeout=WAIT) as api,
        ):
            yield Served(platform, asgi, server, api)
    finally:
        await platform.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    async for one in serve(tmp_path_factory.mktemp("logs")):
        yield one


# --- listing -------------------------------------------------------------------------------------


async def test_an_invocation_reads_as_start_output_end_and_report(served: Served) -> None:
    request_id = await served.invoke("ship", {"order": "o-1"})
    lines = await served.lines(request_id=request_id)
    assert [line["kind"] for line in lines] == ["start", "output", "output", "output", "output", "end", "report"]
    assert {(line["function"], line["version"], line["request_id"], line["attempt"]) for line in lines} == {
        ("ship", "1", request_id, 1)
    }
    assert lines[0]["message"] == f"START RequestId: {request_id} Version: 1"
    # A print is INFO; logging's lines keep their level, and context.logger's request id prefix is dropped.
    assert [(line["level"], line["message"]) for line in lines[1:5]] == [
        ("INFO", "packing o-1"),
        ("DEBUG", "weighing o-1"),
        ("INFO", "shipping o-1"),
        ("WARNING", "courier is slow today"),
    ]
    assert lines[2]["logger"] == "shop.orders"
    assert "logger" not in lines[1]
    assert lines[5]["message"] == f"END RequestId: {request_id}"
    times = [line["timestamp"] for line in lines]
    assert times == sorted(times)
    for line in lines:
        parsed = datetime.datetime.fromisoformat(line["time"])
        assert line["time"].endswith("Z")
        assert abs(parsed.timestamp() - line["timestamp"]) < 0.001


async def test_the_report_line_carries_duration_billing_memory_and_cold_start(served: Served) -> None:
    # `quiet` runs here first, so its first invocation starts a worker (a cold start) and the second does not.
    first = await served.invoke("quiet", {})
    second = await served.invoke("quiet", {})
    cold = (await served.lines(request_id=first))[-1]
    warm = (await served.lines(request_id=second))[-1]
    record = (await served.api.get(f"/invocations/{first}")).json()["attempts"][0]
    assert (cold["kind"], cold["level"]) == ("report", "INFO")
    fields = cold["message"].split("\t")
    assert fields[:4] == [
        f"REPORT RequestId: {first}",
        f"Duration: {record['duration_ms']:.2f} ms",
        f"Billed Duration: {record['billed_duration_ms']} ms",
        "Memory Size: 128 MB",
    ]
    # As Lambda's: the peak memory the worker had in use, within the function's memory size, then the init time.
    assert re.fullmatch(r"Max Memory Used: \d+ MB", fields[4])
    assert 0 < record["max_memory_used_mb"] <= 128
    assert fields[4] == f"Max Memory Used: {record['max_memory_used_mb']} MB"
    assert re.fullmatch(r"Init Duration: \d+\.\d\d ms", fields[5])
    assert len(fields) == 6
    assert cold["report"]["cold_start"] is True
    assert cold["report"]["init_duration_ms"] == pytest.approx(float(fields[5].split()[2]), abs=0.01)
    assert cold["report"]["billed_duration_ms"] == record["billed_duration_ms"]
    assert warm["report"]["cold_start"] is False
    assert "Init Duration" not in warm["message"]
    # The memory size is the function's setting.
    shipped = await served.invoke("ship", {"order": "o-2"})
    assert "\tMemory Size: 256 MB" in (await served.lines(request_id=shipped))[-1]["message"]


async def test_a_failed_invocation_has_an_error_line_with_its_type_message_and_traceback(served: Served) -> None:
    answer = await served.api.post("/functions/refund/invoke", json={"order": "o-9"})
    assert answer.headers["x-amz-function-error"] == "Unhandled"
    request_id = answer.headers["x-triggerfish-request-id"]
    lines = await served.lines(request_id=request_id)
    assert [line["kind"] for line in lines[:3]] == ["start", "output", "error"]
    assert lines[1]["message"] == "refunding o-9"
    errors = [line for line in lines if line["kind"] == "error"]
    assert errors[0]["message"] == "ValueError: order o-9 was never paid"
    assert {line["level"] for line in errors} == {"ERROR"}
    assert errors[1]["message"] == "Traceback (most recent call last):"
    assert any("in refund" in line["message"] for line in errors)
    assert [line["kind"] for line in lines[-2:]] == ["end", "report"]
    assert lines[-1]["message"].endswith("\tStatus: failed")
    assert lines[-1]["report"]["status"] == "failed"


async def test_filters_by_function_level_request_id_and_since(served: Served) -> None:
    shipped = await served.invoke("ship", {"order": "o-3"})
    await served.api.post("/functions/refund/invoke", json={"order": "o-4"})
    between = time.time()
    later = await served.invoke("ship", {"order": "o-5"})

    only_ship = await served.lines(function="ship")
    assert {line["function"] for line in only_ship} == {"ship"}
    assert {shipped, later} <= {line["request_id"] for line in only_ship}

    warnings = await served.lines(level="warning")
    assert {line["level"] for line in warnings} <= {"WARNING", "ERROR", "CRITICAL"}
    assert "courier is slow today" in {line["message"] for line in warnings}
    assert "ValueError: order o-4 was never paid" in {line["message"] for line in warnings}
    assert "packing o-3" not in {line["message"] for line in warnings}

    since = await served.lines(since=datetime.datetime.fromtimestamp(between, datetime.UTC).isoformat())
    assert {line["request_id"] for line in since} == {later}
    assert {line["request_id"] for line in await served.lines(since="10m", request_id=later)} == {later}

    debug = await served.lines(request_id=shipped, level="DEBUG")
    info = await served.lines(request_id=shipped, level="info")
    assert [line["message"] for line in debug if line not in info] == ["weighing o-3"]


async def test_limit_keeps_the_newest_lines_and_says_older_ones_were_left_out(served: Served) -> None:
    request_id = await served.invoke("ship", {"order": "o-6"})
    answer = (await served.api.get("/logs", params={"function": "ship", "limit": 2})).json()
    assert answer["truncated"] is True
    assert [(line["request_id"], line["kind"]) for line in answer["lines"]] == [
        (request_id, "end"),
        (request_id, "report"),
    ]
    everything = (await served.api.get("/logs", params={"request_id": request_id})).json()
    assert everything["truncated"] is False


async def test_listing_pages_back_through_many_records_for_the_newest_matching_lines(tmp_path: Path) -> None:
    async with await open_store(f"sqlite:///{tmp_path}/s.db") as store:
        records = InvocationRecords(store, clock=time.time)
        start = time.time() - 100

        def attempt(n: int) -> InvocationRecord:
            # Every 40th attempt fails; the rest only print.
            error = {"errorType": "ValueError", "errorMessage": f"bad {n}"} if n % 40 == 0 else None
            return InvocationRecord(
                f"r-{n}",
                "ship",
                "1",
                "sync",
                1,
                "failed" if error else "succeeded",
                start + n / 10,
                start + n / 10 + 0.01,
                10.0,
                10,
                128,
                0.00125,
                error=error,
                output=f"item {n}\n",
            )

        await records.add_many([attempt(n) for n in range(1, 801)])
        reader = logs.LogReader(records)
        errors, truncated = await reader.lines(LogFilter(level="ERROR"), 3)
        assert [line.message for line in errors] == [
            "ValueError: bad 720",
            "ValueError: bad 760",
            "ValueError: bad 800",
        ]
        assert truncated
        every, truncated = await reader.lines(LogFilter(level="ERROR"), 100)
        assert len(every) == 20
        assert not truncated
        recent, _ = await reader.lines(LogFilter(since=start + 79.95), 10_000)
        assert {line.request_id for line in recent} == {"r-800"}


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"level": "loud"}, 400, "level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ({"since": "yesterday"}, 400, "since must be a duration such as 30s, 10m, 2h or 1d"),
        ({"since": "2026-12-01T10:00:00"}, 400, "RFC 3339 time with a zone"),
        ({"limit": "0"}, 400, "limit must be a whole number from 1 to 10000"),
        ({"follow": "maybe"}, 400, "follow must be one of 0, 1"),
        ({"tail": "5"}, 400, "unknown query parameter 'tail'"),
        ({"request_id": "a/b"}, 400, "request_id"),
        ({"function": "nope"}, 404, "no function named 'nope'"),
    ],
)
async def test_bad_queries_are_refused_with_the_reason(
    served: Served, params: dict[str, str], status: int, says: str
) -> None:
    answer = await served.api.get("/logs", params=params)
    assert answer.status_code == status
    assert says in answer.json()["error"]["message"]


# --- following -----------------------------------------------------------------------------------


class EventStream:
    """A client reading a server-sent event stream: comments, data lines and named events as they arrive."""

    def __init__(self, answer: httpx.Response) -> None:
        self.answer = answer
        self._lines = answer.aiter_lines()

    async def next_event(self) -> tuple[str, str]:
        """("comment", text), ("data", json text) or (event name, data)."""
        event, data = "data", list[str]()
        async with asyncio.timeout(WAIT):
            async for text in self._lines:
                if text.startswith(":") and not data:
                    return "comment", text[1:].strip()
                if text.startswith("event: "):
                    event = text.removeprefix("event: ")
                elif text.startswith("data: "):
                    data.append(text.removeprefix("data: "))
                elif text == "" and data:
                    return event, "\n".join(data)
        return "closed", ""

    async def lines_until(self, request_id: str, kind: str = "report") -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            event, data = await self.next_event()
            assert event in ("data", "comment"), (event, data)
            if event == "data":
                found.append(json.loads(data))
                if found[-1]["request_id"] == request_id and found[-1]["kind"] == kind:
                    return found


@contextlib.asynccontextmanager
async def open_follow(served: Served, **params: Any) -> AsyncIterator[EventStream]:
    async with served.api.stream("GET", "/logs", params={"follow": "1", **params}) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        stream = EventStream(answer)
        assert await stream.next_event() == ("comment", "following")
        yield stream


async def follows_open(served: Served) -> int:
    return len(logs.Follows.of(served.asgi.endpoints.state))


async def wait_for_follows(served: Served, count: int) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            if await follows_open(served) == count:
                return
            await asyncio.sleep(0.02)


async def test_following_streams_new_lines_as_invocations_finish_and_stops_on_disconnect(served: Served) -> None:
    before = await served.invoke("ship", {"order": "o-old"})
    async with open_follow(served, function="ship") as stream:
        request_id = await served.invoke("ship", {"order": "o-7"})
        lines = await stream.lines_until(request_id)
        # From now: nothing of the invocation before the follow began.
        assert before not in {line["request_id"] for line in lines}
        assert [line["kind"] for line in lines] == ["start", "output", "output", "output", "output", "end", "report"]
        assert lines[1]["message"] == "packing o-7"
        assert await follows_open(served) == 1
    # The client went away: the server's side of the follow ends too.
    await wait_for_follows(served, 0)


async def test_following_applies_the_filters(served: Served) -> None:
    async with open_follow(served, level="error") as stream:
        await served.invoke("ship", {"order": "o-8"})
        answer = await served.api.post("/functions/refund/invoke", json={"order": "o-10"})
        failed = answer.headers["x-triggerfish-request-id"]
        lines = await stream.lines_until(failed, kind="error")
        assert {line["function"] for line in lines} == {"refund"}
        assert lines[0]["message"] == "ValueError: order o-10 was never paid"
    await wait_for_follows(served, 0)


async def test_following_every_function_picks_up_one_invoked_for_the_first_time(served: Served) -> None:
    async with open_follow(served) as stream:
        request_id = await served.invoke("fresh", {})
        lines = await stream.lines_until(request_id)
        assert [line["message"] for line in lines if line["kind"] == "output"] == ["first words"]
    await wait_for_follows(served, 0)


async def test_following_with_since_sends_the_recent_lines_first(served: Served) -> None:
    earlier = await served.invoke("ship", {"order": "o-11"})
    async with open_follow(served, function="ship", since="10m") as stream:
        backlog = await stream.lines_until(earlier)
        assert backlog[-1]["kind"] == "report"
        later = await served.invoke("ship", {"order": "o-12"})
        new = await stream.lines_until(later)
        assert {line["request_id"] for line in new} == {later}
    await wait_for_follows(served, 0)


async def test_an_idle_follow_sends_heartbeats(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "HEARTBEAT_SECONDS", 0.1)
    async with open_follow(served, function="quiet") as stream:
        assert await stream.next_event() == ("comment", "heartbeat")
    await wait_for_follows(served, 0)


async def test_stopping_the_server_ends_a_follow_cleanly(tmp_path: Path) -> None:
    async for served in serve(tmp_path):
        async with served.api.stream("GET", "/logs", params={"follow": "1"}) as answer:
            stream = EventStream(answer)
            assert await stream.next_event() == ("comment", "following")
            stopping = asyncio.create_task(served.server.stop())
            event, data = await stream.next_event()
            assert (event, json.loads(data)) == ("end", {"reason": "the server is stopping"})
            # The response ends properly (no cut connection), and the server stops without cancelling it.
            assert await stream.next_event() == ("closed", "")
            await stopping
        assert await follows_open(served) == 0


async def test_stopping_the_platform_ends_a_follow(tmp_path: Path) -> None:
    async for served in serve(tmp_path):
        async with served.api.stream("GET", "/logs", params={"follow": "1", "function": "ship"}) as answer:
            stream = EventStream(answer)
            assert await stream.next_event() == ("comment", "following")
            await served.platform.stop()
            event, data = await stream.next_event()
            assert event == "end"
            assert json.loads(data) == {"reason": "the app is no longer served here"}


# --- under `triggerfish serve` -------------------------------------------------------------------

HOSTED_APP = """
import triggerfish

app = triggerfish.App({name!r})


@app.function()
def work(event, context):
    print({name!r}, "at work")
"""


async def test_each_app_on_a_server_has_its_own_logs_and_a_revoked_key_ends_its_follow(tmp_path: Path) -> None:
    host = Host(data_dir=tmp_path / "server")
    await host.start()
    try:
        admin, _ = await host.keys.create("ops", "admin")
        async with (
            GatewayServer(HostASGI(host), port=0) as server,
            httpx.AsyncClient(
                base_url=f"{server.url}/-/api/v1", timeout=WAIT, headers={"authorization": f"Bearer {admin}"}
            ) as api,
        ):
            for name in ("shop", "blog"):
                (tmp_path / name).mkdir()
                (tmp_path / name / "app.py").write_text(HOSTED_APP.format(name=name))
                bundle = pack(tmp_path / name)
                stored = await api.put(
                    f"/apps/{name}/bundles/{bundle.sha256}",
                    content=bundle.data,
                    headers={"content-type": "application/gzip"},
                )
                assert stored.status_code == 201
                assert (await api.post(f"/apps/{name}/deploys", json={"bundle": bundle.sha256})).status_code == 201
            invoked = await api.post("/apps/shop/functions/work/invoke", json={})
            request_id = invoked.headers["x-triggerfish-request-id"]
            await api.post("/apps/blog/functions/work/invoke", json={})
            viewer, viewer_info = await host.keys.create("shop reader", "viewer", app="shop")
            as_viewer = {"authorization": f"Bearer {viewer}"}

            shop = (await api.get("/apps/shop/logs", headers=as_viewer)).json()["lines"]
            assert request_id in {line["request_id"] for line in shop}
            assert {line["message"] for line in shop if line["kind"] == "output"} == {"shop at work"}
            blog = (await api.get("/apps/blog/logs")).json()["lines"]
            assert {line["message"] for line in blog if line["kind"] == "output"} == {"blog at work"}
            # A key of one app does not learn that another exists.
            hidden = await api.get("/apps/blog/logs", headers=as_viewer)
            assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "AppNotFound")

            async with api.stream("GET", "/apps/shop/logs", params={"follow": "1"}, headers=as_viewer) as answer:
                stream = EventStream(answer)
                assert await stream.next_event() == ("comment", "following")
                await api.post("/apps/blog/functions/work/invoke", json={})
                followed = await api.post("/apps/shop/functions/work/invoke", json={})
                new = await stream.lines_until(followed.headers["x-triggerfish-request-id"])
                # Another app's invocation, though it finished first, is not in this app's stream.
                assert {line["message"] for line in new if line["kind"] == "output"} == {"shop at work"}
                assert (await api.delete(f"/keys/{viewer_info.id}")).status_code == 200
                event, data = await stream.next_event()
                assert (event, json.loads(data)["code"]) == ("end", "Unauthorized")
                assert "revoked" in json.loads(data)["reason"]
    finally:
        await host.stop()
