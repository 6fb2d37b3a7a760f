"""Exporting spans to an OpenTelemetry collector (Jaeger, Tempo, Honeycomb, any OTLP endpoint), when configured.

    export = OtlpExport.from_environment(os.environ)   # None unless an OTLP endpoint is configured
    if export is not None:
        export.watch(platform)                          # its invocation and producer spans from now on
    ...
    export.shutdown()                                   # what is queued goes out

Configured as every OpenTelemetry SDK is, by the standard variables:
`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` turn it
on (or `OTEL_TRACES_EXPORTER=otlp`, to the SDK's default endpoint);
`OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true` keep it off. The
exporter itself reads the rest (`OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`,
`_COMPRESSION`, certificates), and the batch processor `OTEL_BSP_*`. The
protocol is `http/protobuf` (the SDK's default); `grpc` when
`OTEL_EXPORTER_OTLP_PROTOCOL` (or `_TRACES_PROTOCOL`) says so and its
exporter is installed. `service.name` is `OTEL_SERVICE_NAME`, else the app's
name; `OTEL_RESOURCE_ATTRIBUTES` adds to it.

The SDK is an optional extra (`pip install 'triggerfish[otel]'`): without it,
a configured export is an error that names the extra, never a silent no-op.
The spans are the ones the platform keeps anyway (triggerfish.observe.spans),
with their ids: a collector shows the same trace `triggerfish traces` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from triggerfish.errors import DeclarationError
from triggerfish.observe.spans import Span, invocation_span
from triggerfish.runtime.records import InvocationRecord

if TYPE_CHECKING:
    from triggerfish.server.platform import Platform

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_KINDS = {"server": "SERVER", "consumer": "CONSUMER", "producer": "PRODUCER", "internal": "INTERNAL"}
_SCOPE = "triggerfish"


def configured(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for spans to be exported over OTLP."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()}
    if "none" in exporters:
        return False
    return "otlp" in exporters or any(environ.get(name, "").strip() for name in _ENDPOINTS)


class OtlpExport:
    """Hands spans to the OpenTelemetry SDK's batch processor and OTLP exporter (a thread of the SDK's sends them)."""

    def __init__(self, processor: Any, *, service_name: str | None = None) -> None:
        self.processor = processor
        self.service_name = service_name
        self._resources: dict[str, Any] = {}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> OtlpExport | None:
        """The export the environment configures, or None. Raises DeclarationError when the SDK (or the gRPC
        exporter asked for) is not installed, or the protocol is unknown."""
        if not configured(environ):
            return None
        try:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            raise DeclarationError(
                "OTLP export is configured (OTEL_* variables) but the OpenTelemetry SDK is not installed:"
                " pip install 'triggerfish[otel]', or unset OTEL_EXPORTER_OTLP_ENDPOINT"
            ) from None
        protocol = (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
        ).strip() or "http/protobuf"
        exporter: Any
        if protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        elif protocol == "grpc":
            try:
                from opentelemetry.exporter.otlp.proto.grpc import trace_exporter  # type: ignore[import-not-found]
            except ImportError:
                raise DeclarationError(
                    "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter:"
                    " pip install opentelemetry-exporter-otlp-proto-grpc, or use http/protobuf"
                ) from None
            exporter = trace_exporter.OTLPSpanExporter()
        else:
            raise DeclarationError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: Triggerfish exports with http/protobuf or grpc"
            )
        service = environ.get("OTEL_SERVICE_NAME", "").strip() or None
        return cls(BatchSpanProcessor(exporter), service_name=service)

    def watch(self, platform: Platform) -> None:
        """Export the spans of `platform` from now on: invocation attempts, and handlers' publishes and sends."""

        def record(found: InvocationRecord) -> None:
            span = invocation_span(found)
            if span is not None:
                self.export(platform.secrets_name, span)

        def produced(span: Span) -> None:
            self.export(platform.secrets_name, span)

        platform.record_listeners.append(record)
        platform.span_listeners.append(produced)

    def export(self, app: str, span: Span) -> None:
        """Queue one span of `app` for export (the SDK drops what its queue cannot hold, and says so)."""
        self.processor.on_end(self.readable(app, span))

    def readable(self, app: str, span: Span) -> Any:
        """`span` as the SDK's ReadableSpan, with its own ids and times."""
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

        trace = int(span.trace_id, 16)
        context = SpanContext(trace, int(span.span_id, 16), is_remote=False, trace_flags=TraceFlags(1))
        parent = (
            None
            if span.parent_span_id is None
            else SpanContext(trace, int(span.parent_span_id, 16), is_remote=True, trace_flags=TraceFlags(1))
        )
        return ReadableSpan(
            name=span.name,
            context=context,
            parent=parent,
            resource=self._resource(app),
            attributes=span.attributes,
            kind=SpanKind[_KINDS.get(span.kind, "INTERNAL")],
            status=Status(StatusCode.OK if span.status == "ok" else StatusCode.ERROR),
            start_time=int(span.start * 1e9),
            end_time=int(span.end * 1e9),
            instrumentation_scope=InstrumentationScope(_SCOPE),
            links=[
                Link(SpanContext(int(link["trace_id"], 16), int(link["span_id"], 16), True, TraceFlags(1)))
                for link in span.links
            ],
        )

    def _resource(self, app: str) -> Any:
        resource = self._resources.get(app)
        if resource is None:
            from opentelemetry.sdk.resources import Resource

            # Resource.create adds OTEL_RESOURCE_ATTRIBUTES and the SDK's own; service.name given here wins.
            resource = self._resources[app] = Resource.create({"service.name": self.service_name or app})
        return resource

    def shutdown(self) -> None:
        """Send what is queued and stop the SDK's thread."""
        self.processor.shutdown()
