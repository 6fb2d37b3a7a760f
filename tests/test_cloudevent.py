"""The CloudEvents 1.0 envelope: building, reading, writing, and every rule it enforces."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import pickle
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triggerfish._json import loads
from triggerfish.errors import EventTooLargeError, InvalidEventError, InvalidInputError, InvalidJSONError
from triggerfish.events.cloudevent import MAX_EVENT_BYTES, Event

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def minimal(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"specversion": "1.0", "id": "e-1", "source": "/shop", "type": "order.placed"}
    document.update(changes)
    return document


# --- building and reading --------------------------------------------------------------------


def test_create_fills_id_time_and_content_type() -> None:
    before = datetime.datetime.now(datetime.UTC)
    event = Event.create(type="order.placed", source="/shop", data={"order": 1})
    assert uuid.UUID(event.id).version == 4
    assert event.time is not None
    assert event.time.endswith("Z")
    assert event.timestamp is not None
    assert before - datetime.timedelta(seconds=1) <= event.timestamp <= datetime.datetime.now(datetime.UTC)
    assert event.datacontenttype == "application/json"
    assert event.specversion == "1.0"
    assert Event.create(type="t", source="s").datacontenttype is None
    assert Event.create(type="t", source="s", data=b"\x00").datacontenttype == "application/octet-stream"


def test_create_takes_explicit_attributes_and_extensions() -> None:
    moment = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    event = Event.create(
        type="t", source="s", id="fixed", time=moment, subject="x", dataschema="https://ex/s.json", traceparent=TP
    )
    assert event.id == "fixed"
    assert event.time == "2024-05-01T10:00:00.000000Z"
    assert event.traceparent == TP
    assert event.hopcount is None
    with pytest.raises(InvalidEventError, match="timezone-aware"):
        Event.create(type="t", source="s", time=datetime.datetime(2024, 1, 1))


def test_json_round_trip_from_text_bytes_and_dict() -> None:
    event = Event.create(type="t", source="s", data={"a": [1, 2.5, None]}, subject="sub", hopcount=2, flag=True)
    body = event.to_json()
    assert Event.from_json(body) == event
    assert Event.from_json(body.decode()) == event
    assert Event.from_json(bytearray(body)) == event
    assert Event.from_json(event.to_dict()) == event
    assert loads(body)["hopcount"] == 2


def test_binary_data_travels_as_data_base64() -> None:
    event = Event.create(type="t", source="s", data=b"\x00\xffbinary")
    document = event.to_dict()
    assert "data" not in document
    assert document["data_base64"] == "AP9iaW5hcnk="
    assert Event.from_json(event.to_json()).data == b"\x00\xffbinary"


def test_null_attributes_mean_absent() -> None:
    event = Event.from_json(minimal(subject=None, time=None, data=None, trace=None))
    assert event.subject is None
    assert event.time is None
    assert event.data is None
    assert "trace" not in event.extensions
    assert event.to_dict() == minimal()


def test_events_are_immutable() -> None:
    event = Event.create(type="t", source="s", hopcount=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.extensions["hopcount"] = 5  # type: ignore[index]


def test_events_survive_pickle_and_copy_for_process_boundaries() -> None:
    event = Event.create(type="t", source="s", data={"a": [1]}, hopcount=2, traceparent=TP)
    assert pickle.loads(pickle.dumps(event)) == event
    assert copy.deepcopy(event) == event
    assert dataclasses.replace(event, subject="x").hopcount == 2


def test_with_extensions_returns_a_modified_copy() -> None:
    event = Event.create(type="t", source="s", hopcount=1, team="a")
    changed = event.with_extensions(hopcount=2, traceparent=TP, team=None)
    assert changed.hopcount == 2
    assert changed.traceparent == TP
    assert "team" not in changed.extensions
    assert event.hopcount == 1
    assert event.extensions["team"] == "a"
    assert changed.id == event.id
    assert changed.data == event.data
    with pytest.raises(InvalidEventError, match="lowercase"):
        event.with_extensions(**{"Bad-Name": "x"})


def test_timestamp_keeps_offsets_and_fractions() -> None:
    event = Event.from_json(minimal(time="2024-02-29t23:59:59.123456789+05:30"))
    assert event.time == "2024-02-29t23:59:59.123456789+05:30"  # the text is kept verbatim
    assert event.timestamp == datetime.datetime(
        2024, 2, 29, 23, 59, 59, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    )


# --- size ------------------------------------------------------------------------------------


def test_size_limit_applies_to_every_way_in() -> None:
    big = {"blob": "x" * MAX_EVENT_BYTES}
    with pytest.raises(EventTooLargeError) as info:
        Event.create(type="t", source="s", data=big)
    assert info.value.limit == MAX_EVENT_BYTES
    assert info.value.size > MAX_EVENT_BYTES
    assert "262144" in str(info.value)
    text = b'{"specversion":"1.0","id":"1","source":"s","type":"t","data":"' + b"x" * MAX_EVENT_BYTES + b'"}'
    with pytest.raises(EventTooLargeError):
        Event.from_json(text)
    with pytest.raises(EventTooLargeError):
        Event.from_json(text.decode())
    with pytest.raises(EventTooLargeError):
        Event.from_json(minimal(data=big))


def test_size_limit_is_exact_and_configurable() -> None:
    event = Event.create(type="t", source="s", data="x" * 100)
    size = len(event.to_json())
    assert Event.from_json(event.to_json(), max_bytes=size) == event
    with pytest.raises(EventTooLargeError):
        Event.from_json(event.to_json(), max_bytes=size - 1)
    with pytest.raises(EventTooLargeError):
        event.to_json(max_bytes=size - 1)
    with pytest.raises(EventTooLargeError):
        Event.create(type="t", source="s", data="x" * 100, max_bytes=50)


# --- the rules -------------------------------------------------------------------------------

RULES: list[tuple[Any, str, str]] = [
    ([minimal()], "event", "must be a JSON object, not an array"),
    ({"id": "1", "source": "s", "type": "t"}, "specversion", "is required"),
    (minimal(specversion="0.3"), "specversion", "'0.3' is not supported"),
    (minimal(specversion=1.0), "specversion", "1.0 is not supported"),
    ({"specversion": "1.0", "source": "s", "type": "t"}, "id", "is required"),
    (minimal(id=7), "id", "must be a string, not a number"),
    (minimal(id=""), "id", "must not be empty"),
    (minimal(source=""), "source", "must not be empty"),
    (minimal(source="has space"), "source", "is not a URI reference"),
    (minimal(source=["/a"]), "source", "must be a string, not an array"),
    (minimal(type={"a": 1}), "type", "must be a string, not an object"),
    (minimal(type="ok\nnext"), "type", "U+000A"),
    (minimal(subject=""), "subject", "must not be empty"),
    (minimal(subject="bell\x07"), "subject", "control characters"),
    (minimal(subject="\ufffe"), "subject", "U+FFFE"),
    (minimal(time="yesterday"), "time", "not an RFC 3339 timestamp"),
    (minimal(time="2024-05-01 12:00:00Z"), "time", "not an RFC 3339 timestamp"),
    (minimal(time="2024-05-01T12:00:00"), "time", "not an RFC 3339 timestamp"),
    (minimal(time="2024-02-30T12:00:00Z"), "time", "not a valid date"),
    (minimal(time="2024-01-01T25:00:00Z"), "time", "not a valid date"),
    (minimal(time="2024-01-01T00:00:00+24:00"), "time", "not a valid date"),
    (minimal(time=1714564800), "time", "must be an RFC 3339 string"),
    (minimal(datacontenttype="json"), "datacontenttype", "not a media type"),
    (minimal(datacontenttype="text/plain; charset"), "datacontenttype", "not a media type"),
    (minimal(dataschema="schemas/order.json"), "dataschema", "not an absolute URI"),
    (minimal(dataschema=""), "dataschema", "must not be empty"),
    (minimal(data={"a": 1}, data_base64="AAAA"), "data_base64", "cannot be present together"),
    (minimal(data_base64="not base64!"), "data_base64", "not valid base64"),
    (minimal(data_base64="AAA"), "data_base64", "not valid base64"),
    (minimal(data_base64=12), "data_base64", "must be a base64 string"),
    (minimal(**{"Trace-Parent": TP}), "Trace-Parent", "lowercase letters a-z and digits"),
    (minimal(traceParent=TP), "traceParent", "lowercase letters a-z and digits"),
    (minimal(**{"a" * 21: "x"}), "a" * 21, "1-20 characters"),
    (minimal(**{"": "x"}), "", "1-20 characters"),
    (minimal(ratio=0.5), "ratio", "must be a string, boolean or integer, not a number"),
    (minimal(tags=["a"]), "tags", "not an array"),
    (minimal(meta={"a": 1}), "meta", "not an object"),
    (minimal(big=2**31), "big", "32-bit"),
    (minimal(small=-(2**31) - 1), "small", "32-bit"),
    (minimal(hopcount=-1), "hopcount", "integer >= 0"),
    (minimal(hopcount="3"), "hopcount", "integer >= 0"),
    (minimal(hopcount=True), "hopcount", "integer >= 0"),
    (minimal(traceparent="00-abc"), "traceparent", "too short"),
    (minimal(traceparent=TP.replace("00f0", "00F0")), "traceparent", "malformed"),
]


@pytest.mark.parametrize(("document", "attribute", "rule"), RULES)
def test_each_broken_rule_names_the_attribute(document: Any, attribute: str, rule: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        Event.from_json(document if isinstance(document, dict) else __import__("orjson").dumps(document))
    assert info.value.attribute == attribute
    assert rule in info.value.rule


@pytest.mark.parametrize("name", ["id", "source", "type", "specversion", "time", "data", "subject", "dataschema"])
def test_context_attribute_names_are_reserved_for_extensions(name: str) -> None:
    with pytest.raises(InvalidEventError, match="is a CloudEvents attribute name"):
        Event(id="1", source="s", type="t", extensions={name: "x"})


def test_extension_limits_are_inclusive() -> None:
    event = Event.from_json(minimal(**{"a" * 20: "x", "big": 2**31 - 1, "small": -(2**31), "on": False}))
    assert event.extensions == {"a" * 20: "x", "big": 2**31 - 1, "small": -(2**31), "on": False}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"specversion":"1.0","id":"1","id":"2","source":"s","type":"t"}', "event: duplicate key 'id' at $"),
        (b'{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"k":1,"k":2}}', "duplicate key 'k' at $.data"),
        (b'{"specversion":"1.0","id":"1","source":"s","type":"t","data":[1e999]}', "overflows a double"),
        (b'{"specversion":"1.0","id":"1","source":"s","type":"t","data":99999999999999999999}', "cannot be carried"),
        (b'{"specversion":"1.0","id":"\xff","source":"s","type":"t"}', "invalid UTF-8 at byte offset 27"),
        (b'{"specversion":"1.0","id":"\\udfff","source":"s","type":"t"}', "lone surrogate"),
        (b'{"specversion":"1.0","data":' + b"[" * 100 + b"]" * 100 + b"}", "nesting deeper than 64"),
        (b'{"specversion":"1.0",}', "line 1 column 21"),
    ],
)
def test_hostile_json_is_refused_before_the_event_is_built(text: bytes, message: str) -> None:
    with pytest.raises(InvalidJSONError) as info:
        Event.from_json(text)
    assert message in str(info.value)


def test_unknown_input_type_is_refused() -> None:
    with pytest.raises(InvalidEventError, match="expected JSON text, bytes or a dict, not int"):
        Event.from_json(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        ({"x": float("nan")}, "nan at $.x is not a JSON number"),
        ({"when": datetime.datetime(2024, 1, 1)}, "datetime at $.when has no exact JSON form"),
        ({"n": 2**70}, "integer at $.n is outside"),
    ],
)
def test_data_that_would_not_read_back_the_same_is_refused(data: Any, rule: str) -> None:
    builds: list[Callable[[], Event]] = [
        lambda: Event.create(type="t", source="s", data=data),
        lambda: Event(id="1", source="s", type="t", data=data),
        lambda: Event.from_json(minimal(data=data)),
    ]
    for build in builds:
        with pytest.raises(InvalidEventError) as info:
            build()
        assert info.value.attribute == "data"
        assert rule in info.value.rule


def test_an_event_built_from_a_dict_reads_back_from_its_json() -> None:
    deep: Any = "leaf"
    for _ in range(63):
        deep = {"k": deep}
    event = Event.from_json(minimal(data=deep))
    assert Event.from_json(event.to_json()) == event
    with pytest.raises(InvalidEventError, match="nesting deeper than 63 levels"):
        Event.from_json(minimal(data={"k": deep}))


def test_data_that_json_cannot_carry_is_refused_at_create() -> None:
    with pytest.raises(InvalidEventError) as info:
        Event.create(type="t", source="s", data={"when": {1, 2}})
    assert info.value.attribute == "data"
    assert "set" in info.value.rule


# --- the round-trip property -----------------------------------------------------------------

names = st.from_regex(re.compile(r"[a-z0-9]{1,20}", re.ASCII), fullmatch=True).filter(
    lambda n: (
        n not in {"id", "source", "type", "specversion", "time", "subject", "data", "datacontenttype"}
        and n not in {"dataschema", "traceparent", "hopcount"}
    )
)
text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Cn")), max_size=12)
json_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
extension_values = st.one_of(st.booleans(), st.integers(-(2**31), 2**31 - 1), text)


@st.composite
def events(draw: st.DrawFn) -> Event:
    binary = draw(st.booleans())
    data = draw(st.binary(min_size=1, max_size=20)) if binary else draw(json_data)
    extensions: dict[str, Any] = draw(st.dictionaries(names, extension_values, max_size=3))
    if draw(st.booleans()):
        extensions["hopcount"] = draw(st.integers(0, 100))
        extensions["traceparent"] = TP
    return Event.create(
        type=draw(text.filter(bool)),
        source=draw(st.sampled_from(["/shop", "urn:x:y", "https://example.com/a?b=c", "ünï"])),
        data=data,
        subject=draw(st.none() | text.filter(bool)),
        dataschema=draw(st.none() | st.just("https://example.com/schema.json")),
        **extensions,
    )


@settings(max_examples=150)
@given(events())
def test_round_trip_through_json_preserves_everything(event: Event) -> None:
    assert Event.from_json(event.to_json()) == event
    assert Event.from_json(event.to_dict()) == event


@pytest.mark.parametrize("attribute", ["source", "type", "datacontenttype", "subject", "dataschema", "time"])
@pytest.mark.parametrize("value", [["a"], {"a": 1}, 5, True])
def test_unhashable_or_wrong_typed_attributes_get_a_precise_error(attribute: str, value: Any) -> None:
    with pytest.raises(InvalidEventError) as info:
        Event.from_json(minimal(**{attribute: value}))
    assert info.value.attribute == attribute
    assert "must be" in info.value.rule


@settings(max_examples=300)
@given(
    st.binary(max_size=120)
    | st.builds(
        lambda extra: __import__("orjson").dumps({**minimal(), **extra}),
        st.dictionaries(st.text(max_size=12), json_data | extension_values, max_size=4),
    )
)
def test_arbitrary_bytes_fail_only_with_input_errors(body: bytes) -> None:
    try:
        event = Event.from_json(body)
    except InvalidInputError:
        return
    assert Event.from_json(event.to_json()) == event


def test_an_event_read_from_the_log_has_its_attributes_checked_and_its_data_kept_as_written() -> None:
    written = Event.create("order.placed", "/shop", {"items": [{"sku": "a", "n": 2}], "total": 12.5})
    read = Event.from_log(loads(written.to_json()))
    assert read == written
    # The log is trusted for data its publisher checked, not for attributes: a record that is no event raises.
    with pytest.raises(InvalidEventError, match="source"):
        Event.from_log({"specversion": "1.0", "id": "1", "type": "t", "source": 7})
    with pytest.raises(InvalidEventError, match="id"):
        Event.from_log({"specversion": "1.0", "source": "/s", "type": "t"})
