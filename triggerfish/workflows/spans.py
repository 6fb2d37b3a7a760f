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
from triggerfish.observe.spans import Span, ids_of, span_key
from triggerfish.runtime.records import DEFAULT_RETENTION
from triggerfish.store.atomic import Put
from triggerfish.workflows.history import CANCELLED, FAILED, RETRYING, SUCCEEDED, TIMED_OUT

#: The statuses an operation's span is written at: it ended, or (RETRYING) one of its attempts did.
_ENDED = frozenset({SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, RETRYING})


def operation_span(record: Mapping[str, Any], op: Mapping[str, Any], now: float) -> Span | None:
    """The span of `op` once it ended (None before, or when no run's traceparent is known)."""
    traceparent = op.get("trace")
    if op.get("status") not in _ENDED or not tracecontext.is_valid(traceparent):
        return None
    trace_id, parent = ids_of(str(traceparent))
    attempt = int(op.get("attempts") or 1)
    seed = f"{record['id']}/{op['seq']}/{attempt}".encode()
    started = float(op.get("started") or now)
    attributes: dict[str, Any] = {
        "triggerfish.workflow.id": record["id"],
        "triggerfish.workflow.operation": int(op["seq"]) + 1,
        "triggerfish.workflow.kind": op.get("kind"),
        "triggerfish.workflow.status": op.get("status"),
        "triggerfish.workflow.attempt": attempt,
    }
    error = op.get("error")
    if isinstance(error, Mapping) and op.get("status") != SUCCEEDED:
        attributes["error.type"] = str(error.get("errorType") or "Error")
    return Span(
        trace_id=trace_id,
        span_id=hashlib.sha256(seed).hexdigest()[:16],
        parent_span_id=parent,
        name=f"{op.get('kind')} {op.get('name')}",
        kind="internal",
        start=started,
        end=max(started, float(op.get("ended") or now)),
        status="ok" if op.get("status") == SUCCEEDED else "error",
        attributes=attributes,
        request_id=record["id"],
        function=record.get("function"),
    )


def operation_spans(record: Mapping[str, Any], seqs: list[int], now: float) -> list[Span]:
    """The spans of the operations at `seqs` that ended."""
    ops = record["ops"]
    found = (operation_span(record, ops[seq], now) for seq in seqs if 0 <= seq < len(ops))
    return [span for span in found if span is not None]


def span_writes(spans: list[Span]) -> list[Put]:
    """The trace-index writes of `spans`."""
    return [Put(TRACES_NAMESPACE, span_key(span), orjson.dumps(span), ttl=DEFAULT_RETENTION) for span in spans]
