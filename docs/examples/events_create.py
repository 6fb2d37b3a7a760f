"""Build an event, write it as CloudEvents JSON, read it back, and add extensions."""

from triggerfish import Event

event = Event.create(type="order.placed", source="/shop", data={"order": 42, "total": 19.5}, subject="order/42")

# Producers get an id (uuid4), the current UTC time and a content type for free.
assert event.specversion == "1.0"
assert len(event.id) == 36
assert event.time is not None
assert event.time.endswith("Z")
assert event.datacontenttype == "application/json"

# The JSON format: compact UTF-8 bytes, and back to an equal event.
body = event.to_json()
assert body.startswith(b'{"specversion":"1.0","id":')
assert Event.from_json(body) == event
assert Event.from_json(event.to_dict()) == event

# Events are immutable; with_extensions returns a changed copy.
traced = event.with_extensions(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", hopcount=1)
assert traced.traceparent is not None
assert traced.hopcount == 1
assert event.hopcount is None
assert Event.from_json(traced.to_json()).extensions == {
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "hopcount": 1,
}

# Binary data is bytes in Python and data_base64 in JSON.
image = Event.create(type="image.uploaded", source="/cam", data=b"\x89PNG")
assert image.to_dict()["data_base64"] == "iVBORw=="
assert Event.from_json(image.to_json()).data == b"\x89PNG"
