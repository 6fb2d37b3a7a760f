"""Triggerfish's own context: a logger bound to the request, the trace, publish and send."""

import logging
import time

from triggerfish.runtime.context import Context

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(aws_request_id)s %(message)s")

# The runtime passes a call_platform that forwards to the platform process; this one records.
calls = []


def call_platform(op, args):
    calls.append((op, args))
    return {"message_id": "m-1"} if op == "send" else None


context = Context(
    request_id="r-42",
    function_name="create_order",
    deadline=time.time() + 3,
    traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    hop_count=0,
    call_platform=call_platform,
    app_name="shop",
)

context.logger.info("accepted order %s", "o-1")  # INFO r-42 [r-42] accepted order o-1

event_id = context.publish("order.created", {"id": "o-1"}, subject="o-1")
op, args = calls[0]
event = args["event"]
assert (op, args["bus"], event["id"]) == ("publish", "default", event_id)
assert event["type"] == "order.created"
assert event["source"] == "/shop/create_order"
assert event["traceparent"].split("-")[1] == context.trace_id  # the same trace continues
assert event["hopcount"] == 1  # one hop further from the first caller

assert context.send("emails", {"to": "ada@example.com"}, delay=5) == "m-1"
op, args = calls[1]
assert (op, args["queue"], args["body"], args["delay"]) == ("send", "emails", '{"to":"ada@example.com"}', 5)
