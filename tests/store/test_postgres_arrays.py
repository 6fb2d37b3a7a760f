"""The PostgreSQL store's array parameters, laid out by the store itself: the server reads exactly the values
psycopg's own dumping of the same lists gives it, NULLs, empty arrays and every edge of each type included."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import psycopg
import pytest

from tests.services import POSTGRES_URL, require_postgres
from triggerfish.store import _pg_arrays as arrays

CASES: list[tuple[str, Callable[[Any], arrays.EncodedArray], Sequence[Any]]] = [
    ("text", arrays.text_array, ["a", "", "välue ☃", "\U0001f600", "x" * 5000, 'it\'s "quoted" {1,2}']),
    ("text", arrays.text_array, [None, "a", None, ""]),
    ("text", arrays.text_array, [None, None]),
    ("text", arrays.text_array, []),
    ("bytea", arrays.bytea_array, [b"", b"\x00\xff", b"{}", bytes(range(256)) * 40]),
    ("bytea", arrays.bytea_array, [b"a", None]),
    ("float8", arrays.float8_array, [0.0, -0.0, 1.5, 1796670968.8628995, math.inf, -math.inf, 5e-324, 7.0]),
    ("float8", arrays.float8_array, [None, 2.5, None]),
    ("bigint", arrays.int8_array, [0, 1, -1, 2**63 - 1, -(2**63), 42]),
    ("bigint", arrays.int8_array, [None, 3]),
    ("int", arrays.int4_array, [0, 1, -1, 2**31 - 1, -(2**31)]),
    ("int", arrays.int4_array, []),
    ("bool", arrays.bool_array, [True, False, True]),
    ("bool", arrays.bool_array, [None, False]),
]


@pytest.fixture
async def conn() -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    require_postgres()
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as c:
        yield c


@pytest.mark.parametrize(("kind", "encode", "values"), CASES)
async def test_an_array_laid_out_by_the_store_reads_as_psycopgs_own(
    conn: psycopg.AsyncConnection[Any], kind: str, encode: Callable[[Any], arrays.EncodedArray], values: Sequence[Any]
) -> None:
    query = f"SELECT %b::{kind}[], %b::{kind}[], cardinality(%b::{kind}[])"
    cursor = await conn.execute(query, (encode(values), list(values), encode(values)))
    ours, psycopgs, length = await cursor.fetchone() or (None, None, None)
    assert ours == psycopgs
    assert ours == list(values)
    assert length == len(values)


async def test_unnest_pairs_the_store_arrays_row_by_row(conn: psycopg.AsyncConnection[Any]) -> None:
    names, bodies, times = ["a", "b", "c"], [b"1", None, b"3"], [1.0, 2.0, 3.5]
    cursor = await conn.execute(
        "SELECT * FROM unnest(%b::text[], %b::bytea[], %b::float8[])",
        (arrays.text_array(names), arrays.bytea_array(bodies), arrays.float8_array(times)),
    )
    assert await cursor.fetchall() == list(zip(names, bodies, times, strict=True))


async def test_nan_reads_back_as_nan(conn: psycopg.AsyncConnection[Any]) -> None:
    cursor = await conn.execute("SELECT %b::float8[]", (arrays.float8_array([math.nan]),))
    ((value,),) = await cursor.fetchall()
    assert math.isnan(value[0])
