"""A workflow's operations as trace spans (pure): each step, invoke, wait or callback that ended is a span in the
trace of the run that carried it out, so `triggerfish traces` shows a workflow's steps under its runs.

A span's parent is the invocation span of the run that began the operation (its traceparent, kept on the
operation as `trace`); its id is derived from the workflow, the operation's position and its attempt, so a
span written again (a checkpoint retried) replaces itself. The spans are written in the same atomic write
as the checkpoint or completion that ends the operation, in the trace index (`triggerfish.traces`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from triggerfish.events import tracecontext
from triggerfish.names import TRACES_NAMESPACE
from triggerfish.observe.spans import Span, ids_of, trace_key
from triggerfish.runtime.records import DEFAULT_RETENTION
from triggerfish.store.atomic import Put
from triggerfish.workflows.history import CANCELLED, FAILED, RETRYING, SUCCEEDED, TIMED_OUT

#: The statuses an operation's span is written at: it ended, or (RETRYING) one of its attempts did.
_ENDED = frozenset({SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, RETRYING})


def operation_span(record: Mapping[str, Any], op: Mapping[str, Any], now: float) -> Span | None:
    """The span of `op` once it ended (None before, or when no run's traceparent is known)."""
    fields = operation_span_fields(record, op, now)
    return None if fields is None else Span(**fields)


def operation_span_fields(record: Mapping[str, Any], op: Mapping[str, Any], now: float) -> dict[str, Any] | None:
    """The fields of `op`'s Span, in the order Span declares them, so that `orjson.dumps` of these is the span's
    JSON byte for byte (None: no span yet).

    Every step's checkpoint writes one on the platform's event loop; building the frozen Span only to encode it
    cost about as much again as the encoding, so a Span is made only for the listeners that take one."""
    traceparent = op.get("trace")
    status = op.get("status")
    if status not in _ENDED or not tracecontext.is_valid(traceparent):
        return None
    trace_id, parent = ids_of(str(traceparent))
    attempt = int(op.get("attempts") or 1)
    seq = op["seq"]
    workflow_id = record["id"]
    started = float(op.get("started") or now)
    attributes: dict[str, Any] = {
        "triggerfish.workflow.id": workflow_id,
        "triggerfish.workflow.operation": int(seq) + 1,
        "triggerfish.workflow.kind": op.get("kind"),
        "triggerfish.workflow.status": status,
        "triggerfish.workflow.attempt": attempt,
    }
    error = op.get("error")
    if isinstance(error, Mapping) and status != SUCCEEDED:
        attributes["error.type"] = str(error.get("errorType") or "Error")
    return {
        "trace_id": trace_id,
        "span_id": hashlib.sha256(f"{workflow_id}/{seq}/{attempt}".encode()).hexdigest()[:16],
        "parent_span_id": parent,
        "name": f"{op.get('kind')} {op.get('name')}",
        "kind": "internal",
        "start": started,
        "end": max(started, float(op.get("ended") or now)),
        "status": "ok" if status == SUCCEEDED else "error",
        "attributes": attributes,
        "request_id": workflow_id,
        "function": record.get("function"),
        "links": [],
    }


def operation_spans(record: Mapping[str, Any], seqs: list[int], now: float) -> list[dict[str, Any]]:
    """The fields of the spans of the operations at `seqs` that ended (`operation_span_fields`)."""
    ops = record["ops"]
    found = (operation_span_fields(record, ops[seq], now) for seq in seqs if 0 <= seq < len(ops))
    return [fields for fields in found if fields is not None]


def span_writes(spans: list[dict[str, Any]]) -> list[Put]:
    """The trace-index writes of the spans `operation_spans` gave: what `span_key` and `orjson.dumps` of each Span
    give."""
    return [
        Put(
            TRACES_NAMESPACE,
            trace_key(fields["trace_id"], fields["span_id"]),
            orjson.dumps(fields),
            ttl=DEFAULT_RETENTION,
        )
        for fields in spans
    ]
