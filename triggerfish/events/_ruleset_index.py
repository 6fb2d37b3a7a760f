"""The index behind RuleSet: a tree of event paths, each node holding lookups by value.

Every alternative of every rule is filed under one *anchor*: the field of
that alternative that the index can look up directly (an exact value, a
prefix, a numeric range, ...) and that the fewest other alternatives share.
Matching walks the event once along the paths the tree knows, collects the
alternatives whose anchor fired, and checks only those in full. So the cost
per event follows the event's size and the number of near-misses, not the
number of rules. Alternatives with nothing to anchor on (only anything-but,
`exists: false` or cidr fields) are checked on every event.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from typing import Any

from triggerfish.events._pattern_match import (
    EVENT_ALIASES,
    EXACT,
    EXISTS,
    IGNORE_CASE,
    NUMERIC,
    PREFIX,
    PREFIX_IC,
    SUFFIX,
    SUFFIX_IC,
    WILDCARD,
    Condition,
    Field,
    is_number,
)

_ROOT_NAMES = {alias: name for name, alias in EVENT_ALIASES.items()}

#: Rough cost of anchoring on each kind, added to how many alternatives already share the key.
_KIND_COST = {
    EXACT: 0,
    IGNORE_CASE: 1,
    PREFIX: 4,
    PREFIX_IC: 5,
    SUFFIX: 4,
    SUFFIX_IC: 5,
    WILDCARD: 6,
    NUMERIC: 40,
    EXISTS: 1000,
}
_ANY_STRING = "any-string"
_ANY_LEAF = "any-leaf"


class Node:
    """One event path: the children below it and the anchors that fire on its leaf values."""

    __slots__ = (
        "any_leaf",
        "any_string",
        "children",
        "consts",
        "ignore_case",
        "name",
        "numbers",
        "parent",
        "prefix",
        "prefix_ic",
        "ranges",
        "strings",
        "suffix",
        "suffix_ic",
    )

    def __init__(self, parent: Node | None = None, name: str = "") -> None:
        self.parent = parent
        self.name = name
        self.children: dict[str, Node] = {}
        self.strings: dict[str, list[int]] = {}
        self.numbers: dict[float, list[int]] = {}
        # null, true and false, kept apart from numbers because True == 1 in Python
        self.consts: dict[Any, list[int]] = {}
        self.ignore_case: dict[str, list[int]] = {}
        self.prefix = _Affixes()
        self.prefix_ic = _Affixes()
        self.suffix = _Affixes()
        self.suffix_ic = _Affixes()
        self.ranges = _Ranges()
        self.any_string: list[int] = []
        self.any_leaf: list[int] = []

    def empty(self) -> bool:
        return not (
            self.children
            or self.strings
            or self.numbers
            or self.consts
            or self.ignore_case
            or self.prefix.keys
            or self.prefix_ic.keys
            or self.suffix.keys
            or self.suffix_ic.keys
            or self.ranges.entries
            or self.any_string
            or self.any_leaf
        )

    def leaf(self, value: Any, out: set[int]) -> None:
        """Add to `out` every alternative anchored here whose anchor fires on `value`."""
        if isinstance(value, str):
            found = self.strings.get(value)
            if found:
                out.update(found)
            if self.prefix.keys:
                self.prefix.starts(value, out)
            if self.suffix.keys:
                self.suffix.ends(value, out)
            if self.ignore_case or self.prefix_ic.keys or self.suffix_ic.keys:
                lower = value.lower()
                found = self.ignore_case.get(lower)
                if found:
                    out.update(found)
                if self.prefix_ic.keys:
                    self.prefix_ic.starts(lower, out)
                if self.suffix_ic.keys:
                    self.suffix_ic.ends(lower, out)
            if self.any_string:
                out.update(self.any_string)
        elif value is None or isinstance(value, bool):
            found = self.consts.get(value)
            if found:
                out.update(found)
        elif is_number(value):
            found = self.numbers.get(value)
            if found:
                out.update(found)
            if self.ranges.entries:
                self.ranges.stab(value, out)
        if self.any_leaf:
            out.update(self.any_leaf)


class _Affixes:
    """Prefixes (or suffixes) by text, probed once per distinct length rather than once per rule."""

    __slots__ = ("keys", "lengths")

    def __init__(self) -> None:
        self.keys: dict[str, list[int]] = {}
        self.lengths: list[int] = []

    def add(self, text: str, alternative: int) -> None:
        self.keys.setdefault(text, []).append(alternative)
        if len(text) not in self.lengths:
            bisect.insort(self.lengths, len(text))

    def remove(self, text: str, alternative: int) -> None:
        if _discard(self.keys, text, alternative) and not any(len(k) == len(text) for k in self.keys):
            self.lengths.remove(len(text))

    def starts(self, value: str, out: set[int]) -> None:
        keys, size = self.keys, len(value)
        for length in self.lengths:
            if length > size:
                break
            found = keys.get(value[:length])
            if found:
                out.update(found)

    def ends(self, value: str, out: set[int]) -> None:
        keys, size = self.keys, len(value)
        for length in self.lengths:
            if length > size:
                break
            found = keys.get(value[size - length :])
            if found:
                out.update(found)


class _Ranges:
    """Numeric ranges, answered by binary search over the elementary intervals their bounds cut.

    Rebuilt lazily after a change. Region 2i+1 is exactly bounds[i]; region 2i
    lies between bounds[i-1] and bounds[i].
    """

    __slots__ = ("bounds", "entries", "regions")

    def __init__(self) -> None:
        self.entries: list[tuple[tuple[float, bool, float, bool], int]] = []
        self.bounds: list[float] = []
        self.regions: list[tuple[int, ...]] | None = None

    def add(self, bounds: tuple[float, bool, float, bool], alternative: int) -> None:
        self.entries.append((bounds, alternative))
        self.regions = None

    def remove(self, bounds: tuple[float, bool, float, bool], alternative: int) -> None:
        self.entries.remove((bounds, alternative))
        self.regions = None

    def _build(self) -> list[tuple[int, ...]]:
        points = sorted({b for (low, _, high, _), _ in self.entries for b in (low, high) if math.isfinite(b)})
        regions: list[list[int]] = [[] for _ in range(2 * len(points) + 1)]
        for (low, low_incl, high, high_incl), alternative in self.entries:
            first = 0 if low == -math.inf else 2 * bisect.bisect_left(points, low) + (1 if low_incl else 2)
            last = 2 * len(points)
            if high != math.inf:
                last = 2 * bisect.bisect_left(points, high) + (1 if high_incl else 0)
            for region in range(first, last + 1):
                regions[region].append(alternative)
        self.bounds = points
        self.regions = [tuple(r) for r in regions]
        return self.regions

    def stab(self, value: float, out: set[int]) -> None:
        if value != value:
            return
        regions = self.regions if self.regions is not None else self._build()
        i = bisect.bisect_left(self.bounds, value)
        region = 2 * i + 1 if i < len(self.bounds) and self.bounds[i] == value else 2 * i
        found = regions[region]
        if found:
            out.update(found)


def _discard(table: dict[Any, list[int]], key: Any, alternative: int) -> bool:
    """Remove one filing; True when the key is gone entirely."""
    found = table.get(key)
    if found is None:
        return False
    found.remove(alternative)
    if found:
        return False
    del table[key]
    return True


# --- filing anchors --------------------------------------------------------------------------------

Filing = tuple[Node, str, Any]


def indexable(field: Field) -> bool:
    """Whether every condition of the field can be looked up (so the field can anchor an alternative)."""
    return all(_indexable(c) for c in field.conditions)


def _indexable(condition: Condition) -> bool:
    if condition.kind == EXISTS:
        return bool(condition.operand)
    if condition.kind == NUMERIC:
        low, _, high, _ = condition.operand
        return bool(low != -math.inf or high != math.inf)
    return condition.kind in _KIND_COST


def node_for(root: Node, path: tuple[str, ...], *, create: bool) -> Node | None:
    node = root
    for name in path:
        child = node.children.get(name)
        if child is None:
            if not create:
                return None
            child = node.children[name] = Node(node, name)
        node = child
    return node


def anchor_cost(root: Node, field: Field) -> int:
    """How many alternatives already share this field's keys, plus a cost for looser kinds.

    The cost guesses how often the anchor will fire on events that then fail
    the full check: sharing a key with many others, a short prefix, a
    boolean or a wide numeric range all fire often.
    """
    node = node_for(root, field.path, create=False)
    total = 0
    for condition in field.conditions:
        kind, key = _filing_key(condition)
        total += _KIND_COST.get(condition.kind, 0)
        if kind in _AFFIXES:
            total += max(0, 8 - len(key))
        elif kind == EXACT and (key is None or isinstance(key, bool)):
            total += 20
        if node is not None:
            total += sharing((node, kind, key))
    return total


def sharing(filing: Filing) -> int:
    """How many alternatives are filed under the same key (the size of its bucket)."""
    return len(members(filing))


def members(filing: Filing) -> list[int]:
    node, kind, key = filing
    table = _exact_table(node, key) if kind == EXACT else _table(node, kind)
    if isinstance(table, dict):
        found: list[int] = table.get(key, [])
        return found
    if kind == NUMERIC:
        return [alternative for _, alternative in node.ranges.entries]
    bucket: list[int] = table
    return bucket


def file_field(root: Node, field: Field, alternative: int) -> list[Filing]:
    """File an alternative under each condition of its anchor field; returns what to undo on removal."""
    node = node_for(root, field.path, create=True)
    assert node is not None
    filings: list[Filing] = []
    for condition in field.conditions:
        kind, key = _filing_key(condition)
        _add(node, kind, key, alternative)
        filings.append((node, kind, key))
    return filings


def unfile(filings: list[Filing], alternative: int) -> None:
    for node, kind, key in filings:
        _remove(node, kind, key, alternative)
        # Drop nodes left empty, so matching stops visiting paths no rule needs any more.
        current: Node | None = node
        while current is not None and current.parent is not None and current.empty():
            if current.parent.children.get(current.name) is current:
                del current.parent.children[current.name]
            current = current.parent


def _filing_key(condition: Condition) -> tuple[str, Any]:
    kind, operand = condition.kind, condition.operand
    if kind == EXISTS:
        return (_ANY_LEAF, None)
    if kind == NUMERIC and operand[0] == operand[2]:
        return (EXACT, operand[0])
    if kind == WILDCARD:
        # Anchor a wildcard on its literal start or end; the full test runs when the alternative is checked.
        if len(operand) == 1:
            return (EXACT, operand[0])
        if operand[0]:
            return (PREFIX, operand[0])
        if operand[-1]:
            return (SUFFIX, operand[-1])
        return (_ANY_STRING, None)
    return (kind, operand)


def _table(node: Node, kind: str) -> Any:
    return {
        IGNORE_CASE: node.ignore_case,
        PREFIX: node.prefix.keys,
        PREFIX_IC: node.prefix_ic.keys,
        SUFFIX: node.suffix.keys,
        SUFFIX_IC: node.suffix_ic.keys,
        NUMERIC: node.ranges.entries,
        _ANY_STRING: node.any_string,
        _ANY_LEAF: node.any_leaf,
    }[kind]


def _exact_table(node: Node, value: Any) -> dict[Any, list[int]]:
    if isinstance(value, str):
        return node.strings
    if value is None or isinstance(value, bool):
        return node.consts
    return node.numbers


_AFFIXES: dict[str, Callable[[Node], _Affixes]] = {
    PREFIX: lambda n: n.prefix,
    PREFIX_IC: lambda n: n.prefix_ic,
    SUFFIX: lambda n: n.suffix,
    SUFFIX_IC: lambda n: n.suffix_ic,
}


def _add(node: Node, kind: str, key: Any, alternative: int) -> None:
    if kind == EXACT:
        _exact_table(node, key).setdefault(key, []).append(alternative)
    elif kind == IGNORE_CASE:
        node.ignore_case.setdefault(key, []).append(alternative)
    elif kind in _AFFIXES:
        _AFFIXES[kind](node).add(key, alternative)
    elif kind == NUMERIC:
        node.ranges.add(key, alternative)
    elif kind == _ANY_STRING:
        node.any_string.append(alternative)
    else:
        node.any_leaf.append(alternative)


def _remove(node: Node, kind: str, key: Any, alternative: int) -> None:
    if kind == EXACT:
        _discard(_exact_table(node, key), key, alternative)
    elif kind == IGNORE_CASE:
        _discard(node.ignore_case, key, alternative)
    elif kind in _AFFIXES:
        _AFFIXES[kind](node).remove(key, alternative)
    elif kind == NUMERIC:
        node.ranges.remove(key, alternative)
    elif kind == _ANY_STRING:
        node.any_string.remove(alternative)
    else:
        node.any_leaf.remove(alternative)


# --- walking an event ------------------------------------------------------------------------------


def walk(root: Node, event: Mapping[str, Any], out: set[int]) -> None:
    """Collect into `out` the alternatives whose anchors fire somewhere in `event`."""
    children = root.children
    for name, value in event.items():
        child = children.get(_ROOT_NAMES.get(name, name))
        if child is not None:
            _visit(child, value, out)


def _visit(node: Node, value: Any, out: set[int]) -> None:
    # Recursion only follows the index tree (at most MAX_DEPTH deep); arrays, which an event
    # built in code could nest without limit, are flattened with an explicit stack.
    kind = type(value)
    if kind is str:
        node.leaf(value, out)
    elif kind is dict or (kind is not list and kind is not tuple and isinstance(value, Mapping)):
        children = node.children
        if not children:
            return
        if len(children) < len(value):
            for name, child in children.items():
                if name in value:
                    _visit(child, value[name], out)
        else:
            for name, item in value.items():
                found = children.get(name)
                if found is not None:
                    _visit(found, item, out)
    elif kind is list or kind is tuple:
        pending = [value]
        while pending:
            for item in pending.pop():
                if type(item) is list or type(item) is tuple:
                    pending.append(item)
                else:
                    _visit(node, item, out)
    else:
        node.leaf(value, out)
