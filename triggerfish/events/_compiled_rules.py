"""A rule set compiled for matching: value classes per path, groups by anchor field, bitsets within a group.

The automaton of `_automaton` walks one state per partial match, and with
thousands of rules those states are thousands of scattered Python objects that
an event mostly finds outside the CPU's cache. This compiles a fixed set of
alternatives into few, shared, compact structures instead:

- Value classes (`PathClasses`). Every condition on one path, across all the
  rules, is filed in one ValueMatcher under a condition number. A value's
  class is the frozenset of the condition numbers it satisfies (plus PRESENT;
  a missing field has the class {ABSENT}): two values of one class are
  indistinguishable to every rule. Classes are memoised: strings by value
  (values no rule names and no pattern operator can tell apart share one
  class), numbers by the region of the sorted breakpoints (range bounds,
  exact and excluded numbers) they fall in, so a path costs one dict lookup
  (and a bisect for numbers) per value however many conditions are filed on it.
- Groups by anchor. Each alternative is filed under one of its fields, its
  anchor: the one a value lookup serves that the fewest events meet (the
  first field of `Automaton.order`). Alternatives with the same anchor field
  form a group, reached when the event's class on the anchor path satisfies
  that field, which one memoised lookup per class answers.
- Bitsets within a group. The group's members are bits of a Python int. For
  each other path its members name, a table gives per value class the members
  whose field there holds (members not naming the path always hold), filled
  on first use; the event's matches in the group are the AND of those ints.
  A group of one alternative is no Group but a leaf (`_leaves`): one flat
  tuple of its fields' checks, which a visit reads in place (with thousands of
  rules most groups are of one, each reached seldom and found outside the
  CPU's cache, where each object of a Group's chain cost a miss); a group of
  up to `_LEAVES_UP_TO` alternatives is that many leaves, which cost fewer
  objects than its chain (a dense set's big groups stay Groups).
  A step with at most `_DIRECT` conditions of the kinds that meet values
  seldom repeated (numeric, prefix, cidr, ...) tests the values itself instead.

So an event costs a lookup per path its groups read, one per group reached and
one small-int AND per path of a group, not anything per rule; and the
structures it touches are a few dicts per path and per group, shared by every
rule, rather than a state per rule. The set is fixed once compiled (RuleSet
recompiles it as rules change, matching rules changed since with an
automaton of their own).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, cast

from triggerfish.events._anchors import Anchor
from triggerfish.events._automaton import Automaton, condition_key, field_key
from triggerfish.events._leaves import Leaf, leaf
from triggerfish.events._pattern_match import (
    ANYTHING_BUT,
    CIDR,
    EXACT,
    EXISTS,
    NUMERIC,
    PREFIX,
    PREFIX_IC,
    SUFFIX,
    SUFFIX_IC,
    WILDCARD,
    Condition,
    Field,
    PathReader,
    Test,
    is_number,
)
from triggerfish.events._value_matcher import ValueMatcher

#: Condition numbers of `exists`: every value present satisfies PRESENT; a missing field is the class {ABSENT}.
PRESENT: Final = -1
ABSENT: Final = -2
#: How many strings' classes one path remembers (a path of unique ids would otherwise grow without end).
_STRING_MEMO = 65_536
#: How many distinct classes one path interns before starting afresh.
_INTERNED = 65_536
#: A group's step with at most this many conditions, of these kinds, tests values directly instead of
#: classifying them.
_DIRECT = 3
#: A group of at most this many alternatives is that many leaves (`_leaves`), each visited on its own: cold, its
#: leaves cost a tuple and an operand each where a Group cost its chain of objects; more members (three
#: fields each in a dense set) repeat checks a Group's bitsets share.
_LEAVES_UP_TO = 3
_OPEN_KINDS: Final = frozenset({PREFIX, PREFIX_IC, SUFFIX, SUFFIX_IC, WILDCARD, NUMERIC, CIDR})

ValueClass = frozenset[int]
Classes = ValueClass | tuple[ValueClass, ...]


class PathClasses:
    """Every condition the rules set on one path, and the class of each value found there."""

    __slots__ = (
        "_breaks",
        "_consts",
        "_interned",
        "_matcher",
        "_numbers",
        "_open_strings",
        "_other_string",
        "_strings",
        "absent",
        "numbers",
        "reader",
    )

    def __init__(self, reader: PathReader) -> None:
        self.reader = reader
        self.numbers: dict[tuple[Any, ...], int] = {}
        self._matcher = ValueMatcher()
        self._breaks: list[float] = []
        self._strings: dict[str, ValueClass] = {}
        self._numbers: dict[int, ValueClass] = {}
        self._consts: dict[Any, ValueClass] = {}
        self._interned: dict[ValueClass, ValueClass] = {}
        self._open_strings = False
        self._other_string: ValueClass | None = None
        self.absent: ValueClass = frozenset((ABSENT,))

    def number(self, condition: Condition) -> int:
        """The condition's number on this path (equal conditions share one), filing it on first sight."""
        if condition.kind == EXISTS:
            return PRESENT if condition.operand else ABSENT
        key = condition_key(condition)
        found = self.numbers.get(key)
        if found is None:
            found = self.numbers[key] = len(self.numbers)
            self._matcher.add(condition, found)
            self._breaks.extend(_breakpoints(condition))
        return found

    def seal(self) -> None:
        """Done filing: sort the breakpoints and learn whether strings no rule names can differ."""
        self._breaks = sorted(set(self._breaks))
        matcher = self._matcher
        # Only exact strings and anything-but of exact strings: a string neither names is like any other such.
        self._open_strings = bool(matcher.string_extras or matcher.tests)

    def classes(self, event: Mapping[str, Any]) -> Classes:
        """The class of the event's value at this path (`absent` when it has none), or a tuple of the distinct
        classes of its values when it has several (one frozenset rather than a tuple of one: no allocation)."""
        values = self.reader.read(event)
        if len(values) == 1:
            value = values[0]
            if type(value) is str:
                found = self._strings.get(value)
                if found is not None:
                    return found
            return self.of(value)
        if not values:
            return self.absent
        return tuple({self.of(value): None for value in values})

    def of(self, value: Any) -> ValueClass:
        """The class of one value."""
        if type(value) is str:
            found = self._strings.get(value)
            if found is not None:
                return found
            if not self._open_strings and value not in self._matcher.strings and value not in self._matcher.but_strings:
                found = self._other_string
                if found is None:
                    found = self._other_string = self._compute(value)
                return found
            found = self._compute(value)
            if len(self._strings) >= _STRING_MEMO:
                self._strings.clear()
            self._strings[value] = found
            return found
        if value is None or value is True or value is False:
            found = self._consts.get(value)
            if found is None:
                found = self._consts[value] = self._compute(value)
            return found
        kind = type(value)
        if kind is int or (kind is float and value - value == 0.0):  # finite (a huge int has no float form)
            # Every condition is constant between two breakpoints and at each: the region names the class.
            breaks = self._breaks
            i = bisect.bisect_left(breaks, value)
            region = 2 * i + 1 if i < len(breaks) and breaks[i] == value else 2 * i
            found = self._numbers.get(region)
            if found is None:
                found = self._numbers[region] = self._compute(value)
            return found
        return self._compute(value)  # NaN, infinities and non-JSON types: rare, not memoised

    def _compute(self, value: Any) -> ValueClass:
        hits: set[int] = {PRESENT}
        self._matcher.step([value], hits)
        found = frozenset(hits)
        interned = self._interned.get(found)
        if interned is None:
            if len(self._interned) >= _INTERNED:
                self._interned.clear()
            interned = self._interned[found] = found
        return interned


def _breakpoints(condition: Condition) -> Iterable[float]:
    """The numbers at which the condition's truth on a number can change."""
    kind, operand = condition.kind, condition.operand
    if kind == NUMERIC:
        return [bound for bound in (operand[0], operand[2]) if math.isfinite(bound)]
    if kind == EXACT and is_number(operand):
        return [operand]
    if kind == ANYTHING_BUT and not isinstance(operand, dict):
        values = operand if isinstance(operand, tuple) else (operand,)
        return [value for value in values if is_number(value)]
    return []


class Step:
    """One path a group's members name (besides the anchor): per class, the members whose field there holds.

    A step with few conditions is *direct*: it tests the event's values itself
    (a handful of tests) rather than classifying them, which would cost more
    for a value seen once (an address, an amount) than the tests do.
    """

    __slots__ = ("absent", "by_condition", "conditions", "direct", "free", "paths", "present", "table")

    def __init__(self, paths: PathClasses) -> None:
        self.paths = paths
        #: condition number -> the members whose field on this path holds that condition
        self.by_condition: dict[int, int] = {}
        #: condition number -> the condition (to test it directly)
        self.conditions: dict[int, Condition] = {}
        #: for a direct step: (test, the members whose field holds when it passes) per condition; else None
        self.direct: tuple[tuple[Test, int], ...] | None = None
        #: for a direct step: the members met by any value present (exists: true), and by none (exists: false)
        self.present = 0
        self.absent = 0
        #: the members that do not name this path (they hold whatever the value)
        self.free = 0
        #: class -> the members whose field holds for a value of that class (filled on first use)
        self.table: dict[ValueClass, int] = {}

    def seal(self) -> None:
        """Done filing: become direct when few conditions are tested here."""
        tested = [(number, c) for number, c in self.conditions.items() if c.kind != EXISTS]
        # Exact values (and anything-but of them) are few and repeat: their classes are memoised lookups.
        # The other kinds meet values that rarely repeat (amounts, addresses, file names).
        unique = any(c.kind in _OPEN_KINDS or isinstance(c.operand, dict) for _, c in tested)
        if len(tested) <= _DIRECT and unique:
            self.direct = tuple((condition.test, self.by_condition[number]) for number, condition in tested)
            self.present = self.free | self.by_condition.get(PRESENT, 0)
            self.absent = self.free | self.by_condition.get(ABSENT, 0)

    def test(self, values: list[Any]) -> int:
        """The members whose field holds for these values, tested directly."""
        if not values:
            return self.absent
        found = self.present
        for test, members in self.direct or ():
            if found & members != members:
                for value in values:
                    if test(value):
                        found |= members
                        break
        return found

    def bits(self, value_class: ValueClass) -> int:
        found = self.table.get(value_class)
        if found is None:
            found = self.free
            by_condition = self.by_condition
            if len(value_class) < len(by_condition):
                for number in value_class:
                    found |= by_condition.get(number, 0)
            else:
                for number, members in by_condition.items():
                    if number in value_class:
                        found |= members
            if len(self.table) >= _INTERNED:
                self.table.clear()
            self.table[value_class] = found
        return found


class Group:
    """The alternatives that share one anchor field, as bits of an int."""

    __slots__ = ("all", "rules", "steps")

    def __init__(self) -> None:
        #: the rule (its number in the set) of each member, by bit
        self.rules: list[int] = []
        self.all = 0
        self.steps: tuple[Step, ...] = ()


#: What an anchor leads to: a group of several alternatives, or a leaf (`_leaves`) for each of a group of few.
Target = Group | Leaf


class CompiledRules:
    """A fixed set of alternatives, each filed under a rule's number; `run(event)` gives the numbers of those met."""

    __slots__ = ("_anchors", "groups")

    def __init__(self, alternatives: Sequence[tuple[int, Sequence[Field]]]) -> None:
        statistics = Automaton()
        for _, fields in alternatives:
            statistics.count(fields)
        paths: dict[tuple[str, ...], PathClasses] = {}

        def classes_of(field: Field) -> PathClasses:
            found = paths.get(field.path)
            if found is None:
                found = paths[field.path] = PathClasses(field.reader)
            return found

        # The alternatives by anchor field, each with its fields in the order ranked.
        by_anchor: dict[Any, tuple[Field, list[tuple[int, tuple[Field, ...]]]]] = {}
        for rule, fields in alternatives:
            ordered = statistics.order(fields)
            key = (ordered[0].path, field_key(ordered[0]))
            by_anchor.setdefault(key, (ordered[0], []))[1].append((rule, ordered))
        anchors: dict[tuple[str, ...], Anchor] = {}
        built: list[Group] = []
        operands: dict[Any, Any] = {}
        for anchor_field, members in by_anchor.values():
            targets: list[Target]
            if len(members) <= _LEAVES_UP_TO:
                targets = [leaf(rule, ordered[1:], classes_of, operands) for rule, ordered in members]
            else:
                group = _group(members, classes_of)
                built.append(group)
                targets = [group]
            found = anchors.get(anchor_field.path)
            if found is None:
                found = anchors[anchor_field.path] = Anchor(classes_of(anchor_field))
            for condition in anchor_field.conditions:
                for target in targets:
                    found.add(condition, target)
        for classes in paths.values():
            classes.seal()
        for group in built:
            for step in group.steps:
                step.seal()
        for anchor in anchors.values():
            anchor.seal()
        self._anchors = tuple(anchors.values())
        self.groups = len(by_anchor)

    def run(self, event: Mapping[str, Any]) -> list[int]:
        """The rules (their numbers) whose alternatives the event meets (a rule once per alternative met)."""
        met: list[int] = []
        read: dict[PathClasses, Classes] = {}
        values_at: dict[PathClasses, list[Any]] = {}
        for anchor in self._anchors:
            paths = anchor.paths
            values = values_at[paths] = paths.reader.read(event)
            strings = anchor.strings
            targets: Iterable[Target]
            if strings is not None and len(values) == 1 and type(values[0]) is str:
                found = strings.get(values[0])
                if anchor.prefixes is not None:
                    targets = anchor.prefixed(values[0], found)
                elif found is None:
                    continue
                else:
                    targets = found if type(found) is list else (found,)
            else:
                hits: set[Target] = set()
                anchor.matcher.step(values, hits)
                targets = hits
            for target in targets:
                if type(target) is tuple:
                    # A leaf: (rule, then paths, check, operand per field); every check must hold.
                    at, end = 1, len(target)
                    while at < end:
                        leaf_paths = target[at]
                        read_before = values_at.get(leaf_paths)
                        if read_before is None:
                            read_before = values_at[leaf_paths] = leaf_paths.reader.read(event)
                        if not target[at + 1](read_before, target[at + 2]):
                            break
                        at += 3
                    else:
                        met.append(target[0])
                    continue
                group: Group = target  # type: ignore[assignment]  # (typing.cast is a call: this loop is hot)
                live = group.all
                for step in group.steps:
                    if step.direct is not None:
                        read_before = values_at.get(step.paths)
                        if read_before is None:
                            read_before = values_at[step.paths] = step.paths.reader.read(event)
                        live &= step.test(read_before)
                        if not live:
                            break
                        continue
                    classes = read.get(step.paths)
                    if classes is None:
                        classes = read[step.paths] = step.paths.classes(event)
                    bits: int | None
                    if type(classes) is frozenset:
                        bits = step.table.get(classes)
                        if bits is None:
                            bits = step.bits(classes)
                    else:
                        bits = 0
                        for value_class in cast(tuple[ValueClass, ...], classes):
                            bits |= step.bits(value_class)
                    live &= bits
                    if not live:
                        break
                else:
                    rules = group.rules
                    if live & (live - 1) == 0:  # one member met, the common case
                        met.append(rules[live.bit_length() - 1])
                        continue
                    while live:
                        lowest = live & -live
                        met.append(rules[lowest.bit_length() - 1])
                        live ^= lowest
        return met


def _group(members: Sequence[tuple[int, tuple[Field, ...]]], classes_of: Callable[[Field], PathClasses]) -> Group:
    """The group of several alternatives sharing an anchor field (each given with its fields in ranked order)."""
    group = Group()
    steps: dict[tuple[tuple[str, ...], int], Step] = {}
    for rule, ordered in members:
        bit = 1 << len(group.rules)
        group.rules.append(rule)
        group.all |= bit
        seen: dict[tuple[str, ...], int] = {}
        named: set[tuple[tuple[str, ...], int]] = set()
        for field in ordered[1:]:
            # A path named twice in one alternative is two steps, each of which must hold.
            occurrence = seen[field.path] = seen.get(field.path, -1) + 1
            step_key = (field.path, occurrence)
            step = steps.get(step_key)
            if step is None:
                # Earlier members do not name this step: they hold whatever its value.
                step = steps[step_key] = Step(classes_of(field))
                step.free = group.all & ~bit
            named.add(step_key)
            for condition in field.conditions:
                number = step.paths.number(condition)
                step.by_condition[number] = step.by_condition.get(number, 0) | bit
                step.conditions[number] = condition
        for step_key, step in steps.items():
            if step_key not in named:
                step.free |= bit
    # Paths that tell the most members apart first, so a miss stops the AND soonest.
    group.steps = tuple(sorted(steps.values(), key=lambda step: (-len(step.by_condition), step.free)))
    return group
