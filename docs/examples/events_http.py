"""The HTTP binding: binary, structured and batch modes over plain headers and bytes."""

from triggerfish import Event
from triggerfish.events.http_binding import from_http, to_batch, to_binary, to_structured

event = Event.create(type="order.placed", source="/shop", data={"order": 42}, subject="café order", hopcount=0)

# Binary mode: attributes in ce- headers (percent-encoded), data in the body.
headers, body = to_binary(event)
assert headers["ce-type"] == "order.placed"
assert headers["ce-subject"] == "caf%C3%A9%20order"
assert headers["content-type"] == "application/json"
assert body == b'{"order":42}'
assert from_http(headers, body) == [event]

# What curl would send: header names are case-insensitive.
[received] = from_http(
    {
        "Content-Type": "text/plain",
        "CE-SpecVersion": "1.0",
        "CE-ID": "abc-1",
        "CE-Source": "/sensors/7",
        "CE-Type": "reading.taken",
        "CE-Hopcount": "2",
    },
    b"21.5 C",
)
assert received.data == "21.5 C"
assert received.hopcount == 2

# Structured mode: the whole event as JSON in the body.
headers, body = to_structured(event)
assert headers["content-type"] == "application/cloudevents+json; charset=utf-8"
assert from_http(headers, body) == [event]

# Batch mode: many events in one JSON array.
second = Event.create(type="order.placed", source="/shop", data={"order": 43})
headers, body = to_batch([event, second])
assert from_http(headers, body) == [event, second]
