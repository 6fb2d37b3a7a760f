"""Reading traces back: a trace's spans from the trace index, recent traces from the invocation records, and the
waterfall `triggerfish traces` draws (pure, apart from the reads).

An invocation attempt's span is built here from its record, which is found by the trace in the event log (its row's
second key is `t/<trace id>/<span id>`, triggerfish.runtime.records). The trace index (a key-value namespace) holds
the other spans as their JSON (a handler's publish or send, a handler's own span, a workflow step), and what
earlier versions wrote for attempts: the span's JSON, or a pointer to the record's key-value copy.

    spans = await trace_spans(store, "4bf92f3577b34da6a3ce929d0e0e4736")
    print("\\n".join(waterfall(spans)))
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from triggerfish.errors import InvalidInputError
from triggerfish.names import INVOCATIONS_NAMESPACE, RECORD_STREAM_PREFIX, TRACES_NAMESPACE
from triggerfish.observe.spans import Span, invocation_span, record_pointer
from triggerfish.runtime.records import InvocationRecord, decode_record, record_key
from triggerfish.store import Store

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
#: Spans of one trace read at most (a trace is one chain of work; a fan-out to thousands is cut here).
MAX_SPANS = 10_000
#: Records read at once for a trace's pointers.
_READS_AT_ONCE = 64


def check_trace_id(value: object) -> str:
    """A trace id: 32 lowercase hex digits, as W3C traceparents carry it (raises InvalidInputError)."""
    if not isinstance(value, str) or _TRACE_ID.fullmatch(value) is None or value == "0" * 32:
        raise InvalidInputError(f"a trace id is 32 lowercase hex digits, not all zeros, not {value!r}")
    return value


async def trace_spans(store: Store, trace_id: str) -> list[Span]:
    """Every span of the trace still kept, in the order they started (parents before children at equal times)."""
    prefix = f"t/{check_trace_id(trace_id)}/"
    found, logged = await asyncio.gather(
        store.kv.scan(TRACES_NAMESPACE, prefix=prefix, limit=MAX_SPANS), store.log.find(prefix, limit=MAX_SPANS)
    )
    spans: list[Span] = []
    pointers: list[tuple[str, int]] = []
    for entry in found:
        pointer = record_pointer(entry.value)
        if pointer is None:
            spans.append(Span.from_dict(orjson.loads(entry.value)))
        else:
            pointers.append(pointer)
    for _, row in logged:
        span = invocation_span(decode_record(row.data)) if row.stream.startswith(RECORD_STREAM_PREFIX) else None
        if span is not None:
            spans.append(span)
    spans.extend(await _pointed_spans(store, pointers))
    return ordered(spans)


async def _pointed_spans(store: Store, pointers: list[tuple[str, int]]) -> list[Span]:
    """The spans of the records that earlier versions' pointers name (their key-value copies). A record that is
    gone is left out, as its span's entry would be: the pointer and the record were written in one write with one
    ttl, so one outlives the other only for the moment between the expiry sweep's deletes (or a pointer read in the
    sweep's window); the trace then shows what is still kept, which is what it promises."""
    spans: list[Span] = []
    for first in range(0, len(pointers), _READS_AT_ONCE):
        chunk = pointers[first : first + _READS_AT_ONCE]
        found = await asyncio.gather(
            *(store.kv.get(INVOCATIONS_NAMESPACE, record_key(request_id, attempt)) for request_id, attempt in chunk)
        )
        for kept in found:
            span = None if kept is None else invocation_span(decode_record(kept.value))
            if span is not None:
                spans.append(span)
    return spans


def ordered(spans: Sequence[Span]) -> list[Span]:
    """Depth first from the roots, children by start time: the order a waterfall is read in."""
    known = {span.span_id for span in spans}
    children: dict[str | None, list[Span]] = {}
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in known else None
        children.setdefault(parent, []).append(span)
    for siblings in children.values():
        siblings.sort(key=lambda s: (s.start, s.end, s.span_id))
    out: list[Span] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        span = stack.pop()
        out.append(span)
        stack.extend(reversed(children.get(span.span_id, [])))
    return out


def depths(spans: Sequence[Span]) -> dict[str, int]:
    """How deep each span sits under its trace's roots (0 for a root, or a span whose parent is not kept)."""
    by_id = {span.span_id: span for span in spans}
    found: dict[str, int] = {}
    for span in spans:
        depth, parent, seen = 0, span.parent_span_id, {span.span_id}
        while parent in by_id and parent not in seen:
            seen.add(parent)
            depth += 1
            parent = by_id[parent].parent_span_id
        found[span.span_id] = depth
    return found


def waterfall(spans: Sequence[Span], *, width: int = 40) -> list[str]:
    """One line per span: indented name, a bar placed on the trace's time line, the duration, status, invocation."""
    if not spans:
        return []
    start = min(span.start for span in spans)
    total = max(max(span.end for span in spans) - start, 1e-6)
    level = depths(spans)
    names = [f"{'  ' * level[span.span_id]}{span.name} ({span.kind})" for span in spans]
    name_width = max(len(name) for name in names)
    lines = []
    for span, name in zip(spans, names, strict=True):
        left = int((span.start - start) / total * width)
        length = max(1, round((span.end - span.start) / total * width))
        bar = " " * left + "█" * min(length, width - left if left < width else 1)
        mark = "" if span.status == "ok" else "  ERROR"
        who = f"  {span.request_id}" if span.request_id and span.kind != "producer" else ""
        lines.append(f"{name:<{name_width}}  |{bar:<{width}}|  {(span.end - span.start) * 1000:9.2f} ms{mark}{who}")
    return lines


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """A trace as the records show it: where it started, how long it ran, what it touched."""

    trace_id: str
    started_at: float
    ended_at: float
    invocations: int
    errors: int
    functions: list[str]
    root: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_ms": (self.ended_at - self.started_at) * 1000,
            "invocations": self.invocations,
            "errors": self.errors,
            "functions": self.functions,
            "root": self.root,
        }


def summaries(records: Sequence[InvocationRecord]) -> list[TraceSummary]:
    """The traces `records` belong to, newest first."""
    by_trace: dict[str, list[InvocationRecord]] = {}
    for record in records:
        if record.trace_id is not None:
            by_trace.setdefault(record.trace_id, []).append(record)
    found = []
    for trace_id, members in by_trace.items():
        members.sort(key=lambda r: r.started_at)
        found.append(
            TraceSummary(
                trace_id=trace_id,
                started_at=members[0].started_at,
                ended_at=max(r.ended_at for r in members),
                invocations=len(members),
                errors=sum(1 for r in members if r.status != "succeeded"),
                functions=sorted({r.function for r in members}),
                root=members[0].function,
            )
        )
    found.sort(key=lambda t: t.started_at, reverse=True)
    return found
