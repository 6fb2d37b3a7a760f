"""The matching half of the pattern engine: compiled conditions, fields and alternatives.

Nothing here validates; `_pattern_compile` builds these objects only from
patterns it has accepted. Both `Pattern.matches` and `RuleSet.matches` end
in `Alternative.matches`, so the two cannot disagree about what matches.

How an event is read, as EventBridge reads it:
- A pattern path is followed through objects; an array met on the way is
  entered element by element, so a path reaches every leaf below it.
- Only leaves (strings, numbers, booleans, null) are values. An object where
  the path ends, or something that is not an object where the path goes on,
  gives no value: the field is missing.
- `type`/`detail-type` and `data`/`detail` are one field at the top level, so
  patterns in either style match events in either shape.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, Final

# Kinds of condition (one element of a pattern's value array).
EXACT: Final = "exact"
IGNORE_CASE: Final = "equals-ignore-case"
PREFIX: Final = "prefix"
PREFIX_IC: Final = "prefix-ignore-case"
SUFFIX: Final = "suffix"
SUFFIX_IC: Final = "suffix-ignore-case"
WILDCARD: Final = "wildcard"
NUMERIC: Final = "numeric"
CIDR: Final = "cidr"
EXISTS: Final = "exists"
ANYTHING_BUT: Final = "anything-but"

#: Top-level names a pattern may use for the CloudEvents attribute they stand for.
PATTERN_ALIASES: Final[Mapping[str, str]] = {"detail-type": "type", "detail": "data"}
#: For each CloudEvents name, the EventBridge envelope's name for the same field.
EVENT_ALIASES: Final[Mapping[str, str]] = {"type": "detail-type", "data": "detail"}

Test = Callable[[Any], bool]
_MISSING: Final = object()
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
# A tuple, not `int | float`: that expression builds a union object on every call.
_NUMBERS: Final = (int, float)


def is_number(value: Any) -> bool:
    """A JSON number: int or float, never bool (which Python counts as an int)."""
    return isinstance(value, _NUMBERS) and not isinstance(value, bool)


class Condition:
    """One element of a value array: an exact value or one operator, compiled to a value test."""

    __slots__ = ("kind", "operand", "test")

    def __init__(self, kind: str, operand: Any, test: Test) -> None:
        self.kind = kind
        #: Normalised operand: the value, the lower-cased text, (lo, lo_incl, hi, hi_incl), ...
        self.operand = operand
        self.test = test

    def __repr__(self) -> str:
        return f"Condition({self.kind}, {self.operand!r})"


class Field:
    """A path in the event and the conditions one of whose must hold there (the value array)."""

    __slots__ = ("_exists_false", "_exists_true", "_tests", "conditions", "name", "path", "reader")

    def __init__(self, path: tuple[str, ...], conditions: tuple[Condition, ...], name: str = "") -> None:
        self.path = path
        self.conditions = conditions
        #: the flattened name as the pattern spells it (`detail-type`, `a.b`): a field named twice is one field
        self.name = name or ".".join(path)
        self.reader = reader_for(path)
        self._exists_true = any(c.kind == EXISTS and c.operand for c in conditions)
        self._exists_false = any(c.kind == EXISTS and not c.operand for c in conditions)
        exact = [c.operand for c in conditions if c.kind == EXACT]
        tests = [c.test for c in conditions if c.kind not in (EXACT, EXISTS)]
        if exact:
            tests.insert(0, exact_values_test(exact))
        self._tests = tuple(tests)

    def matches(self, event: Mapping[str, Any]) -> bool:
        return self.holds(self.reader.read(event))

    def holds(self, values: list[Any]) -> bool:
        """Whether the field holds given the event's values at its path (empty: the field is missing)."""
        if not values:
            return self._exists_false
        if self._exists_true:
            return True
        for value in values:
            for test in self._tests:
                if test(value):
                    return True
        return False


class Alternative:
    """Fields that must all match: a pattern with its `$or`s expanded has one or more of these."""

    __slots__ = ("fields",)

    def __init__(self, fields: tuple[Field, ...]) -> None:
        self.fields = fields

    def matches(self, event: Mapping[str, Any]) -> bool:
        # A plain loop rather than all(...): this is the hot path and a generator costs more.
        for field in self.fields:  # noqa: SIM110
            if not field.matches(event):
                return False
        return True


def values_at(event: Mapping[str, Any], path: tuple[str, ...]) -> list[Any]:
    """Every leaf value the event holds at `path`, entering arrays anywhere along it."""
    return reader_for(path).read(event)


class PathReader:
    """Reads the leaf values at one path of an event, as EventBridge flattens it.

    EventBridge names a field by its keys joined with dots, so the path
    `a.b.c` is found under `{"a": {"b": {"c": 1}}}`, `{"a.b": {"c": 1}}`,
    `{"a": {"b.c": 1}}` or `{"a.b.c": 1}`, and under all of them when an event
    has several. `steps[i]` lists, for each place in the path, the keys that
    may follow it (one step, or several joined with dots) and where each leads.
    """

    __slots__ = ("end", "first", "simple", "steps")

    def __init__(self, path: tuple[str, ...]) -> None:
        self.end = len(path)
        steps: list[tuple[tuple[str, int], ...]] = []
        for i in range(len(path)):
            keys = [(".".join(path[i:j]), j) for j in range(i + 1, len(path) + 1)]
            if i == 0:
                alias = EVENT_ALIASES.get(path[0])
                if alias is not None:
                    keys += [(".".join((alias, *path[1:j])), j) for j in range(1, len(path) + 1)]
            steps.append(tuple(keys))
        self.steps = tuple(steps)
        # One key with no alias: the common case, read with one lookup.
        self.simple = len(steps[0]) == 1
        self.first = path[0]

    def read(self, event: Mapping[str, Any]) -> list[Any]:
        if self.simple:
            node = event.get(self.first, _MISSING)
            if node is _MISSING:
                return []
            if type(node) in _SCALARS:
                return [node]
            out: list[Any] = []
            self._collect([(node, 1)], out)
            return out
        # Unrolled for the first two steps (most paths are one or two keys long); deeper goes to _collect.
        out = []
        end, steps = self.end, self.steps
        for key, following in steps[0]:
            node = event.get(key, _MISSING)
            if node is _MISSING:
                continue
            kind = type(node)
            if following == end and kind in _SCALARS:
                out.append(node)
            elif kind is dict and following < end:
                for key2, following2 in steps[following]:
                    child = node.get(key2, _MISSING)
                    if child is _MISSING:
                        continue
                    if following2 == end and type(child) in _SCALARS:
                        out.append(child)
                    else:
                        self._collect([(child, following2)], out)
            else:
                self._collect([(node, following)], out)
        return out

    def _collect(self, stack: list[tuple[Any, int]], out: list[Any]) -> None:
        # Iterative, so an event built in code with absurdly nested arrays cannot exhaust the stack.
        end, steps = self.end, self.steps
        while stack:
            node, depth = stack.pop()
            kind = type(node)
            if kind is list or kind is tuple:
                stack.extend((item, depth) for item in reversed(node))
            elif kind is dict or (kind not in _SCALARS and isinstance(node, Mapping)):
                if depth < end:
                    for key, following in reversed(steps[depth]):
                        child = node.get(key, _MISSING)
                        if child is not _MISSING:
                            stack.append((child, following))
            elif depth == end:
                out.append(node)


_READERS: dict[tuple[str, ...], PathReader] = {}


def reader_for(path: tuple[str, ...]) -> PathReader:
    """The (shared) reader of one path."""
    reader = _READERS.get(path)
    if reader is None:
        if len(_READERS) > 100_000:  # paths come from patterns; keep a hostile stream of them bounded
            _READERS.clear()
        reader = _READERS[path] = PathReader(path)
    return reader


# --- value tests ----------------------------------------------------------------------------------


def exact_values_test(values: list[Any]) -> Test:
    """One test for all the exact values of a field: set lookups by JSON type."""
    strings = frozenset(v for v in values if isinstance(v, str))
    numbers = frozenset(v for v in values if is_number(v))
    has_null = None in values
    has_true = any(v is True for v in values)
    has_false = any(v is False for v in values)

    def test(value: Any) -> bool:
        if isinstance(value, str):
            return value in strings
        if value is None:
            return has_null
        if value is True:
            return has_true
        if value is False:
            return has_false
        # 300, 300.0 and 3.0e2 are one number: int and float compare and hash alike.
        return is_number(value) and value in numbers

    return test


def prefix_test(prefix: str, *, ignore_case: bool) -> Test:
    if ignore_case:
        return lambda value: isinstance(value, str) and value.lower().startswith(prefix)
    return lambda value: isinstance(value, str) and value.startswith(prefix)


def suffix_test(suffix: str, *, ignore_case: bool) -> Test:
    if ignore_case:
        return lambda value: isinstance(value, str) and value.lower().endswith(suffix)
    return lambda value: isinstance(value, str) and value.endswith(suffix)


def ignore_case_test(texts: frozenset[str]) -> Test:
    return lambda value: isinstance(value, str) and value.lower() in texts


def wildcard_test(segments: tuple[str, ...]) -> Test:
    """Match `*`-separated literal segments: a glob with only `*`, in linear time.

    Leftmost placement of each middle segment is always safe for such globs,
    so no backtracking is needed and no pattern can make matching slow.
    """
    if len(segments) == 1:
        only = segments[0]
        return lambda value: isinstance(value, str) and value == only
    first, last, middle = segments[0], segments[-1], segments[1:-1]
    shortest = sum(len(s) for s in segments)

    def test(value: Any) -> bool:
        if not isinstance(value, str) or len(value) < shortest:
            return False
        if not value.startswith(first) or not value.endswith(last):
            return False
        position, end = len(first), len(value) - len(last)
        for segment in middle:
            found = value.find(segment, position, end)
            if found < 0:
                return False
            position = found + len(segment)
        return True

    return test


def numeric_test(low: float, low_inclusive: bool, high: float, high_inclusive: bool) -> Test:
    def test(value: Any) -> bool:
        # is_number, inlined (this runs for every numeric condition checked); NaN compares false with every bound.
        if not isinstance(value, _NUMBERS) or isinstance(value, bool) or value != value:
            return False
        if value < low or (value == low and not low_inclusive):
            return False
        return not (value > high or (value == high and not high_inclusive))

    return test


#: The canonical decimal forms of an IPv4 octet: exactly the ones `ipaddress` accepts (no leading zeros).
OCTETS: Final = {str(i): i for i in range(256)}


def cidr_test(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Test:
    # Dotted-quad IPv4, by far the common case, is read without ipaddress (which costs microseconds);
    # anything else goes to ipaddress, so what is accepted does not change.
    v4 = network.version == 4
    base, mask = int(network.network_address), int(network.netmask)

    def test(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        parts = value.split(".")
        if len(parts) == 4:
            octets = OCTETS
            a, b, c, d = octets.get(parts[0]), octets.get(parts[1]), octets.get(parts[2]), octets.get(parts[3])
            if a is not None and b is not None and c is not None and d is not None:
                return v4 and ((a << 24 | b << 16 | c << 8 | d) & mask) == base
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return address.version == network.version and address in network

    return test


def not_test(tests: tuple[Test, ...]) -> Test:
    """anything-but: a value matches when no excluded form does."""
    if len(tests) == 1:
        (only,) = tests
        return lambda value: not only(value)
    return lambda value: not any(test(value) for test in tests)
