"""An alternative of a group of few compiled to one flat tuple that a visit reads in place: a leaf.

With thousands of rules most groups (rules sharing an anchor field, see
`_compiled_rules`) hold one alternative, and an event reaches each of them
seldom, so a visit finds what it reads outside the CPU's cache. As a Group,
a visit walked a chain of objects (the group, its steps, each step's tuple of
tests, the test's closure, its cells, their operands, the group's list of
rules), about fifteen cache misses for one rule. A leaf is one tuple:

    (rule number, paths, check, operand, paths, check, operand, ...)

one (paths, check, operand) per field of the alternative besides its anchor,
in the order the fields were ranked (the likeliest miss first). `check` is
one of a few functions of this module shared by every leaf (so they stay in
cache) and `operand` is the condition's own operand (the prefix text, the
numeric bounds), not a closure over it: a visit touches the tuple and the
operands. Fields of other shapes check with `Field.holds`, the very code
`Pattern.matches` runs, so the two cannot disagree.

Each check answers, as `Field.holds` does, whether any of the event's values
at the path (a list, empty when the field is missing) satisfies the field.
"""

# The checks are plain loops, not any() over a generator, which costs more on this hot path.
# ruff: noqa: SIM110

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from triggerfish.events._pattern_match import (
    ANYTHING_BUT,
    EXACT,
    EXISTS,
    IGNORE_CASE,
    NUMERIC,
    PREFIX,
    PREFIX_IC,
    SUFFIX,
    SUFFIX_IC,
    Field,
    Test,
)

#: (rule number, then (paths, check, operand) per field): see the module's docstring.
Leaf = tuple[Any, ...]
Check = Callable[[list[Any], Any], bool]
# A tuple, not `int | float`: that expression builds a union object on every call.
_NUMBERS = (int, float)
#: Operands shared between leaves when equal: texts, sets of texts and numeric bounds (not tests or fields).
_SHAREABLE = frozenset({str, frozenset, tuple})


def leaf(rule: int, fields: Sequence[Field], paths_of: Callable[[Field], object], operands: dict[Any, Any]) -> Leaf:
    """The leaf of one alternative: `fields` are those besides its anchor; `paths_of` names each field's path
    as `CompiledRules.run` keys the values it has read (one object per path). `operands` holds the operands of
    the leaves built so far: an equal one is shared (one object, more often in the CPU's cache, for every
    leaf that checks a `.png` suffix); a check gives equal answers for equal operands (1 and 1.0 included)."""
    flat: list[Any] = [rule]
    for field in fields:
        check, operand = check_of(field)
        if type(operand) in _SHAREABLE:
            operand = operands.setdefault(operand, operand)
        flat += (paths_of(field), check, operand)
    return tuple(flat)


def check_of(field: Field) -> tuple[Check, Any]:
    """The shared check and the operand that decide `field`: a specialised one for a lone condition of a common
    kind (or exact strings), else `Field.holds` on the field itself."""
    conditions = field.conditions
    if all(c.kind == EXACT and isinstance(c.operand, str) for c in conditions):
        if len(conditions) == 1:
            # `text in values`, in C: a string equals no other JSON type (and no str but an equal one).
            return operator.contains, conditions[0].operand
        return _one_of, frozenset(c.operand for c in conditions)
    if len(conditions) == 1:
        kind, operand = conditions[0].kind, conditions[0].operand
        specialised = _BY_KIND.get(kind)
        if specialised is not None:
            return specialised, operand
        if kind == EXISTS:
            return (_present if operand else _absent), None
        if kind == ANYTHING_BUT and isinstance(operand, str):
            return _none_of, frozenset((operand,))
        if kind == ANYTHING_BUT and isinstance(operand, tuple) and all(isinstance(v, str) for v in operand):
            return _none_of, frozenset(operand)
        if kind != EXISTS:
            # One condition of another kind (wildcard, cidr, ...): its own test, without the Field around it.
            return _passes, conditions[0].test
    return _field_holds, field


# --- the checks: (the event's values at the path, operand) -> whether the field holds ----------------------
# Each is the condition's test (`_pattern_match`) applied to every value, with the field's rule for a missing
# value: only `exists: false` holds there, and every other check finds no value to pass.


def _one_of(values: list[Any], texts: frozenset[str]) -> bool:
    for value in values:
        if isinstance(value, str) and value in texts:
            return True
    return False


def _none_of(values: list[Any], texts: frozenset[str]) -> bool:
    """anything-but of strings: any value other than those (a number, null, true and false included)."""
    for value in values:
        if not (isinstance(value, str) and value in texts):
            return True
    return False


def _prefix(values: list[Any], text: str) -> bool:
    for value in values:
        if isinstance(value, str) and value.startswith(text):
            return True
    return False


def _suffix(values: list[Any], text: str) -> bool:
    for value in values:
        if isinstance(value, str) and value.endswith(text):
            return True
    return False


def _prefix_ignore_case(values: list[Any], text: str) -> bool:
    for value in values:
        if isinstance(value, str) and value.lower().startswith(text):
            return True
    return False


def _suffix_ignore_case(values: list[Any], text: str) -> bool:
    for value in values:
        if isinstance(value, str) and value.lower().endswith(text):
            return True
    return False


def _equals_ignore_case(values: list[Any], text: str) -> bool:
    for value in values:
        if isinstance(value, str) and value.lower() == text:
            return True
    return False


def _in_range(values: list[Any], bounds: tuple[float, bool, float, bool]) -> bool:
    """numeric: a number (never a bool; NaN is inside no range) within the bounds, each bound inclusive or not."""
    low, low_inclusive, high, high_inclusive = bounds
    for value in values:
        if not isinstance(value, _NUMBERS) or isinstance(value, bool) or value != value:
            continue
        if (value > low or (value == low and low_inclusive)) and (value < high or (value == high and high_inclusive)):
            return True
    return False


def _present(values: list[Any], _: None) -> bool:
    return bool(values)


def _absent(values: list[Any], _: None) -> bool:
    return not values


def _passes(values: list[Any], test: Test) -> bool:
    for value in values:
        if test(value):
            return True
    return False


def _field_holds(values: list[Any], field: Field) -> bool:
    return field.holds(values)


_BY_KIND: dict[str, Check] = {
    PREFIX: _prefix,
    SUFFIX: _suffix,
    PREFIX_IC: _prefix_ignore_case,
    SUFFIX_IC: _suffix_ignore_case,
    IGNORE_CASE: _equals_ignore_case,
    NUMERIC: _in_range,
}
