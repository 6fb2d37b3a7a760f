"""W3C Trace Context (level 1): the `traceparent` value that ties an event chain into one trace.

A traceparent is ``version-traceid-parentid-flags``, e.g.
``00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01``: two lowercase hex
digits of version, 32 of trace id, 16 of parent (span) id, two of flags.
Every event Triggerfish publishes from inside a handler carries a *child* of
the traceparent the handler was invoked with: the same trace id, a new span id.

Versions: ``ff`` is forbidden. Version ``00`` is exactly 55 characters. A
higher version is parsed as far as version 00 reaches, as the specification
asks, provided that anything after character 55 is separated by a ``-``; what
we emit is always version ``00``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from triggerfish import _random
from triggerfish.errors import InvalidEventError

__all__ = ["TraceParent", "child", "is_valid", "new_traceparent", "parse", "span_of", "trace_id"]

_LENGTH = 55
_FIELDS = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# Version 00 with non-zero ids, exactly: the fast path for what we see on every event.
_COMMON = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}\Z")
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16
_SAMPLED = 0x01


class TraceParent(NamedTuple):
    """A parsed traceparent. `str()` gives it back in wire form."""

    version: str
    trace_id: str
    parent_id: str
    flags: int

    @property
    def sampled(self) -> bool:
        """Whether the caller may have recorded this trace (flag bit 0)."""
        return bool(self.flags & _SAMPLED)

    def __str__(self) -> str:
        return f"{self.version}-{self.trace_id}-{self.parent_id}-{self.flags:02x}"


def parse(value: str, *, attribute: str = "traceparent") -> TraceParent:
    """Parse and validate a traceparent.

    Raises InvalidEventError naming `attribute` and the rule broken: wrong
    length, uppercase or non-hex digits, version ``ff``, an all-zero trace id or
    parent id, or extra text after a version-00 value.
    """
    if not isinstance(value, str):
        raise InvalidEventError(attribute, f"must be a string, not {type(value).__name__}")
    text = value.strip(" \t")
    if len(text) < _LENGTH:
        raise InvalidEventError(attribute, f"{value!r} is too short; expected 00-<32 hex>-<16 hex>-<2 hex>")
    match = _FIELDS.match(text)
    if match is None:
        raise InvalidEventError(
            attribute, f"{value!r} is malformed; expected 00-<32 hex>-<16 hex>-<2 hex> in lowercase hex"
        )
    version, trace, parent, flags = match.groups()
    if version == "ff":
        raise InvalidEventError(attribute, "version 'ff' is forbidden by W3C Trace Context")
    if version == "00" and len(text) != _LENGTH:
        raise InvalidEventError(attribute, f"{value!r} has extra characters; a version-00 traceparent is 55 long")
    if len(text) > _LENGTH and text[_LENGTH] != "-":
        raise InvalidEventError(attribute, f"{value!r} continues past character 55 without a '-' separator")
    if trace == _ZERO_TRACE:
        raise InvalidEventError(attribute, "trace id is all zeros, which W3C Trace Context forbids")
    if parent == _ZERO_PARENT:
        raise InvalidEventError(attribute, "parent id is all zeros, which W3C Trace Context forbids")
    return TraceParent(version, trace, parent, int(flags, 16))


def is_valid(value: object) -> bool:
    """True when `value` is a traceparent that `parse` accepts."""
    if type(value) is str and _COMMON.match(value) is not None:
        return True  # the shape every event carries, checked by one regex
    try:
        parse(value)  # type: ignore[arg-type]
    except InvalidEventError:
        return False
    return True


def _random_hex(nbytes: int) -> str:
    while True:
        # From the pool: ids for every request must not each cost a system call (and a GIL hand-off).
        value = _random.take(nbytes).hex()
        if value.strip("0"):  # all zeros is invalid; astronomically rare, but check
            return value


def new_trace_id() -> str:
    """A fresh 32-hex trace id (never all zeros), for a caller that needs no span of its own."""
    return _random_hex(16)


def new_traceparent(*, sampled: bool = True) -> str:
    """Start a new trace: a fresh trace id and span id, version 00.

    The trace id starts with the time in milliseconds (6 bytes, as AWS X-Ray's ids start with the time) and
    ends with 10 random bytes (Trace Context level 2 asks for the rightmost 7 to be random): the trace index
    keys spans by it (`t/<trace id>/...`), and time-ordered keys append at the index's end rather than each
    writing a page of its own (triggerfish._random.time_ordered).
    """
    return f"00-{_random.time_ordered(16).hex()}-{_random_hex(8)}-{_SAMPLED if sampled else 0:02x}"


def child(traceparent: str) -> str:
    """The traceparent for work caused by `traceparent`: same trace id, a new span id.

    The result is always version 00; of the flags only `sampled` is kept,
    since level 1 defines no other bit and asks that unknown bits be zero.
    """
    parent = parse(traceparent)
    return f"00-{parent.trace_id}-{_random_hex(8)}-{parent.flags & _SAMPLED:02x}"


def span_of(traceparent: str | None) -> tuple[str, str | None]:
    """A new span caused by `traceparent`: its own traceparent, and its parent's span id.

    A missing or invalid `traceparent` starts a new trace (parent None), as a
    handler's context does; a valid one gives a child (same trace, new span id)
    whose parent is the caller's span.
    """
    if traceparent is not None and is_valid(traceparent):
        return child(traceparent), traceparent[36:52] if traceparent[:3] == "00-" else parse(traceparent).parent_id
    return new_traceparent(), None


def trace_id(traceparent: str) -> str:
    """The 32-hex trace id of `traceparent`."""
    return parse(traceparent).trace_id
