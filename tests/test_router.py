"""Routing events on a bus to the functions whose `on_event` patterns match."""

from __future__ import annotations

from typing import Any

import pytest

from triggerfish.bus.router import Router, Target
from triggerfish.errors import DeclarationError, InvalidPatternError
from triggerfish.events.cloudevent import Event
from triggerfish.model import EventTrigger, FunctionSettings, FunctionSpec, QueueTrigger


def fn(name: str, *triggers: Any) -> FunctionSpec:
    return FunctionSpec(
        name=name, handler=lambda e: e, ref=f"tests:{name}", settings=FunctionSettings(), triggers=triggers
    )


def order(kind: str = "order.placed", **data: Any) -> Event:
    return Event.create(type=kind, source="shop", data={"total": 120, "country": "NZ", **data})


SPECS = {
    "ship": fn("ship", EventTrigger({"type": ["order.placed"]})),
    "bill": fn("bill", EventTrigger({"detail-type": ["order.placed"], "detail": {"total": [{"numeric": [">", 100]}]}})),
    "audit": fn(
        "audit",
        EventTrigger({"source": ["shop"]}, bus="audit"),
        EventTrigger({"type": [{"prefix": "order."}]}, shape="eventbridge"),
    ),
    "worker": fn("worker", QueueTrigger("jobs")),
}


def test_each_event_trigger_is_a_rule_named_for_its_function() -> None:
    router = Router(SPECS)
    assert [t.rule_id for t in router.rules("default")] == ["ship", "bill", "audit#2"]
    assert [t.rule_id for t in router.rules("audit")] == ["audit#1"]
    assert sorted(router.buses()) == ["audit", "default"]
    assert router.rules("nowhere") == []


def test_matching_rules_give_targets_in_declaration_order() -> None:
    router = Router(SPECS)
    assert [t.function for t in router.targets("default", order())] == ["ship", "bill", "audit"]
    assert [t.function for t in router.targets("default", order(total=50))] == ["ship", "audit"]
    assert [t.function for t in router.targets("default", order("order.cancelled"))] == ["audit"]
    assert router.targets("default", order("user.created")) == []


def test_buses_are_separate() -> None:
    router = Router(SPECS)
    targets = router.targets("audit", order("anything"))
    assert targets == [Target(rule_id="audit#1", bus="audit", function="audit", shape="cloudevent")]
    assert router.targets("no-such-bus", order()) == []


def test_eventbridge_and_cloudevents_style_patterns_match_the_same_event() -> None:
    router = Router()
    router.add_rule("ce", {"type": ["order.placed"], "data": {"country": ["NZ"]}}, function="a")
    router.add_rule("eb", {"detail-type": ["order.placed"], "detail": {"country": ["NZ"]}}, function="b")
    assert [t.rule_id for t in router.targets("default", order())] == ["ce", "eb"]
    assert router.targets("default", order(country="AU")) == []


def test_payload_shapes() -> None:
    router = Router(SPECS)
    event = order()
    by_function = {t.function: t for t in router.targets("default", event)}
    assert by_function["ship"].payload(event) == event.to_dict()
    envelope = by_function["audit"].payload(event)
    assert envelope["detail-type"] == "order.placed"
    assert envelope["detail"] == {"total": 120, "country": "NZ"}
    assert envelope["source"] == "shop"
    assert envelope["id"] == event.id
    assert envelope["version"] == "0"


def test_rules_can_be_replaced_and_removed() -> None:
    router = Router(SPECS)
    router.add_rule("ship", {"type": ["order.shipped"]}, function="ship")
    assert "ship" not in [t.function for t in router.targets("default", order())]
    assert router.remove_rule("bill")
    assert not router.remove_rule("bill")
    assert not router.remove_rule("ship", bus="audit")
    assert [t.function for t in router.targets("default", order())] == ["audit"]


def test_a_bad_pattern_is_rejected_naming_the_rule_and_leaves_the_router_unchanged() -> None:
    router = Router(SPECS)
    with pytest.raises(InvalidPatternError, match="rule 'bad' on bus 'default'"):
        router.add_rule("bad", {"type": "order.placed"}, function="x")
    with pytest.raises(InvalidPatternError, match="rule 'bad' on bus 'fresh'"):
        router.add_rule("bad", {"type": [{"numeric": ["<"]}]}, bus="fresh", function="x")
    assert [t.rule_id for t in router.rules("default")] == ["ship", "bill", "audit#2"]
    assert "fresh" not in router.buses()


def test_an_unknown_shape_is_a_declaration_error() -> None:
    with pytest.raises(DeclarationError, match="unknown shape 'xml'"):
        Router().add_rule("r", {"type": ["t"]}, function="f", shape="xml")  # type: ignore[arg-type]


def test_many_rules_route_exactly() -> None:
    router = Router()
    for i in range(2000):
        router.add_rule(f"r{i}", {"type": [f"type.{i}"]}, function=f"f{i}")
    assert [t.function for t in router.targets("default", order("type.1234"))] == ["f1234"]
