"""test_decoding's lines, as PostgreSQL 15 printed them, parsed into transactions and typed columns."""

from __future__ import annotations

import pytest

from triggerfish.changes.pg_decoding import (
    Begin,
    Column,
    Commit,
    DecodingFormatError,
    RowChange,
    parse_line,
    qualified_name,
)

INSERT = (
    "table pgc_try.t: INSERT: id[integer]:1 \"Name Col\"[text]:'it''s \"q\"' n[numeric]:1.50 b[boolean]:true"
    " j[jsonb]:'{\"a\": [1, \"x\"]}' by[bytea]:'\\x00ff' ts[timestamp with time zone]:'2026-12-06 19:09:11.179867+00'"
    " arr[integer[]]:'{1,2}' f[double precision]:1e+300 v[character varying]:null"
)


def test_an_insert_keeps_every_column_its_type_and_its_value_unquoted() -> None:
    change = parse_line(INSERT)
    assert isinstance(change, RowChange)
    assert (change.op, change.schema, change.table, change.old) == ("INSERT", "pgc_try", "t", None)
    assert change.new == (
        Column("id", "integer", "1"),
        Column("Name Col", "text", 'it\'s "q"'),
        Column("n", "numeric", "1.50"),
        Column("b", "boolean", "true"),
        Column("j", "jsonb", '{"a": [1, "x"]}'),
        Column("by", "bytea", "\\x00ff"),
        Column("ts", "timestamp with time zone", "2026-12-06 19:09:11.179867+00"),
        Column("arr", "integer[]", "{1,2}"),
        Column("f", "double precision", "1e+300"),
        Column("v", "character varying", None),
    )


def test_an_update_that_changed_the_key_has_the_old_key_and_the_new_tuple() -> None:
    change = parse_line("table public.t: UPDATE: old-key: id[integer]:2 new-tuple: id[integer]:3 note[text]:'a b'")
    assert isinstance(change, RowChange)
    assert change.op == "UPDATE"
    assert change.old == (Column("id", "integer", "2"),)
    assert change.new == (Column("id", "integer", "3"), Column("note", "text", "a b"))


def test_an_update_without_old_key_and_an_unchanged_toast_value() -> None:
    change = parse_line("table public.t: UPDATE: id[integer]:1 big[text]:unchanged-toast-datum")
    assert isinstance(change, RowChange)
    assert change.old is None
    assert change.new == (Column("id", "integer", "1"), Column("big", "text", None, unchanged=True))


def test_deletes_with_the_key_with_nothing_and_a_truncate() -> None:
    delete = parse_line("table public.t: DELETE: id[integer]:3")
    assert isinstance(delete, RowChange)
    assert (delete.op, delete.new, delete.old) == ("DELETE", None, (Column("id", "integer", "3"),))
    bare = parse_line("table public.t: DELETE: (no-tuple-data)")
    assert isinstance(bare, RowChange)
    assert bare.old is None
    truncate = parse_line("table public.t: TRUNCATE: (no-flags)")
    assert isinstance(truncate, RowChange)
    assert truncate.op == "TRUNCATE"


def test_quoted_schema_and_table_names_and_bit_strings() -> None:
    change = parse_line('table "My Schema"."Or""ders": INSERT: id[integer]:1 flags[bit(3)]:B\'101\'')
    assert isinstance(change, RowChange)
    assert (change.schema, change.table) == ("My Schema", 'Or"ders')
    assert change.new is not None
    assert change.new[1] == Column("flags", "bit(3)", "101")
    assert qualified_name("My Schema", 'Or"ders') == '"My Schema"."Or""ders"'
    assert qualified_name("public", "orders") == "public.orders"


def test_begin_and_commit_with_the_commit_time() -> None:
    assert parse_line("BEGIN 729") == Begin(729)
    assert parse_line("COMMIT 729 (at 2026-12-06 19:09:11.190273+00)") == Commit(729, "2026-12-06 19:09:11.190273+00")
    assert parse_line("COMMIT 5") == Commit(5, None)


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ('{"action": "I"}', "not a test_decoding line"),
        ("table public.t: MERGE: id[integer]:1", "unknown change 'MERGE'"),
        ("table public.t: INSERT: id[integer:1", "expected ']:'"),
        ("table public.t: INSERT: note[text]:'open", "unterminated value of column 'note'"),
        ("BEGIN x", "not a number"),
    ],
)
def test_a_line_not_in_the_format_is_refused_with_where(line: str, said: str) -> None:
    with pytest.raises(DecodingFormatError, match=said):
        parse_line(line)


def test_values_holding_the_formats_own_words_newlines_and_brackets_stay_values() -> None:
    line = (
        "table public.t: UPDATE: old-key: id[integer]:1 note[text]:'x new-tuple: y' "
        "new-tuple: id[integer]:1 note[text]:'line one\nline two ]: [z]' tags[text[]]:'{\"a]:b\"}'"
    )
    change = parse_line(line)
    assert isinstance(change, RowChange)
    assert change.old == (Column("id", "integer", "1"), Column("note", "text", "x new-tuple: y"))
    assert change.new == (
        Column("id", "integer", "1"),
        Column("note", "text", "line one\nline two ]: [z]"),
        Column("tags", "text[]", '{"a]:b"}'),
    )
