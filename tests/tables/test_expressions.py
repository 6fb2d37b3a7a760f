"""The expression engine against tables of cases: what holds, what an update makes, and DynamoDB's refusals."""

from __future__ import annotations

from typing import Any

import pytest

from triggerfish.tables.errors import ValidationError
from triggerfish.tables.evaluate import apply_update, holds, project
from triggerfish.tables.expressions import (
    Inputs,
    parse_condition,
    parse_key_condition,
    parse_projection,
    parse_update,
)
from triggerfish.tables.values import (
    check_value,
    from_python,
    key_text,
    normalize_number,
    to_python,
)

ITEM: dict[str, Any] = {
    "id": {"S": "o-1"},
    "status": {"S": "PAID"},
    "total": {"N": "42.5"},
    "tags": {"SS": ["gift", "rush"]},
    "lines": {"L": [{"M": {"sku": {"S": "lamp"}, "qty": {"N": "2"}}}, {"M": {"sku": {"S": "bulb"}}}]},
    "blob": {"B": "AAEC"},
    "flag": {"BOOL": True},
    "none": {"NULL": True},
}
VALUES = {
    ":paid": {"S": "PAID"}, ":new": {"S": "NEW"}, ":forty": {"N": "40"}, ":fifty": {"N": "50"}, ":gift": {"S": "gift"},
    ":p": {"S": "PA"}, ":two": {"N": "2"}, ":ss": {"S": "SS"}, ":lamp": {"S": "lamp"}, ":b": {"B": "AAE="},
    ":text": {"S": "42.5"},
}  # fmt: skip

HOLDS = [
    ("#s = :paid", True),
    ("#s <> :paid", False),
    ("total > :forty AND total < :fifty", True),
    ("total BETWEEN :forty AND :fifty", True),
    ("#s IN (:new, :paid)", True),
    ("NOT #s = :paid OR total >= :fifty", False),
    ("attribute_exists(lines[1].sku)", True),
    ("attribute_not_exists(lines[2])", True),
    ("attribute_type(tags, :ss)", True),
    ("begins_with(#s, :p)", True),
    ("begins_with(blob, :b)", True),
    ("contains(tags, :gift)", True),
    ("contains(#s, :p)", True),
    ("size(tags) = :two AND size(lines) = :two", True),
    ("lines[0].sku = :lamp", True),
    ("missing = :paid", False),  # a missing attribute compares false, never an error
    ("missing <> :paid", False),
    ("total = :text", False),  # a number never equals a string
    ("total > :text", False),  # nor orders against one
    ("(#s = :new OR #s = :paid) AND flag = flag", True),
]


@pytest.mark.parametrize(("text", "expected"), HOLDS)
def test_conditions(text: str, expected: bool) -> None:
    inputs = Inputs(names={"#s": "status"}, values=VALUES)
    assert holds(parse_condition(text, inputs), ITEM) is expected


UPDATES = [
    ("SET total = total + :two", {"total": {"N": "44.5"}}),
    ("SET cnt = if_not_exists(cnt, :forty) - :two", {"cnt": {"N": "38"}}),
    (
        "SET lines[0].qty = :forty",
        {"lines": {"L": [{"M": {"sku": {"S": "lamp"}, "qty": {"N": "40"}}}, {"M": {"sku": {"S": "bulb"}}}]}},
    ),
    ("SET l2 = list_append(:list, :list)", {"l2": {"L": [{"S": "a"}, {"S": "a"}]}}),
    ("REMOVE lines[0], flag", {"lines": {"L": [{"M": {"sku": {"S": "bulb"}}}]}, "flag": None}),
    ("ADD tags :set, hits :two", {"tags": {"SS": ["gift", "rush", "new"]}, "hits": {"N": "2"}}),
    ("DELETE tags :gone", {"tags": {"SS": ["rush"]}}),
    ("SET #s = total, total = #s", {"status": {"N": "42.5"}, "total": {"S": "PAID"}}),  # operands read the old item
]


@pytest.mark.parametrize(("text", "changed"), UPDATES)
def test_updates(text: str, changed: dict[str, Any]) -> None:
    values = {**VALUES, ":list": {"L": [{"S": "a"}]}, ":set": {"SS": ["new", "gift"]}, ":gone": {"SS": ["gift"]}}
    inputs = Inputs(names={"#s": "status"}, values=values)
    new = apply_update(parse_update(text, inputs), ITEM, {"id"})
    for name, value in changed.items():
        assert new.get(name) == value
    assert ITEM["total"] == {"N": "42.5"}  # the old item is not touched


REFUSED = [
    ("condition", "a = = b", 'Invalid ConditionExpression: Syntax error; token: "="'),
    ("condition", "#nope = :paid", "attribute name used in the document path is not defined; attribute name: #nope"),
    ("condition", "a = :nope", "attribute value used in expression is not defined; attribute value: :nope"),
    ("condition", "frobnicate(a)", "Invalid function name; function: frobnicate"),
    (
        "condition",
        "begins_with(a)",
        "Incorrect number of operands for operator or function; operator or function:"
        " begins_with, number of operands: 1",
    ),
    ("update", "SET a = :paid, a = :new", "Two document paths conflict"),
    ("update", "SET a = :paid REMOVE a.b", "Two document paths overlap"),
    ("update", "SET a = :paid SET b = :paid", 'The "SET" section can only be used once'),
    ("update", "SET id = :paid", "Cannot update attribute id. This attribute is part of the key"),
    ("update", "ADD #s :paid", "Incorrect operand type for operator or function; operator: ADD, operand type: STRING"),
    ("update", "SET x = #s + :two", "incorrect data type"),
    ("update", "SET nowhere.deep = :two", "The document path provided in the update expression is invalid for update"),
    ("key", "total > :forty", "Query condition missed key schema element"),
    ("key", "id = :paid OR id = :new", "Invalid KeyConditionExpression"),
]


@pytest.mark.parametrize(("kind", "text", "message"), REFUSED)
def test_refusals_say_what_dynamodb_says(kind: str, text: str, message: str) -> None:
    inputs = Inputs(names={"#s": "status"}, values=VALUES)

    def attempt() -> object:
        if kind == "condition":
            return parse_condition(text, inputs)
        if kind == "update":
            return apply_update(parse_update(text, inputs), ITEM, {"id"})
        return parse_key_condition(text, inputs, "id", None)

    with pytest.raises(ValidationError) as refused:
        attempt()
    assert message in str(refused.value)


def test_unused_placeholders_are_refused() -> None:
    inputs = Inputs(names={"#s": "status", "#x": "x"}, values={":paid": {"S": "PAID"}, ":y": {"S": "y"}})
    parse_condition("#s = :paid", inputs)
    with pytest.raises(ValidationError, match=r"ExpressionAttributeNames unused in expressions: keys: \{#x\}"):
        inputs.check_unused()


def test_projection_keeps_nested_shape() -> None:
    paths = parse_projection("id, lines[1].sku, tags", Inputs())
    assert project(ITEM, paths) == {
        "id": {"S": "o-1"},
        "lines": {"L": [{"M": {"sku": {"S": "bulb"}}}]},
        "tags": {"SS": ["gift", "rush"]},
    }


def test_key_text_sorts_as_dynamodb_sorts_keys() -> None:
    numbers = ["-1e10", "-100", "-10.5", "-10", "-1.12", "-1.1", "-1", "-0.5", "0", "1e-5", "0.5", "1", "1.1",
               "1.12", "10", "100", "1e30"]  # fmt: skip
    assert sorted(numbers, key=lambda t: key_text({"N": t})) == numbers
    strings = ["A", "Z", "a", "a\x01", "ab", "é", "中"]
    assert sorted(strings, key=lambda t: key_text({"S": t})) == strings
    binaries = ["AA==", "AQ==", "AQA=", "/w=="]  # 00, 01, 01 00, ff
    assert sorted(binaries, key=lambda t: key_text({"B": t})) == binaries


def test_values_are_checked_and_numbers_normalized() -> None:
    assert normalize_number("0100.50") == "100.5"
    assert normalize_number("-0") == "0"
    with pytest.raises(ValidationError, match="38 significant digits"):
        normalize_number("1" * 39)
    with pytest.raises(ValidationError, match="cannot be converted into a number"):
        normalize_number("twelve")
    with pytest.raises(ValidationError, match="may not be empty"):
        check_value({"SS": []}, "Item.tags")
    with pytest.raises(ValidationError, match="contains duplicates"):
        check_value({"NS": ["1", "1.0"]}, "Item.n")
    with pytest.raises(ValidationError, match="more than one datatypes"):
        check_value({"S": "a", "N": "1"}, "Item.x")


def test_python_values_round_trip() -> None:
    value = {"n": 3, "f": 2.5, "s": "x", "b": b"\x00", "t": True, "z": None, "l": [1, "a"], "ss": {"a", "b"}}
    assert to_python(from_python(value)) == value
    with pytest.raises(ValidationError, match="an empty set cannot be stored"):
        from_python(set())
