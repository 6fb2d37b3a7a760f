"""A step's span as the trace index stores it: built from the operation without a Span, the same bytes."""

from __future__ import annotations

from typing import Any

import orjson

from triggerfish.names import TRACES_NAMESPACE
from triggerfish.observe.spans import Span, span_key
from triggerfish.workflows.spans import operation_span, operation_span_fields, operation_spans, span_writes

TRACEPARENT = "00-" + "4bf92f3577b34da6a3ce929d0e0e4736" + "-" + "00f067aa0ba902b7" + "-01"
RECORD: dict[str, Any] = {"id": "wf-1", "function": "three", "ops": []}


def _op(**changes: object) -> dict[str, object]:
    op: dict[str, object] = {
        "seq": 0,
        "kind": "step",
        "name": "charge",
        "status": "SUCCEEDED",
        "started": 100.0,
        "ended": 100.5,
        "result": {"paid": True},
        "trace": TRACEPARENT,
    }
    op.update(changes)
    return op


def test_the_trace_index_holds_each_span_as_its_span_would_encode() -> None:
    ops = [
        _op(),
        _op(seq=1, status="FAILED", error={"errorType": "CardDeclined", "errorMessage": "no"}, attempts=3),
        _op(seq=2, kind="sleep", name=None, status="TIMED_OUT", started=None, ended=None),
        _op(seq=3, status="RUNNING"),
    ]
    record = {**RECORD, "ops": ops, "function": None}
    written = span_writes(operation_spans(record, [0, 1, 2, 3], 200.0))
    expected = [operation_span(record, op, 200.0) for op in ops[:3]]
    assert all(isinstance(span, Span) for span in expected)
    assert [(put.namespace, put.key, put.value) for put in written] == [
        (TRACES_NAMESPACE, span_key(span), orjson.dumps(span)) for span in expected if span is not None
    ]
    assert operation_span_fields(record, ops[3], 200.0) is None  # not ended: no span yet


def test_a_span_read_back_from_the_index_is_the_operations_span() -> None:
    op = _op(attempts=2)
    record = {**RECORD, "ops": [op]}
    (put,) = span_writes(operation_spans(record, [0], 200.0))
    span = Span.from_dict(orjson.loads(put.value))
    assert span == operation_span(record, op, 200.0)
    assert span.parent_span_id == "00f067aa0ba902b7"
    assert span.attributes["triggerfish.workflow.attempt"] == 2
