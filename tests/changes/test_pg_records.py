"""Row changes as DynamoDB Streams records: types, keys, images per view type, sequence numbers."""

from __future__ import annotations

import base64

import pytest

from triggerfish.changes.pg_decoding import Column, RowChange
from triggerfish.changes.pg_records import (
    Position,
    RecordError,
    attribute,
    commit_time,
    format_lsn,
    parse_array,
    parse_lsn,
    stream_record,
)

ARN = "arn:triggerfish:postgresql:local:000000000000:table/db/public.orders/stream/tf_x"


@pytest.mark.parametrize(
    ("type_name", "value", "expected"),
    [
        ("integer", "42", {"N": "42"}),
        ("numeric", "1.50", {"N": "1.50"}),
        ("double precision", "NaN", {"S": "NaN"}),
        ("boolean", "true", {"BOOL": True}),
        ("boolean", "false", {"BOOL": False}),
        ("text", "it's", {"S": "it's"}),
        ("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", {"S": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}),
        ("bytea", "\\x00ff", {"B": base64.b64encode(b"\x00\xff").decode()}),
        ("jsonb", '{"a": [1, "x", null, true, 2.5]}',
         {"M": {"a": {"L": [{"N": "1"}, {"S": "x"}, {"NULL": True}, {"BOOL": True}, {"N": "2.5"}]}}}),
        ("integer[]", "{1,2}", {"L": [{"N": "1"}, {"N": "2"}]}),
        ("text[]", '{"a b",NULL,"q\\"uote"}', {"L": [{"S": "a b"}, {"NULL": True}, {"S": 'q"uote'}]}),
        ("integer[]", "{{1,2},{3,4}}", {"L": [{"L": [{"N": "1"}, {"N": "2"}]}, {"L": [{"N": "3"}, {"N": "4"}]}]}),
        ("boolean[]", "{t,f}", {"L": [{"BOOL": True}, {"BOOL": False}]}),
        ("text", None, {"NULL": True}),
    ],
)  # fmt: skip
def test_postgresql_types_become_the_documented_attribute_values(
    type_name: str, value: str | None, expected: dict[str, object]
) -> None:
    assert attribute(type_name, value) == expected


def test_arrays_and_lsns_parse_and_bad_ones_are_refused() -> None:
    assert parse_array("{}") == []
    with pytest.raises(ValueError, match="not an array literal"):
        parse_array("[0:1]={1,2}")
    assert parse_lsn("16/B374D848") == 0x16B374D848
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    with pytest.raises(ValueError, match="not an LSN"):
        parse_lsn("12345")
    assert commit_time("2026-12-06 19:09:11.5+00", 0.0) == pytest.approx(1796584151.5)
    assert commit_time(None, 7.0) == 7.0


def test_sequence_numbers_sort_in_stream_order_as_text() -> None:
    positions = [Position(0x10, 2), Position(0x10, 10), Position(0x2000000, 0), Position(0x1_0000_0000, 1)]
    assert sorted(p.sequence for p in positions) == [p.sequence for p in positions]
    assert all(p.sequence.isdigit() and len(p.sequence) == 28 for p in positions)


ROW = (Column("id", "integer", "7"), Column("status", "text", "PAID"), Column("note", "text", None, unchanged=True))
OLD = (Column("id", "integer", "7"), Column("status", "text", "NEW"), Column("note", "text", "long text"))


def record(change: RowChange, view: str) -> dict[str, object]:
    return stream_record(change, Position(100, 0), keys=("id",), view=view, created=1.5, source_arn=ARN)  # type: ignore[arg-type]


def test_a_modify_under_new_and_old_images_has_both_and_fills_unlogged_toast_from_the_old_row() -> None:
    made = record(RowChange("UPDATE", "public", "orders", ROW, OLD), "NEW_AND_OLD_IMAGES")
    assert made["eventName"] == "MODIFY"
    assert made["eventSource"] == "triggerfish:postgresql"
    assert made["eventSourceARN"] == ARN
    body = made["dynamodb"]
    assert isinstance(body, dict)
    assert body["Keys"] == {"id": {"N": "7"}}
    assert body["NewImage"] == {"id": {"N": "7"}, "status": {"S": "PAID"}, "note": {"S": "long text"}}
    assert body["OldImage"]["status"] == {"S": "NEW"}
    assert body["SequenceNumber"] == Position(100, 0).sequence
    assert body["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert body["SizeBytes"] > 0
    assert body["ApproximateCreationDateTime"] == 1.5


def test_view_types_choose_the_images() -> None:
    update = RowChange("UPDATE", "public", "orders", ROW, OLD)
    delete = RowChange("DELETE", "public", "orders", None, (Column("id", "integer", "7"),))
    keys_only = record(update, "KEYS_ONLY")["dynamodb"]
    assert isinstance(keys_only, dict)
    assert "NewImage" not in keys_only
    assert "OldImage" not in keys_only
    new_only = record(RowChange("UPDATE", "public", "orders", ROW, None), "NEW_IMAGE")["dynamodb"]
    assert isinstance(new_only, dict)
    assert "OldImage" not in new_only
    assert new_only["NewImage"] == {"id": {"N": "7"}, "status": {"S": "PAID"}}  # an unlogged value is left out
    removed = record(delete, "NEW_IMAGE")
    assert removed["eventName"] == "REMOVE"
    body = removed["dynamodb"]
    assert isinstance(body, dict)
    assert body["Keys"] == {"id": {"N": "7"}}
    assert "NewImage" not in body


def test_a_change_without_its_key_columns_says_which_replica_identity_to_set() -> None:
    with pytest.raises(RecordError, match="REPLICA IDENTITY"):
        record(RowChange("DELETE", "public", "orders", None, None), "NEW_IMAGE")
