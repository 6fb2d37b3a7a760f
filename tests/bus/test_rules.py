"""Rules: the app's and run-time ones, kept in the store across restarts; bad rules refused precisely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_ruleset import counting_compiles
from triggerfish.bus.rules import DeliveryRetry, Rule, Rules
from triggerfish.errors import InvalidInputError, InvalidPatternError
from triggerfish.model import EventTrigger, FunctionSettings, FunctionSpec
from triggerfish.store import Store, open_store

ORDER = {"specversion": "1.0", "id": "1", "source": "shop", "type": "order.placed", "data": {"total": 120}}


def fn(name: str, *triggers: Any) -> FunctionSpec:
    return FunctionSpec(
        name=name, handler=lambda e: e, ref=f"tests:{name}", settings=FunctionSettings(), triggers=triggers
    )


SPECS = {
    "ship": fn("ship", EventTrigger({"type": ["order.placed"]})),
    "audit": fn("audit", EventTrigger({"source": ["shop"]}, bus="audit"), EventTrigger({"source": ["shop"]})),
}


def rule(**changes: Any) -> dict[str, Any]:
    return {
        "id": "to-queue",
        "pattern": {"detail-type": ["order.placed"], "detail": {"total": [{"numeric": [">", 100]}]}},
        "targets": [{"id": "q", "kind": "queue", "name": "big-orders"}],
        **changes,
    }


async def test_app_rules_get_the_router_ids(store: Store) -> None:
    rules = Rules(store, SPECS)
    assert [r.id for r in rules.matching("default", ORDER)] == ["ship", "audit#2"]
    assert [r.id for r in rules.matching("audit", ORDER)] == ["audit#1"]
    assert rules.get("default", "ship") is not None
    assert rules.get("default", "ship").targets[0].kind == "function"  # type: ignore[union-attr]


async def test_run_time_rules_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with await open_store(url) as store:
        added = await Rules(store, SPECS).put(rule())
        assert added.targets[0].retry == DeliveryRetry()
    async with await open_store(url) as store:
        rules = Rules(store, SPECS)
        assert rules.get("default", "to-queue") is None
        await rules.load()
        assert [r.id for r in rules.matching("default", ORDER)] == ["ship", "audit#2", "to-queue"]
        assert await rules.remove("default", "to-queue")
        assert not await rules.remove("default", "to-queue")
        assert not await rules.remove("default", "ship")  # app rules change with the code only
    async with await open_store(url) as store:
        rules = Rules(store, SPECS)
        await rules.load()
        assert [r.id for r in rules.all("default")] == ["ship", "audit#2"]


async def test_replacing_a_rule_changes_what_matches(store: Store) -> None:
    rules = Rules(store)
    await rules.put(rule())
    await rules.put(rule(pattern={"source": ["elsewhere"]}))
    assert rules.matching("default", ORDER) == []
    assert len(rules.all()) == 1


async def test_an_app_rule_id_cannot_be_taken(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="comes from the app's code"):
        await Rules(store, SPECS).put(rule(id="ship"))


def test_a_rule_round_trips_through_json() -> None:
    document = rule(
        targets=[
            {
                "id": "hook",
                "kind": "webhook",
                "name": "https://example.test/hook",
                "secret": "s",
                "shape": "eventbridge",
                "transformer": {"input_template": '"<s>"', "input_paths": {"s": "$.detail.state"}},
                "retry": {"max_event_age": 3600, "max_attempts": 10, "backoff": {"base": 2.0}},
                "dead_letter": "hook-dlq",
            }
        ]
    )
    built = Rule.from_dict(document)
    assert Rule.from_dict(built.to_dict()) == built
    assert built.targets[0].retry.backoff.base == 2.0


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (rule(id=""), "rule id must be"),
        (rule(colour="red"), "unknown rule field 'colour'"),
        (rule(bus="no spaces"), "invalid bus name"),
        (rule(pattern=[1]), "pattern must be an object"),
        (rule(targets=[]), "1 to 5 targets"),
        (rule(targets=[{"id": str(i), "kind": "queue", "name": "q"} for i in range(6)]), "1 to 5 targets"),
        (rule(targets=[{"id": "a", "kind": "lambda", "name": "f"}]), r"targets\[0\]: kind must be one of"),
        (rule(targets=[{"id": "a", "kind": "webhook", "name": "ftp://x"}]), r"targets\[0\]: .*http:// or https://"),
        (rule(targets=[{"id": "a", "kind": "queue", "name": "q", "secret": "s"}]), "secret is for webhook"),
        (rule(targets=[{"id": "a", "kind": "queue", "name": "q", "size": 1}]), "unknown target field 'size'"),
        (rule(targets=[{"id": "a", "kind": "queue", "name": "bad name"}]), "invalid queue name"),
        (rule(targets=[{"id": "a", "kind": "queue", "name": "q", "shape": "xml"}]), "shape must be"),
        (rule(targets=[{"id": "a", "kind": "queue", "name": "q", "retry": {"max_attempts": 186}}]), "1 to 185"),
        (rule(targets=[{"id": "a", "kind": "queue", "name": "q", "retry": {"max_event_age": 10}}]), "60 to 86400"),
        (rule(targets=[{"id": "a", "kind": "queue", "name": "q", "retry": {"tries": 1}}]), "retry must be"),
        (
            rule(targets=[{"id": "a", "kind": "queue", "name": "q", "transformer": {"input_template": ""}}]),
            r"targets\[0\]: input_template",
        ),
        (
            rule(targets=[{"id": "a", "kind": "queue", "name": "q"}, {"id": "a", "kind": "queue", "name": "r"}]),
            "unique",
        ),
    ],
)
def test_bad_rules_are_refused_naming_the_field(document: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Rule.from_dict(document)


def test_a_bad_pattern_names_the_rule_and_the_place() -> None:
    with pytest.raises(InvalidPatternError, match="rule 'to-queue'") as caught:
        Rule.from_dict(rule(pattern={"detail": {"total": [{"numeric": [">", "x"]}]}}))
    assert "detail.total" in caught.value.path


async def test_a_refused_rule_leaves_the_store_unchanged(store: Store) -> None:
    rules = Rules(store)
    with pytest.raises(InvalidInputError):
        await rules.put(rule(targets=[{"id": "a", "kind": "nope", "name": "q"}]))
    await rules.load()
    assert rules.all() == []


async def test_an_unreadable_stored_rule_does_not_stop_the_others(store: Store) -> None:
    rules = Rules(store)
    await rules.put(rule())
    await store.kv.put("triggerfish.bus-rules", "default/broken", b'{"id": "broken", "targets": "none"}')
    await rules.load()
    assert [r.id for r in rules.all()] == ["to-queue"]


async def test_loading_rules_that_did_not_change_compiles_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bus loads the rules again every few seconds; compiling them each time held the event loop.
    rules = Rules(store, SPECS)
    await rules.put(rule())
    await rules.load()
    compiles = counting_compiles(monkeypatch)
    await rules.load()
    await rules.load()
    assert compiles == []
    # Another server's change is still seen, each bus's set compiled once.
    other = Rules(store, SPECS)
    await other.put(rule(id="another", pattern={"source": ["shop"]}))
    compiles.clear()
    await rules.load()
    assert sorted(compiles) == [1, 4]
    # Run-time rules in key order.
    assert [r.id for r in rules.matching("default", ORDER)] == ["ship", "audit#2", "another", "to-queue"]
    # Its removal too, and a rule put and removed here in between loads leaves the set as the store has it.
    assert await other.remove("default", "another")
    await rules.put(rule(id="passing"))
    assert await rules.remove("default", "passing")
    await rules.load()
    assert [r.id for r in rules.matching("default", ORDER)] == ["ship", "audit#2", "to-queue"]
