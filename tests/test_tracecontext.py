"""W3C Trace Context: the traceparent values we accept, refuse and make."""

from __future__ import annotations

import time

import pytest

from triggerfish.errors import InvalidEventError
from triggerfish.events.tracecontext import TraceParent, child, is_valid, new_traceparent, parse, trace_id

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
GOOD = f"00-{TRACE}-{SPAN}-01"


def test_parses_the_spec_example() -> None:
    parsed = parse(GOOD)
    assert parsed == TraceParent("00", TRACE, SPAN, 1)
    assert parsed.sampled
    assert str(parsed) == GOOD
    assert not parse(f"00-{TRACE}-{SPAN}-00").sampled


@pytest.mark.parametrize(
    "value",
    [
        f"cc-{TRACE}-{SPAN}-01",  # a future version, exactly 55 long
        f"cc-{TRACE}-{SPAN}-01-what-the-future-holds",  # a future version may add fields after a '-'
        f"00-{TRACE}-{SPAN}-09",  # unknown flag bits are allowed on input
        f" {GOOD}\t",  # optional whitespace around a header value
    ],
)
def test_accepts_what_the_spec_allows(value: str) -> None:
    assert is_valid(value)
    assert parse(value).trace_id == TRACE


INVALID = [
    ("ff-" + TRACE + "-" + SPAN + "-01", "version 'ff' is forbidden"),
    (f"00-{'0' * 32}-{SPAN}-01", "trace id is all zeros"),
    (f"00-{TRACE}-{'0' * 16}-01", "parent id is all zeros"),
    (f"00-{TRACE.upper()}-{SPAN}-01", "malformed"),
    (f"00-{TRACE}-{SPAN.upper()}-01", "malformed"),
    (f"0A-{TRACE}-{SPAN}-01", "malformed"),
    (f"00-{TRACE}-{SPAN}-0x", "malformed"),
    (f"00_{TRACE}_{SPAN}_01", "malformed"),
    (f"00-{TRACE[:-1]}-{SPAN}-01", "too short"),
    (f"00-{TRACE}-{SPAN[:-1]}-01", "too short"),
    (f"00-{TRACE}0-{SPAN}-01", "malformed"),
    (f"00-{TRACE}-{SPAN}-01-extra", "has extra characters"),
    (f"00-{TRACE}-{SPAN}-010", "has extra characters"),
    (f"cc-{TRACE}-{SPAN}-01extra", "without a '-' separator"),
    (f"00-{TRACE}-{SPAN}-1", "too short"),
    ("", "too short"),
    ("00-xyz", "too short"),
    (f"00-{'g' * 32}-{SPAN}-01", "malformed"),
]


@pytest.mark.parametrize(("value", "rule"), INVALID)
def test_rejects_the_spec_invalid_cases(value: str, rule: str) -> None:
    assert not is_valid(value)
    with pytest.raises(InvalidEventError) as info:
        parse(value)
    assert info.value.attribute == "traceparent"
    assert rule in info.value.rule


def test_rejects_non_strings() -> None:
    assert not is_valid(None)
    assert not is_valid(12)
    with pytest.raises(InvalidEventError, match="must be a string"):
        parse(12)  # type: ignore[arg-type]


def test_new_trace_ids_start_with_the_time_and_end_random() -> None:
    # The trace index keys spans by trace id: traces started later sort after (to the millisecond), and the
    # rightmost bytes stay random as Trace Context level 2 asks.
    before = time.time_ns() // 1_000_000
    first = trace_id(new_traceparent())
    time.sleep(0.002)
    later = [trace_id(new_traceparent()) for _ in range(100)]
    assert before <= int(first[:12], 16) <= time.time_ns() // 1_000_000
    assert all(first < other for other in later)
    assert len({other[12:] for other in later}) == 100


def test_new_traceparents_are_valid_and_distinct() -> None:
    made = {new_traceparent() for _ in range(200)}
    assert len(made) == 200
    assert all(parse(value).version == "00" and parse(value).sampled for value in made)
    assert not parse(new_traceparent(sampled=False)).sampled


def test_child_keeps_the_trace_and_makes_a_new_span() -> None:
    kid = child(GOOD)
    assert trace_id(kid) == TRACE
    assert parse(kid).parent_id != SPAN
    assert parse(kid).sampled
    assert trace_id(child(kid)) == TRACE


def test_child_of_a_future_version_is_version_00_with_only_the_sampled_flag() -> None:
    kid = child(f"cc-{TRACE}-{SPAN}-ff-future")
    assert kid.startswith(f"00-{TRACE}-")
    assert kid.endswith("-01")
    assert len(kid) == 55


def test_child_of_an_invalid_traceparent_is_an_error() -> None:
    with pytest.raises(InvalidEventError, match="all zeros"):
        child(f"00-{'0' * 32}-{SPAN}-01")
