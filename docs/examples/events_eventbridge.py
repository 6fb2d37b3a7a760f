"""EventBridge: PutEvents entries in, the EventBridge envelope out, and back to the same event."""

from triggerfish.events.eventbridge import from_envelope, from_put_events_entry, to_envelope

bus, event = from_put_events_entry(
    {
        "Source": "com.shop",
        "DetailType": "Order Placed",
        "Detail": '{"order": 42}',
        "Resources": ["arn:aws:s3:::receipts"],
        "EventBusName": "orders",
        "TraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    }
)
assert bus == "orders"
assert event.type == "Order Placed"
assert event.data == {"order": 42}
assert event.extensions["resources"] == '["arn:aws:s3:::receipts"]'
assert event.traceparent == "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"

envelope = to_envelope(event)
assert envelope["version"] == "0"
assert envelope["detail-type"] == "Order Placed"
assert envelope["detail"] == {"order": 42}
assert envelope["resources"] == ["arn:aws:s3:::receipts"]
assert (envelope["account"], envelope["region"]) == ("000000000000", "local")
assert envelope["time"].endswith("Z")
assert len(envelope["time"]) == 20
# What the envelope has no field for rides in "cloudevents", which EventBridge handlers ignore.
assert envelope["cloudevents"]["traceparent"] == event.traceparent

# The round trip is exact.
assert from_envelope(envelope) == event
