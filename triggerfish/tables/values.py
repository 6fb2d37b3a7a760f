"""DynamoDB's attribute values: checked, compared, sized, ordered, and turned into Python and back.

Items are kept and evaluated in DynamoDB's typed JSON (`{"S": "x"}`, `{"N": "1.5"}`,
`{"B": "<base64>"}`, `{"SS": [...]}`, `{"L": [...]}`, `{"M": {...}}`, `{"BOOL": true}`,
`{"NULL": true}`), the form the wire and the stream records carry, so nothing is lost
between a write and its change record. `to_python`/`from_python` are for handlers, who
get plain values (`context.table`).

Key values are also turned into text that sorts as DynamoDB sorts keys (numbers
numerically, strings and binary by bytes), so a store's ordered key-value scan is a
table's query. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import decimal
from collections.abc import Mapping
from typing import Any

from triggerfish.tables.errors import ValidationError

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]

SCALAR_KEY_TYPES = ("S", "N", "B")
TYPES = ("S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M")
#: DynamoDB's largest item, in bytes (names and values).
MAX_ITEM_BYTES = 400 * 1024
_NUMBERS = decimal.Context(prec=38, Emin=-130, Emax=125, traps=[decimal.InvalidOperation])
_MAX_DEPTH = 32
_TYPE_NAMES = {"S": "STRING", "N": "NUMBER", "B": "BINARY", "BOOL": "BOOLEAN", "NULL": "NULL",
               "SS": "STRING SET", "NS": "NUMBER SET", "BS": "BINARY SET", "L": "LIST", "M": "MAP"}  # fmt: skip


def type_of(value: AttributeValue) -> str:
    return next(iter(value))


def type_name(value: AttributeValue) -> str:
    """How DynamoDB's messages name a value's type (`STRING`, `NUMBER`, ...)."""
    return _TYPE_NAMES[type_of(value)]


def number(text: str) -> decimal.Decimal:
    return decimal.Decimal(text)


def normalize_number(text: object, where: str = "") -> str:
    """A number as DynamoDB keeps it: at most 38 significant digits, magnitude from 1E-130 to below 1E+126."""
    if not isinstance(text, str):
        raise ValidationError(f'{where}: a number is sent as a string ("N": "42"), not {text!r}')
    try:
        value = decimal.Decimal(text.strip())
    except decimal.InvalidOperation:
        raise ValidationError(f"A value provided cannot be converted into a number{_at(where)}: {text!r}") from None
    if not value.is_finite():
        raise ValidationError(f"A value provided cannot be converted into a number{_at(where)}: {text!r}")
    if value.is_zero():
        return "0"
    digits = value.normalize(decimal.Context(prec=100)).as_tuple().digits
    if len(digits) > 38:
        raise ValidationError(f"Attempting to store more than 38 significant digits in a Number{_at(where)}")
    if value.adjusted() > 125:
        raise ValidationError(
            f"Number overflow. Attempting to store a number with magnitude larger than supported range{_at(where)}"
        )
    if value.adjusted() < -130:
        raise ValidationError(
            f"Number underflow. Attempting to store a number with magnitude smaller than supported range{_at(where)}"
        )
    return format(value.normalize(decimal.Context(prec=38)), "f")


def _at(where: str) -> str:
    return f" (at {where})" if where else ""


def check_value(value: object, where: str, depth: int = 0) -> AttributeValue:
    """A typed attribute value, checked and normalized (numbers canonical); ValidationError says what is wrong."""
    if not isinstance(value, Mapping) or len(value) != 1:
        if isinstance(value, Mapping):
            raise ValidationError(
                f"Supplied AttributeValue is empty, must contain exactly one of the supported datatypes ({where})"
                if not value
                else f"Supplied AttributeValue has more than one datatypes set, must contain exactly one ({where})"
            )
        raise ValidationError(f'{where}: an attribute value is an object with one type key, {{"S": "text"}}: {value!r}')
    if depth > _MAX_DEPTH:
        raise ValidationError(f"Nesting Levels have exceeded supported limits at {where}: at most {_MAX_DEPTH}")
    [(kind, body)] = value.items()
    if kind == "S":
        if not isinstance(body, str):
            raise ValidationError(f'{where}: "S" takes a string, not {body!r}')
        return {"S": body}
    if kind == "N":
        return {"N": normalize_number(body, where)}
    if kind == "B":
        return {"B": _binary(body, where)}
    if kind == "BOOL":
        if not isinstance(body, bool):
            raise ValidationError(f'{where}: "BOOL" takes true or false, not {body!r}')
        return {"BOOL": body}
    if kind == "NULL":
        if body is not True:
            raise ValidationError(
                "One or more parameter values were invalid: Null attribute value types must have the value of true"
                f" ({where})"
            )
        return {"NULL": True}
    if kind in ("SS", "NS", "BS"):
        if not isinstance(body, list):
            raise ValidationError(f'{where}: "{kind}" takes a list, not {body!r}')
        if not body:
            raise ValidationError(
                f"One or more parameter values were invalid: An {_TYPE_NAMES[kind].lower()} may not be empty ({where})"
            )
        if kind == "SS":
            items = [_string(item, where) for item in body]
        elif kind == "NS":
            items = [normalize_number(item, where) for item in body]
        else:
            items = [_binary(item, where) for item in body]
        keys = [number(i) for i in items] if kind == "NS" else items
        if len(set(keys)) != len(keys):
            raise ValidationError(f"Input collection {body!r} contains duplicates ({where})")
        return {kind: items}
    if kind == "L":
        if not isinstance(body, list):
            raise ValidationError(f'{where}: "L" takes a list, not {body!r}')
        return {"L": [check_value(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(body)]}
    if kind == "M":
        if not isinstance(body, Mapping):
            raise ValidationError(f'{where}: "M" takes an object, not {body!r}')
        return {"M": {str(k): check_value(v, f"{where}.{k}", depth + 1) for k, v in body.items()}}
    raise ValidationError(f"{where}: unknown attribute value type {kind!r}; DynamoDB's types are {', '.join(TYPES)}")


def check_item(item: object, where: str = "Item") -> Item:
    """A whole item: names to typed values, within DynamoDB's 400 KB."""
    if not isinstance(item, Mapping):
        raise ValidationError(f"{where} must be an object of attribute names to values, not {type(item).__name__}")
    checked: Item = {}
    for name, value in item.items():
        if not isinstance(name, str) or not name:
            raise ValidationError(f"{where}: attribute names are non-empty strings, not {name!r}")
        checked[name] = check_value(value, f"{where}.{name}")
    if item_size(checked) > MAX_ITEM_BYTES:
        raise ValidationError("Item size has exceeded the maximum allowed size")
    return checked


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{where}: a string set holds strings, not {value!r}")
    return value


def _binary(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{where}: binary is sent as base64 text, not {value!r}")
    try:
        return base64.b64encode(base64.b64decode(value, validate=True)).decode("ascii")
    except (binascii.Error, ValueError):
        raise ValidationError(f"{where}: {value[:40]!r} is not valid base64") from None


def value_size(value: AttributeValue) -> int:
    """Bytes DynamoDB counts for a value (close to its rules: text in UTF-8, numbers by digits)."""
    kind, body = next(iter(value.items()))
    if kind == "S":
        return len(body.encode("utf-8"))
    if kind == "N":
        return len(body.replace("-", "").replace(".", "")) // 2 + 1
    if kind == "B":
        return len(base64.b64decode(body))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: item}) for item in body)
    if kind == "L":
        return 3 + sum(value_size(item) + 1 for item in body)
    return 3 + sum(len(k.encode("utf-8")) + value_size(v) + 1 for k, v in body.items())


def item_size(item: Item) -> int:
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def equal(a: AttributeValue | None, b: AttributeValue | None) -> bool:
    """DynamoDB's `=`: same type and value; numbers by value, sets regardless of order."""
    if a is None or b is None:
        return False
    kind, left = next(iter(a.items()))
    other, right = next(iter(b.items()))
    if kind != other:
        return False
    if kind == "N":
        return bool(number(left) == number(right))
    if kind == "NS":
        return {number(x) for x in left} == {number(x) for x in right}
    if kind in ("SS", "BS"):
        return set(left) == set(right)
    if kind == "L":
        return len(left) == len(right) and all(equal(x, y) for x, y in zip(left, right, strict=True))
    if kind == "M":
        return left.keys() == right.keys() and all(equal(left[k], right[k]) for k in left)
    return bool(left == right)


def ordered(value: AttributeValue) -> Any:
    """A Python value that orders as DynamoDB orders this type (N numerically, S and B by bytes)."""
    kind, body = next(iter(value.items()))
    if kind == "N":
        return number(body)
    if kind == "S":
        return body.encode("utf-8")
    if kind == "B":
        return base64.b64decode(body)
    return None


# --- keys as ordered text ---------------------------------------------------------------------


def key_text(value: AttributeValue) -> str:
    """Text that sorts, by code points (UTF-8 bytes), as DynamoDB sorts this key value; no NUL in it."""
    kind, body = next(iter(value.items()))
    if kind == "S":
        if "\x00" in body:
            raise ValidationError(
                "One or more parameter values were invalid: key values cannot hold the NUL character here"
            )
        return str(body)
    if kind == "B":
        return base64.b64decode(body).hex()
    return _number_text(number(body))


def _number_text(value: decimal.Decimal) -> str:
    # Sign class first (0 negative < 1 zero < 2 positive), then the exponent, then the digits. For negatives
    # everything is complemented so larger magnitudes sort first, and "~" ends them so that a longer mantissa
    # (more negative) sorts before its prefix.
    if value.is_zero():
        return "1"
    sign, digits, _ = value.normalize(_NUMBERS).as_tuple()
    exponent = value.adjusted() + 200
    mantissa = "".join(str(d) for d in digits).rstrip("0") or "0"
    if not sign:
        return f"2{exponent:03d}{mantissa}"
    flipped = "".join(str(9 - int(d)) for d in mantissa)
    return f"0{999 - exponent:03d}{flipped}~"


def escape_part(text: str) -> str:
    """`text` made safe to end with "\\x01" (a separator that sorts before every character kept)."""
    return text.replace("\x02", "\x02\x03").replace("\x01", "\x02\x02")


# --- Python values, for handlers --------------------------------------------------------------


def from_python(value: object, where: str = "value") -> AttributeValue:
    """A plain Python value as a typed one: str, int/float/Decimal, bytes, bool, None, list, dict, set."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (int, float, decimal.Decimal)):
        return {"N": normalize_number(_number_str(value, where), where)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"B": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {"M": {str(k): from_python(v, f"{where}.{k}") for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [from_python(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, (set, frozenset)):
        if not value:
            raise ValidationError(f"{where}: an empty set cannot be stored (DynamoDB has no empty sets); remove it")
        if all(isinstance(v, str) for v in value):
            return {"SS": sorted(value)}
        if all(isinstance(v, (bytes, bytearray)) for v in value):
            return {"BS": [base64.b64encode(bytes(v)).decode("ascii") for v in sorted(value)]}
        if all(isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool) for v in value):
            return {"NS": [normalize_number(_number_str(v, where), where) for v in value]}
        raise ValidationError(f"{where}: a set holds only strings, only numbers or only bytes, not {value!r}")
    raise ValidationError(
        f"{where}: {type(value).__name__} cannot be stored; use str, int, float, Decimal, bytes, bool, None, list,"
        " dict or set"
    )


def _number_str(value: int | float | decimal.Decimal, where: str) -> str:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValidationError(f"{where}: {value} is not a number DynamoDB can store")
    return repr(value) if isinstance(value, float) else str(value)


def to_python(value: AttributeValue) -> Any:
    """A typed value as plain Python: numbers as int when whole, else float; binary as bytes; sets as sets."""
    kind, body = next(iter(value.items()))
    if kind == "S" or kind == "BOOL":
        return body
    if kind == "NULL":
        return None
    if kind == "N":
        return _py_number(body)
    if kind == "B":
        return base64.b64decode(body)
    if kind == "SS":
        return set(body)
    if kind == "NS":
        return {_py_number(item) for item in body}
    if kind == "BS":
        return {base64.b64decode(item) for item in body}
    if kind == "L":
        return [to_python(item) for item in body]
    return {k: to_python(v) for k, v in body.items()}


def _py_number(text: str) -> int | float:
    value = decimal.Decimal(text)
    return int(value) if value == value.to_integral_value() else float(value)


def item_from_python(item: Mapping[str, object], where: str = "item") -> Item:
    if not isinstance(item, Mapping):
        raise ValidationError(f"{where} must be a dict of attribute names to values, not {type(item).__name__}")
    return {str(name): from_python(value, f"{where}[{name!r}]") for name, value in item.items()}


def item_to_python(item: Mapping[str, AttributeValue]) -> dict[str, Any]:
    return {name: to_python(value) for name, value in item.items()}
