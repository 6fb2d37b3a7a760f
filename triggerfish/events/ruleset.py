"""Many patterns matched at once: the rules of an event bus.

    rules = RuleSet()
    rules.add("ship", {"type": ["order.placed"]})
    rules.add("big", {"data": {"total": [{"numeric": [">", 1000]}]}})
    rules.matches(event)            # -> ["ship", "big"], in the order the rules were added

Matching does not loop over the rules. They are compiled (`_compiled_rules`)
into value classes per path, groups of rules sharing an anchor field and
bitsets within each group, so an event costs what its values and the groups
it reaches cost, not what the number of rules does. Compiling is done again
as the set grows or changes (each time the rules changed since reach an
eighth of the set, so the work stays proportional to the changes); the rules
changed since the last compile are matched by an automaton of their own
(`_automaton`), and the compiled rules they replaced or removed are left out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from triggerfish.errors import InvalidInputError
from triggerfish.events._automaton import Automaton
from triggerfish.events._compiled_rules import CompiledRules
from triggerfish.events._pattern_match import Field
from triggerfish.events.patterns import Pattern, compile_pattern, parse_event

# The set compiles again once the rules changed since the last compile (added, replaced or removed) are
# this share of it: a small set at every change, a large one after many (the work stays proportional).
_RECOMPILE_SHARE = 8
# Events matched with changes pending, without a further change, after which they are compiled in (at least).
_QUIET = 1_000


@dataclass(slots=True)
class _Rule:
    rule_id: str
    position: int
    pattern: Pattern
    #: each alternative's fields in the order the automaton of recent changes filed them (to remove them)
    filed: list[tuple[Field, ...]] = field(default_factory=list)
    #: in the compiled rules (not in the automaton of recent changes)
    compiled: bool = False


@dataclass(slots=True, frozen=True)
class _Live:
    compiled: CompiledRules
    #: the compiled rules' ids, by number (numbered in the order of the set)
    names: tuple[str, ...]
    #: rules changed since the compile: their compiled alternatives no longer count
    stale: set[str]
    #: the rules added or replaced since the compile
    recent: Automaton


class RuleSet:
    """A set of named event patterns; `matches(event)` gives the ids of those that match.

    Adding a rule with an id already present replaces that rule and keeps its
    place in the order. `matches` may run on several threads at once (it only
    fills memo tables, the same whichever thread does it); `add` and
    `remove` must not run beside anything else.
    """

    def __init__(self) -> None:
        self._rules: dict[str, _Rule] = {}
        self._next_position = 0
        #: what matching reads, swapped as one object so a thread matching while another compiles sees one state
        self._live = _Live(CompiledRules(()), (), set(), Automaton())
        #: changes since the last compile, and events matched since the last change
        self._changes = 0
        self._quiet = 0
        self._compiling = threading.Lock()

    def add(self, rule_id: str, pattern: Mapping[str, Any] | str | bytes | Pattern) -> None:
        """Add or replace the rule `rule_id`. Raises InvalidPatternError (the set unchanged) for a bad pattern."""
        if not isinstance(rule_id, str) or not rule_id:
            raise InvalidInputError(f"a rule id is a non-empty string, not {rule_id!r}")
        self._file(rule_id, compile_pattern(pattern))
        self._changed()

    def extend(self, rules: Iterable[tuple[str, Mapping[str, Any] | str | bytes | Pattern]]) -> None:
        """Add or replace many rules, as `add` does one by one, but compiling the set at most once.

        Building a bus's set rule by rule compiles it again each time the changes reach an eighth of
        it (dozens of compiles for a hundred rules); this compiles once. All or nothing: a bad pattern
        raises InvalidPatternError with the set unchanged.
        """
        checked = []
        for rule_id, pattern in rules:
            if not isinstance(rule_id, str) or not rule_id:
                raise InvalidInputError(f"a rule id is a non-empty string, not {rule_id!r}")
            checked.append((rule_id, compile_pattern(pattern)))
        if not checked:
            return
        for rule_id, compiled in checked:
            self._file(rule_id, compiled)
        self._changes += len(checked)
        self._quiet = 0
        if self._changes >= len(self._rules) // _RECOMPILE_SHARE:
            self._compile()

    def _file(self, rule_id: str, compiled: Pattern) -> None:
        """Put a checked rule in the automaton of recent changes (in place of the rule of that id, if any)."""
        old = self._rules.get(rule_id)
        if old is not None:
            self._retire(old)
            position = old.position
        else:
            position = self._next_position
            self._next_position += 1
        rule = _Rule(rule_id, position, compiled)
        for alternative in compiled.alternatives:
            rule.filed.append(self._live.recent.add(rule_id, alternative.fields))
        self._rules[rule_id] = rule

    def remove(self, rule_id: str) -> bool:
        """Remove a rule; False when there is no rule of that id."""
        rule = self._rules.pop(rule_id, None)
        if rule is None:
            return False
        self._retire(rule)
        self._changed()
        return True

    def matches(self, event: Mapping[str, Any] | str | bytes) -> list[str]:
        """The ids of the rules that match `event` (a dict or JSON object text), in the order they were added."""
        document = parse_event(event)
        live = self._live
        numbers = live.compiled.run(document)
        names = live.names
        if not (live.stale or live.recent.states > 1):
            # Numbered in the set's order: sorting the numbers orders the ids.
            if len(numbers) < 2:
                return [names[number] for number in numbers]
            return [names[number] for number in sorted(set(numbers))]
        met = [names[number] for number in numbers if names[number] not in live.stale]
        met += live.recent.run(document)
        self._quiet += 1
        # Quiet again after changes: compile them in once as many events as rules have been matched since
        # the last change (so a trickle of changes costs at most about as much compiling as matching).
        if self._quiet >= max(_QUIET, len(self._rules)) and self._compiling.acquire(blocking=False):
            try:
                if self._changes:
                    self._compile()
            finally:
                self._compiling.release()
        if len(met) < 2:
            return met
        rules = self._rules
        return sorted(set(met), key=lambda rule_id: rules[rule_id].position)

    def pattern(self, rule_id: str) -> Pattern:
        """The compiled pattern of a rule. Raises KeyError for an unknown id."""
        return self._rules[rule_id].pattern

    @property
    def groups(self) -> int:
        """How many groups the compiled rules form (rules whose anchor field is the same share one)."""
        return self._live.compiled.groups

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def __iter__(self) -> Iterator[str]:
        """The rule ids, in order."""
        return iter(sorted(self._rules, key=lambda r: self._rules[r].position))

    def _retire(self, rule: _Rule) -> None:
        """Take a rule out of matching, wherever it is filed."""
        if rule.compiled:
            self._live.stale.add(rule.rule_id)
        for ordered in rule.filed:
            self._live.recent.remove(rule.rule_id, ordered)
        rule.filed.clear()

    def _changed(self) -> None:
        """Count a change; compile the whole set afresh once the changes are a large enough share of it."""
        self._changes += 1
        self._quiet = 0
        if self._changes >= len(self._rules) // _RECOMPILE_SHARE:
            self._compile()

    def _compile(self) -> None:
        rules = sorted(self._rules.values(), key=lambda rule: rule.position)
        compiled = CompiledRules(
            [
                (number, alternative.fields)
                for number, rule in enumerate(rules)
                for alternative in rule.pattern.alternatives
            ]
        )
        for rule in rules:
            rule.compiled = True
            rule.filed.clear()
        self._live = _Live(compiled, tuple(rule.rule_id for rule in rules), set(), Automaton())
        self._changes = 0
