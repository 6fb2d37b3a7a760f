"""Argument checks every store part shares: names, keys, bodies, counts, times and durations.

Each raises `InvalidNameError` or `InvalidInputError` saying what was wrong and what is allowed,
before anything reaches a backend.
"""

from __future__ import annotations

import re

from triggerfish.errors import InvalidInputError, InvalidNameError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,254}")
_MAX_KEY_CHARS = 1024
#: Names that passed: a platform names the same few namespaces, queues and streams in every write, and a set
#: lookup is a tenth of the pattern's match. Bounded, so that names made up per request cannot grow it for ever.
_GOOD_NAMES: set[str] = set()
_MAX_GOOD_NAMES = 4096


def check_name(kind: str, name: str) -> str:
    """Validate a bus, stream, queue or namespace name and return it."""
    if type(name) is str and name in _GOOD_NAMES:
        return name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid {kind} name {name!r}: use 1 to 255 characters from letters, digits and . _ : / @ -,"
            " starting with a letter or digit"
        )
    if len(_GOOD_NAMES) >= _MAX_GOOD_NAMES:
        _GOOD_NAMES.clear()
    if type(name) is str:
        _GOOD_NAMES.add(name)
    return name


def check_key(key: str) -> str:
    if type(key) is str and 0 < len(key) <= _MAX_KEY_CHARS and key.isascii() and "\x00" not in key:
        return key  # the common case, in one expression: ASCII text is always encodable
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY_CHARS or "\x00" in key or not encodable(key):
        raise InvalidNameError(f"invalid key {key!r}: use 1 to {_MAX_KEY_CHARS} characters, no NUL or lone surrogate")
    return key


def encodable(text: str) -> bool:
    # A lone surrogate cannot be written as UTF-8, so no durable store could keep it.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_body(what: str, body: bytes, limit: int) -> bytes:
    if type(body) is bytes and len(body) <= limit:
        return body
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"{what} must be bytes, not {type(body).__name__}")
    body = bytes(body)
    if len(body) > limit:
        raise InvalidInputError(f"{what} is {len(body)} bytes, over the store's limit of {limit} bytes")
    return body


def check_count(what: str, value: int, *, minimum: int = 0) -> int:
    # The ceiling is SQLite's integer range: a store must be able to compare with what it was given.
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < 2**63:
        raise InvalidInputError(f"{what} must be a whole number from {minimum} to 2**63 - 1, not {value!r}")
    return value


def check_time(what: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise InvalidInputError(f"{what} must be a time in seconds since the epoch, or None, not {value!r}")
    return float(value)


def check_seconds(what: str, value: float, *, allow_zero: bool = True, maximum: float = 12 * 3600 * 24) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise InvalidInputError(f"{what} must be a number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero) or value > maximum:
        low = "0" if allow_zero else "more than 0"
        raise InvalidInputError(f"{what} must be from {low} to {maximum:g} seconds, not {value!r}")
    return float(value)


def key_range(prefix: str, after_prefix: str | None, start: str, end: str | None) -> tuple[str, str | None]:
    """The key range `[low, high)` a scan reads: the prefix's range narrowed by `start` and `end` (None: unbounded)."""
    high = after_prefix if end is None else (end if after_prefix is None else min(after_prefix, end))
    return max(prefix, start), high
