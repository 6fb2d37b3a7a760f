"""The credentials of an HTTP event are redacted from its kept input whatever the case of their header names, and
an event with nothing to redact is kept byte for byte as its worker was sent it."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import orjson

from triggerfish.runtime.inputs import REDACTED, keep_input
from triggerfish.runtime.types import InvokeRequest


def _kept(event: Any) -> dict[str, Any]:
    request = InvokeRequest(request_id="r-1", function="f", event=event, trigger="http")
    kept = keep_input(request)
    assert kept is not None
    assert kept[0] == "r-1"
    document: dict[str, Any] = orjson.loads(kept[1])
    return document


def test_secret_headers_are_redacted_in_any_case() -> None:
    event = {"requestContext": {}, "headers": {"Host": "h", "X-API-Key": "k", "authorization": "Bearer t"}}
    kept = _kept(event)
    assert kept["event"]["headers"] == {"Host": "h", "X-API-Key": REDACTED, "authorization": REDACTED}
    assert kept["redacted"] == ["headers.X-API-Key", "headers.authorization"]
    assert event["headers"]["X-API-Key"] == "k"  # the handler's event is never touched


def test_headers_in_another_mapping_are_redacted_and_kept_as_a_dict() -> None:
    kept = _kept({"requestContext": {}, "headers": MappingProxyType({"host": "h", "Cookie": "s=1"})})
    assert kept["event"]["headers"] == {"host": "h", "Cookie": REDACTED}
    assert kept["redacted"] == ["headers.Cookie"]


def test_an_event_with_nothing_to_redact_is_kept_as_its_worker_was_sent_it() -> None:
    event = {"requestContext": {}, "headers": {"host": "h", "x-order": "42"}, "multiValueHeaders": {"a": ["1"]}}
    sent = orjson.dumps(event)
    request = InvokeRequest(request_id="r-1", function="f", event=event, trigger="http", event_json=sent)
    kept = keep_input(request)
    assert kept is not None
    assert kept[1].endswith(b'"event":' + sent + b"}")
    assert orjson.loads(kept[1])["redacted"] == []
