"""Rules compiled into one matching automaton over the event's fields, as AWS's Event Ruler does.

RuleSet matches the rules changed since its last compile with this automaton
(it takes rules one at a time, add and remove, where `_compiled_rules` is
built whole), and `Automaton.order` picks the anchor of each compiled rule.

Each alternative of each rule (a pattern with its `$or`s expanded) is a
conjunction of fields. Its fields are put in one canonical order (`Automaton.order`)
and the alternative becomes a path of transitions from the start state, one
field per transition; alternatives whose first fields are the same share those
transitions and states. A state where an alternative's last field was met
accepts that alternative's rule.

Matching starts at the start state with the event. At each state reached,
every path the state leaves by is read from the event once (values are cached
per event) and given to that path's ValueMatcher, which returns the states the
event's values lead to. So an event's cost follows the states it reaches (the
partial matches: distinct prefixes of rules that the event satisfies) and its
values, never the number of rules. Rules that share fields and values share
states, which is what keeps a dense rule set cheap: a thousand rules that all
say `source: ["shop"]` cost the event one lookup, not a thousand.

The order of fields decides which prefixes are shared and how many states an
event reaches on its way to a miss. Fields a value lookup serves go first,
those on paths where the rules name many distinct values before those where
they name few (`type` before `country`), since they tell events apart soonest;
`anything-but` and `exists`, met by almost every event, go last. The order
changes cost only, never the result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from triggerfish.events._pattern_match import (
    ANYTHING_BUT,
    CIDR,
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
    PathReader,
)
from triggerfish.events._value_matcher import ValueMatcher

#: Kinds a value lookup serves (their fields are ordered by how many distinct values rules give the path),
#: then the kinds tried by test, then those almost every event meets.
_LOOSENESS = {
    EXACT: 0,
    IGNORE_CASE: 0,
    PREFIX: 0,
    PREFIX_IC: 0,
    SUFFIX: 0,
    SUFFIX_IC: 0,
    WILDCARD: 1,
    NUMERIC: 1,
    CIDR: 1,
    ANYTHING_BUT: 2,
    EXISTS: 3,
}


def field_key(field: Field) -> tuple[tuple[str, ...], frozenset[tuple[Any, ...]]]:
    """What makes two fields the same transition: the path and the set of conditions."""
    return (field.path, frozenset(condition_key(c) for c in field.conditions))


def condition_key(condition: Condition) -> tuple[Any, ...]:
    kind, operand = condition.kind, condition.operand
    if kind == EXACT:
        # True == 1 == 1.0 in Python; JSON tells them apart.
        tag = "s" if isinstance(operand, str) else "c" if operand is None or isinstance(operand, bool) else "n"
        return (kind, tag, operand)
    if kind == ANYTHING_BUT:
        return (kind, json.dumps(operand, sort_keys=True))
    return (kind, operand)


class State:
    """A state of the automaton: the fields leaving it (by path) and the rules accepted on reaching it.

    What `run` reads is kept in as few objects as possible (`met`, `exits`): with thousands of
    rules most states are not in the CPU's cache, and each object touched costs a miss.
    """

    __slots__ = ("accepts", "children", "exits", "matchers", "met")

    def __init__(self) -> None:
        #: rule id -> how many of its alternatives end here
        self.accepts: dict[str, int] = {}
        #: the rule ids accepted here, or None
        self.met: tuple[str, ...] | None = None
        #: field key -> [next state, how many alternatives use the transition, the field that made it]
        self.children: dict[Any, list[Any]] = {}
        #: path -> the reader of the path and the matcher of every field leaving here on it
        self.matchers: dict[tuple[str, ...], tuple[PathReader, ValueMatcher]] = {}
        #: for the hot loop, compiled on first use after a change (None): see `compile`
        self.exits: tuple[Exit, ...] | None = ()

    def refresh(self) -> None:
        """Note a change: `met` now, `exits` when next needed (rebuilding it on every add would be quadratic)."""
        self.met = tuple(self.accepts) or None
        self.exits = None

    def compile(self) -> tuple[Exit, ...]:
        """(reader, matcher, exact strings) per path; the last, when exact strings are all the matcher holds,
        maps each string to its one next state or a tuple of them, so `run` touches one object less."""
        exits = []
        for reader, matcher in self.matchers.values():
            strings: dict[str, State | tuple[State, ...]] | None = None
            if matcher.only_strings and not (matcher.any_value or matcher.absent):
                strings = {key: found[0] if len(found) == 1 else tuple(found) for key, found in matcher.strings.items()}
            exits.append((reader, matcher, strings))
        self.exits = tuple(exits)
        return self.exits


Exit = tuple[PathReader, ValueMatcher, "dict[str, State | tuple[State, ...]] | None"]


class Automaton:
    """Alternatives (lists of fields) filed under rule ids; `run(event)` gives the ids of those met.

    The canonical order of an alternative's fields is decided when it is added
    (`order`), from how many distinct values the rules give each path so far:
    a field accepting one of a hundred types tells events apart sooner than
    one accepting two of ten countries, so it goes first. `add` returns the fields in the order used, and
    `remove` takes that order back. RuleSet rebuilds the automaton as the rule
    set grows, so early rules are ordered by the statistics of the whole set.
    """

    def __init__(self) -> None:
        self._start = State()
        self.states = 1
        #: path -> condition key -> how many alternatives' fields hold it
        self._values: dict[tuple[str, ...], dict[tuple[Any, ...], int]] = {}

    def count(self, fields: Sequence[Field], change: int = 1) -> None:
        """Count (or, with -1, uncount) the fields' values in the statistics that order fields."""
        for field in fields:
            counts = self._values.setdefault(field.path, {})
            for condition in field.conditions:
                key = condition_key(condition)
                total = counts.get(key, 0) + change
                if total > 0:
                    counts[key] = total
                else:
                    counts.pop(key, None)
            if not counts:
                del self._values[field.path]

    def order(self, fields: Sequence[Field]) -> tuple[Field, ...]:
        """The fields in canonical order: looked-up kinds first, then those accepting the smallest share of their
        path's values (ties: shallow paths first, then by name)."""
        values = self._values

        def place(field: Field) -> tuple[int, float, int, tuple[str, ...]]:
            looseness = max(_LOOSENESS[c.kind] for c in field.conditions)
            # The share of the path's values this field accepts: about how often an event meets it.
            share = len(field.conditions) / max(1, len(values.get(field.path, ())))
            return (looseness, share, len(field.path), field.path)

        return tuple(sorted(fields, key=place))

    def add(self, rule_id: str, fields: Sequence[Field], *, counted: bool = False) -> tuple[Field, ...]:
        """File one alternative of a rule (met when all of `fields` are); returns the fields in the order used.

        `counted` says the fields are already in the statistics (a rebuild counts every rule first).
        """
        if not counted:
            self.count(fields)
        ordered = self.order(fields)
        state = self._start
        for field in ordered:
            key = field_key(field)
            child = state.children.get(key)
            if child is None:
                target = State()
                self.states += 1
                child = state.children[key] = [target, 0, field]
                entry = state.matchers.get(field.path)
                if entry is None:
                    entry = state.matchers[field.path] = (field.reader, ValueMatcher())
                for condition in field.conditions:
                    entry[1].add(condition, target)
                state.refresh()
            child[1] += 1
            state = child[0]
        state.accepts[rule_id] = state.accepts.get(rule_id, 0) + 1
        state.refresh()
        return ordered

    def remove(self, rule_id: str, ordered: Sequence[Field]) -> None:
        """Undo one `add`, given the fields in the order it returned; drops transitions no alternative uses."""
        self.count(ordered, -1)
        trail: list[tuple[State, Field, Any]] = []
        state = self._start
        for field in ordered:
            key = field_key(field)
            trail.append((state, field, key))
            state = state.children[key][0]
        count = state.accepts[rule_id] - 1
        if count:
            state.accepts[rule_id] = count
        else:
            del state.accepts[rule_id]
        state.refresh()
        for parent, field, key in reversed(trail):
            child = parent.children[key]
            child[1] -= 1
            if child[1]:
                continue
            del parent.children[key]
            self.states -= 1
            reader_matcher = parent.matchers[field.path]
            # The conditions filed are those of the field that made the transition (an equal one may be removing it).
            for condition in child[2].conditions:
                reader_matcher[1].remove(condition, child[0])
            if not reader_matcher[1].size:
                del parent.matchers[field.path]
            parent.refresh()

    def run(self, event: Mapping[str, Any]) -> list[str]:
        """The rule ids whose alternatives the event meets (an id once per alternative met)."""
        met: list[str] = []
        values_by_reader: dict[PathReader, list[Any]] = {}
        pending = [self._start]
        while pending:
            state = pending.pop()
            if state.met is not None:
                met.extend(state.met)
            exits = state.exits
            if exits is None:
                exits = state.compile()
            if not exits:
                continue
            # One set for all the exits of a state: a state is reached by one transition only, so
            # the sets of different exits never overlap and need no separate deduplication.
            hits: set[State] = set()
            for reader, matcher, strings in exits:
                values = values_by_reader.get(reader)
                if values is None:
                    values = values_by_reader[reader] = reader.read(event)
                if strings is None:
                    matcher.step(values, hits)
                    continue
                # Exact strings only, inlined. Any JSON leaf is hashable, and no other type equals a str.
                for value in values:
                    found = strings.get(value)
                    if found is None:
                        continue
                    if type(found) is State:
                        if len(values) == 1:
                            pending.append(found)  # one value: no other hit can repeat it
                        else:
                            hits.add(found)
                    else:
                        hits.update(found)  # type: ignore[arg-type]
            if hits:
                pending.extend(hits)
        return met
