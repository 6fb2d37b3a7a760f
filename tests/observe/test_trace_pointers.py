"""An attempt's span is read from its record's log row, found by its trace (the row's second key); traces written by
earlier versions read the same: entries holding the span's JSON, and (rec13) entries pointing to the record's
key-value copy. On a real SQLite file and a real PostgreSQL (CI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from tests.backends import opened_store
from tests.sample_records import invocation_span_pointer, sample_record
from triggerfish.names import INVOCATIONS_NAMESPACE, TRACES_NAMESPACE, record_stream
from triggerfish.observe.spans import (
    Span,
    invocation_span,
    producer_span,
    record_pointer,
    span_key,
)
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


def pointer_writes(records: list[InvocationRecord], retention: float) -> list[Put]:
    """What rec13's version wrote for `records` (log rows apart, without keys): each record's key-value copy, and its
    span's entry pointing to the copy (`invocation_span_pointer`)."""
    puts = []
    for record in records:
        entry = invocation_span_pointer(record)
        assert entry is not None
        key = record_key(record.request_id, record.attempt)
        puts.append(Put(INVOCATIONS_NAMESPACE, key, encode_record(record), ttl=retention))
        puts.append(Put(TRACES_NAMESPACE, *entry, ttl=retention))
    return puts


def expected() -> list[Span]:
    spans = [invocation_span(record) for record in RECORDS]
    return ordered([PUBLISH, *(span for span in spans if span is not None)])


async def put_publish(store: Store) -> None:
    await store.kv.put(TRACES_NAMESPACE, span_key(PUBLISH), orjson.dumps(PUBLISH), ttl=3600)


def records_of(store: Store) -> InvocationRecords:
    return InvocationRecords(store, clock=lambda: ROOT.started_at)


async def test_a_trace_reads_the_same_whichever_version_wrote_it(store: Store) -> None:
    await put_publish(store)
    await store.atomic(old_writes(RECORDS, 3600))
    old = await trace_spans(store, TRACE)
    assert old == expected()

    # As rec13's version wrote them: every attempt's entry a pointer to its key-value copy.
    await store.atomic(pointer_writes(RECORDS, 3600))
    entries = await store.kv.scan(TRACES_NAMESPACE, prefix=f"t/{TRACE}/")
    pointers = [record_pointer(entry.value) for entry in entries]
    assert sorted(p for p in pointers if p is not None) == sorted((r.request_id, r.attempt) for r in RECORDS)
    assert await trace_spans(store, TRACE) == old

    # As this version writes them: no entry and no copy, the record's log row found by its span.
    for record in RECORDS:
        assert await store.kv.delete(TRACES_NAMESPACE, f"t/{TRACE}/{record.span_id}")
        assert await store.kv.delete(INVOCATIONS_NAMESPACE, record_key(record.request_id, record.attempt))
    await store.atomic(records_of(store).writes(RECORDS))
    assert [entry.key for entry in await store.kv.scan(TRACES_NAMESPACE, prefix=f"t/{TRACE}/")] == [span_key(PUBLISH)]
    assert await store.kv.scan(INVOCATIONS_NAMESPACE, prefix="") == []
    found = await store.log.find(f"t/{TRACE}/")
    assert sorted(key for key, _ in found) == sorted(f"t/{TRACE}/{r.span_id}" for r in RECORDS)
    assert await trace_spans(store, TRACE) == old


async def test_a_trace_written_by_three_versions_reads_whole(store: Store) -> None:
    """Upgrades in the middle of a trace: its first invocation ran on the oldest version, the next on rec13's,
    the rest on this one."""
    await put_publish(store)
    await store.atomic(old_writes(RECORDS[:1], 3600))
    await store.atomic(pointer_writes(RECORDS[1:2], 3600))
    await store.atomic(records_of(store).writes(RECORDS[2:]))
    assert await trace_spans(store, TRACE) == expected()


async def test_a_pointer_whose_record_is_gone_leaves_its_span_out(store: Store) -> None:
    """Trimming: the record went (its ttl ran out the moment before its pointer's); the rest of the trace reads."""
    await put_publish(store)
    await store.atomic(pointer_writes(RECORDS, 3600))
    assert await store.kv.delete(INVOCATIONS_NAMESPACE, record_key(SHIP[0].request_id, 1))
    spans = await trace_spans(store, TRACE)
    assert SHIP[0].span_id not in {span.span_id for span in spans}
    assert spans == [span for span in expected() if span.span_id != SHIP[0].span_id]


async def test_a_record_trimmed_from_its_stream_leaves_its_span_out(store: Store) -> None:
    await put_publish(store)
    records = records_of(store)
    await store.atomic(records.writes(RECORDS[:1]))
    await asyncio.sleep(0.05)
    await store.atomic(records.writes(RECORDS[1:]))
    assert await store.log.trim(record_stream(ROOT.function), max_age=0.04) == 1
    spans = await trace_spans(store, TRACE)
    assert spans == ordered([span for span in expected() if span.span_id != ROOT.span_id])
    assert await records.get(ROOT.request_id) is None


def test_only_a_pointer_reads_as_one() -> None:
    assert record_pointer(orjson.dumps(("0193a1b2c3d4-root", 2))) == ("0193a1b2c3d4-root", 2)
    assert record_pointer(orjson.dumps(PUBLISH)) is None
    for bad in (b'["r"]', b'["r", true]', b"[1, 2]", b'["r", 1, 2]'):
        with pytest.raises(ValueError, match="neither a span nor a record's pointer"):
            record_pointer(bad)
