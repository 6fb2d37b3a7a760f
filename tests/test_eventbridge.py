"""The EventBridge mapping: PutEvents entries in, the envelope out, and the round trips."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triggerfish.errors import EventTooLargeError, InvalidEventError, InvalidInputError
from triggerfish.events.cloudevent import Event
from triggerfish.events.eventbridge import (
    ACCOUNT_ID,
    EXTRAS,
    REGION,
    from_envelope,
    from_put_events_entry,
    to_envelope,
    to_put_events_entry,
)

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def entry(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"Source": "com.shop", "DetailType": "Order Placed", "Detail": '{"order": 7}'}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


# --- PutEvents -------------------------------------------------------------------------------


def test_a_put_events_entry_becomes_an_event_on_its_bus() -> None:
    bus, event = from_put_events_entry(
        entry(Resources=["arn:aws:s3:::bucket"], Time="2024-05-01T12:00:00Z", EventBusName="orders")
    )
    assert bus == "orders"
    assert event.type == "Order Placed"
    assert event.source == "com.shop"
    assert event.data == {"order": 7}
    assert event.time == "2024-05-01T12:00:00Z"
    assert event.datacontenttype == "application/json"
    assert to_envelope(event)["resources"] == ["arn:aws:s3:::bucket"]


def test_put_entry_defaults_and_bus_arns() -> None:
    bus, event = from_put_events_entry(entry())
    assert bus == "default"
    assert event.timestamp is not None
    assert from_put_events_entry(entry(EventBusName="arn:aws:events:local:000000000000:event-bus/audit")).bus == "audit"


def test_put_entry_time_forms() -> None:
    moment = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
    for value in (moment, moment.replace(tzinfo=None), 1714564800, 1714564800.0):
        assert from_put_events_entry(entry(Time=value)).event.timestamp == moment


def test_trace_header_accepts_w3c_and_x_ray() -> None:
    assert from_put_events_entry(entry(TraceHeader=TP)).event.traceparent == TP
    xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    event = from_put_events_entry(entry(TraceHeader=xray)).event
    assert event.traceparent == "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
    unsampled = xray.replace("Sampled=1", "Sampled=0")
    assert from_put_events_entry(entry(TraceHeader=unsampled)).event.traceparent.endswith("-00")  # type: ignore[union-attr]


PUT_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    (entry(DetailType=None), "DetailType", "is required"),
    (entry(Source=""), "Source", "is required"),
    (entry(Detail=None), "Detail", "is required"),
    (entry(Detail={"order": 7}), "Detail", "must be a non-empty string"),
    (entry(Detail="{order: 7}"), "Detail", "is not valid JSON: Detail: invalid JSON at line 1 column 2"),
    (entry(Detail='{"a": 1, "a": 2}'), "Detail", "duplicate key 'a'"),
    (entry(Detail="[1, 2]"), "Detail", "must be a JSON object"),
    (entry(Detail='"text"'), "Detail", "must be a JSON object"),
    (entry(Resources="arn:x"), "Resources", "must be a list of non-empty strings"),
    (entry(Resources=["arn:x", 5]), "Resources", "must be a list of non-empty strings"),
    (entry(Time="last tuesday"), "Time", "RFC 3339"),
    (entry(Time=[2024]), "Time", "must be RFC 3339 text"),
    (entry(Time=1e300), "Time", "not a representable epoch time"),
    (entry(EventBusName=""), "EventBusName", "non-empty string"),
    (entry(TraceHeader="Root=1-zz"), "TraceHeader", "W3C traceparent or an X-Ray header"),
    (entry(TraceHeader="Root=1-5759e988-bd862e3fe1be46a994272793"), "TraceHeader", "X-Ray header"),
    (entry(Source="has space"), "Source", "not a URI reference"),
    (entry(Colour="red"), "Colour", "is not a PutEvents entry field"),
]


@pytest.mark.parametrize(("bad", "attribute", "rule"), PUT_ERRORS)
def test_put_entry_errors_name_the_field(bad: dict[str, Any], attribute: str, rule: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        from_put_events_entry(bad)
    assert info.value.attribute == attribute
    assert rule in info.value.rule


def test_put_entry_errors_carry_the_entry_index() -> None:
    with pytest.raises(InvalidEventError) as info:
        from_put_events_entry(entry(DetailType=None), index=3)
    assert info.value.attribute == "Entries[3].DetailType"
    with pytest.raises(InvalidEventError, match=r"Entries\[0\]"):
        from_put_events_entry(["not", "an", "entry"], index=0)


def test_put_entry_size_limit() -> None:
    with pytest.raises(EventTooLargeError):
        from_put_events_entry(entry(Detail='{"blob": "' + "x" * 300 + '"}'), max_bytes=256)


def test_to_put_events_entry_inverts_from_put_events_entry() -> None:
    bus, event = from_put_events_entry(entry(Resources=["arn:a"], TraceHeader=TP, EventBusName="orders"))
    written = to_put_events_entry(event, bus=bus)
    assert written == {
        "Source": "com.shop",
        "DetailType": "Order Placed",
        "Detail": '{"order":7}',
        "EventBusName": "orders",
        "Resources": ["arn:a"],
        "Time": event.time,
        "TraceHeader": TP,
    }
    again = from_put_events_entry(written).event
    assert (again.type, again.source, again.data, again.time, again.extensions) == (
        event.type,
        event.source,
        event.data,
        event.time,
        event.extensions,
    )


# --- the envelope ----------------------------------------------------------------------------


def test_envelope_has_the_eventbridge_shape() -> None:
    event = Event.create(
        type="Order Placed", source="com.shop", data={"order": 7}, id="e-1", time="2024-05-01T12:00:00Z"
    )
    assert to_envelope(event) == {
        "version": "0",
        "id": "e-1",
        "detail-type": "Order Placed",
        "source": "com.shop",
        "account": ACCOUNT_ID,
        "time": "2024-05-01T12:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {"order": 7},
    }
    assert to_envelope(event, account="123456789012", region="eu-west-1")["region"] == "eu-west-1"


def test_attributes_without_an_envelope_field_ride_in_the_extras() -> None:
    event = Event.create(type="t", source="s", data=[1], subject="sub", traceparent=TP, hopcount=2)
    envelope = to_envelope(event)
    assert envelope["detail"] == [1]
    assert envelope[EXTRAS] == {"subject": "sub", "traceparent": TP, "hopcount": 2, "time": event.time}
    assert from_envelope(envelope) == event


@pytest.mark.parametrize(
    ("time", "aws"),
    [
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),
        ("2024-05-01T12:00:00.999999Z", "2024-05-01T12:00:00Z"),
        ("2024-05-01t14:00:00+02:00", "2024-05-01T12:00:00Z"),
    ],
)
def test_envelope_time_has_the_aws_shape_and_the_original_survives(time: str, aws: str) -> None:
    event = Event(id="1", source="s", type="t", time=time)
    envelope = to_envelope(event)
    assert envelope["time"] == aws
    assert ("time" in envelope[EXTRAS]) == (time != aws)
    assert from_envelope(envelope).time == time


def test_an_envelope_from_aws_reads_without_extras() -> None:
    aws = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "111122223333",
        "time": "2017-12-22T18:43:48Z",
        "region": "us-west-1",
        "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
        "detail": {"instance-id": "i-1234567890abcdef0", "state": "terminated"},
    }
    event = from_envelope(aws)
    assert event.type == "EC2 Instance State-change Notification"
    assert event.data == aws["detail"]
    assert event.extensions["account"] == "111122223333"
    assert event.extensions["region"] == "us-west-1"
    assert to_envelope(event) == aws


def test_an_event_without_time_gets_one_in_its_envelope() -> None:
    event = Event(id="1", source="s", type="t")
    envelope = to_envelope(event)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", envelope["time"])
    assert from_envelope(envelope) == event


ENVELOPE_ERRORS: list[tuple[Any, str, str]] = [
    ([], "envelope", "must be an object"),
    ({"version": "1"}, "version", "must be '0'"),
    ({"version": "0", "id": "1", "source": "s", "time": "2024-05-01T12:00:00Z"}, "detail-type", "is required"),
    (
        {"version": "0", "id": "1", "detail-type": "t", "source": "s", "time": "2024-05-01T12:00:00Z"},
        "detail",
        "is required",
    ),
]


@pytest.mark.parametrize(("bad", "attribute", "rule"), ENVELOPE_ERRORS)
def test_envelope_errors_name_the_field(bad: Any, attribute: str, rule: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        from_envelope(bad)
    assert info.value.attribute == attribute
    assert rule in info.value.rule


# --- round-trip property ---------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Cn")), max_size=10)
json_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
names = st.from_regex(re.compile(r"x[a-z0-9]{0,19}", re.ASCII), fullmatch=True)


@st.composite
def events(draw: st.DrawFn) -> Event:
    extensions: dict[str, Any] = draw(st.dictionaries(names, st.booleans() | st.integers(0, 9) | text, max_size=3))
    if draw(st.booleans()):
        extensions.update(
            resources='["arn:aws:s3:::b"]', account="123456789012", region="eu-west-1", hopcount=1, traceparent=TP
        )
    data = draw(st.none() | st.binary(min_size=1, max_size=8) | json_data)
    return Event(
        id=draw(text.filter(bool)),
        source=draw(st.sampled_from(["com.shop", "/a/b", "urn:x"])),
        type=draw(text.filter(bool)),
        time=draw(st.sampled_from([None, "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123+02:00"])),
        subject=draw(st.none() | text.filter(bool)),
        datacontenttype=draw(st.sampled_from([None, "application/json", "text/plain", "application/x+json"])),
        dataschema=draw(st.none() | st.just("https://example.com/s.json")),
        data=data,
        extensions=extensions,
    )


@settings(max_examples=200)
@given(events())
def test_round_trip_through_the_envelope_preserves_everything(event: Event) -> None:
    assert from_envelope(to_envelope(event)) == event


# --- hostile input never escapes as anything but a precise input error --------------------------

field_values = st.none() | st.booleans() | st.integers() | text | st.lists(text, max_size=2) | json_data


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(["Source", "DetailType", "Detail", "Resources", "Time", "EventBusName", "TraceHeader"]),
        field_values | st.sampled_from(['{"a": 1}', "[1]", "{", "Root=1-5759e988-bd862e3fe1be46a994272793"]),
        max_size=7,
    )
)
def test_arbitrary_put_entries_fail_only_with_input_errors(bad: dict[str, Any]) -> None:
    try:
        _, event = from_put_events_entry(bad)
    except InvalidInputError:
        return
    assert from_envelope(to_envelope(event)) == event


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(["version", "id", "detail-type", "source", "account", "time", "region", "resources"])
        | st.sampled_from(["detail", EXTRAS]),
        field_values | st.just("0") | st.just("2024-05-01T12:00:00Z") | st.just({"data_mode": "base64"}),
        max_size=10,
    )
)
def test_arbitrary_envelopes_fail_only_with_input_errors(bad: dict[str, Any]) -> None:
    try:
        event = from_envelope(bad)
    except InvalidInputError:
        return
    assert from_envelope(to_envelope(event)) == event


AWS_ENVELOPE_KEYS = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}


def test_what_targets_are_delivered_has_awss_keys_only() -> None:
    event = Event.create("order.placed", "shop", {"id": 1}, subject="o-1").with_extensions(
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", hopcount=2
    )
    assert set(to_envelope(event, extras=False)) == AWS_ENVELOPE_KEYS
    assert "cloudevents" in to_envelope(event)  # the codec's own form keeps them, and reads back exactly


def test_a_replayed_event_carries_replay_name_at_the_top_level() -> None:
    event = Event.create("order.placed", "shop", {"id": 1}).with_extensions(replayname="audit-fix")
    delivered = to_envelope(event, extras=False)
    assert set(delivered) == AWS_ENVELOPE_KEYS | {"replay-name"}
    assert delivered["replay-name"] == "audit-fix"
    assert from_envelope(to_envelope(event)) == event
