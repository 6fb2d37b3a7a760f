"""Traces on a real platform (worker processes, SQLite and PostgreSQL): one trace from an HTTP request through a
publish, a rule, a function, a send and a queue to a function, every parent known; found by trace id."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.backends import platform_store
from tests.cluster.test_nodes_in_process import eventually
from tests.sample_records import invocation_span_pointer
from tests.server.conftest import Served, serve_app
from triggerfish.errors import InvalidInputError
from triggerfish.names import INVOCATIONS_NAMESPACE, TRACES_NAMESPACE
from triggerfish.observe.spans import Span, invocation_span
from triggerfish.observe.traces import check_trace_id, ordered, summaries, waterfall
from triggerfish.runtime.records import decode_record, record_key

CHAIN_APP = """
import triggerfish

app = triggerfish.App("chain")


@app.http("POST", "/orders")
def place(event, context):
    context.publish("order.placed", {"id": "o-1"}, source="/shop")
    return {"trace": context.trace_id}


@app.on_event({"type": ["order.placed"]})
def ship(event, context):
    context.send("parcels", {"order": event["data"]["id"]})


@app.on_queue("parcels")
def deliver(event, context):
    return None
"""

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(params=["sqlite", "postgresql"])
async def chain(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    async with platform_store(request.param) as store_url:
        async for served in serve_app(tmp_path, CHAIN_APP, store_url=store_url):
            yield served


async def test_http_publish_rule_function_send_queue_function_is_one_trace(chain: Served) -> None:
    async with httpx.AsyncClient(base_url=chain.url) as http:
        placed = await http.post("/orders", json={}, headers={"traceparent": CALLER})
        assert placed.status_code == 200, placed.text
        trace_id = placed.json()["trace"]
        assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"  # the caller's trace goes on

        async def delivered() -> bool:
            answer = await http.get(f"/-/api/v1/traces/{trace_id}")
            return answer.status_code == 200 and any(s["name"] == "deliver" for s in answer.json()["spans"])

        await eventually(delivered, 30)
        spans = (await http.get(f"/-/api/v1/traces/{trace_id}")).json()["spans"]
        by_trace = (await http.get("/-/api/v1/invocations", params={"trace_id": trace_id})).json()["invocations"]
        recent = (await http.get("/-/api/v1/traces")).json()["traces"]

    assert [(s["name"], s["kind"]) for s in spans] == [
        ("place", "server"),
        ("publish default", "producer"),
        ("ship", "consumer"),
        ("send parcels", "producer"),
        ("deliver", "consumer"),
    ]
    assert {s["trace_id"] for s in spans} == {trace_id}
    # Each span's parent is the one before it; the first one's is the caller's span.
    assert spans[0]["parent_span_id"] == "00f067aa0ba902b7"
    for parent, child in itertools.pairwise(spans):
        assert child["parent_span_id"] == parent["span_id"], (parent["name"], child["name"])
    place, publish, ship, send, deliver = spans
    assert place["attributes"]["faas.trigger"] == "http"
    assert place["attributes"]["faas.name"] == "place"
    assert place["attributes"]["faas.invocation_id"] == place["request_id"]
    assert place["attributes"]["faas.coldstart"] is True
    assert place["attributes"]["faas.version"] == "1"
    assert place["attributes"]["http.request.method"] == "POST"
    assert place["attributes"]["http.route"] == "/orders"
    assert place["attributes"]["http.response.status_code"] == 200
    assert "http.route" not in ship["attributes"]
    assert publish["attributes"]["messaging.destination.name"] == "default"
    assert publish["attributes"]["cloudevents.event_type"] == "order.placed"
    assert publish["attributes"]["cloudevents.event_source"] == "/shop"
    assert ship["attributes"]["faas.trigger"] == "pubsub"
    assert send["attributes"]["messaging.operation.type"] == "send"
    assert deliver["attributes"]["triggerfish.trigger"] == "queue"
    # A consumer span says what it consumed: the event's CloudEvents attributes, the queue and its message.
    for name in ("cloudevents.event_id", "cloudevents.event_source", "cloudevents.event_type"):
        assert ship["attributes"][name] == publish["attributes"][name], name
    assert ship["attributes"]["messaging.operation.type"] == "process"
    assert deliver["attributes"]["messaging.destination.name"] == "parcels"
    assert deliver["attributes"]["messaging.operation.type"] == "process"
    assert deliver["attributes"]["messaging.message.id"]
    # The records carry the trace; the API finds the trace's invocations by its id.
    assert [r["function"] for r in by_trace] == ["place", "ship", "deliver"]
    assert all(r["trace_id"] == trace_id for r in by_trace)
    assert [r["span_id"] for r in by_trace] == [place["span_id"], ship["span_id"], deliver["span_id"]]
    (summary,) = [t for t in recent if t["trace_id"] == trace_id]
    assert (summary["root"], summary["invocations"], summary["errors"]) == ("place", 3, 0)


async def test_a_request_without_traceparent_starts_a_trace_and_unknown_ids_are_404(chain: Served) -> None:
    async with httpx.AsyncClient(base_url=chain.url) as http:
        trace_id = (await http.post("/orders", json={})).json()["trace"]
        await chain.platform.current.invoker.records.settled()
        spans = (await http.get(f"/-/api/v1/traces/{trace_id}")).json()["spans"]
        assert spans[0]["name"] == "place"
        assert spans[0]["parent_span_id"] is None
        missing = await http.get(f"/-/api/v1/traces/{'a' * 32}")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "TraceNotFound"
        bad = await http.get("/-/api/v1/traces/NOT-A-TRACE")
        assert bad.status_code == 400


async def test_the_api_gives_the_same_trace_from_records_rows_as_from_earlier_versions_entries(chain: Served) -> None:
    """The records' own rows (found by their span, what this version writes) and what earlier versions wrote (each
    record's key-value copy, with its span's JSON or a pointer to the copy in the trace index) give the same trace and
    the same invocations through the control API, which `triggerfish traces` and the dashboard read."""
    async with httpx.AsyncClient(base_url=chain.url) as http:
        trace_id = (await http.post("/orders", json={}, headers={"traceparent": CALLER})).json()["trace"]

        async def delivered() -> bool:
            answer = await http.get(f"/-/api/v1/traces/{trace_id}")
            return answer.status_code == 200 and any(s["name"] == "deliver" for s in answer.json()["spans"])

        await eventually(delivered, 30)
        new = (await http.get(f"/-/api/v1/traces/{trace_id}")).json()
        new_invocations = (await http.get("/-/api/v1/invocations", params={"trace_id": trace_id})).json()

        # Each record's row rewritten as earlier versions stored it, and the rows trimmed away: the first record with
        # its span's JSON, the others with rec13's pointers.
        store = chain.platform.store
        rows = await store.log.find(f"t/{trace_id}/")
        assert {row.stream for _, row in rows} == {"invocations.place", "invocations.ship", "invocations.deliver"}
        for index, (key, row) in enumerate(rows):
            record = decode_record(row.data)
            await store.kv.put(INVOCATIONS_NAMESPACE, record_key(record.request_id, record.attempt), row.data, ttl=3600)
            entry = invocation_span_pointer(record) if index else (key, orjson.dumps(invocation_span(record)))
            assert entry is not None
            await store.kv.put(TRACES_NAMESPACE, entry[0], entry[1], ttl=3600)
        for stream in {row.stream for _, row in rows}:
            await store.log.trim(stream, max_age=0)
        assert await store.log.find(f"t/{trace_id}/") == []
        old = (await http.get(f"/-/api/v1/traces/{trace_id}")).json()
        old_invocations = (await http.get("/-/api/v1/invocations", params={"trace_id": trace_id})).json()

    assert len(rows) == 3  # place, ship, deliver (the publish and send are spans of their own in the trace index)
    assert [s["name"] for s in new["spans"]] == ["place", "publish default", "ship", "send parcels", "deliver"]
    assert new == old
    assert new_invocations == old_invocations


def span(name: str, span_id: str, parent: str | None, start: float, end: float, status: str = "ok") -> Span:
    return Span("t" * 32, span_id, parent, name, "consumer", start, end, status, {}, request_id=f"r-{name}")


def test_spans_are_ordered_depth_first_and_drawn_as_a_waterfall() -> None:
    spans = ordered(
        [
            span("late child", "c2", "a", 0.5, 0.9, "error"),
            span("root", "a", None, 0.0, 1.0),
            span("early child", "c1", "a", 0.1, 0.3),
            span("grandchild", "g", "c1", 0.2, 0.25),
            span("orphan", "o", "gone", 0.95, 1.0),  # its parent was trimmed: drawn as a root
        ]
    )
    assert [s.name for s in spans] == ["root", "early child", "grandchild", "late child", "orphan"]
    lines = waterfall(spans, width=20)
    assert lines[0].startswith("root (consumer)")
    assert "|████████████████████|" in lines[0]
    assert lines[2].startswith("    grandchild (consumer)")
    assert lines[3].rstrip().endswith("ERROR  r-late child")
    assert waterfall([]) == []


def test_trace_ids_are_checked() -> None:
    assert check_trace_id("a" * 32) == "a" * 32
    for bad in ("0" * 32, "A" * 32, "a" * 31, 7):
        with pytest.raises(InvalidInputError, match="32 lowercase hex"):
            check_trace_id(bad)
    assert summaries([]) == []
