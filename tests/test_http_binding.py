"""The CloudEvents HTTP binding: binary, structured and batch modes, and the requests they refuse."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triggerfish.errors import EventTooLargeError, InvalidEventError, InvalidInputError, InvalidJSONError
from triggerfish.events.cloudevent import MAX_EVENT_BYTES, Event
from triggerfish.events.http_binding import (
    BATCH_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
    from_http,
    to_batch,
    to_binary,
    to_structured,
)

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def binary_headers(**extra: str) -> dict[str, str]:
    headers = {"ce-specversion": "1.0", "ce-id": "e-1", "ce-source": "/shop", "ce-type": "order.placed"}
    headers.update(extra)
    return headers


# --- binary mode -----------------------------------------------------------------------------


def test_binary_mode_reads_the_spec_example() -> None:
    headers = {
        "CE-SpecVersion": "1.0",
        "Ce-Type": "com.example.someevent",
        "ce-time": "2018-04-05T03:56:24Z",
        "ce-id": "1234-1234-1234",
        "ce-source": "/mycontext/subcontext",
        "Content-Type": "application/json; charset=utf-8",
        "ce-traceparent": TP,
        "ce-hopcount": "4",
        "ce-team": "billing",
    }
    [event] = from_http(headers, b'{"order": 1}')
    assert event.id == "1234-1234-1234"
    assert event.type == "com.example.someevent"
    assert event.datacontenttype == "application/json; charset=utf-8"
    assert event.data == {"order": 1}
    assert event.traceparent == TP
    assert event.hopcount == 4
    assert event.extensions["team"] == "billing"


def test_binary_mode_percent_decodes_header_values() -> None:
    [event] = from_http(binary_headers(**{"ce-subject": "caf%C3%A9%20%22au%22%20lait%25"}), b"")
    assert event.subject == 'café "au" lait%'
    headers, _ = to_binary(event)
    assert headers["ce-subject"] == "caf%C3%A9%20%22au%22%20lait%25"
    assert all(value.isascii() and " " not in value for value in headers.values())


def test_binary_mode_data_follows_the_content_type() -> None:
    def data_for(content_type: str, body: bytes) -> Any:
        return from_http(binary_headers(**{"content-type": content_type}), body)[0].data

    assert data_for("application/json", b"[1, 2]") == [1, 2]
    assert data_for("application/vnd.order+json", b'{"a": 1}') == {"a": 1}
    assert data_for("text/plain", "héllo".encode()) == "héllo"
    assert data_for("text/csv; charset=latin-1", "é,1".encode("latin-1")) == "é,1"
    assert data_for("image/png", b"\x89PNG\x00") == b"\x89PNG\x00"
    assert from_http(binary_headers(), b"")[0].data is None


@pytest.mark.parametrize(
    "content_type",
    ["application/xml", "text/xml", "application/atom+xml", "application/x-www-form-urlencoded", "application/yaml"],
)
def test_textual_binary_data_reaches_handlers_as_text_not_base64(content_type: str) -> None:
    [event] = from_http(binary_headers(**{"content-type": content_type}), "<a>é</a>".encode())
    document = event.to_dict()
    assert document["data"] == "<a>é</a>"
    assert "data_base64" not in document


def test_headers_can_be_a_list_of_pairs() -> None:
    [event] = from_http(list(binary_headers().items()), b"")
    assert event.id == "e-1"


@pytest.mark.parametrize("missing", ["ce-id", "ce-source", "ce-type", "ce-specversion"])
def test_a_missing_required_header_is_named(missing: str) -> None:
    headers = binary_headers()
    del headers[missing]
    with pytest.raises(InvalidEventError) as info:
        from_http(headers, b"")
    assert info.value.attribute == missing
    assert "required in binary mode" in info.value.rule


BINARY_ERRORS: list[tuple[dict[str, str], bytes, str, str]] = [
    (binary_headers(**{"ce-specversion": "0.3"}), b"", "ce-specversion", "'0.3' is not supported"),
    (binary_headers(**{"ce-source": ""}), b"", "ce-source", "must not be empty"),
    (binary_headers(**{"ce-time": "now"}), b"", "ce-time", "RFC 3339"),
    (binary_headers(**{"ce-Trace_Parent": "x"}), b"", "ce-trace_parent", "lowercase"),
    (binary_headers(**{"ce-hopcount": "-1"}), b"", "ce-hopcount", "whole number"),
    (binary_headers(**{"ce-hopcount": "\uff12"}), b"", "ce-hopcount", "whole number"),
    (binary_headers(**{"ce-traceparent": "00-00"}), b"", "ce-traceparent", "too short"),
    (binary_headers(**{"ce-subject": "%FF%FE"}), b"", "ce-subject", "not valid UTF-8"),
    (binary_headers(**{"ce-subject": "a%0Ab"}), b"", "ce-subject", "U+000A"),
    (binary_headers(**{"ce-datacontenttype": "text/plain"}), b"", "ce-datacontenttype", "Content-Type header"),
    (binary_headers(**{"content-type": "text/plain"}), b"\xff", "body", "not valid utf-8 text at byte offset 0"),
    (binary_headers(**{"content-type": "text/plain; charset=klingon"}), b"x", "content-type", "unknown charset"),
    (binary_headers(**{"content-type": "not a type"}), b"x", "content-type", "not a media type"),
]


@pytest.mark.parametrize(("headers", "body", "attribute", "rule"), BINARY_ERRORS)
def test_binary_mode_errors_name_the_header(headers: dict[str, str], body: bytes, attribute: str, rule: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        from_http(headers, body)
    assert info.value.attribute == attribute
    assert rule in info.value.rule


def test_a_repeated_ce_header_is_refused() -> None:
    with pytest.raises(InvalidEventError, match="appears more than once"):
        from_http([*binary_headers().items(), ("CE-ID", "e-2")], b"")


def test_binary_json_body_is_parsed_strictly() -> None:
    headers = binary_headers(**{"content-type": "application/json"})
    with pytest.raises(InvalidJSONError, match=r"body: duplicate key 'a' at \$"):
        from_http(headers, b'{"a": 1, "a": 2}')
    with pytest.raises(InvalidJSONError, match="body: invalid JSON at line 1 column 2"):
        from_http(headers, b"{oops}")


def test_binary_mode_size_limit() -> None:
    headers = binary_headers(**{"content-type": "application/octet-stream"})
    with pytest.raises(EventTooLargeError):
        from_http(headers, b"x" * (MAX_EVENT_BYTES + 1))
    # base64 grows the data by a third: the limit is on the event's JSON form.
    with pytest.raises(EventTooLargeError):
        from_http(headers, b"x" * (MAX_EVENT_BYTES - 1000))
    assert from_http(headers, b"x" * 1000, max_bytes=2000)[0].data == b"x" * 1000


# --- structured and batch --------------------------------------------------------------------


def test_structured_mode_reads_the_json_format_with_or_without_charset() -> None:
    event = Event.create(type="t", source="/s", data={"a": 1}, hopcount=1, flag=True)
    body = event.to_json()
    for content_type in (STRUCTURED_CONTENT_TYPE, "Application/CloudEvents+JSON; charset=UTF-8"):
        assert from_http({"Content-Type": content_type}, body) == [event]
    headers, written = to_structured(event)
    assert headers["content-type"].startswith(STRUCTURED_CONTENT_TYPE)
    assert from_http(headers, written) == [event]


def test_structured_mode_refuses_other_charsets_and_bad_events() -> None:
    body = orjson.dumps({"specversion": "1.0", "id": "1", "source": "s", "type": "t"})
    with pytest.raises(InvalidEventError, match="charset 'utf-16' is not supported"):
        from_http({"content-type": f"{STRUCTURED_CONTENT_TYPE}; charset=utf-16"}, body)
    with pytest.raises(InvalidEventError) as info:
        from_http({"content-type": STRUCTURED_CONTENT_TYPE}, body.replace(b'"1.0"', b'"0.3"'))
    assert info.value.attribute == "specversion"
    with pytest.raises(EventTooLargeError):
        from_http({"content-type": STRUCTURED_CONTENT_TYPE}, body, max_bytes=10)


def test_batch_mode_round_trip_and_empty_batch() -> None:
    events = [Event.create(type="t", source="/s", data={"n": n}) for n in range(3)]
    headers, body = to_batch(events)
    assert headers["content-type"].startswith(BATCH_CONTENT_TYPE)
    assert from_http(headers, body) == events
    assert from_http({"content-type": BATCH_CONTENT_TYPE}, b"[]") == []


def test_a_batchs_events_are_read_as_structured_mode_reads_each_without_walking_their_data_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The batch was parsed strictly as a whole, so its events' data (62 levels at most under it) already
    # meets every rule `check_value` holds an event's data to: it is not walked a second time.
    deep: Any = "bottom"
    for _ in range(61):  # 61 levels of data, and one more below: 64 with the batch and the event
        deep = [deep]
    items: list[dict[str, Any]] = [
        {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": {"total": 12.5, "n": 2**63}},
        {"specversion": "1.0", "id": "2", "source": "s", "type": "t", "data": [deep], "traceparent": TP},
        {"specversion": "1.0", "id": "3", "source": "s", "type": "t", "data": [None, True, "é"]},
    ]
    structured = [from_http({"content-type": STRUCTURED_CONTENT_TYPE}, orjson.dumps(item)) for item in items]

    def walked(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a batch's event data was walked again")

    monkeypatch.setattr("triggerfish.events.cloudevent.check_value", walked)
    batch = from_http({"content-type": BATCH_CONTENT_TYPE}, orjson.dumps(items))
    assert [[event] for event in batch] == structured
    # One level deeper does not parse as a batch, as before: strict loads holds the whole batch to 64 levels.
    with pytest.raises(InvalidJSONError):
        from_http({"content-type": BATCH_CONTENT_TYPE}, orjson.dumps([{**items[1], "data": [[deep, 1, 2]]}]))


def test_batch_errors_name_the_position() -> None:
    good = {"specversion": "1.0", "id": "1", "source": "s", "type": "t"}
    ctype = {"content-type": BATCH_CONTENT_TYPE}
    with pytest.raises(InvalidEventError) as info:
        from_http(ctype, orjson.dumps([good, good, {**good, "type": 5}]))
    assert info.value.attribute == "batch[2].type"
    with pytest.raises(InvalidEventError, match=r"batch\[1\]"):
        from_http(ctype, orjson.dumps([good, "nope"]))
    with pytest.raises(InvalidEventError, match="must be a JSON array"):
        from_http(ctype, orjson.dumps(good))
    with pytest.raises(EventTooLargeError):
        from_http(ctype, orjson.dumps([{**good, "data": "x" * 300}]), max_bytes=200)
    with pytest.raises(EventTooLargeError):
        from_http(ctype, orjson.dumps([good] * 50), max_batch_bytes=1000)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"content-type": "application/json"}, "Content-Type 'application/json' without ce- headers"),
        ({}, "no Content-Type without ce- headers"),
        ({"content-type": "application/cloudevents+xml"}, "is not a format Triggerfish reads"),
    ],
)
def test_wrong_content_type_names_what_is_accepted(headers: dict[str, str], expected: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        from_http(headers, b"{}")
    assert info.value.attribute == "content-type"
    assert expected in info.value.rule
    assert STRUCTURED_CONTENT_TYPE in info.value.rule
    assert BATCH_CONTENT_TYPE in info.value.rule


def test_to_binary_refuses_data_its_content_type_cannot_carry() -> None:
    event = Event(id="1", source="s", type="t", datacontenttype="text/plain", data={"a": 1})
    with pytest.raises(InvalidEventError, match="cannot carry"):
        to_binary(event)


# --- round-trip properties -------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Cn")), max_size=12)
names = st.from_regex(re.compile(r"x[a-z0-9]{0,19}", re.ASCII), fullmatch=True)
json_data = st.recursive(
    st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def binary_safe_events(draw: st.DrawFn) -> Event:
    """Events whose every attribute survives headers: extensions as text, data matching its content type."""
    kind = draw(st.sampled_from(["json", "text", "bytes", "none"]))
    data: Any = None
    content_type = None
    if kind == "json":
        data, content_type = draw(json_data), draw(st.sampled_from(["application/json", "application/x+json"]))
    elif kind == "text":
        data, content_type = draw(text.filter(bool)), "text/plain; charset=utf-8"
    elif kind == "bytes":
        data, content_type = draw(st.binary(min_size=1, max_size=16)), "application/octet-stream"
    extensions: dict[str, Any] = draw(st.dictionaries(names, text, max_size=3))
    if draw(st.booleans()):
        extensions.update(hopcount=draw(st.integers(0, 50)), traceparent=TP)
    return Event.create(
        type=draw(text.filter(bool)),
        source=draw(st.sampled_from(["/shop", "urn:a:b", "https://x.example/p?q=1#f", "ünï%"])),
        data=data,
        datacontenttype=content_type,
        subject=draw(st.none() | text.filter(bool)),
        **extensions,
    )


@settings(max_examples=150)
@given(binary_safe_events())
def test_round_trip_through_binary_mode(event: Event) -> None:
    headers, body = to_binary(event)
    assert from_http(headers, body) == [event]


@settings(max_examples=100)
@given(binary_safe_events(), st.booleans())
def test_round_trip_through_structured_and_batch_modes(event: Event, flag: bool) -> None:
    typed = event.with_extensions(flag=flag, count=7)
    assert from_http(*to_structured(typed)) == [typed]
    assert from_http(*to_batch([typed, event])) == [typed, event]


# --- hostile input never escapes as anything but a precise input error --------------------------

header_names = st.sampled_from(
    [
        *("ce-id", "ce-source", "ce-type", "ce-specversion", "ce-time", "ce-subject", "ce-hopcount"),
        *("ce-traceparent", "ce-dataschema", "ce-x", "ce-Bad_Name", "content-type", "ce-datacontenttype", "x-other"),
    ]
)
header_values = st.text(max_size=30) | st.sampled_from(
    ["1.0", "/s", "%", "%zz", "%C3", "application/json", "text/plain"]
)
content_types = st.sampled_from(
    [STRUCTURED_CONTENT_TYPE, BATCH_CONTENT_TYPE, "application/json", "text/plain; charset=utf-16", "image/png", ""]
)


@settings(max_examples=300)
@given(st.lists(st.tuples(header_names, header_values), max_size=10), content_types, st.binary(max_size=200))
def test_arbitrary_requests_fail_only_with_input_errors(
    headers: list[tuple[str, str]], content_type: str, body: bytes
) -> None:
    try:
        events = from_http([("content-type", content_type), *headers] if content_type else headers, body)
    except InvalidInputError:
        return
    for event in events:  # whatever was accepted must be a valid event that writes back out
        assert Event.from_json(event.to_json()) == event
