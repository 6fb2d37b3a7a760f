"""Rules: which events on a bus go to which targets, how, and how hard delivery tries.

A rule has an id, a bus, an EventBridge pattern and up to 5 targets. Each
target has a kind (`function`, `queue`, `topic`, `bus`, `webhook`), a name
(the function, queue, topic or bus, or the webhook's URL), the shape the
event goes in, an optional input transformer, a retry policy and a
dead-letter queue.

`Rules` holds the app's `@app.on_event` rules (rebuilt from the code at every
start) and rules added at run time, which are kept in the store's key-value
records so they survive restarts. Matching uses one RuleSet per bus.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from triggerfish.bus.router import SHAPES, Router, Shape
from triggerfish.bus.transform import InputTransformer
from triggerfish.errors import InvalidInputError, InvalidPatternError
from triggerfish.events.patterns import compile_pattern
from triggerfish.events.ruleset import RuleSet
from triggerfish.model import EventTrigger, FunctionSpec
from triggerfish.names import RULES_NAMESPACE
from triggerfish.retry import MAX_RETRY_DELAY, RetryPolicy
from triggerfish.store import Store
from triggerfish.store.base import check_name

logger = logging.getLogger("triggerfish.bus")

TargetKind = Literal["function", "queue", "topic", "bus", "webhook"]
KINDS: tuple[TargetKind, ...] = ("function", "queue", "topic", "bus", "webhook")
MAX_TARGETS = 5
MAX_STORED_RULES = 100_000
#: Exponential backoff with jitter: 1 s, 2 s, 4 s ... up to 15 minutes, each cut by up to half at random.
DEFAULT_BACKOFF = RetryPolicy(base=1.0, multiplier=2.0, ceiling=MAX_RETRY_DELAY, jitter=0.5)


@dataclass(frozen=True, slots=True)
class DeliveryRetry:
    """How long and how often delivery to a target is tried: EventBridge's defaults (24 h, 185 attempts).

    Waits grow exponentially with jitter (`backoff`), up to 15 minutes.
    """

    max_event_age: float = 24 * 3600.0
    max_attempts: int = 185
    backoff: RetryPolicy = field(default_factory=lambda: DEFAULT_BACKOFF)

    def __post_init__(self) -> None:
        age = self.max_event_age
        if isinstance(age, bool) or not isinstance(age, int | float) or not 60 <= age <= 24 * 3600:
            raise InvalidInputError(f"max_event_age must be from 60 to 86400 seconds, not {age!r}")
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 185:
            raise InvalidInputError(f"max_attempts must be a whole number from 1 to 185, not {attempts!r}")

    def to_dict(self) -> dict[str, Any]:
        backoff = self.backoff
        return {
            "max_event_age": self.max_event_age,
            "max_attempts": self.max_attempts,
            "backoff": {
                "base": backoff.base,
                "multiplier": backoff.multiplier,
                "ceiling": backoff.ceiling,
                "jitter": backoff.jitter,
            },
        }

    @classmethod
    def from_dict(cls, document: Any) -> DeliveryRetry:
        """A policy from its JSON form (missing fields take the defaults); InvalidInputError names what is wrong."""
        if isinstance(document, DeliveryRetry):
            return document
        if document is not None and not isinstance(document, Mapping):
            raise InvalidInputError("retry must be an object with max_event_age, max_attempts and/or backoff")
        retry = dict(document or {})
        if set(retry) - {"max_event_age", "max_attempts", "backoff"}:
            raise InvalidInputError("retry must be an object with max_event_age, max_attempts and/or backoff")
        if "backoff" in retry:
            backoff = retry["backoff"]
            if not isinstance(backoff, Mapping) or set(backoff) - {"base", "multiplier", "ceiling", "jitter"}:
                raise InvalidInputError("retry.backoff must be an object with base, multiplier, ceiling and/or jitter")
            retry["backoff"] = RetryPolicy(**backoff)
        return cls(**retry)


@dataclass(frozen=True, slots=True)
class RuleTarget:
    """One target of a rule. `id` is unique within the rule; `name` says where (a URL for a webhook)."""

    id: str
    kind: TargetKind
    name: str
    shape: Shape = "cloudevent"
    transformer: InputTransformer | None = None
    retry: DeliveryRetry = field(default_factory=DeliveryRetry)
    #: The queue that gets what could not be delivered; None: `deliver.<bus>.dead-letter`.
    dead_letter: str | None = None
    #: Webhooks only: the shared secret their signature is made with.
    secret: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not isinstance(self.id, str) or not self.id:
            raise InvalidInputError(f"id must be a non-empty string, not {self.id!r}")
        if self.shape not in SHAPES:
            raise InvalidInputError(f"shape must be 'cloudevent' or 'eventbridge', not {self.shape!r}")
        if self.kind == "webhook":
            if not isinstance(self.name, str) or not self.name.startswith(("http://", "https://")):
                raise InvalidInputError(f"a webhook target's name is its http:// or https:// URL, not {self.name!r}")
        elif self.kind != "function":
            _check_name(self.kind, self.name)
        elif not isinstance(self.name, str) or not self.name:
            raise InvalidInputError(f"a function target needs the function's name, not {self.name!r}")
        if self.secret is not None and (self.kind != "webhook" or not isinstance(self.secret, str) or not self.secret):
            raise InvalidInputError("secret is for webhook targets only, and must be a non-empty string")
        if self.dead_letter is not None:
            _check_name("dead-letter queue", self.dead_letter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "shape": self.shape,
            "transformer": None if self.transformer is None else self.transformer.to_dict(),
            "retry": self.retry.to_dict(),
            "dead_letter": self.dead_letter,
            "secret": self.secret,
        }

    @classmethod
    def from_dict(cls, document: Any) -> RuleTarget:
        if not isinstance(document, Mapping):
            raise InvalidInputError(f"a target must be an object, not {type(document).__name__}")
        known = {"id", "kind", "name", "shape", "transformer", "retry", "dead_letter", "secret"}
        unknown = sorted(set(document) - known)
        if unknown:
            raise InvalidInputError(f"unknown target field {unknown[0]!r}; known: {', '.join(sorted(known))}")
        transformer = document.get("transformer")
        if transformer is not None:
            transformer = _transformer(transformer)
        return cls(
            id=document.get("id", document.get("name")),
            kind=document.get("kind"),  # type: ignore[arg-type]  # checked in __post_init__
            name=document.get("name"),  # type: ignore[arg-type]
            shape=document.get("shape", "cloudevent"),
            transformer=transformer,
            retry=DeliveryRetry.from_dict(document.get("retry")),
            dead_letter=document.get("dead_letter"),
            secret=document.get("secret"),
        )


def _check_name(kind: str, name: str) -> None:
    try:
        check_name(kind, name)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def _transformer(document: Any) -> InputTransformer:
    if not isinstance(document, Mapping) or set(document) - {"input_template", "input_paths"}:
        raise InvalidInputError("transformer must be an object with input_template and optional input_paths")
    return InputTransformer(document.get("input_template"), document.get("input_paths") or {})  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule: events on `bus` matching `pattern` go to every target. `source` is "app" or "api"."""

    id: str
    bus: str
    pattern: Mapping[str, Any]
    targets: tuple[RuleTarget, ...]
    source: Literal["app", "api"] = "api"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bus": self.bus,
            "pattern": dict(self.pattern),
            "targets": [t.to_dict() for t in self.targets],
        }

    @classmethod
    def from_dict(cls, document: Any) -> Rule:
        """Build and check a rule from its JSON form; InvalidInputError names the field that is wrong."""
        if not isinstance(document, Mapping):
            raise InvalidInputError(f"a rule must be an object, not {type(document).__name__}")
        unknown = sorted(set(document) - {"id", "bus", "pattern", "targets"})
        if unknown:
            raise InvalidInputError(f"unknown rule field {unknown[0]!r}; known: bus, id, pattern, targets")
        rule_id = document.get("id")
        where = f"rule {rule_id!r}"
        if not isinstance(rule_id, str) or not rule_id or len(rule_id) > 64:
            raise InvalidInputError(f"rule id must be a string of 1 to 64 characters, not {rule_id!r}")
        bus = document.get("bus", "default")
        try:
            _check_name("bus", bus)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}: {exc}") from None
        pattern = document.get("pattern")
        if not isinstance(pattern, Mapping):
            raise InvalidInputError(f"{where}: pattern must be an object (an EventBridge event pattern)")
        try:
            compile_pattern(pattern)  # checked as a RuleSet would check it, without compiling a set for it
        except InvalidPatternError as exc:
            raise InvalidPatternError(f"{where}: {exc.reason}", path=exc.path) from None
        targets = document.get("targets")
        if not isinstance(targets, Sequence) or isinstance(targets, str) or not 1 <= len(targets) <= MAX_TARGETS:
            raise InvalidInputError(f"{where}: targets must be a list of 1 to {MAX_TARGETS} targets")
        built = []
        for index, target in enumerate(targets):
            try:
                built.append(RuleTarget.from_dict(target))
            except (InvalidInputError, TypeError) as exc:
                raise InvalidInputError(f"{where}: targets[{index}]: {exc}") from None
        ids = [t.id for t in built]
        if len(set(ids)) != len(ids):
            raise InvalidInputError(f"{where}: target ids must be unique within the rule, got {ids}")
        return cls(id=rule_id, bus=bus, pattern=dict(pattern), targets=tuple(built))


def app_rules(specs: Mapping[str, FunctionSpec]) -> list[Rule]:
    """The app's `@app.on_event` triggers as rules, with the ids the Router gives them."""
    Router(specs)  # checks every pattern and shape, with the Router's messages
    rules = []
    for spec in specs.values():
        triggers = [t for t in spec.triggers if isinstance(t, EventTrigger)]
        for index, trigger in enumerate(triggers, start=1):
            rule_id = spec.name if len(triggers) == 1 else f"{spec.name}#{index}"
            target = RuleTarget(id=spec.name, kind="function", name=spec.name, shape=trigger.shape)
            rules.append(Rule(rule_id, trigger.bus, dict(trigger.pattern), (target,), source="app"))
    return rules


class Rules:
    """Every rule of every bus, matched with one RuleSet per bus; run-time rules persisted in the store."""

    def __init__(self, store: Store, specs: Mapping[str, FunctionSpec] | None = None) -> None:
        self.store = store
        self._app = app_rules(specs or {})
        self._rules: dict[tuple[str, str], Rule] = {}
        self._sets: dict[str, RuleSet] = {}
        self._generation = 0
        #: The (key, version) of each run-time rule the last `load` installed; None before the first.
        self._loaded: tuple[tuple[str, int], ...] | None = None
        self._install(self._app)

    def _install(self, rules: list[Rule]) -> None:
        self._rules = {}
        by_bus: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        for rule in rules:
            self._rules[(rule.bus, rule.id)] = rule
            by_bus.setdefault(rule.bus, []).append((rule.id, rule.pattern))
        sets = {}
        for bus, patterns in by_bus.items():
            # Each bus's set compiled once, not again every few rules as adding them one by one would.
            sets[bus] = ruleset = RuleSet()
            ruleset.extend(patterns)
        self._sets = sets

    async def load(self) -> None:
        """Read the run-time rules from the store again (another server may have changed them)."""
        while True:
            generation = self._generation
            records = await self.store.kv.scan(RULES_NAMESPACE, limit=MAX_STORED_RULES)
            # A put or remove here while the scan ran may be missing from it: read again.
            if generation == self._generation:
                break
        # The run-time rules as read: the same keys at the same versions are the same rules (a version is never
        # reused), so the bus's compiled sets stand. Compiling a hundred rules again holds the event loop for
        # tens of milliseconds, which every event arriving meanwhile waits for: it happened every few seconds.
        read = tuple((record.key, record.version) for record in records)
        if read == self._loaded:
            return
        stored = []
        for record in records:
            try:
                stored.append(Rule.from_dict(orjson.loads(record.value)))
            except (ValueError, TypeError) as exc:
                # One unreadable rule (written by a newer version, say) must not stop every other rule.
                logger.error("bus rule %r in the store cannot be read and is ignored: %s", record.key, exc)
        self._install([*self._app, *stored])
        self._loaded = read

    async def put(self, rule: Rule | Mapping[str, Any]) -> Rule:
        """Add or replace a run-time rule, durably. An app rule's id on the same bus is refused."""
        built = rule if isinstance(rule, Rule) else Rule.from_dict(rule)
        existing = self._rules.get((built.bus, built.id))
        if existing is not None and existing.source == "app":
            raise InvalidInputError(
                f"rule {built.id!r} on bus {built.bus!r} comes from the app's code; choose another id"
            )
        await self.store.kv.put(RULES_NAMESPACE, _key(built.bus, built.id), orjson.dumps(built.to_dict()))
        self._generation += 1
        built = Rule(built.id, built.bus, built.pattern, built.targets, source="api")
        self._rules[(built.bus, built.id)] = built
        ruleset = self._sets.setdefault(built.bus, RuleSet())
        ruleset.remove(built.id)
        ruleset.add(built.id, built.pattern)
        return built

    async def remove(self, bus: str, rule_id: str) -> bool:
        """Remove a run-time rule; False when there is none. App rules change only with the code."""
        rule = self._rules.get((bus, rule_id))
        if rule is None or rule.source == "app":
            return False
        await self.store.kv.delete(RULES_NAMESPACE, _key(bus, rule_id))
        self._generation += 1
        del self._rules[(bus, rule_id)]
        self._sets[bus].remove(rule_id)
        return True

    def get(self, bus: str, rule_id: str) -> Rule | None:
        """The rule of that id on `bus`, or None."""
        return self._rules.get((bus, rule_id))

    def all(self, bus: str | None = None) -> list[Rule]:
        """Every rule (of one bus, if given): the app's first, then run-time rules in key order."""
        return [r for (b, _), r in self._rules.items() if bus is None or b == bus]

    def buses(self) -> list[str]:
        """The buses that have at least one rule."""
        return sorted({bus for bus, _ in self._rules})

    def matching(self, bus: str, event: Mapping[str, Any]) -> list[Rule]:
        """The rules on `bus` whose pattern matches the event (its CloudEvents JSON form)."""
        ruleset = self._sets.get(bus)
        if ruleset is None:
            return []
        return [self._rules[(bus, rule_id)] for rule_id in ruleset.matches(event)]


def _key(bus: str, rule_id: str) -> str:
    return f"{bus}/{rule_id}"
