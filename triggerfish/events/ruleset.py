"""Many patterns matched at once: the rules of an event bus.

    rules = RuleSet()
    rules.add("ship", {"type": ["order.placed"]})
    rules.add("big", {"data": {"total": [{"numeric": [">", 1000]}]}})
    rules.matches(event)            # -> ["ship", "big"], in the order the rules were added

Matching does not loop over the rules: an index over event paths and values
(see `_ruleset_index`) finds the few rules that could match, and only those
are checked in full, with the same code as `Pattern.matches`. Where each rule
is filed adapts to the events: an anchor that keeps misfiring is moved, and
one that sits alone on a path the walk would otherwise skip is given up.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from triggerfish.errors import InvalidInputError
from triggerfish.events._pattern_match import WILDCARD, Alternative, Field
from triggerfish.events._ruleset_filing import (
    Filing,
    anchor_cost,
    file_field,
    indexable,
    members,
    others_at,
    sharing,
    unfile,
)
from triggerfish.events._ruleset_index import Node, walk
from triggerfish.events.patterns import Pattern, compile_pattern, parse_event

# When a bucket of the index grows to one of these sizes, its alternatives are offered a better anchor.
_REBALANCE_AT = frozenset(2**i for i in range(1, 24))
# After this many false alarms an anchor is measured and another field of the alternative tried.
_MISSES_BEFORE_MOVING = 32
# An anchor that misfires on fewer events than this (misses per event) is left where it is.
_RATE_WORTH_MOVING = 0.01
# A field on trial as the anchor is judged after this many events even if it seldom misfires,
# so that an anchor that is quiet but walked for few alternatives can still be given up.
_TRIAL_EVENTS = 4096
# How often (in events; a power of two) the trials are looked at.
_TRIAL_SWEEP = 1024
# What walking one more path costs every event, in misses per event (about half a full check);
# the alternatives filed at a path share its cost.
_PATH_MISSES = 0.5


@dataclass(slots=True)
class _Rule:
    rule_id: str
    position: int
    pattern: Pattern
    #: ids of its alternatives
    alternatives: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Filed:
    rule: _Rule
    alternative: Alternative
    anchor: Field | None = None
    filings: list[Filing] = field(default_factory=list)
    #: the fields still to check when the anchor fires (all of them if the anchor can fire falsely)
    rest: tuple[Field, ...] = ()
    #: times the anchor fired but the alternative did not match, since `since` (an event count)
    misses: int = 0
    since: int = 0
    #: misses per event measured for each field tried as the anchor, by the field's index
    rates: dict[int, float] = field(default_factory=dict)
    settled: bool = False


class RuleSet:
    """A set of named event patterns; `matches(event)` gives the ids of those that match.

    Adding a rule with an id already present replaces that rule and keeps its
    place in the order. Not thread-safe: even `matches` may re-file a rule in
    the index (see `_try_another_anchor`), so share one across threads only
    behind a lock.
    """

    def __init__(self) -> None:
        self._rules: dict[str, _Rule] = {}
        self._root = Node()
        # alternative id -> its rule, fields and anchor; checked in full when its anchor fires
        self._alternatives: dict[int, _Filed] = {}
        # alternatives with no field the index can look up: checked on every event
        self._unanchored: dict[int, _Filed] = {}
        # alternatives whose anchor is being measured after a move (see `_try_another_anchor`)
        self._on_trial: dict[int, _Filed] = {}
        self._next_alternative = 0
        self._next_position = 0
        self._events = 0

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
            self._file(rule, alternative)
        self._rules[rule_id] = rule

    def remove(self, rule_id: str) -> bool:
        """Remove a rule; False when there is no rule of that id."""
        rule = self._rules.pop(rule_id, None)
        if rule is None:
            return False
        self._unfile(rule)
        return True

    def matches(self, event: Mapping[str, Any] | str | bytes) -> list[str]:
        """The ids of the rules that match `event` (a dict or JSON object text), in the order they were added."""
        document = parse_event(event)
        self._events += 1
        if not self._events & (_TRIAL_SWEEP - 1) and self._on_trial:
            self._end_trials()
        candidates: set[int] = set()
        if self._alternatives:
            walk(self._root, document, candidates)
        matched: dict[str, int] = {}
        alternatives = self._alternatives
        for number in candidates:
            filed = alternatives[number]
            rule = filed.rule
            if rule.rule_id in matched:
                continue
            for check in filed.rest:
                if not check.matches(document):
                    break
            else:
                matched[rule.rule_id] = rule.position
                continue
            if not filed.settled:
                filed.misses += 1
                if filed.misses >= _MISSES_BEFORE_MOVING:
                    self._try_another_anchor(number, filed)
        for filed in self._unanchored.values():
            rule = filed.rule
            if rule.rule_id not in matched and filed.alternative.matches(document):
                matched[rule.rule_id] = rule.position
        if len(matched) < 2:
            return list(matched)
        return sorted(matched, key=matched.__getitem__)

    def pattern(self, rule_id: str) -> Pattern:
        """The compiled pattern of a rule. Raises KeyError for an unknown id."""
        return self._rules[rule_id].pattern

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def __iter__(self) -> Iterator[str]:
        """The rule ids, in order."""
        return iter(sorted(self._rules, key=lambda r: self._rules[r].position))

    def _file(self, rule: _Rule, alternative: Alternative) -> None:
        number = self._next_alternative
        self._next_alternative += 1
        rule.alternatives.append(number)
        filed = _Filed(rule, alternative)
        anchors = [f for f in alternative.fields if indexable(f)]
        if not anchors:
            self._unanchored[number] = filed
            return
        self._alternatives[number] = filed
        self._anchor(number, filed, min(anchors, key=lambda f: anchor_cost(self._root, f)))
        for filing in list(filed.filings):
            if sharing(filing) in _REBALANCE_AT:
                self._rebalance(filing)

    def _anchor(self, number: int, filed: _Filed, anchor: Field) -> None:
        if filed.filings:
            unfile(filed.filings, number)
        filed.anchor = anchor
        filed.filings = file_field(self._root, anchor, number)
        # An anchor that fired has matched its field, unless it was a wildcard filed under a literal piece.
        exact = all(c.kind != WILDCARD for c in anchor.conditions)
        filed.rest = tuple(f for f in filed.alternative.fields if not (exact and f is anchor))
        filed.misses = 0
        filed.since = self._events

    def _try_another_anchor(self, number: int, filed: _Filed) -> None:
        """The anchor keeps firing on events the alternative then fails: measure it, try the next field.

        Rules alone cannot tell that `country` has ten values and `type` ten
        thousand; the events can. Each indexable field gets one measured turn
        (misses per event), ended by its misses or, if it seldom misfires, by
        `_end_trials`; then the alternative settles on the field whose misses
        plus its share of walking the field's path cost least. A quiet anchor
        is not enough: a path only it uses makes every event slower.
        """
        rate = filed.misses / max(1, self._events - filed.since)
        if rate < _RATE_WORTH_MOVING and number not in self._on_trial:
            # Rare misfires cost less than a trial would (it may walk a new path for thousands of events).
            filed.misses = 0
            filed.since = self._events
            return
        fields = filed.alternative.fields
        current = fields.index(filed.anchor) if filed.anchor is not None else -1
        filed.rates[current] = rate
        untried = [f for i, f in enumerate(fields) if i not in filed.rates and indexable(f)]
        if untried:
            self._anchor(number, filed, min(untried, key=lambda f: anchor_cost(self._root, f)))
            self._on_trial[number] = filed
            return
        filed.settled = True
        self._on_trial.pop(number, None)
        # Misfires are not the only cost: each path the index knows is walked on every event.
        assert filed.anchor is not None
        own = len(filed.anchor.conditions)

        def cost(index: int) -> float:
            candidate = fields[index]
            others = others_at(self._root, candidate, own if candidate is filed.anchor else 0)
            return filed.rates[index] + _PATH_MISSES / (1 + others)

        best = min(filed.rates, key=cost)
        if best != current:
            self._anchor(number, filed, fields[best])

    def _end_trials(self) -> None:
        for number, filed in list(self._on_trial.items()):
            if self._events - filed.since >= _TRIAL_EVENTS:
                self._try_another_anchor(number, filed)

    def _rebalance(self, filing: Filing) -> None:
        """Move alternatives out of a crowded bucket to a field of theirs that fewer others share.

        The cost of an anchor is only known once rules have arrived: "tier is
        gold" looks as good as "type is order.placed" until a hundred rules say
        it. Checked at doubling sizes, so the work stays proportional to adds.
        """
        for number in list(members(filing)):
            filed = self._alternatives[number]
            current = filed.anchor
            assert current is not None
            # The alternative counts itself in its own bucket; take that out to compare fairly.
            here = anchor_cost(self._root, current, own=len(current.conditions)) - len(current.conditions)
            options = [f for f in filed.alternative.fields if f is not current and indexable(f)]
            if not options:
                continue
            best = min(options, key=lambda f: anchor_cost(self._root, f))
            if anchor_cost(self._root, best) < here:
                self._anchor(number, filed, best)

    def _unfile(self, rule: _Rule) -> None:
        for number in rule.alternatives:
            filed = self._alternatives.pop(number, None)
            if filed is not None:
                unfile(filed.filings, number)
            self._unanchored.pop(number, None)
            self._on_trial.pop(number, None)
        rule.alternatives.clear()
