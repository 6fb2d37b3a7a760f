"""An attempt's entry in the trace index: under its span's key, a pointer to the record the span is built from."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from tests.sample_records import invocation_span_pointer, sample_record
from triggerfish.observe.spans import invocation_span, record_pointer, span_key
from triggerfish.runtime.records import InvocationRecord

BASE = sample_record(
    request_id="5f0c1f6e-6f8e-4c52-9d7e-0b6f1f6b2a11",
    function="hello",
    version="3",
    trigger="http",
    http_route="GET /hello/{name}",
    http_status=200,
)

RECORDS = {
    "an HTTP route's": BASE,
    "a child span's, cold": replace(BASE, parent_span_id="b7ad6b7169203331", cold_start=True, init_duration_ms=4.5),
    "a failed retry's": replace(
        BASE, attempt=2, status="failed", http_status=500, error={"errorType": "KeyError", "errorMessage": "'x'"}
    ),
    "an error without a type": replace(BASE, status="timed_out", error={"errorMessage": "late"}),
    "a queue batch's, with links": replace(
        BASE,
        trigger="queue",
        http_route=None,
        http_status=None,
        version=None,
        links=("00-0af7651916cd43dd8448eb211c80319c-b9c7c989f97918e1-01",),
        consumed={"messaging.system": "triggerfish", "messaging.destination.name": "parcels"},
    ),
    "a direct call's": replace(BASE, trigger="direct", http_route=None, http_status=None),
}


@pytest.mark.parametrize("record", RECORDS.values(), ids=RECORDS.keys())
def test_the_entry_is_the_spans_key_and_names_the_record(record: InvocationRecord) -> None:
    span = invocation_span(record)
    entry = invocation_span_pointer(record)
    assert span is not None
    assert entry is not None
    key, value = entry
    assert key == span_key(span)
    assert record_pointer(value) == (record.request_id, record.attempt)
    assert len(value) < len(orjson.dumps(span)) / 8  # what the index held before: the span's JSON


def test_a_record_without_a_trace_has_no_entry() -> None:
    assert invocation_span_pointer(replace(BASE, trace_id=None)) is None
    assert invocation_span_pointer(replace(BASE, span_id=None)) is None
