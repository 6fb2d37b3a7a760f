"""Spans a handler starts itself with the OpenTelemetry API, joined to its invocation's trace (in the worker).

    from opentelemetry import trace
    tracer = trace.get_tracer(__name__)

    def handler(event, context):
        with tracer.start_as_current_span("price the basket") as span:
            span.set_attribute("basket.items", len(event["items"]))
            ...

While a handler runs in a worker process, the OpenTelemetry context's
current span is the invocation's own (its trace id and span id, those of
`context.traceparent`), so the spans it starts are the invocation's
children in the same trace, through events and messages as the
invocation's are. If the handler's code uses OpenTelemetry and the SDK is
importable in the worker, and nobody set a tracer provider, the worker
sets one that keeps the spans the handler ends; they are sent to the
platform with a platform call (`spans`) when the handler returns, stored in
the trace index beside the invocation's and exported over OTLP when that is
configured (docs/observability.md). A handler that sets its own provider
keeps its own export; its spans still join the trace.

Nothing here runs for a handler that does not import OpenTelemetry: the
check is whether `opentelemetry.trace` is in `sys.modules`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

#: Spans one invocation may send at most (more are dropped, and the count of dropped ones is kept).
MAX_SPANS = 512
#: Attributes of one span kept at most, and the longest text value.
MAX_ATTRIBUTES = 64
MAX_TEXT = 4096


class HandlerTracing:
    """The worker's side: the invocation's span as the current context, and the handler's ended spans."""

    def __init__(self) -> None:
        self._collector: Any = None
        self._tried = False

    def _ready(self) -> bool:
        """Whether the handler's code uses OpenTelemetry (and, once, set up collecting if the SDK is there)."""
        if "opentelemetry.trace" not in sys.modules:
            return False
        if not self._tried:
            self._tried = True
            self._collector = _install_collector()
        return True

    @contextlib.contextmanager
    def joined(self, traceparent: str | None) -> Iterator[None]:
        """Run the handler with the invocation's span (from `traceparent`) as OpenTelemetry's current span."""
        if traceparent is None or not self._ready():
            yield
            return
        from opentelemetry import context as otel_context
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

        parts = traceparent.split("-")
        try:
            span_context = SpanContext(int(parts[1], 16), int(parts[2], 16), is_remote=True, trace_flags=TraceFlags(1))
        except (IndexError, ValueError):
            yield
            return
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(span_context)))
        try:
            yield
        finally:
            otel_context.detach(token)

    def drain(self, *, function: str, request_id: str) -> list[dict[str, Any]]:
        """The spans the handler ended since the last drain, as the trace index keeps them."""
        if self._collector is None:
            return []
        ended, self._collector.ended = self._collector.ended, []
        return [_document(span, function, request_id) for span in ended[:MAX_SPANS]]


def _install_collector() -> Any:
    """A tracer provider keeping ended spans, set as the global one if the SDK is importable and none is set."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    except ImportError:
        return None
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return None  # the handler's code set its own: its spans join the trace and go where it sends them

    class Collector(SpanProcessor):
        def __init__(self) -> None:
            self.ended: list[Any] = []

        def on_end(self, span: Any) -> None:
            if len(self.ended) < MAX_SPANS:
                self.ended.append(span)

    collector = Collector()
    provider = TracerProvider()
    provider.add_span_processor(collector)
    trace.set_tracer_provider(provider)
    return collector


def _document(span: Any, function: str, request_id: str) -> dict[str, Any]:
    context = span.context
    parent = span.parent
    attributes = {}
    for name, value in list((span.attributes or {}).items())[:MAX_ATTRIBUTES]:
        attributes[str(name)] = _value(value)
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": None if parent is None else f"{parent.span_id:016x}",
        "name": str(span.name)[:256],
        "kind": span.kind.name.lower(),
        "start": (span.start_time or 0) / 1e9,
        "end": (span.end_time or span.start_time or 0) / 1e9,
        "status": "error" if span.status.status_code.name == "ERROR" else "ok",
        "attributes": attributes,
        "request_id": request_id,
        "function": function,
    }


def _value(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, tuple | list):
        return [_value(v) for v in value]
    return str(value)[:MAX_TEXT]
