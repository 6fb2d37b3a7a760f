"""The index behind RuleSet: a tree of event paths, each node holding lookups by value.

Every alternative of every rule is filed under one *anchor*: the field of
that alternative that the index can look up directly (an exact value, a
prefix, a numeric range, ...) and that the fewest other alternatives share.
Matching walks the event once along the paths the tree knows (never the
event's other fields), collects the alternatives whose anchor fired, and
checks only those in full. So the cost per event follows the paths anchors
sit on, the near misses (anchor fired, rule failed) and the matches, not the
number of rules; `_ruleset_filing` keeps anchors off paths few alternatives
use, since each path costs every event a visit. Alternatives with nothing to
anchor on (only anything-but, `exists: false` or cidr fields) are checked on
every event.

This module holds the tree and the walk; `_ruleset_filing` decides where
alternatives are filed in it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from typing import Any

from triggerfish.events._pattern_match import EVENT_ALIASES, is_number

_ROOT_NAMES = {alias: name for name, alias in EVENT_ALIASES.items()}
_MISSING: Any = object()


class Node:
    """One event path: the children below it and the anchors that fire on its leaf values."""

    __slots__ = (
        "any_leaf",
        "any_string",
        "children",
        "consts",
        "filed",
        "ignore_case",
        "name",
        "numbers",
        "parent",
        "prefix",
        "prefix_ic",
        "ranges",
        "string_extras",
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
        self.prefix = Affixes()
        self.prefix_ic = Affixes()
        self.suffix = Affixes()
        self.suffix_ic = Affixes()
        self.ranges = _Ranges()
        self.any_string: list[int] = []
        self.any_leaf: list[int] = []
        self.string_extras = False
        #: how many filings (alternative, condition) this node holds, of every kind
        self.filed = 0

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

    def refresh(self) -> None:
        """Note which lookups this node has, so matching skips the empty ones in one test."""
        self.string_extras = bool(
            self.prefix.keys
            or self.suffix.keys
            or self.ignore_case
            or self.prefix_ic.keys
            or self.suffix_ic.keys
            or self.any_string
        )

    def leaf(self, value: Any, out: set[int]) -> None:
        """Add to `out` every alternative anchored here whose anchor fires on `value`."""
        if type(value) is str:
            found = self.strings.get(value)
            if found:
                out.update(found)
            if self.string_extras:
                self._string_extras(value, out)
        elif isinstance(value, str):  # a str subclass: the same lookups, without the fast path
            found = self.strings.get(value)
            if found:
                out.update(found)
            self._string_extras(value, out)
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

    def _string_extras(self, value: str, out: set[int]) -> None:
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


class Affixes:
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
        if discard(self.keys, text, alternative) and not any(len(k) == len(text) for k in self.keys):
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


def discard(table: dict[Any, list[int]], key: Any, alternative: int) -> bool:
    """Remove one filing; True when the key is gone entirely."""
    found = table.get(key)
    if found is None:
        return False
    found.remove(alternative)
    if found:
        return False
    del table[key]
    return True


# --- walking an event ------------------------------------------------------------------------------


def walk(root: Node, event: Mapping[str, Any], out: set[int]) -> None:
    """Collect into `out` the alternatives whose anchors fire somewhere in `event`.

    Only the paths the index knows are read: at each object, whichever of its
    keys and the node's children are fewer are looped over, so an event's
    unrelated fields cost nothing once no rule looks at them.
    """
    children = root.children
    if len(children) < len(event):
        for name, child in children.items():
            value = event.get(name, _MISSING)
            if value is not _MISSING:
                _visit(child, value, out)
            alias = EVENT_ALIASES.get(name)
            if alias is not None:
                value = event.get(alias, _MISSING)
                if value is not _MISSING:
                    _visit(child, value, out)
    else:
        for name, value in event.items():
            found = children.get(_ROOT_NAMES.get(name, name))
            if found is not None:
                _visit(found, value, out)


def _visit(node: Node, value: Any, out: set[int]) -> None:
    # Recursion only follows the index tree (at most MAX_DEPTH deep); arrays, which an event
    # built in code could nest without limit, are flattened with an explicit stack.
    kind = type(value)
    if kind is str:
        # Node.leaf's string case, inlined: this is the commonest visit.
        found = node.strings.get(value)
        if found:
            out.update(found)
        if node.string_extras:
            node._string_extras(value, out)
        if node.any_leaf:
            out.update(node.any_leaf)
    elif kind is dict or (kind is not list and kind is not tuple and isinstance(value, Mapping)):
        children = node.children
        if not children:
            return
        if len(children) < len(value):
            for name, child in children.items():
                item = value.get(name, _MISSING)
                if item is not _MISSING:
                    _visit(child, item, out)
        else:
            for name, item in value.items():
                found_child = children.get(name)
                if found_child is not None:
                    _visit(found_child, item, out)
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
