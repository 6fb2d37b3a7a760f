"""Array parameters for PostgreSQL, laid out in the server's binary array format by a few calls each.

The store passes a batch's rows as arrays (`unnest(%b::text[], ...)`): a settle of 25 invocations sends some
400 elements, a send of 50 messages some 450. psycopg dumps a list element by element in Python (the element's
dumper looked up, its bytes and length packed and appended), about a microsecond an element on the platform's
event loop: some 16 µs of the ~200 µs an async invocation costs the loop on PostgreSQL. Here an array without
NULLs is one `struct` pack (fixed-size elements) or one join over lengths packed by `map` (text and bytea), and
one with NULLs a plain loop; the server reads the same bytes psycopg would have sent (`array_recv`).

    await c.execute("SELECT * FROM unnest(%b::text[], %b::bytea[])", (text_array(names), bytea_array(bodies)))

Each wrapper is a parameter type of its own, with its dumper registered in psycopg's global adapters when this
module is imported: any connection can send them (the store's pool, a test's own connection), and nothing else
psycopg dumps changes, since no other value is of these types.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from typing import Any

from psycopg import adapt, adapters, pq

__all__ = [
    "bool_array",
    "bytea_array",
    "float8_array",
    "int4_array",
    "int8_array",
    "text_array",
]

# Element types and their array types (pg_type.oid).
_BOOL, _BYTEA, _INT8, _INT4, _TEXT, _FLOAT8 = 16, 17, 20, 23, 25, 701
_ARRAY_OF = {_BOOL: 1000, _BYTEA: 1001, _INT8: 1016, _INT4: 1007, _TEXT: 1009, _FLOAT8: 1022}

#: One dimension: dimensions, has-NULLs flag, element type, length, lower bound.
_HEADER = struct.Struct(">iiiii")
_EMPTY = struct.Struct(">iii")
_LENGTH = struct.Struct(">i").pack
_NULL = _LENGTH(-1)


class EncodedArray:
    """An array parameter already in the binary wire format (made by the functions below)."""

    __slots__ = ("data",)
    oid = 0

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self.data)} bytes>"


class TextArray(EncodedArray):
    __slots__ = ()
    oid = _ARRAY_OF[_TEXT]


class ByteaArray(EncodedArray):
    __slots__ = ()
    oid = _ARRAY_OF[_BYTEA]


class Float8Array(EncodedArray):
    __slots__ = ()
    oid = _ARRAY_OF[_FLOAT8]


class Int8Array(EncodedArray):
    __slots__ = ()
    oid = _ARRAY_OF[_INT8]


class Int4Array(EncodedArray):
    __slots__ = ()
    oid = _ARRAY_OF[_INT4]


class BoolArray(EncodedArray):
    __slots__ = ()
    oid = _ARRAY_OF[_BOOL]


def text_array(items: Sequence[str | None]) -> TextArray:
    if None in items:
        return TextArray(_with_nulls(items, _TEXT, str.encode))
    return TextArray(_variable([text.encode() for text in items], _TEXT))  # type: ignore[union-attr]


def bytea_array(items: Sequence[bytes | None]) -> ByteaArray:
    if None in items:
        return ByteaArray(_with_nulls(items, _BYTEA, bytes))
    return ByteaArray(_variable(items, _BYTEA))  # type: ignore[arg-type]


def float8_array(items: Sequence[float | None]) -> Float8Array:
    return Float8Array(_fixed(items, _FLOAT8, "d", 8))


def int8_array(items: Sequence[int | None]) -> Int8Array:
    return Int8Array(_fixed(items, _INT8, "q", 8))


def int4_array(items: Sequence[int | None]) -> Int4Array:
    return Int4Array(_fixed(items, _INT4, "i", 4))


def bool_array(items: Sequence[bool | None]) -> BoolArray:
    return BoolArray(_fixed(items, _BOOL, "?", 1))


def _variable(items: Sequence[bytes], element: int) -> bytes:
    """Elements of any length, none NULL: each its length, then its bytes."""
    if not items:
        return _EMPTY.pack(0, 0, element)
    parts: list[bytes] = [b""] * (2 * len(items))
    parts[0::2] = map(_LENGTH, map(len, items))
    parts[1::2] = items
    return _HEADER.pack(1, 0, element, len(items), 1) + b"".join(parts)


def _with_nulls(items: Sequence[object], element: int, encode: Callable[[Any], bytes]) -> bytes:
    """Any elements, some NULL (length -1, no bytes): a loop, as NULLs are few but for columns mostly empty."""
    parts: list[bytes] = []
    append = parts.append
    for item in items:
        if item is None:
            append(_NULL)
        else:
            data = encode(item)
            append(_LENGTH(len(data)))
            append(data)
    return _HEADER.pack(1, 1, element, len(items), 1) + b"".join(parts)


def _fixed(items: Sequence[object], element: int, code: str, size: int) -> bytes:
    """Fixed-size elements: without NULLs, the header, each length and each value in one pack."""
    count = len(items)
    if not count:
        return _EMPTY.pack(0, 0, element)
    if None in items:
        one = struct.Struct(">" + code).pack
        return _with_nulls(items, element, one)
    flat: list[object] = [size, None] * count
    flat[1::2] = items
    return _layout(code, count).pack(1, 0, element, count, 1, *flat)


@functools.lru_cache(maxsize=512)
def _layout(code: str, count: int) -> struct.Struct:
    return struct.Struct(">iiiii" + ("i" + code) * count)


class _EncodedDumper(adapt.Dumper):
    format = pq.Format.BINARY

    def dump(self, obj: EncodedArray) -> bytes:
        return obj.data


for _wrapper in (TextArray, ByteaArray, Float8Array, Int8Array, Int4Array, BoolArray):
    adapters.register_dumper(_wrapper, type(f"{_wrapper.__name__}Dumper", (_EncodedDumper,), {"oid": _wrapper.oid}))
