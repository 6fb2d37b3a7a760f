"""Every rejected event says which attribute broke which rule."""

from collections.abc import Callable

from triggerfish import Event, EventTooLargeError, InvalidEventError, InvalidJSONError


def refusal(attempt: Callable[[], object]) -> Exception:
    """Run `attempt` and return the error it raised (it must raise)."""
    try:
        attempt()
    except Exception as error:
        return error
    raise AssertionError("expected the event to be refused")


error = refusal(lambda: Event.from_json({"specversion": "0.3", "id": "1", "source": "/s", "type": "t"}))
assert isinstance(error, InvalidEventError)
assert error.attribute == "specversion"
assert "accepts CloudEvents '1.0' only" in error.rule

error = refusal(lambda: Event(id="1", source="/s", type="t", extensions={"Trace-Parent": "x"}))
assert isinstance(error, InvalidEventError)
assert error.attribute == "Trace-Parent"
assert "lowercase letters a-z and digits" in error.rule

error = refusal(lambda: Event.from_json(b'{"specversion":"1.0","id":"1","id":"2","source":"/s","type":"t"}'))
assert isinstance(error, InvalidJSONError)
assert str(error) == "event: duplicate key 'id' at $; each key may appear once per object"

error = refusal(lambda: Event.create(type="t", source="/s", data={"blob": "x" * 300_000}))
assert isinstance(error, EventTooLargeError)
assert error.limit == 256 * 1024
assert error.size > error.limit

# The limit can be set per call.
small = Event.create(type="t", source="/s", data="x" * 100)
error = refusal(lambda: small.to_json(max_bytes=64))
assert isinstance(error, EventTooLargeError)
assert error.limit == 64
