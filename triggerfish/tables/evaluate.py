"""Running parsed expressions against items: conditions, updates, projections, key conditions.

    holds(condition, item)                  # ConditionExpression / FilterExpression
    new_item = apply_update(update, item, key_names={"id"})
    projected = project(item, paths)

As DynamoDB: a comparison with a missing attribute, or of two types that do not
order, is false (never an error); the operands of an update are all read from the
item as it was before the update; a path into something that is not there is an
error in an update ("The document path provided in the update expression is
invalid for update"). Pure: no I/O.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Collection, Sequence

from triggerfish.tables.errors import ValidationError
from triggerfish.tables.expressions import (
    And,
    Arithmetic,
    Between,
    Compare,
    Condition,
    Function,
    IfNotExists,
    In,
    KeyCondition,
    ListAppend,
    Not,
    Operand,
    Or,
    Path,
    Size,
    Update,
    Value,
)
from triggerfish.tables.values import (
    AttributeValue,
    Item,
    equal,
    normalize_number,
    number,
    ordered,
    type_name,
    type_of,
)

_ATTRIBUTE_TYPES = ("S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M")


def get_path(item: Item, path: Path) -> AttributeValue | None:
    """The value at `path`, or None when any step is missing or of the wrong kind."""
    current: AttributeValue | None = None
    for index, element in enumerate(path.elements):
        if index == 0:
            current = item.get(str(element))
        elif current is None:
            return None
        elif isinstance(element, int):
            items = current.get("L")
            current = items[element] if isinstance(items, list) and element < len(items) else None
        else:
            members = current.get("M")
            current = members.get(element) if isinstance(members, dict) else None
        if current is None:
            return None
    return current


def operand_value(operand: Operand, item: Item) -> AttributeValue | None:
    if isinstance(operand, Value):
        return operand.value
    if isinstance(operand, Path):
        return get_path(item, operand)
    if isinstance(operand, Size):
        return _size(get_path(item, operand.path))
    raise ValidationError(f"{type(operand).__name__} cannot be used in a condition")  # pragma: no cover


def _size(value: AttributeValue | None) -> AttributeValue | None:
    if value is None:
        return None
    kind, body = next(iter(value.items()))
    if kind == "S":
        return {"N": str(len(body))}
    if kind == "B":
        return {"N": str(len(base64.b64decode(body)))}
    if kind in ("SS", "NS", "BS", "L", "M"):
        return {"N": str(len(body))}
    return None  # numbers, booleans and nulls have no size: the comparison is false


def holds(condition: Condition, item: Item) -> bool:
    """Whether `condition` holds for `item` (an empty dict for an item that does not exist)."""
    if isinstance(condition, And):
        return holds(condition.left, item) and holds(condition.right, item)
    if isinstance(condition, Or):
        return holds(condition.left, item) or holds(condition.right, item)
    if isinstance(condition, Not):
        return not holds(condition.condition, item)
    if isinstance(condition, Compare):
        return compare(condition.op, operand_value(condition.left, item), operand_value(condition.right, item))
    if isinstance(condition, Between):
        value = operand_value(condition.operand, item)
        low, high = operand_value(condition.low, item), operand_value(condition.high, item)
        return compare(">=", value, low) and compare("<=", value, high)
    if isinstance(condition, In):
        value = operand_value(condition.operand, item)
        return any(equal(value, operand_value(choice, item)) for choice in condition.choices)
    return _function(condition, item)


def compare(op: str, left: AttributeValue | None, right: AttributeValue | None) -> bool:
    if left is None or right is None:
        return False
    if op == "=":
        return equal(left, right)
    if op == "<>":
        return not equal(left, right)
    if type_of(left) != type_of(right) or type_of(left) not in ("S", "N", "B"):
        return False
    a, b = ordered(left), ordered(right)
    return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])


def _function(call: Function, item: Item) -> bool:
    path = call.args[0]
    assert isinstance(path, Path)
    value = get_path(item, path)
    if call.name == "attribute_exists":
        return value is not None
    if call.name == "attribute_not_exists":
        return value is None
    argument = operand_value(call.args[1], item)
    if call.name == "attribute_type":
        if argument is None or type_of(argument) != "S" or argument["S"] not in _ATTRIBUTE_TYPES:
            shown = None if argument is None else next(iter(argument.values()))
            raise ValidationError(
                f"Invalid ConditionExpression: Invalid attribute type name found; type: {shown},"
                f" valid types: {', '.join(_ATTRIBUTE_TYPES)}"
            )
        return value is not None and type_of(value) == argument["S"]
    if value is None or argument is None:
        return False
    kind, body = type_of(value), next(iter(value.values()))
    if call.name == "begins_with":
        if type_of(argument) != kind or kind not in ("S", "B"):
            return False
        if kind == "S":
            return str(body).startswith(argument["S"])
        return base64.b64decode(body).startswith(base64.b64decode(argument["B"]))
    # contains: a substring of a string, a member of a set, an element of a list
    if kind == "S":
        return type_of(argument) == "S" and argument["S"] in body
    if kind == "B":
        return type_of(argument) == "B" and base64.b64decode(argument["B"]) in base64.b64decode(body)
    if kind in ("SS", "NS", "BS"):
        if type_of(argument) != kind[0]:
            return False
        return any(equal({kind[0]: member}, argument) for member in body)
    if kind == "L":
        return any(equal(element, argument) for element in body)
    return False


def key_matches(condition: KeyCondition, item: Item) -> bool:
    """Whether an item of the partition meets the sort key condition."""
    if condition.sort is None:
        return True
    op, name, values = condition.sort
    value = item.get(name)
    if op == "BETWEEN":
        return compare(">=", value, values[0]) and compare("<=", value, values[1])
    if op == "begins_with":
        return _function(Function("begins_with", (Path((name,)), Value(values[0]))), item)
    return compare(op, value, values[0])


# --- updates ----------------------------------------------------------------------------------


def apply_update(update: Update, old: Item, key_names: Collection[str]) -> Item:
    """The item after `update`; `old` is not changed. Key attributes may not be touched."""
    for path in update.paths():
        if str(path.elements[0]) in key_names:
            raise ValidationError(
                f"One or more parameter values were invalid: Cannot update attribute {path.elements[0]}."
                " This attribute is part of the key"
            )
    # Every operand reads the item as it was: SET a = b, b = a swaps.
    sets = [(path, _update_value(value, old)) for path, value in update.set]
    new = copy.deepcopy(old)
    for path, value in sets:
        _put(new, path, value)
    # Removing list elements by index: highest first, so earlier removals do not shift later ones.
    for path in sorted(
        update.remove, key=lambda p: [e if isinstance(e, int) else -1 for e in p.elements], reverse=True
    ):
        _remove(new, path)
    for path, value in update.add:
        _put(new, path, _add(get_path(new, path), value), top_level_only=False)
    for path, value in update.delete:
        current = get_path(new, path)
        if current is None:
            continue
        if type_of(current) != type_of(value) or type_of(value) not in ("SS", "NS", "BS"):
            raise ValidationError(
                "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: DELETE,"
                f" operand type: {type_name(value)}"
            )
        kind = type_of(value)
        left = [m for m in current[kind] if not any(equal({kind[0]: m}, {kind[0]: r}) for r in value[kind])]
        if left:
            _put(new, path, {kind: left})
        else:
            _remove(new, path)
    return new


def _update_value(operand: Operand, item: Item) -> AttributeValue:
    if isinstance(operand, Value):
        return operand.value
    if isinstance(operand, Path):
        value = get_path(item, operand)
        if value is None:
            raise ValidationError("The provided expression refers to an attribute that does not exist in the item")
        return value
    if isinstance(operand, IfNotExists):
        existing = get_path(item, operand.path)
        return existing if existing is not None else _update_value(operand.default, item)
    if isinstance(operand, ListAppend):
        first, second = _update_value(operand.first, item), _update_value(operand.second, item)
        for value in (first, second):
            if type_of(value) != "L":
                raise ValidationError(
                    "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function:"
                    f" list_append, operand type: {type_name(value)}"
                )
        return {"L": [*first["L"], *second["L"]]}
    if isinstance(operand, Arithmetic):
        left, right = _update_value(operand.left, item), _update_value(operand.right, item)
        for value in (left, right):
            if type_of(value) != "N":
                raise ValidationError(
                    "An operand in the update expression has an incorrect data type"
                    f" (operator {operand.op}, operand type: {type_name(value)})"
                )
        result = number(left["N"]) + number(right["N"]) if operand.op == "+" else number(left["N"]) - number(right["N"])
        return {"N": normalize_number(str(result))}
    raise ValidationError(f"Invalid UpdateExpression: {type(operand).__name__} cannot be a SET value")


def _add(current: AttributeValue | None, value: AttributeValue) -> AttributeValue:
    kind = type_of(value)
    if kind not in ("N", "SS", "NS", "BS"):
        raise ValidationError(
            "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD,"
            f" operand type: {type_name(value)}"
        )
    if current is None:
        return value
    if type_of(current) != kind:
        raise ValidationError(
            "An operand in the update expression has an incorrect data type"
            f" (ADD of a {type_name(value)} to a {type_name(current)})"
        )
    if kind == "N":
        return {"N": normalize_number(str(number(current["N"]) + number(value["N"])))}
    merged = list(current[kind])
    for member in value[kind]:
        if not any(equal({kind[0]: member}, {kind[0]: m}) for m in merged):
            merged.append(member)
    return {kind: merged}


def _invalid_path() -> ValidationError:
    return ValidationError("The document path provided in the update expression is invalid for update")


def _parent(item: Item, path: Path) -> AttributeValue | None:
    if len(path.elements) == 1:
        return None
    parent = get_path(item, Path(path.elements[:-1]))
    if parent is None:
        raise _invalid_path()
    return parent


def _put(item: Item, path: Path, value: AttributeValue, *, top_level_only: bool = False) -> None:
    del top_level_only
    last = path.elements[-1]
    parent = _parent(item, path)
    if parent is None:
        item[str(last)] = value
        return
    if isinstance(last, int):
        if type_of(parent) != "L":
            raise _invalid_path()
        elements = parent["L"]
        if last < len(elements):
            elements[last] = value
        else:
            elements.append(value)  # past the end appends, as DynamoDB does
        return
    if type_of(parent) != "M":
        raise _invalid_path()
    parent["M"][last] = value


def _remove(item: Item, path: Path) -> None:
    last = path.elements[-1]
    if len(path.elements) == 1:
        item.pop(str(last), None)
        return
    parent = get_path(item, Path(path.elements[:-1]))
    if parent is None:
        return
    if isinstance(last, int) and type_of(parent) == "L":
        if last < len(parent["L"]):
            del parent["L"][last]
    elif isinstance(last, str) and type_of(parent) == "M":
        parent["M"].pop(last, None)


# --- projections --------------------------------------------------------------------------------


def project(item: Item, paths: Sequence[Path]) -> Item:
    """The parts of `item` that `paths` name, nested as they were (list elements kept in order)."""
    result: Item = {}
    for path in paths:
        value = get_path(item, path)
        if value is None:
            continue
        _graft(result, item, path, value)
    return result


def _graft(result: Item, source: Item, path: Path, value: AttributeValue) -> None:
    first = str(path.elements[0])
    if len(path.elements) == 1:
        result[first] = copy.deepcopy(value)
        return
    # Build the containers along the path, as the source has them (a map or a list).
    target_container: AttributeValue = result.setdefault(
        first, {type_of(source[first]): {} if type_of(source[first]) == "M" else []}
    )
    source_container = source[first]
    for element in path.elements[1:-1]:
        source_container = (
            source_container["L"][element] if isinstance(element, int) else source_container["M"][element]
        )
        empty: AttributeValue = {"M": {}} if type_of(source_container) == "M" else {"L": []}
        target_container = _child(target_container, element, empty)
    last = path.elements[-1]
    if isinstance(last, int):
        target_container["L"].append(copy.deepcopy(value))
    else:
        target_container["M"][last] = copy.deepcopy(value)


def _child(container: AttributeValue, element: str | int, empty: AttributeValue) -> AttributeValue:
    if isinstance(element, int):
        container["L"].append(empty)
        return empty
    child: AttributeValue = container["M"].setdefault(element, empty)
    return child
