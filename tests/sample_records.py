"""An invocation record with plausible values, for tests that store, point to or read records back."""

from __future__ import annotations

from typing import Any

import orjson

from triggerfish.observe.spans import trace_key
from triggerfish.runtime.records import InvocationRecord

#: A trace id and span id in W3C trace context's own example.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


def sample_record(**fields: Any) -> InvocationRecord:
    """A succeeded first attempt of `place`, 1.3 ms long, traced; `fields` replace any of its values."""
    values: dict[str, Any] = {
        "request_id": "0193a1b2c3d4-sample",
        "function": "place",
        "version": "1",
        "trigger": "direct",
        "attempt": 1,
        "status": "succeeded",
        "started_at": 1_765_000_000.25,
        "ended_at": 1_765_000_000.2513,
        "duration_ms": 1.3,
        "billed_duration_ms": 2,
        "memory_mb": 128,
        "gb_seconds": 0.00025,
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
    }
    values.update(fields)
    return InvocationRecord(**values)


def invocation_span_pointer(record: InvocationRecord) -> tuple[str, bytes] | None:
    """An attempt's trace index entry as the versions between rec13 and rec14 wrote it, for tests that read that
    form back: its key, and a pointer to the record's key-value copy (its request id and attempt, which
    `triggerfish.observe.spans.record_pointer` reads); None for a record that carries no trace."""
    trace_id, span_id = record.trace_id, record.span_id
    if trace_id is None or span_id is None:
        return None
    return trace_key(trace_id, span_id), orjson.dumps((record.request_id, record.attempt))
