"""Trace context: one trace id follows a chain of events; each hop gets its own span id."""

from triggerfish.events.tracecontext import child, is_valid, new_traceparent, parse, trace_id

root = new_traceparent()
assert is_valid(root)
assert parse(root).sampled

hop = child(root)
assert trace_id(hop) == trace_id(root)
assert parse(hop).parent_id != parse(root).parent_id

assert not is_valid("00-00000000000000000000000000000000-00f067aa0ba902b7-01")  # all-zero trace id
assert not is_valid("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")  # version ff
