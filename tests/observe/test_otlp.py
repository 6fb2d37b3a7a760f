"""Spans exported over OTLP/HTTP to a real receiver on a loopback socket (the protobuf the collector reads)."""

from __future__ import annotations

import http.server
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.cluster.test_nodes_in_process import eventually
from tests.observe.test_traces import CALLER, CHAIN_APP
from tests.server.conftest import serve_app
from triggerfish.errors import DeclarationError
from triggerfish.observe.otlp import OtlpExport, configured


class Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: keeps every span of every POST /v1/traces, with its service name."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[tuple[str, Any]] = []
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            service = next(a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name")
            for scope_spans in resource_spans.scope_spans:
                self.server.spans.extend((service, span) for span in scope_spans.spans)
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_a_chain_reaches_the_collector_as_one_trace_with_its_parents(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    export = OtlpExport.from_environment(os.environ)
    assert export is not None
    async for served in serve_app(tmp_path, CHAIN_APP):
        export.watch(served.platform)
        async with httpx.AsyncClient(base_url=served.url) as http:
            placed = await http.post("/orders", json={}, headers={"traceparent": CALLER})
            assert placed.status_code == 200

        async def delivered() -> bool:
            return any(span.name == "deliver" for _, span in receiver.spans)

        await eventually(delivered, 30)
    export.shutdown()

    assert receiver.paths
    assert set(receiver.paths) == {"/v1/traces"}
    spans = {span.name: span for _, span in receiver.spans}
    assert set(spans) == {"place", "publish default", "ship", "send parcels", "deliver"}
    assert {service for service, _ in receiver.spans} == {"chain"}  # the app's name, OTEL_SERVICE_NAME unset
    assert {span.trace_id.hex() for span in spans.values()} == {CALLER.split("-")[1]}
    assert spans["place"].parent_span_id.hex() == CALLER.split("-")[2]
    for parent, child in (("place", "publish default"), ("publish default", "ship"), ("ship", "send parcels"),
                          ("send parcels", "deliver")):  # fmt: skip
        assert spans[child].parent_span_id == spans[parent].span_id, child
    attributes = {a.key: a.value for a in spans["place"].attributes}
    assert attributes["faas.trigger"].string_value == "http"
    assert attributes["faas.coldstart"].bool_value is True
    assert spans["place"].kind == 2  # SPAN_KIND_SERVER
    assert spans["publish default"].kind == 4  # SPAN_KIND_PRODUCER
    assert spans["ship"].kind == 5  # SPAN_KIND_CONSUMER
    assert spans["place"].end_time_unix_nano > spans["place"].start_time_unix_nano


def test_export_is_configured_by_the_standard_variables() -> None:
    assert not configured({})
    assert configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert configured({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not configured({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert not configured({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert OtlpExport.from_environment({}) is None


ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}


def test_a_configured_export_without_the_sdk_or_with_an_unknown_protocol_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(DeclarationError, match="OTEL_EXPORTER_OTLP_PROTOCOL='thrift'"):
        OtlpExport.from_environment(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}
        )
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace.export", None)
    with pytest.raises(DeclarationError, match=r"pip install 'triggerfish\[otel\]'"):
        OtlpExport.from_environment(ENDPOINT)
