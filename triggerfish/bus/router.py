"""Which functions an event on a bus goes to: the app's `on_event` triggers as rules.

Every EventTrigger of every function becomes one rule on its bus, indexed in
a RuleSet (one per bus), so routing costs the same however many rules an
app declares. A rule's id is its function's name, or `name#1`, `name#2`,
... when the function declares several event triggers. As on EventBridge,
each matching rule delivers: an event that matches two triggers of one
function invokes it twice.

Matching runs on the event's CloudEvents JSON form; a pattern written
EventBridge-style (`detail-type`, `detail`) matches the same events,
because the pattern engine resolves those names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from triggerfish.errors import DeclarationError, InvalidPatternError
from triggerfish.events.cloudevent import Event
from triggerfish.events.eventbridge import to_envelope
from triggerfish.events.ruleset import RuleSet
from triggerfish.model import EventTrigger, FunctionSpec

Shape = Literal["cloudevent", "eventbridge"]
SHAPES: tuple[Shape, ...] = ("cloudevent", "eventbridge")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a matching event goes and in which shape.

    `kind` is "function" today; queues, topics and webhooks as targets are
    planned, and will be told apart by it.
    """

    rule_id: str
    bus: str
    function: str
    shape: Shape = "cloudevent"
    kind: Literal["function"] = "function"

    def payload(self, event: Event) -> Any:
        """What the target receives: the CloudEvent as a dict, or its EventBridge envelope."""
        if self.shape == "eventbridge":
            return to_envelope(event, extras=False)
        return event.to_dict()


@dataclass(slots=True)
class _Bus:
    rules: RuleSet = field(default_factory=RuleSet)
    targets: dict[str, Target] = field(default_factory=dict)


class Router:
    """Routes events published on a bus to the functions whose rules match them.

    router = Router(app.functions)
    for target in router.targets("default", event):
        await invoker.invoke_async(target.function, target.payload(event), trigger="event")
    """

    def __init__(self, specs: Mapping[str, FunctionSpec] | None = None) -> None:
        self._buses: dict[str, _Bus] = {}
        for spec in (specs or {}).values():
            triggers = [t for t in spec.triggers if isinstance(t, EventTrigger)]
            for index, trigger in enumerate(triggers, start=1):
                rule_id = spec.name if len(triggers) == 1 else f"{spec.name}#{index}"
                self.add_rule(rule_id, trigger.pattern, bus=trigger.bus, function=spec.name, shape=trigger.shape)

    def add_rule(
        self,
        rule_id: str,
        pattern: Mapping[str, Any] | str | bytes,
        *,
        bus: str = "default",
        function: str,
        shape: Shape = "cloudevent",
    ) -> Target:
        """Add or replace a rule sending events that match `pattern` on `bus` to `function`.

        Raises InvalidPatternError for a pattern the engine rejects and
        DeclarationError for an unknown shape; the router is unchanged then.
        """
        if shape not in SHAPES:
            raise DeclarationError(f"rule {rule_id!r}: unknown shape {shape!r}; use 'cloudevent' or 'eventbridge'")
        entry = self._buses.get(bus) or _Bus()
        try:
            entry.rules.add(rule_id, pattern)
        except InvalidPatternError as exc:
            raise InvalidPatternError(f"rule {rule_id!r} on bus {bus!r}: {exc.reason}", path=exc.path) from None
        target = Target(rule_id=rule_id, bus=bus, function=function, shape=shape)
        entry.targets[rule_id] = target
        self._buses[bus] = entry
        return target

    def remove_rule(self, rule_id: str, *, bus: str = "default") -> bool:
        """Remove a rule; False when the bus has no rule of that id."""
        entry = self._buses.get(bus)
        if entry is None or not entry.rules.remove(rule_id):
            return False
        del entry.targets[rule_id]
        return True

    def targets(self, bus: str, event: Event) -> list[Target]:
        """The targets of every rule on `bus` that matches `event`, in the order the rules were added."""
        entry = self._buses.get(bus)
        if entry is None:
            return []
        return [entry.targets[rule_id] for rule_id in entry.rules.matches(event.to_dict())]

    def buses(self) -> list[str]:
        """The buses that have at least one rule."""
        return [bus for bus, entry in self._buses.items() if entry.targets]

    def rules(self, bus: str) -> list[Target]:
        """Every rule's target on `bus`, in the order added."""
        entry = self._buses.get(bus)
        return list(entry.targets.values()) if entry else []
