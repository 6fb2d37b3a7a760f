"""The compiled RuleSet against the plain per-pattern matcher, on many seeded rule sets and events.

The rule sets are those of `scripts/bench patterns` (both vocabularies), so
the engine that is measured is the engine that is checked; the events are the
benchmark's, with their values pushed onto the edges the compiled classes
depend on (numbers exactly on range bounds, ints and floats of one value,
arrays of values, missing fields, true/null where a number is expected).
Rules are added, replaced and removed between the checks, so rules matched
by the compiled set, by the automaton of recent changes and by both are
checked alike.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from benchmarks.bench_patterns import COUNTRIES, STATUSES, TIERS, VOCABULARIES
from triggerfish.events.patterns import Pattern, compile_pattern
from triggerfish.events.ruleset import RuleSet

EDGE_NUMBERS = [0, 0.0, 2000, 2000.0, 1999.999, 4000, 10_000, -1, 10**30, 1e308, True, None, "2000"]


def _edged(rng: random.Random, event: dict[str, Any]) -> dict[str, Any]:
    """The event with some values moved onto the edges that decide a value's class."""
    detail = dict(event["detail"])
    roll = rng.random()
    if roll < 0.25:
        detail["amount"] = rng.choice(EDGE_NUMBERS)
    elif roll < 0.35:
        detail["amount"] = [rng.choice(EDGE_NUMBERS), rng.uniform(0, 10_000)]
    if rng.random() < 0.15:
        detail["country"] = rng.sample(COUNTRIES, 2)
    if rng.random() < 0.1:
        detail["status"] = [rng.choice(STATUSES), rng.choice(STATUSES)]
    if rng.random() < 0.1:
        detail.pop(rng.choice(["country", "tier", "amount", "status", "coupon", "sku", "file", "ip"]), None)
    if rng.random() < 0.05:
        detail["tier"] = rng.choice(TIERS).capitalize()
    if rng.random() < 0.05:
        detail["coupon"] = rng.choice([None, False, "SAVE10", ["SAVE10"]])
    return {**event, "detail": detail}


def _check(ruleset: RuleSet, live: dict[str, Pattern], order: list[str], events: list[dict[str, Any]]) -> None:
    for event in events:
        expected = [rule_id for rule_id in order if rule_id in live and live[rule_id].matches(event)]
        assert ruleset.matches(event) == expected, event


@pytest.mark.parametrize("vocabulary", sorted(VOCABULARIES))
@pytest.mark.parametrize("size", [10, 60, 400])
def test_compiled_rules_agree_with_each_pattern(vocabulary: str, size: int) -> None:
    make_rule, make_event = VOCABULARIES[vocabulary]
    for seed in range(3 if size < 100 else 1):
        rng = random.Random(f"differential-{vocabulary}-{size}-{seed}")
        ruleset, live, order = RuleSet(), {}, []
        for i in range(size):
            rule = make_rule(rng, size)
            ruleset.add(f"r{i}", rule)
            live[f"r{i}"] = compile_pattern(rule)
            order.append(f"r{i}")
        events = [_edged(rng, make_event(rng, n, size)) for n in range(150)]
        _check(ruleset, live, order, events)
        # A few changes (fewer than an eighth of the set: they stay beside the compiled rules), then many
        # (the set compiles again); each time the compiled set and the recent changes must agree with the patterns.
        for changes in (max(1, size // 20), size // 2):
            for _ in range(changes):
                rule_id = rng.choice(order)
                if rng.random() < 0.4 and rule_id in live:
                    assert ruleset.remove(rule_id)
                    del live[rule_id]
                else:
                    if rule_id not in live:  # added again after its removal: a new rule, last in the order
                        order.remove(rule_id)
                        order.append(rule_id)
                    rule = make_rule(rng, size)
                    ruleset.add(rule_id, rule)
                    live[rule_id] = compile_pattern(rule)
            assert list(ruleset) == [rule_id for rule_id in order if rule_id in live]
            _check(ruleset, live, order, events[:60])


def test_changes_are_compiled_in_once_the_set_is_quiet() -> None:
    # A change stays beside the compiled rules until matching has gone on without changes for a while.
    ruleset = RuleSet()
    for i in range(200):
        ruleset.add(f"r{i}", {"source": [f"s{i}"]})
    ruleset.add("late", {"source": ["late"], "detail": {"n": [{"numeric": [">", 5]}]}})
    assert ruleset.groups < 201  # some of the rules, "late" among them, are not compiled in yet
    for _ in range(1_000):
        assert ruleset.matches({"source": "late", "detail": {"n": 6}}) == ["late"]
    assert ruleset.groups == 201  # one per source
    assert ruleset.matches({"source": "late", "detail": {"n": 5}}) == []
