"""Pattern matching throughput: RuleSet with 10, 1,000 and 10,000 rules, one Pattern, and moto.

Rules and events come from a seeded random generator over one fixed
vocabulary (20,000 event types, 2,000 SKU families, ...), so every rule-set
size sees the same event stream and the number of matching rules per event
stays small: what grows is the number of rules that do *not* match, which an
index must make free, except those that come close (they share the event's
source or type and fail on another field): those grow with the rule count
here, and each costs a check. Every rule is EventBridge-style (so
moto can run it) and mixes operators: exact, prefix, suffix,
equals-ignore-case, wildcard, numeric ranges, anything-but, exists, cidr and
$or. Events are EventBridge envelopes as dicts (parsing is not measured).

moto (`moto.events.models.EventPattern`, the matcher behind moto's
EventBridge mock) checks one rule at a time, so it is measured on the same
rules with fewer events.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from triggerfish.events.patterns import compile_pattern
from triggerfish.events.ruleset import RuleSet

SEED = 20261122
TYPES = 20_000
SOURCES = 5_000
SKUS = 2_000
COUNTRIES = ["NZ", "AU", "US", "GB", "DE", "FR", "JP", "BR", "IN", "ZA"]
TIERS = ["gold", "silver", "bronze", "platinum"]
REPEATS = 7
TARGET_EVENTS_PER_SECOND = 50_000
TARGET_FLATNESS = 1.2


def make_rule(rng: random.Random) -> dict[str, Any]:
    """One rule: a source or type field plus one or two conditions of a random operator on the detail."""
    rule: dict[str, Any] = {}
    anchor = rng.random()
    if anchor < 0.5:
        rule["detail-type"] = [f"order.t{rng.randrange(TYPES)}"]
    elif anchor < 0.7:
        rule["detail-type"] = [{"prefix": f"order.t{rng.randrange(TYPES)}"}]
    else:
        rule["source"] = [f"app.s{rng.randrange(SOURCES)}"]
    detail: dict[str, Any] = {}
    kind = rng.randrange(10)
    if kind == 0:
        low = rng.randrange(0, 9_000)
        detail["amount"] = [{"numeric": [">=", low, "<", low + rng.randrange(1, 500)]}]
    elif kind == 1:
        detail["sku"] = [{"prefix": f"p{rng.randrange(SKUS)}-"}]
    elif kind == 2:
        detail["file"] = [{"suffix": f".{rng.randrange(SKUS)}.png"}]
    elif kind == 3:
        detail["tier"] = [{"equals-ignore-case": rng.choice(TIERS)}]
    elif kind == 4:
        detail["file"] = [{"wildcard": f"dir{rng.randrange(50)}/*.png"}]
    elif kind == 5:
        detail["country"] = [{"anything-but": rng.sample(COUNTRIES, 3)}]
    elif kind == 6:
        detail["ip"] = [{"cidr": f"10.{rng.randrange(256)}.0.0/16"}]
    elif kind == 7:
        detail["coupon"] = [{"exists": False}]
    elif kind == 8:
        detail["$or"] = [{"tier": [rng.choice(TIERS)]}, {"amount": [{"numeric": [">", rng.randrange(9_000)]}]}]
    else:
        detail["country"] = rng.sample(COUNTRIES, 2)
    rule["detail"] = detail
    return rule


def make_event(rng: random.Random, number: int) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "amount": round(rng.uniform(0, 10_000), 2),
        "sku": f"p{rng.randrange(SKUS)}-{rng.choice(['red', 'blue'])}",
        "file": f"dir{rng.randrange(50)}/img.{rng.randrange(SKUS)}.png",
        "tier": rng.choice(TIERS).upper(),
        "country": rng.choice(COUNTRIES),
        "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
        "items": [{"sku": f"p{rng.randrange(SKUS)}", "qty": rng.randrange(1, 5)} for _ in range(2)],
    }
    if rng.random() < 0.3:
        detail["coupon"] = "SAVE10"
    return {
        "version": "0",
        "id": f"evt-{number}",
        "detail-type": f"order.t{rng.randrange(TYPES)}",
        "source": f"app.s{rng.randrange(SOURCES)}",
        "account": "123456789012",
        "time": "2026-11-22T08:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


def rate(run: Callable[[], Any], count: int, *, repeats: int = REPEATS) -> float:
    """Median events per second over `repeats` runs of `run` (which handles `count` events)."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append(count / (time.perf_counter() - started))
    return statistics.median(samples)


def _moto_rate(rules: list[dict[str, Any]], events: list[dict[str, Any]]) -> float | None:
    try:
        from moto.events.models import EventPattern
    except ImportError:
        return None
    import json

    matchers = [EventPattern(json.dumps(rule), rule) for rule in rules]
    moto_events: list[Any] = list(events)

    def run() -> None:
        for event in moto_events:
            for matcher in matchers:
                matcher.matches_event(event)

    return rate(run, len(events))


def _runner(rules: RuleSet, events: list[dict[str, Any]]) -> Callable[[], Any]:
    def run() -> None:
        for event in events:
            rules.matches(event)

    return run


def main() -> str:
    rng = random.Random(SEED)
    events = [make_event(rng, i) for i in range(20_000)]
    all_rules = [make_rule(rng) for _ in range(10_000)]
    rows = []
    sizes = {10: 2_000, 1_000: 40, 10_000: 8}  # rule count -> events moto is given
    rulesets: dict[int, RuleSet] = {}
    matched: dict[int, float] = {}
    for size in sizes:
        rulesets[size] = RuleSet()
        for i, rule in enumerate(all_rules[:size]):
            rulesets[size].add(f"r{i}", rule)
        # One pass first: it counts matches and lets the RuleSet settle misfiring anchors.
        matched[size] = sum(len(rulesets[size].matches(e)) for e in events) / len(events)
    # The sizes take turns within each repetition, so a burst of load on the shared machine
    # falls on all of them rather than on one.
    samples: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(REPEATS):
        for size in sizes:
            samples[size].append(rate(_runner(rulesets[size], events), len(events), repeats=1))
    rates = {size: statistics.median(samples[size]) for size in sizes}
    for size, moto_events in sizes.items():
        moto = _moto_rate(all_rules[:size], events[:moto_events])
        ratio = f"{rates[size] / moto:,.0f}x" if moto else "n/a"
        rows.append(
            f"| RuleSet, {size:,} rules | {rates[size]:,.0f} | {matched[size]:.3f} | "
            f"{f'{moto:,.0f}' if moto else 'not installed'} | {ratio} |"
        )
    single = compile_pattern(
        {
            "source": [{"prefix": "app."}],
            "detail-type": [{"anything-but": {"prefix": "user."}}],
            "detail": {
                "amount": [{"numeric": [">", 100, "<=", 5000]}],
                "tier": [{"equals-ignore-case": "gold"}, "silver"],
                "file": [{"wildcard": "dir*/*.png"}],
                "coupon": [{"exists": False}],
            },
        }
    )
    single_rate = rate(lambda: [single.matches(e) for e in events], len(events))
    flatness = rates[10] / rates[10_000]
    met_rate = "met" if rates[1_000] >= TARGET_EVENTS_PER_SECOND else "NOT met"
    met_flat = "met" if flatness <= TARGET_FLATNESS else "NOT met"
    return "\n".join(
        [
            "## Event patterns",
            "",
            "`RuleSet.matches` on 20,000 EventBridge-envelope events (dicts) against rules of mixed operators,",
            "generated with a seeded random over one fixed vocabulary (20,000 types, 5,000 sources, ...), so the",
            "same event stream serves every size and fewer than one rule matches per event even with 10,000 rules.",
            f"One core; median of {REPEATS} runs, the sizes taking turns; a first unmeasured pass lets each RuleSet",
            "move anchors that misfire.",
            "moto 5's `EventPattern.matches_event` loops over the same rules, on fewer events.",
            "",
            "| Rule set | events/s | rules matched per event | moto events/s | ours / moto |",
            "|---|---:|---:|---:|---:|",
            *rows,
            f"| one `Pattern.matches` (6 fields, mixed operators) | {single_rate:,.0f} | | | |",
            "",
            f"- Target: at least {TARGET_EVENTS_PER_SECOND:,} events/s with 1,000 rules: "
            f"{rates[1_000]:,.0f} events/s, {rates[1_000] / TARGET_EVENTS_PER_SECOND:.2f}x the target: **{met_rate}**.",
            f"- Target: 10,000 rules within 20% of 10 rules: the 10-rule rate is {flatness:.2f}x the 10,000-rule rate "
            f"(10,000-rule rate = {rates[10_000] / rates[10]:.0%} of the 10-rule rate): **{met_flat}**. "
            f"From 1,000 to 10,000 rules the rate keeps {rates[10_000] / rates[1_000]:.0%}.",
            "- Why not flat from 10 rules: at every size the walk now reads the same two event fields",
            "  (`source`, `detail-type`), because a rule is kept off a path that few others use (walking it",
            "  costs every event). What still grows is the near misses: with 10,000 rules over 5,000 sources",
            "  and 20,000 types, about 1.4 rules per event have their anchor fire and 0.33 then match; each is",
            "  checked on its other field (about 1-3 us in CPython at this size, much of it cold memory).",
            "  10 rules see about 0.002 per event. The cost follows near misses and matches, not the rule count.",
        ]
    )


if __name__ == "__main__":
    print(main())
