"""One step of the rule automaton: every condition on one event path, looked up by value at once.

A state of the automaton (see `_automaton`) leaves by fields: "at path P,
one of these conditions holds". All the fields leaving one state on one path
share a ValueMatcher, which files each condition under the kind of lookup it
allows (a dict of exact strings, prefixes probed once per distinct length,
numeric ranges by binary search, IPv4 cidr blocks by their network bits per
prefix length, ...), each naming the state (or condition number) it leads to.
`step` takes the values an event holds at the path and adds every state some
condition leads to, so the cost follows the event's values and the hits, not
how many conditions are filed. `anything-but` of exact values is inverted: every target
it leads to, less those filed under the value. Only conditions no lookup can
serve (IPv6 cidr, the anything-but forms, and wildcards whose literal start
and end are empty) are tried one by one.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
from typing import Any

from triggerfish.events._pattern_match import (
    ANYTHING_BUT,
    CIDR,
    EXACT,
    EXISTS,
    IGNORE_CASE,
    NUMERIC,
    OCTETS,
    PREFIX,
    PREFIX_IC,
    SUFFIX,
    SUFFIX_IC,
    WILDCARD,
    Condition,
    Test,
    is_number,
)

Target = Any  # a state of the automaton: hashable by identity


class Affixes:
    """Items filed by a prefix (or suffix), probed once per distinct length rather than once per item.

    A probe is a lookup in a table of every prefix, which with thousands of
    them is mostly outside the CPU's cache; each length also keeps the set of
    characters its prefixes end with (its suffixes begin with), so a length
    whose character the value does not have there is not probed. Prefixes
    often end in a separator (`order.t12.`): of a value's several lengths,
    usually one is probed.
    """

    __slots__ = ("_heads", "_tails", "keys", "lengths")

    def __init__(self) -> None:
        self.keys: dict[str, list[Any]] = {}
        self.lengths: list[int] = []
        #: (length, the last characters of the prefixes of that length), ascending; None when to be rebuilt
        self._tails: tuple[tuple[int, frozenset[str]], ...] | None = ()
        #: the same with the first characters of the suffixes
        self._heads: tuple[tuple[int, frozenset[str]], ...] | None = ()

    def add(self, text: str, item: Any) -> None:
        self.keys.setdefault(text, []).append(item)
        if len(text) not in self.lengths:
            bisect.insort(self.lengths, len(text))
        self._tails = self._heads = None

    def remove(self, text: str, item: Any) -> None:
        if _discard(self.keys, text, item) and not any(len(k) == len(text) for k in self.keys):
            self.lengths.remove(len(text))
        self._tails = self._heads = None

    def _filters(self, at_end: bool) -> tuple[tuple[int, frozenset[str]], ...]:
        """Per length, the characters the texts of that length have at their end (`at_end`) or start."""
        chars: dict[int, set[str]] = {length: set() for length in self.lengths}
        for text in self.keys:
            if text:
                chars[len(text)].add(text[-1] if at_end else text[0])
        built = tuple((length, frozenset(chars[length])) for length in self.lengths)
        if at_end:
            self._tails = built
        else:
            self._heads = built
        return built

    def starting(self, value: str) -> list[list[Any]]:
        """The item lists whose text `value` starts with."""
        keys, size, found = self.keys, len(value), []
        tails = self._tails if self._tails is not None else self._filters(True)
        for length, ends in tails:
            if length > size:
                break
            if length and value[length - 1] not in ends:
                continue
            items = keys.get(value[:length])
            if items:
                found.append(items)
        return found

    def ending(self, value: str) -> list[list[Any]]:
        """The item lists whose text `value` ends with."""
        keys, size, found = self.keys, len(value), []
        heads = self._heads if self._heads is not None else self._filters(False)
        for length, starts in heads:
            if length > size:
                break
            if length and value[size - length] not in starts:
                continue
            items = keys.get(value[size - length :])
            if items:
                found.append(items)
        return found


class Blocks:
    """IPv4 cidr blocks, looked up once per distinct prefix length rather than tested one by one.

    Only a plain dotted quad (four canonical decimal octets) is an IPv4
    address to `cidr` (the cidr test and `ipaddress` agree on it), so no other
    string can fall in an IPv4 block.
    """

    __slots__ = ("by_length",)

    def __init__(self) -> None:
        #: prefix length -> the block's network bits (the address shifted right) -> items
        self.by_length: dict[int, dict[int, list[Any]]] = {}

    def add(self, network: ipaddress.IPv4Network, item: Any) -> None:
        length = network.prefixlen
        table = self.by_length.setdefault(length, {})
        table.setdefault(int(network.network_address) >> (32 - length), []).append(item)

    def remove(self, network: ipaddress.IPv4Network, item: Any) -> None:
        length = network.prefixlen
        table = self.by_length[length]
        _discard(table, int(network.network_address) >> (32 - length), item)
        if not table:
            del self.by_length[length]

    def containing(self, value: str) -> list[list[Any]]:
        """The item lists of the blocks that hold the address `value` (none when it is not a dotted quad)."""
        parts = value.split(".")
        if len(parts) != 4:
            return []
        octets = OCTETS
        a, b, c, d = octets.get(parts[0]), octets.get(parts[1]), octets.get(parts[2]), octets.get(parts[3])
        if a is None or b is None or c is None or d is None:
            return []
        address = a << 24 | b << 16 | c << 8 | d
        found = []
        for length, table in self.by_length.items():
            items = table.get(address >> (32 - length))
            if items:
                found.append(items)
        return found


class Ranges:
    """Numeric ranges, answered by binary search over the elementary intervals their bounds cut.

    Rebuilt lazily after a change. Region 2i+1 is exactly bounds[i]; region 2i
    lies between bounds[i-1] and bounds[i].
    """

    __slots__ = ("bounds", "entries", "regions")

    def __init__(self) -> None:
        self.entries: list[tuple[tuple[float, bool, float, bool], Target]] = []
        self.bounds: list[float] = []
        self.regions: list[tuple[Target, ...]] | None = None

    def add(self, bounds: tuple[float, bool, float, bool], target: Target) -> None:
        self.entries.append((bounds, target))
        self.regions = None

    def remove(self, bounds: tuple[float, bool, float, bool], target: Target) -> None:
        self.entries.remove((bounds, target))
        self.regions = None

    def _build(self) -> list[tuple[Target, ...]]:
        points = sorted({b for (low, _, high, _), _ in self.entries for b in (low, high) if math.isfinite(b)})
        regions: list[list[Target]] = [[] for _ in range(2 * len(points) + 1)]
        for (low, low_incl, high, high_incl), target in self.entries:
            first = 0 if low == -math.inf else 2 * bisect.bisect_left(points, low) + (1 if low_incl else 2)
            last = 2 * len(points)
            if high != math.inf:
                last = 2 * bisect.bisect_left(points, high) + (1 if high_incl else 0)
            for region in range(first, last + 1):
                regions[region].append(target)
        self.bounds = points
        self.regions = [tuple(r) for r in regions]
        return self.regions

    def stab(self, value: float, hits: set[Target]) -> None:
        if value != value:  # NaN is inside no range
            return
        regions = self.regions if self.regions is not None else self._build()
        i = bisect.bisect_left(self.bounds, value)
        region = 2 * i + 1 if i < len(self.bounds) and self.bounds[i] == value else 2 * i
        found = regions[region]
        if found:
            hits.update(found)


class ValueMatcher:
    """The conditions of every field that leaves one state on one path, each filed with the state it leads to."""

    __slots__ = (
        "absent",
        "all_but",
        "any_value",
        "blocks",
        "but_numbers",
        "but_strings",
        "consts",
        "ignore_case",
        "numbers",
        "only_strings",
        "prefix",
        "prefix_ic",
        "ranges",
        "size",
        "string_extras",
        "strings",
        "suffix",
        "suffix_ic",
        "tests",
        "wild_prefix",
        "wild_suffix",
    )

    def __init__(self) -> None:
        self.strings: dict[str, list[Target]] = {}
        self.numbers: dict[float, list[Target]] = {}
        # null, true and false, apart from numbers because True == 1 in Python
        self.consts: dict[Any, list[Target]] = {}
        self.ignore_case: dict[str, list[Target]] = {}
        self.prefix = Affixes()
        self.prefix_ic = Affixes()
        self.suffix = Affixes()
        self.suffix_ic = Affixes()
        # wildcards, filed by their literal start (or end) and then tested in full
        self.wild_prefix = Affixes()
        self.wild_suffix = Affixes()
        self.ranges = Ranges()
        self.blocks = Blocks()
        # anything-but of exact values, inverted: every such target, less those the value is excluded from
        self.all_but: dict[Target, int] = {}
        self.but_strings: dict[str, dict[Target, int]] = {}
        self.but_numbers: dict[float, dict[Target, int]] = {}
        #: conditions tried value by value: (test, target)
        self.tests: list[tuple[Test, Target]] = []
        self.any_value: list[Target] = []
        self.absent: list[Target] = []
        self.only_strings = True
        self.string_extras = False
        #: how many (condition, target) filings this matcher holds
        self.size = 0

    def add(self, condition: Condition, target: Target) -> None:
        self._file(condition, target, adding=True)
        self.size += 1
        self._refresh()

    def remove(self, condition: Condition, target: Target) -> None:
        self._file(condition, target, adding=False)
        self.size -= 1
        self._refresh()

    def step(self, values: list[Any], hits: set[Target]) -> None:
        """Add to `hits` every target some condition leads to, given the event's values at the path."""
        if not values:
            if self.absent:
                hits.update(self.absent)
            return
        if self.any_value:
            hits.update(self.any_value)
        if self.only_strings:
            strings = self.strings
            for value in values:
                if type(value) is str:
                    found = strings.get(value)
                    if found:
                        hits.update(found)
            return
        for value in values:
            self._value(value, hits)

    def _value(self, value: Any, hits: set[Target]) -> None:
        if isinstance(value, str):
            found = self.strings.get(value)
            if found:
                hits.update(found)
            if self.string_extras:
                self._string_extras(value, hits)
        elif value is None or isinstance(value, bool):
            found = self.consts.get(value)
            if found:
                hits.update(found)
        elif is_number(value):
            found = self.numbers.get(value)
            if found:
                hits.update(found)
            if self.ranges.entries:
                self.ranges.stab(value, hits)
        if self.all_but:
            # No function per condition: one lookup of what the value is excluded from.
            if isinstance(value, str):
                excluded = self.but_strings.get(value)
            elif is_number(value):
                excluded = self.but_numbers.get(value)
            else:
                excluded = None
            if excluded is None:
                hits.update(self.all_but)
            else:
                # A target is met unless every anything-but condition it was filed under excludes the value.
                for target, conditions in self.all_but.items():
                    if excluded.get(target, 0) < conditions:
                        hits.add(target)
        for test, target in self.tests:
            if target not in hits and test(value):
                hits.add(target)

    def _string_extras(self, value: str, hits: set[Target]) -> None:
        for items in self.prefix.starting(value) if self.prefix.keys else ():
            hits.update(items)
        for items in self.suffix.ending(value) if self.suffix.keys else ():
            hits.update(items)
        if self.ignore_case or self.prefix_ic.keys or self.suffix_ic.keys:
            lower = value.lower()
            found = self.ignore_case.get(lower)
            if found:
                hits.update(found)
            for items in self.prefix_ic.starting(lower) if self.prefix_ic.keys else ():
                hits.update(items)
            for items in self.suffix_ic.ending(lower) if self.suffix_ic.keys else ():
                hits.update(items)
        if self.blocks.by_length:
            for items in self.blocks.containing(value):
                hits.update(items)
        for affixes, probe in ((self.wild_prefix, Affixes.starting), (self.wild_suffix, Affixes.ending)):
            if affixes.keys:
                for items in probe(affixes, value):
                    for test, target in items:
                        if target not in hits and test(value):
                            hits.add(target)

    def _file(self, condition: Condition, target: Target, *, adding: bool) -> None:
        kind, operand = condition.kind, condition.operand
        if (kind == NUMERIC and operand[0] == operand[2]) or (
            kind == WILDCARD and len(operand) == 1
        ):  # numeric "=": an exact number
            kind, operand = EXACT, operand[0]
        if kind == EXACT:
            table: dict[Any, list[Target]]
            if isinstance(operand, str):
                table = self.strings
            elif operand is None or isinstance(operand, bool):
                table = self.consts
            else:
                table = self.numbers
            _change(table, operand, target, adding)
        elif kind == IGNORE_CASE:
            _change(self.ignore_case, operand, target, adding)
        elif kind in (PREFIX, PREFIX_IC, SUFFIX, SUFFIX_IC):
            by_kind = {PREFIX: self.prefix, PREFIX_IC: self.prefix_ic, SUFFIX: self.suffix, SUFFIX_IC: self.suffix_ic}
            (by_kind[kind].add if adding else by_kind[kind].remove)(operand, target)
        elif kind == NUMERIC:
            (self.ranges.add if adding else self.ranges.remove)(operand, target)
        elif kind == EXISTS:
            bucket = self.any_value if operand else self.absent
            bucket.append(target) if adding else bucket.remove(target)
        elif kind == WILDCARD and (operand[0] or operand[-1]) and len(operand) > 1:
            # Filed under its literal start (else its end); the full test runs only when that fires.
            affixes, text = (self.wild_prefix, operand[0]) if operand[0] else (self.wild_suffix, operand[-1])
            (affixes.add if adding else affixes.remove)(text, (condition.test, target))
        elif kind == ANYTHING_BUT and not isinstance(operand, dict):
            excluded = set(operand) if isinstance(operand, tuple) else {operand}  # 1 and 1.0: one value
            _count(self.all_but, target, adding)
            for value in excluded:
                exclusions: dict[Any, dict[Target, int]] = (
                    self.but_strings if isinstance(value, str) else self.but_numbers
                )
                counts = exclusions.setdefault(value, {})
                _count(counts, target, adding)
                if not counts:
                    del exclusions[value]
        elif kind == CIDR and operand.version == 4:
            (self.blocks.add if adding else self.blocks.remove)(operand, target)
        elif kind in (WILDCARD, CIDR, ANYTHING_BUT):
            entry = (condition.test, target)
            self.tests.append(entry) if adding else self.tests.remove(entry)
        else:  # pragma: no cover - the compiler makes no other kind
            raise AssertionError(f"unknown condition kind {kind!r}")

    def _refresh(self) -> None:
        """Note which lookups are in use, so `step` skips the empty ones in one test."""
        self.string_extras = bool(
            self.prefix.keys
            or self.suffix.keys
            or self.ignore_case
            or self.prefix_ic.keys
            or self.suffix_ic.keys
            or self.wild_prefix.keys
            or self.wild_suffix.keys
            or self.blocks.by_length
        )
        self.only_strings = not (
            self.string_extras or self.numbers or self.consts or self.ranges.entries or self.tests or self.all_but
        )


def _count(counts: dict[Target, int], target: Target, adding: bool) -> None:
    """Count a filing of `target` in or out (one target may be filed by several conditions)."""
    total = counts.get(target, 0) + (1 if adding else -1)
    if total:
        counts[target] = total
    else:
        del counts[target]


def _change(table: dict[Any, list[Target]], key: Any, target: Target, adding: bool) -> None:
    if adding:
        table.setdefault(key, []).append(target)
    else:
        _discard(table, key, target)


def _discard(table: dict[Any, list[Any]], key: Any, item: Any) -> bool:
    """Remove one filing; True when the key is gone entirely."""
    found = table.get(key)
    if found is None:
        return False
    found.remove(item)
    if found:
        return False
    del table[key]
    return True
