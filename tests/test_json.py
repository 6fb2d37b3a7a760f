"""Strict JSON: what a producer may send us, and the precise refusals for what it may not."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triggerfish._json import check_value, dumps, loads
from triggerfish.errors import InvalidInputError, InvalidJSONError

ACCEPTED: list[tuple[bytes | str | bytearray | memoryview, Any]] = [
    (b'{"a": [1, 2.5, "x", true, false, null]}', {"a": [1, 2.5, "x", True, False, None]}),
    ("  [ ]\n", []),
    (b'"\\ud83d\\ude00"', "\U0001f600"),  # a proper surrogate pair is one character
    (b"18446744073709551615", 2**64 - 1),
    (b"-9223372036854775808", -(2**63)),
    (b'{"big": "123456789012345678901234567890"}', {"big": "123456789012345678901234567890"}),
    (b"1e19", 1e19),  # a float that merely looks large is fine
    (b'{"url": "https://x/y", "q": "a\\":b"}', {"url": "https://x/y", "q": 'a":b'}),
    (b'{"a" : {"a" : 1}}', {"a": {"a": 1}}),  # the same key at different levels is not a duplicate
    (bytearray(b"[1]"), [1]),
    (memoryview(b"[2]"), [2]),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_accepts_valid_documents(text: bytes | str | bytearray | memoryview, expected: Any) -> None:
    assert loads(text) == expected


REJECTED: list[tuple[bytes | str, str]] = [
    (b'{"a" 1}', "invalid JSON at line 1 column 6"),
    (b'\n\n  {"a":}', "invalid JSON at line 3 column 8"),
    (b"", "empty document"),
    (b"[1,]", "trailing comma"),
    (b"[1] x", "unexpected content"),
    (b'["\xff"]', "invalid UTF-8 at byte offset 2"),
    (b'{"k": "\xc3"}', "invalid UTF-8 at byte offset 7"),
    (b'["\xed\xa0\x80"]', "lone surrogate at byte offset 2"),
    ('["\ud800"]', "lone surrogate U+D800 at character offset 2"),
    (b'["\\ud800"]', "lone surrogate escape"),
    (b'["\\udc00x"]', "lone surrogate escape"),
    (b'{"id": 1, "id": 2}', "duplicate key 'id' at $"),
    (b'{"data": {"x": [{"b": 1, "b": 2}]}}', "duplicate key 'b' at $.data.x[0]"),
    (b'{"a b": {"k": 1,\n "k": 1}}', "duplicate key 'k' at $[\"a b\"]"),
    (b'{"k"  :1, "k":2}', "duplicate key 'k' at $"),
    (b'{"s": "\\":", "k": 1, "k": 1}', "duplicate key 'k' at $"),
    (b"[NaN]", "NaN and Infinity are not JSON"),
    (b"[Infinity]", "NaN and Infinity are not JSON"),
    (b"[-Infinity]", "NaN and Infinity are not JSON"),
    (b'{"a": 1e400}', "number at line 1 column 7 overflows a double"),
    (b"[-1e400]", "overflows a double"),
    (b"[18446744073709551616]", "integer 18446744073709551616 is outside -2**63..2**64-1"),
    (b'{"n": -9223372036854775809}', "integer -9223372036854775809 is outside"),
    (b"123456789012345678901234567890", "send it as a string"),
    (b"[" + b"9" * 5000 + b"]", "overflows a double"),
    (b"[" * 65 + b"]" * 65, "nesting deeper than 64 levels"),
    (b'{"a":' * 65 + b"1" + b"}" * 65, "nesting deeper than 64 levels"),
    (b"[" * 5000, "nesting deeper than 64 levels"),
]


@pytest.mark.parametrize(("text", "message"), REJECTED)
def test_rejects_bad_documents_with_a_precise_message(text: bytes | str, message: str) -> None:
    with pytest.raises(InvalidJSONError) as info:
        loads(text, where="event")
    assert str(info.value).startswith("event: ")
    assert message in str(info.value)
    assert info.value.where == "event"


def test_depth_limit_is_configurable_and_exact() -> None:
    assert loads(b"[[[1]]]", max_depth=3) == [[[1]]]
    with pytest.raises(InvalidJSONError, match="deeper than 2 levels"):
        loads(b"[[[1]]]", max_depth=2)
    assert loads(b"[" * 64 + b"]" * 64) is not None


def test_rejects_a_value_that_is_not_text() -> None:
    with pytest.raises(InvalidJSONError, match="expected str or bytes, got int"):
        loads(42)  # type: ignore[arg-type]


def test_error_is_a_value_error_so_existing_guards_keep_working() -> None:
    with pytest.raises(ValueError, match="duplicate key"):
        loads('{"a":1,"a":1}')


def test_dumps_is_compact_utf8() -> None:
    assert dumps({"a": [1, None, "é"]}) == '{"a":[1,null,"é"]}'.encode()


@pytest.mark.parametrize(
    ("value", "message"),
    [({1, 2}, "set"), ({"a": b"x"}, "bytes"), (2**70, "64-bit"), ({1: 2}, "key must be str"), (object(), "object")],
)
def test_dumps_names_what_json_cannot_carry(value: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        dumps(value)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(json_values)
def test_round_trip_preserves_every_value(value: Any) -> None:
    assert loads(dumps(value)) == value
    # The same value pretty-printed by another engine parses to the same thing.
    assert loads(json.dumps(value, indent=1, ensure_ascii=True)) == value


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", ' ":', "a\\"]), st.integers(0, 9)), min_size=1, max_size=5))
def test_duplicate_detection_matches_a_reference(pairs: list[tuple[str, int]]) -> None:
    text = "{" + ", ".join(f"{json.dumps(k)} : {v}" for k, v in pairs) + "}"
    keys = [k for k, _ in pairs]
    if len(set(keys)) == len(keys):
        assert loads(text) == dict(pairs)
    else:
        with pytest.raises(InvalidJSONError, match="duplicate key"):
            loads(text)


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": [1.0, float("nan")]}, "nan at $.a[1] is not a JSON number"),
        ({"a": float("inf")}, "inf at $.a is not a JSON number"),
        ({"n": 2**64}, "integer at $.n is outside"),
        ({"n": -(2**63) - 1}, "integer at $.n is outside"),
        ({"when": {1, 2}}, "set at $.when has no exact JSON form"),
        ({"b": b"x"}, "bytes at $.b has no exact JSON form"),
        ({1: "x"}, "key 1 at $ is not a string"),
        ({"a b": {"c": object()}}, 'object at $["a b"].c has no exact JSON form'),
        (nested(65), "nesting deeper than 64 levels"),
    ],
)
def test_check_value_refuses_what_would_not_read_back(value: Any, message: str) -> None:
    with pytest.raises(InvalidJSONError) as info:
        check_value(value, where="data")
    assert message in str(info.value)


def test_check_value_accepts_exactly_what_loads_accepts() -> None:
    check_value({"a": [1, 2.5, "x", True, None, (1, 2)], "n": 2**64 - 1, "m": -(2**63)})
    check_value(nested(64))
    assert loads(dumps(nested(64))) == nested(64)
    with pytest.raises(InvalidJSONError):
        loads(dumps(nested(65)))
