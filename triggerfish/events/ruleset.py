"""Many patterns matched at once: the rules of an event bus.

    rules = RuleSet()
    rules.add("ship", {"type": ["order.placed"]})
    rules.add("big", {"data": {"total": [{"numeric": [">", 1000]}]}})
    rules.matches(event)            # -> ["ship", "big"], in the order the rules were added

Matching does not loop over the rules: they are compiled into one automaton
over the event's fields (see `_automaton`), in which rules that share fields
and values share states, so an event costs what its values and the partial
matches it makes cost, not what the number of rules does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from triggerfish.errors import InvalidInputError
from triggerfish.events._automaton import Automaton
from triggerfish.events._pattern_match import Field
from triggerfish.events.patterns import Pattern, compile_pattern, parse_event

# The automaton is first rebuilt when this many alternatives are filed, then at each doubling.
_FIRST_REBUILD = 64


@dataclass(slots=True)
class _Rule:
    rule_id: str
    position: int
    pattern: Pattern
    #: each alternative's fields in the order the automaton filed them (needed to remove them)
    filed: list[tuple[Field, ...]] = field(default_factory=list)


class RuleSet:
    """A set of named event patterns; `matches(event)` gives the ids of those that match.

    Adding a rule with an id already present replaces that rule and keeps its
    place in the order. `matches` may run on several threads at once (it only
    compiles a state's lookups, the same whichever thread does it); `add` and
    `remove` must not run beside anything else.
    """

    def __init__(self) -> None:
        self._rules: dict[str, _Rule] = {}
        self._automaton = Automaton()
        self._next_position = 0
        # alternatives filed, and the count at which the automaton is next rebuilt (see `_rebuild`)
        self._filed = 0
        self._rebuild_at = _FIRST_REBUILD

    def add(self, rule_id: str, pattern: Mapping[str, Any] | str | bytes | Pattern) -> None:
        """Add or replace the rule `rule_id`. Raises InvalidPatternError (the set unchanged) for a bad pattern."""
        if not isinstance(rule_id, str) or not rule_id:
            raise InvalidInputError(f"a rule id is a non-empty string, not {rule_id!r}")
        compiled = compile_pattern(pattern)
        old = self._rules.get(rule_id)
        if old is not None:
            self._unfile(old)
            position = old.position
        else:
            position = self._next_position
            self._next_position += 1
        rule = _Rule(rule_id, position, compiled)
        for alternative in compiled.alternatives:
            rule.filed.append(self._automaton.add(rule_id, alternative.fields))
        self._rules[rule_id] = rule
        self._filed += len(rule.filed)
        if self._filed >= self._rebuild_at:
            self._rebuild()

    def remove(self, rule_id: str) -> bool:
        """Remove a rule; False when there is no rule of that id."""
        rule = self._rules.pop(rule_id, None)
        if rule is None:
            return False
        self._unfile(rule)
        return True

    def matches(self, event: Mapping[str, Any] | str | bytes) -> list[str]:
        """The ids of the rules that match `event` (a dict or JSON object text), in the order they were added."""
        met = self._automaton.run(parse_event(event))
        if len(met) < 2:
            return met
        rules = self._rules
        return sorted(set(met), key=lambda rule_id: rules[rule_id].position)

    def pattern(self, rule_id: str) -> Pattern:
        """The compiled pattern of a rule. Raises KeyError for an unknown id."""
        return self._rules[rule_id].pattern

    @property
    def states(self) -> int:
        """How many states the compiled automaton has (rules sharing fields share states)."""
        return self._automaton.states

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def __iter__(self) -> Iterator[str]:
        """The rule ids, in order."""
        return iter(sorted(self._rules, key=lambda r: self._rules[r].position))

    def _unfile(self, rule: _Rule) -> None:
        for ordered in rule.filed:
            self._automaton.remove(rule.rule_id, ordered)
        self._filed -= len(rule.filed)
        rule.filed.clear()

    def _rebuild(self) -> None:
        """Compile the automaton afresh, ordering every rule's fields by the statistics of the whole set.

        Fields are ordered by how many distinct values the rules give each path,
        which the first rules added cannot know. Rebuilt each time the number
        of alternatives doubles, so the work stays proportional to the adds.
        """
        automaton = Automaton()
        for rule in self._rules.values():
            for alternative in rule.pattern.alternatives:
                automaton.count(alternative.fields)
        for rule in self._rules.values():
            rule.filed = [automaton.add(rule.rule_id, a.fields, counted=True) for a in rule.pattern.alternatives]
        self._automaton = automaton
        self._rebuild_at = 2 * max(self._filed, _FIRST_REBUILD)
