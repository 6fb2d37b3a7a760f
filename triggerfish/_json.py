"""Strict JSON for everything that crosses Triggerfish's edge.

Events, patterns and payloads are parsed on every publish, so the fast path
is orjson. orjson already rejects malformed documents, invalid UTF-8, lone
surrogates (raw or escaped), NaN/Infinity and numbers that overflow a double.
Two things it lets through silently, and we refuse:

* duplicate object keys (orjson keeps the last one): a document meaning two
  things to two readers is how filters get bypassed;
* integers outside the 64-bit range (orjson turns them into lossy floats).

"Exactly", for us: integers from -2**63 to 2**64-1 (what orjson, Go and most
JSON engines carry without loss); any other integer is rejected, so send it
as a string. Floats are IEEE doubles and must be finite; decimal fractions
round to the nearest double as in every JSON engine.

Neither check may cost a second full parse in the common case. Text that is
exactly what orjson writes for the parsed value (our own events, read back
from the store) is canonical, so it can hide neither. Otherwise one walk over
the parsed containers counts object members (and checks depth), and a byte
count finds the places in the text that can end a key (a quote, optional
whitespace, a colon). With no duplicates the two counts agree unless a string
happens to contain an escaped quote before a colon; only when they differ, or
when a float is large enough to be a mangled integer, does the stdlib parser
run again with hooks to decide. Nested JSON inside strings (EventBridge's
`Detail`) takes that slower path; it stays correct.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from .errors import InvalidInputError, InvalidJSONError

__all__ = ["check_value", "dumps", "loads", "loads_merging_repeated_keys"]

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

# Every object key ends with a quote, optional whitespace, then a colon.
_KEY_END = re.compile(rb'"[ \t\n\r]*:')
_QUOTE_SPACE = re.compile(rb'"[ \t\n\r]')
# orjson turns an integer outside its range into a float at least this large.
_BIG_FLOAT = float(2**63)
_INF = float("inf")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def loads(data: str | bytes | bytearray | memoryview, *, where: str = "", max_depth: int = 64) -> Any:
    """Parse a JSON document strictly.

    `where` prefixes every error message ("event", "pattern", ...) so the user
    knows which document was wrong. Nesting deeper than `max_depth` containers
    is rejected (orjson's own ceiling is 1024).

    Raises InvalidJSONError for: malformed JSON (with line and column),
    invalid UTF-8 (with the byte offset), lone surrogates, duplicate keys
    (naming the key and its path, e.g. ``$.data``), NaN/Infinity, numbers
    that overflow a double, integers outside -2**63..2**64-1, and nesting
    deeper than `max_depth`.

    >>> loads(b'{"a": [1, 2.5, "x"]}')
    {'a': [1, 2.5, 'x']}
    """
    raw: bytes
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = ord(data[exc.start])
            raise InvalidJSONError(
                f"lone surrogate U+{bad:04X} at character offset {exc.start}; text must be valid Unicode", where=where
            ) from None
    elif isinstance(data, bytes):
        raw = data
    elif isinstance(data, bytearray | memoryview):
        raw = bytes(data)
    else:
        raise InvalidJSONError(f"expected str or bytes, got {type(data).__name__}", where=where)

    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _explain(raw, exc, where, max_depth) from None

    if type(value) is dict or type(value) is list:
        if orjson.dumps(value) == raw:
            # Canonical text (what our own dumps writes, e.g. events read back from the store):
            # identical bytes cannot hide a duplicate key or a mangled integer. Only depth is left,
            # and it cannot exceed the number of opening brackets.
            if raw.count(b"{") + raw.count(b"[") > max_depth:
                _walk(value, max_depth, where)
        else:
            members, maybe_big = _walk(value, max_depth, where)
            if maybe_big or not _keys_are_unique(raw, members):
                _check_with_hooks(raw, where)
    elif type(value) is float and not -_BIG_FLOAT < value < _BIG_FLOAT:
        _check_with_hooks(raw, where)
    return value


def dumps(value: Any) -> bytes:
    """Serialize `value` as compact UTF-8 JSON.

    Raises InvalidInputError naming the type that JSON cannot carry (a set,
    bytes, an object, an integer past 64 bits, a non-string key, ...).

    >>> dumps({"a": [1, None]})
    b'{"a":[1,null]}'
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise InvalidInputError(
            f"cannot encode as JSON: {exc}; convert the value to str, number, list or dict"
        ) from None


def check_value(value: Any, *, where: str = "", max_depth: int = 64) -> None:
    """Check that a Python value will survive a trip through strict JSON unchanged.

    `dumps` alone is not enough: orjson writes NaN and Infinity as ``null``,
    turns datetimes and UUIDs into strings and has its own depth limit, so a
    value built in Python (an event a handler publishes) could be stored and
    then read back different, or not at all. Raises InvalidJSONError, naming
    the path, for non-finite floats, integers outside -2**63..2**64-1, nesting
    deeper than `max_depth`, non-string keys, and any type other than dict,
    list, tuple, str, int, float, bool and None.
    """
    kind = type(value)
    if not (kind is dict or kind is list or kind is tuple):
        _check_scalar(value, None, where)
        return
    # Paths are built only for an error: each container carries a (parent trail, key) link.
    stack: list[tuple[Any, int, Any]] = [(value, 1, None)]
    while stack:
        node, depth, trail = stack.pop()
        if depth > max_depth:
            raise InvalidJSONError(
                f"nesting deeper than {max_depth} levels at {_render(trail)}; flatten the value", where=where
            )
        is_dict = type(node) is dict
        for key, child in node.items() if is_dict else enumerate(node):
            if is_dict and type(key) is not str:
                raise InvalidJSONError(f"key {key!r} at {_render(trail)} is not a string", where=where)
            kind = type(child)
            if kind is str or kind is bool or child is None:
                continue
            if kind is dict or kind is list or kind is tuple:
                stack.append((child, depth + 1, (trail, key)))
            else:
                _check_scalar(child, (trail, key), where)


def _check_scalar(value: Any, trail: Any, where: str) -> None:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise InvalidJSONError(
                f"integer at {_render(trail)} is outside -2**63..2**64-1 and cannot be carried exactly; "
                "send it as a string",
                where=where,
            )
    elif kind is float:
        if value != value or value in (_INF, -_INF):
            raise InvalidJSONError(
                f"{value!r} at {_render(trail)} is not a JSON number; use null or a string", where=where
            )
    else:
        raise InvalidJSONError(
            f"{kind.__name__} at {_render(trail)} has no exact JSON form; convert it to str, number, list or dict",
            where=where,
        )


def _render(trail: Any) -> str:
    keys = []
    while trail is not None:
        trail, key = trail
        keys.append(key)
    path = "$"
    for key in reversed(keys):
        path = f"{path}[{key}]" if isinstance(key, int) else _child_path(path, key)
    return path


def _keys_are_unique(raw: bytes, members: int) -> bool:
    """True when the text cannot hold more object members than were parsed.

    Every key is followed by a colon, so the quote-colon count is at least the
    number of members written; equal to the number parsed means none collapsed.
    """
    if raw.count(b'":') == members and _QUOTE_SPACE.search(raw) is None:
        return True  # every key ends in '":' exactly, so the cheap count was complete
    return len(_KEY_END.findall(raw)) == members


def _walk(value: dict[str, Any] | list[Any], max_depth: int, where: str) -> tuple[int, bool]:
    """Count object members, spot floats that may be mangled integers, and enforce the depth limit."""
    members = 0
    maybe_big = False
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > max_depth:
            raise InvalidJSONError(f"nesting deeper than {max_depth} levels; flatten the document", where=where)
        if type(node) is dict:
            members += len(node)
            children = node.values()
        else:
            children = node
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                push((child, depth + 1))
            elif kind is float and not -_BIG_FLOAT < child < _BIG_FLOAT:
                maybe_big = True
    return members, maybe_big


class _DuplicateKey(Exception):
    pass


class _BigInteger(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKey
    return result


def _bounded_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:  # past Python's digit limit: far outside 64 bits anyway
        raise _BigInteger(text) from None
    if not _INT_MIN <= number <= _INT_MAX:
        raise _BigInteger(text)
    return number


def _check_with_hooks(raw: bytes, where: str) -> None:
    """The slow path: let the stdlib parser see every object and integer."""
    text = raw.decode("utf-8")  # orjson accepted it, so it is valid UTF-8
    try:
        json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_bounded_int)
    except _DuplicateKey:
        key, path = _find_duplicate(text)
        raise InvalidJSONError(
            f"duplicate key {key!r} at {path}; each key may appear once per object", where=where
        ) from None
    except _BigInteger as exc:
        literal = str(exc)
        shown = literal if len(literal) <= 40 else literal[:20] + "..." + literal[-8:]
        raise InvalidJSONError(
            f"integer {shown} is outside -2**63..2**64-1 and cannot be carried exactly; send it as a string",
            where=where,
        ) from None


def loads_merging_repeated_keys(data: str | bytes | bytearray | memoryview, *, where: str = "") -> Any:
    """Parse JSON as strictly as `loads`, except that a repeated object key is read as EventBridge reads it.

    For event patterns only: EventBridge's matcher records each field as it
    reads the pattern, so a later value replaces an earlier one, and objects
    under a repeated key merge, key by key (`_merge_repeated`). Everything
    else `loads` refuses (NaN, integers beyond 64 bits, invalid UTF-8, ...)
    is still refused.
    """
    try:
        return loads(data, where=where)
    except InvalidJSONError as exc:
        if "duplicate key" not in str(exc):
            raise
    raw = bytes(data) if not isinstance(data, str) else data.encode("utf-8")
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_merge_repeated, parse_int=_bounded_int)
    except _BigInteger:
        _check_with_hooks(raw, where)  # raises the precise message
        raise  # pragma: no cover - _check_with_hooks raised
    check_value(value, where=where)
    return value


def _merge_repeated(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        earlier = result.get(key)
        if isinstance(earlier, dict) and isinstance(value, dict):
            result[key] = _merge_repeated([*earlier.items(), *value.items()])
        else:
            result[key] = value
    return result


class _Pairs(list[tuple[str, Any]]):
    """An object kept as its member list, so a duplicate can be located."""


def _find_duplicate(text: str) -> tuple[str, str]:
    tree = json.loads(text, object_pairs_hook=_Pairs)
    stack: list[tuple[Any, str]] = [(tree, "$")]
    # Depth-first in document order so the first duplicate reported is the first one written.
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Pairs):
            seen: set[str] = set()
            for key, _ in node:
                if key in seen:
                    return key, path
                seen.add(key)
            stack.extend((child, _child_path(path, key)) for key, child in reversed(node))
        elif isinstance(node, list):
            stack.extend((child, f"{path}[{i}]") for i, child in reversed(list(enumerate(node))))
    raise AssertionError("duplicate key reported but not found")  # pragma: no cover


def _child_path(path: str, key: str) -> str:
    if _IDENTIFIER.match(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _explain(raw: bytes, exc: orjson.JSONDecodeError, where: str, max_depth: int) -> InvalidJSONError:
    """Turn orjson's error into one that says what was wrong and where."""
    msg = exc.msg
    if msg.startswith("str is not valid UTF-8"):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            chunk = raw[bad.start : bad.start + 4].hex(" ")
            kind = "lone surrogate" if raw[bad.start] == 0xED else "invalid UTF-8"
            return InvalidJSONError(
                f"{kind} at byte offset {bad.start} (bytes {chunk}); the document must be UTF-8", where=where
            )
    if msg == "depth limit exceeded":
        return InvalidJSONError(f"nesting deeper than {max_depth} levels; flatten the document", where=where)
    at = {"line": exc.lineno, "column": exc.colno}
    if "surrogate" in msg:
        return InvalidJSONError(
            f"lone surrogate escape at line {exc.lineno} column {exc.colno}: {msg}; "
            "\\uD800-\\uDFFF escapes must come in high/low pairs",
            where=where,
            **at,
        )
    if msg == "number is infinity when parsed as double":
        return InvalidJSONError(
            f"number at line {exc.lineno} column {exc.colno} overflows a double (JSON numbers must be finite)",
            where=where,
            **at,
        )
    if raw[exc.pos : exc.pos + 3] in (b"NaN", b"Inf", b"-In"):
        return InvalidJSONError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: "
            "NaN and Infinity are not JSON; use null or a string",
            where=where,
            **at,
        )
    return InvalidJSONError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {msg}", where=where, **at)
