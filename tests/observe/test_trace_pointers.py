"""An attempt's entry in the trace index is a pointer to its record; traces written by earlier versions, whose entries
hold the span's JSON, read the same. On a real SQLite file and a real PostgreSQL (CI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from tests.backends import opened_store
from tests.sample_records import sample_record
from triggerfish.names import INVOCATIONS_NAMESPACE, TRACES_NAMESPACE
from triggerfish.observe.spans import Span, invocation_span, producer_span, record_pointer, span_key
from triggerfish.observe.traces import ordered, trace_spans
from triggerfish.runtime.records import InvocationRecord, InvocationRecords, encode_record, record_key
from triggerfish.store import Store
from triggerfish.store.atomic import Put

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ROOT = sample_record(
    request_id="0193a1b2c3d4-root",
    version="3",
    trigger="http",
    cold_start=True,
    init_duration_ms=4.5,
    trace_id=TRACE,
    parent_span_id="b7ad6b7169203331",
    http_route="POST /orders",
    http_status=200,
)
PUBLISH = producer_span(
    f"00-{TRACE}-1111111111111111-01",
    f"00-{TRACE}-{ROOT.span_id}-01",
    operation="publish",
    destination="default",
    start=1_765_000_000.2505,
    end=1_765_000_000.251,
    ok=True,
    function="place",
    request_id=ROOT.request_id,
    event={"id": "e-1", "source": "/shop", "type": "order.placed"},
)
SHIP = [
    replace(
        ROOT,
        request_id="0193a1b2c3d5-ship",
        function="ship",
        trigger="event",
        attempt=attempt,
        status=status,
        started_at=1_765_000_000.26 + attempt / 10,
        ended_at=1_765_000_000.27 + attempt / 10,
        cold_start=False,
        init_duration_ms=None,
        error=error,
        span_id=span_id,
        parent_span_id=PUBLISH.span_id,
        http_route=None,
        http_status=None,
        consumed={"messaging.system": "triggerfish", "cloudevents.event_id": "e-1", "cloudevents.event_type": "x"},
    )
    for attempt, status, error, span_id in (
        (1, "failed", {"errorType": "KeyError", "errorMessage": "'sku'"}, "2222222222222222"),
        (2, "succeeded", None, "3333333333333333"),
    )
]
DELIVER = replace(
    ROOT,
    request_id="0193a1b2c3d6-deliver",
    function="deliver",
    trigger="queue",
    version=None,
    started_at=1_765_000_000.5,
    ended_at=1_765_000_000.6,
    cold_start=False,
    init_duration_ms=None,
    span_id="4444444444444444",
    parent_span_id="3333333333333333",
    http_route=None,
    http_status=None,
    links=("00-0af7651916cd43dd8448eb211c80319c-b9c7c989f97918e1-01",),
    consumed={"messaging.system": "triggerfish", "messaging.destination.name": "parcels"},
)
RECORDS = [ROOT, *SHIP, DELIVER]


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with opened_store(request.param, tmp_path) as opened:
        yield opened


def old_writes(records: list[InvocationRecord], retention: float) -> list[Put]:
    """What the version before pointers wrote for `records` (their log rows apart, which traces never read): each
    record's key-value copy, and its span's entry holding the span's JSON (`orjson.dumps` of the Span, which the
    old `invocation_span_entry` matched byte for byte)."""
    puts = []
    for record in records:
        span = invocation_span(record)
        assert span is not None
        puts.append(Put(INVOCATIONS_NAMESPACE, record_key(record.request_id, record.attempt), encode_record(record)))
        puts.append(Put(TRACES_NAMESPACE, span_key(span), orjson.dumps(span), ttl=retention))
    return puts


def expected() -> list[Span]:
    spans = [invocation_span(record) for record in RECORDS]
    return ordered([PUBLISH, *(span for span in spans if span is not None)])


async def put_publish(store: Store) -> None:
    await store.kv.put(TRACES_NAMESPACE, span_key(PUBLISH), orjson.dumps(PUBLISH), ttl=3600)


async def test_a_trace_written_with_full_spans_and_one_written_with_pointers_read_the_same(store: Store) -> None:
    await put_publish(store)
    await store.atomic(old_writes(RECORDS, 3600))
    old = await trace_spans(store, TRACE)
    assert old == expected()

    # The same invocations as this version writes them: every attempt's entry becomes a pointer.
    records = InvocationRecords(store, clock=lambda: ROOT.started_at)
    await store.atomic(records.writes(RECORDS))
    entries = await store.kv.scan(TRACES_NAMESPACE, prefix=f"t/{TRACE}/")
    pointers = [record_pointer(entry.value) for entry in entries]
    assert sorted(p for p in pointers if p is not None) == sorted((r.request_id, r.attempt) for r in RECORDS)
    assert all(len(entry.value) < 64 for entry in entries if record_pointer(entry.value) is not None)
    assert await trace_spans(store, TRACE) == old


async def test_a_trace_half_old_and_half_new_reads_whole(store: Store) -> None:
    """An upgrade in the middle of a trace: its first invocations ran on the old version, the rest on this one."""
    await put_publish(store)
    await store.atomic(old_writes(RECORDS[:2], 3600))
    await store.atomic(InvocationRecords(store, clock=lambda: ROOT.started_at).writes(RECORDS[2:]))
    assert await trace_spans(store, TRACE) == expected()


async def test_a_pointer_whose_record_is_gone_leaves_its_span_out(store: Store) -> None:
    """Trimming: the record went (its ttl ran out the moment before its pointer's); the rest of the trace reads."""
    await put_publish(store)
    await store.atomic(InvocationRecords(store, clock=lambda: ROOT.started_at).writes(RECORDS))
    assert await store.kv.delete(INVOCATIONS_NAMESPACE, record_key(SHIP[0].request_id, 1))
    spans = await trace_spans(store, TRACE)
    assert SHIP[0].span_id not in {span.span_id for span in spans}
    assert spans == [span for span in expected() if span.span_id != SHIP[0].span_id]


def test_only_a_pointer_reads_as_one() -> None:
    assert record_pointer(orjson.dumps(("0193a1b2c3d4-root", 2))) == ("0193a1b2c3d4-root", 2)
    assert record_pointer(orjson.dumps(PUBLISH)) is None
    for bad in (b'["r"]', b'["r", true]', b"[1, 2]", b'["r", 1, 2]'):
        with pytest.raises(ValueError, match="neither a span nor a record's pointer"):
            record_pointer(bad)
