"""The validating half of the pattern engine: an event pattern in, alternatives of fields out.

The rules are EventBridge's (see docs/patterns.md): values sit in arrays,
operators are one-key objects inside those arrays, numeric bounds stay within
±5e9 with at most six decimal places, and so on. A rejected pattern raises
InvalidPatternError naming where (`detail.price[0].numeric`) and why.

`$or` is expanded here into alternatives (disjunctive normal form), so the
matcher and the rule index only ever see "all of these fields". The number of
alternatives is capped, since nested `$or`s multiply.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from triggerfish.errors import InvalidPatternError
from triggerfish.events._pattern_match import (
    ANYTHING_BUT,
    CIDR,
    EXACT,
    EXISTS,
    IGNORE_CASE,
    NUMERIC,
    PATTERN_ALIASES,
    PREFIX,
    PREFIX_IC,
    SUFFIX,
    SUFFIX_IC,
    WILDCARD,
    Alternative,
    Condition,
    Field,
    Test,
    cidr_test,
    exact_values_test,
    ignore_case_test,
    is_number,
    not_test,
    numeric_test,
    prefix_test,
    suffix_test,
    wildcard_test,
)
from triggerfish.events._wildcard_complexity import LIMIT as COMPLEXITY_LIMIT
from triggerfish.events._wildcard_complexity import MESSAGE as COMPLEXITY_MESSAGE
from triggerfish.events._wildcard_complexity import complexity

#: Numeric bounds EventBridge accepts, inclusive, and the decimal places it keeps.
NUMERIC_LIMIT: Final = 5e9
NUMERIC_DECIMALS: Final = 6
#: Objects nested deeper than this are rejected (our limit, generous for real events).
MAX_DEPTH: Final = 32
#: Most alternatives the `$or`s of one pattern may expand to (our limit; each costs matching time).
MAX_ALTERNATIVES: Final = 1024

OPERATORS: Final = ("anything-but", "cidr", "equals-ignore-case", "exists", "numeric", "prefix", "suffix", "wildcard")
_LOWER_OPS: Final = (">", ">=")
_UPPER_OPS: Final = ("<", "<=")
_ARRAY_HINT: Final = 'put the values in an array, such as ["value"] or [{"prefix": "value"}]'
#: Field names AWS's matcher (Event Ruler) refuses anywhere inside a `$or` object: its operator
#: names, the numeric comparisons, and names it keeps for operators to come.
RESERVED_IN_OR: Final = frozenset(
    {
        *OPERATORS,
        "exact",
        *("=", "<", "<=", ">", ">="),
        *("regex", "not-wildcard", "not-equals-ignore-case", "in-date-range"),
        *("date-after", "date-on-or-after", "date-before", "date-on-or-before"),
        *("ip-address-in-range", "ip-address-not-in-range"),
    }
)


def plain(value: Any, where: str = "", depth: int = 0) -> Any:
    """A deep copy made of dicts, lists and JSON scalars, so a compiled pattern cannot change under us."""
    if depth > MAX_DEPTH:
        raise InvalidPatternError(f"nested more than {MAX_DEPTH} levels deep", path=where)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidPatternError(f"field names must be strings, not {key!r}", path=where)
            out[key] = plain(item, _join(where, key), depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [plain(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if value is None or isinstance(value, str | bool):
        return value
    if is_number(value):
        if not math.isfinite(value):
            raise InvalidPatternError(f"{value!r} is not a JSON number", path=where)
        return value
    raise InvalidPatternError(
        f"{type(value).__name__} is not a JSON value; use strings, numbers, booleans or null", path=where
    )


def compile_alternatives(pattern: Any) -> tuple[Alternative, ...]:
    """Validate a plain pattern (see `plain`) and expand it into alternatives."""
    if not isinstance(pattern, dict):
        raise InvalidPatternError(f"a pattern is a JSON object, not {_kind(pattern)}")
    alternatives = _object(pattern, (), "")
    _check_wildcard_complexity(alternatives)
    return tuple(Alternative(tuple(fields)) for fields in alternatives)


def _check_wildcard_complexity(alternatives: list[list[Field]]) -> None:
    """Refuse the rule as EventBridge does when one field's wildcards could keep too many states in play."""
    by_field: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for fields in alternatives:
        for field in fields:
            for condition in field.conditions:
                if condition.kind == WILDCARD:
                    by_field.setdefault(field.path, set()).add(condition.operand)
                elif condition.kind == ANYTHING_BUT and isinstance(condition.operand, dict):
                    texts = condition.operand.get("wildcard")
                    if texts is not None:
                        for text in [texts] if isinstance(texts, str) else texts:
                            by_field.setdefault(field.path, set()).add(_wildcard(text, ""))
    for path, wildcards in by_field.items():
        if complexity(wildcards) > COMPLEXITY_LIMIT:
            raise InvalidPatternError(
                f"{COMPLEXITY_MESSAGE} (its wildcards, {len(wildcards)} on this field, could keep more than "
                f"{COMPLEXITY_LIMIT} partial matches in play at once; split them across rules)",
                path=".".join(path),
            )


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if is_number(value):
        return "a number"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _object(
    obj: dict[str, Any], path: tuple[str, ...], where: str, in_or: bool = False, spelled: tuple[str, ...] = ()
) -> list[list[Field]]:
    # `path` is what the matcher reads (aliases resolved); `spelled` is the name as written, which
    # decides when a field is named twice (so `type` beside `detail-type` is two conditions, as documented).
    if not obj:
        raise InvalidPatternError("an empty object matches nothing; name at least one field", path=where or "$")
    alternatives: list[list[Field]] = [[]]
    for key, value in obj.items():
        here = _join(where, key)
        if key == "$or":
            branches = _or(value, path, here, spelled)
        else:
            if in_or and key in RESERVED_IN_OR:
                # Most often an operator object put where a field belongs: {"$or": [{"prefix": "a"}, ...]}.
                raise InvalidPatternError(
                    f"{key!r} is reserved for an operator and cannot be a field name inside $or; operators go in "
                    'a value array, such as {"$or": [{"name": [{"prefix": "a"}]}, {"other": ["b"]}]}',
                    path=here,
                )
            # EventBridge flattens the pattern into dotted names, so "a.b" and {"a": {"b": ...}} are one field.
            written = key.split(".")
            steps = list(written)
            if not path:
                steps[0] = PATTERN_ALIASES.get(steps[0], steps[0])
            if isinstance(value, dict):
                branches = _object(value, (*path, *steps), here, in_or, (*spelled, *written))
            else:
                branches = [[Field((*path, *steps), _conditions(value, here), name=".".join((*spelled, *written)))]]
        if len(alternatives) * len(branches) > MAX_ALTERNATIVES:
            raise InvalidPatternError(
                f"the $or conditions expand to more than {MAX_ALTERNATIVES} combinations; simplify the pattern "
                "or split it into several rules",
                path=here,
            )
        alternatives = [_later_wins(mine, theirs) for mine in alternatives for theirs in branches]
    return alternatives


def _later_wins(earlier: list[Field], later: list[Field]) -> list[Field]:
    """Join two lists of fields; where both name one field (`"a.b"` beside `{"a": {"b": ...}}`) the later stays.

    Event Ruler, EventBridge's matcher, records each flattened field as it reads
    the pattern, so a field named again replaces what it held.
    """
    if not earlier:
        return list(later)
    replaced = {field.name for field in later}
    return [field for field in earlier if field.name not in replaced] + list(later)


def _or(value: Any, path: tuple[str, ...], where: str, spelled: tuple[str, ...]) -> list[list[Field]]:
    if not isinstance(value, list) or len(value) < 2:
        raise InvalidPatternError(
            '$or takes an array of at least two objects, such as [{"a": ["x"]}, {"b": ["y"]}]', path=where
        )
    branches: list[list[Field]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidPatternError(f"each $or alternative is an object, not {_kind(item)}", path=f"{where}[{i}]")
        branches.extend(_object(item, path, f"{where}[{i}]", True, spelled))
    return branches


def _conditions(value: Any, where: str) -> tuple[Condition, ...]:
    if not isinstance(value, list):
        raise InvalidPatternError(
            f"a value to match must be in an array, not {_kind(value)}; {_ARRAY_HINT}", path=where
        )
    if not value:
        raise InvalidPatternError(f"an empty array matches nothing; {_ARRAY_HINT}", path=where)
    conditions: list[Condition] = []
    for i, item in enumerate(value):
        here = f"{where}[{i}]"
        if item is None or isinstance(item, str | bool) or is_number(item):
            conditions.append(Condition(EXACT, item, exact_values_test([item])))
        elif isinstance(item, dict):
            conditions.append(_operator(item, here))
        else:
            raise InvalidPatternError("arrays cannot be nested inside a value array", path=here)
    return tuple(conditions)


def _operator(item: dict[str, Any], where: str) -> Condition:
    if len(item) != 1:
        keys = ", ".join(repr(k) for k in item) or "none"
        raise InvalidPatternError(
            f'an operator object has exactly one key, such as {{"prefix": "a"}}; this one has {keys}', path=where
        )
    ((name, arg),) = item.items()
    here = f"{where}.{name}"
    if name == "prefix" or name == "suffix":
        return _affix(name, arg, here)
    if name == "equals-ignore-case":
        text = _string(arg, here, "equals-ignore-case")
        return Condition(IGNORE_CASE, text.lower(), ignore_case_test(frozenset([text.lower()])))
    if name == "wildcard":
        segments = _wildcard(arg, here)
        return Condition(WILDCARD, segments, wildcard_test(segments))
    if name == "numeric":
        bounds = _numeric(arg, here)
        return Condition(NUMERIC, bounds, numeric_test(*bounds))
    if name == "exists":
        if not isinstance(arg, bool):
            raise InvalidPatternError(f"exists takes true or false, not {_kind(arg)}", path=here)
        return Condition(EXISTS, arg, lambda value: True)
    if name == "cidr":
        network = _cidr(arg, here)
        return Condition(CIDR, network, cidr_test(network))
    if name == "anything-but":
        return _anything_but(arg, here)
    raise InvalidPatternError(f"unknown operator {name!r}; the operators are {', '.join(OPERATORS)}", path=where)


def _string(arg: Any, where: str, operator: str) -> str:
    if not isinstance(arg, str):
        raise InvalidPatternError(f"{operator} takes a string, not {_kind(arg)}", path=where)
    return arg


def _affix(name: str, arg: Any, where: str) -> Condition:
    ignore_case = False
    if isinstance(arg, dict) and len(arg) == 1 and "equals-ignore-case" in arg:
        ignore_case = True
        arg = arg["equals-ignore-case"]
        where = f"{where}.equals-ignore-case"
    elif not isinstance(arg, str):
        raise InvalidPatternError(
            f'{name} takes a string or {{"equals-ignore-case": "text"}}, not {_kind(arg)}', path=where
        )
    text = _string(arg, where, name)
    if ignore_case:
        text = text.lower()
    if name == "prefix":
        return Condition(PREFIX_IC if ignore_case else PREFIX, text, prefix_test(text, ignore_case=ignore_case))
    return Condition(SUFFIX_IC if ignore_case else SUFFIX, text, suffix_test(text, ignore_case=ignore_case))


def _wildcard(arg: Any, where: str) -> tuple[str, ...]:
    """Split a wildcard on unescaped `*`: `\\*` is a literal star, `\\\\` a literal backslash."""
    text = _string(arg, where, "wildcard")
    segments: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            following = text[i + 1 : i + 2]
            if following not in ("*", "\\"):
                raise InvalidPatternError(
                    f"invalid escape at character {i + 1} of {text!r}: only \\* and \\\\ can be escaped", path=where
                )
            current.append(following)
            i += 2
            continue
        if char == "*":
            if i + 1 < len(text) and text[i + 1] == "*":
                raise InvalidPatternError(
                    f"consecutive wildcard characters at character {i + 1} of {text!r} are not allowed; use one *",
                    path=where,
                )
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    segments.append("".join(current))
    return tuple(segments)


def _bound(value: Any, where: str) -> float:
    if not is_number(value):
        raise InvalidPatternError(f"a numeric bound must be a number, not {_kind(value)}", path=where)
    if not math.isfinite(value) or abs(value) > NUMERIC_LIMIT:
        raise InvalidPatternError(f"numeric bounds must be between -5e9 and 5e9, not {value!r}", path=where)
    exponent = Decimal(repr(value)).as_tuple().exponent
    if isinstance(exponent, int) and exponent < -NUMERIC_DECIMALS:
        raise InvalidPatternError(
            f"numeric bounds have at most {NUMERIC_DECIMALS} digits after the decimal point, not {value!r}", path=where
        )
    return float(value) if isinstance(value, float) else int(value)


def _numeric(arg: Any, where: str) -> tuple[float, bool, float, bool]:
    shape = 'numeric takes [">", 0] or [">", 0, "<=", 5] (operators <, <=, =, >, >=)'
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise InvalidPatternError(shape, path=where)
    first = arg[0]
    value = _bound(arg[1], f"{where}[1]")
    if len(arg) == 2:
        if first == "=":
            return (value, True, value, True)
        if first in _LOWER_OPS:
            return (value, first == ">=", math.inf, False)
        if first in _UPPER_OPS:
            return (-math.inf, False, value, first == "<=")
        raise InvalidPatternError(f"unknown numeric operator {first!r}; {shape}", path=f"{where}[0]")
    second = arg[2]
    if first not in _LOWER_OPS or second not in _UPPER_OPS:
        raise InvalidPatternError(
            f"a numeric range is a lower bound (> or >=) then an upper bound (< or <=), not {first!r} then {second!r}",
            path=where,
        )
    upper = _bound(arg[3], f"{where}[3]")
    if value >= upper:
        raise InvalidPatternError(f"the lower bound {value!r} must be less than the upper bound {upper!r}", path=where)
    return (value, first == ">=", upper, second == "<=")


def _cidr(arg: Any, where: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    text = _string(arg, where, "cidr")
    if "/" not in text:
        raise InvalidPatternError(f"cidr takes a block such as 10.0.0.0/24 or 2001:db8::/32, not {text!r}", path=where)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise InvalidPatternError(f"{text!r} is not a valid IPv4 or IPv6 CIDR block: {exc}", path=where) from None


def _anything_but(arg: Any, where: str) -> Condition:
    if isinstance(arg, str) or is_number(arg):
        return Condition(ANYTHING_BUT, arg, not_test((exact_values_test([arg]),)))
    if isinstance(arg, list):
        if not arg:
            raise InvalidPatternError("anything-but needs at least one value", path=where)
        for i, item in enumerate(arg):
            if not (isinstance(item, str) or is_number(item)):
                raise InvalidPatternError(
                    f"anything-but lists hold strings or numbers, not {_kind(item)}", path=f"{where}[{i}]"
                )
            if isinstance(item, str) != isinstance(arg[0], str):
                raise InvalidPatternError(
                    "an anything-but list holds only strings or only numbers, not both", path=f"{where}[{i}]"
                )
        return Condition(ANYTHING_BUT, tuple(arg), not_test((exact_values_test(list(arg)),)))
    forms = "prefix, suffix, equals-ignore-case or wildcard"
    if not isinstance(arg, dict):
        raise InvalidPatternError(
            f"anything-but takes a string, a number, an array of them, or an object with {forms}; not {_kind(arg)}",
            path=where,
        )
    if len(arg) != 1:
        raise InvalidPatternError(f"anything-but takes an object with exactly one of {forms}", path=where)
    ((name, inner),) = arg.items()
    here = f"{where}.{name}"
    if name not in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
        raise InvalidPatternError(f"unknown anything-but form {name!r}; use {forms}", path=here)
    # Each form takes one string or a list of them, as in EventBridge: {"prefix": ["init", "test"]}.
    texts = _strings(inner, here, f"anything-but {name}")
    tests: tuple[Test, ...]
    if name in ("prefix", "suffix"):
        for i, text in enumerate(texts):
            if not text:
                place = here if isinstance(inner, str) else f"{here}[{i}]"
                raise InvalidPatternError(f"anything-but {name} needs a non-empty string", path=place)
        make = prefix_test if name == "prefix" else suffix_test
        tests = tuple(make(text, ignore_case=False) for text in texts)
    elif name == "equals-ignore-case":
        tests = (ignore_case_test(frozenset(t.lower() for t in texts)),)
    else:
        places = [here] if isinstance(inner, str) else [f"{here}[{i}]" for i in range(len(texts))]
        tests = tuple(wildcard_test(_wildcard(t, place)) for t, place in zip(texts, places, strict=True))
    return Condition(ANYTHING_BUT, {name: inner}, not_test(tests))


def _strings(value: Any, where: str, operator: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise InvalidPatternError(
                    f"{operator} takes a string or a non-empty array of strings; this array holds {_kind(item)}",
                    path=f"{where}[{i}]",
                )
        return list(value)
    raise InvalidPatternError(
        f"{operator} takes a string or a non-empty array of strings, not {_kind(value)}", path=where
    )


__all__ = ["MAX_ALTERNATIVES", "MAX_DEPTH", "NUMERIC_LIMIT", "compile_alternatives", "plain"]
