"""Topic subscriptions: who gets a topic's messages, which ones, and how.

A subscription has a kind (`function`, `queue`, `webhook`), an endpoint (the
function, the queue, the webhook's URL), an optional filter (an EventBridge
pattern on the message attributes or the JSON body), raw delivery (queues
and webhooks get the message itself instead of the SNS notification JSON),
a retry policy and a dead-letter queue.

`Subscriptions` holds the app's `@app.on_topic` subscriptions (rebuilt from
the code of each app version) and the ones added at run time, kept in the
store's key-value records (`triggerfish.topic-subscriptions`,
`<topic>/<id>`) so they survive restarts and reach every server. Matching a
message uses one RuleSet per topic and scope, not a loop over filters.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from triggerfish.bus.rules import DeliveryRetry
from triggerfish.errors import InvalidInputError, InvalidPatternError
from triggerfish.events.patterns import compile_pattern
from triggerfish.events.ruleset import RuleSet
from triggerfish.events.shapes import sns_topic_arn
from triggerfish.model import FunctionSpec, TopicTrigger, check_resource_name
from triggerfish.names import SUBSCRIPTIONS_NAMESPACE
from triggerfish.store import Store
from triggerfish.triggers.sns import FilterScope, TopicMessage, check_scope, check_topic, filter_document

logger = logging.getLogger("triggerfish.topics")

SubscriptionKind = Literal["function", "queue", "webhook"]
KINDS: tuple[SubscriptionKind, ...] = ("function", "queue", "webhook")
MAX_STORED_SUBSCRIPTIONS = 100_000


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription to a topic. `arn` names it as SNS would; `source` is "app" or "api"."""

    id: str
    topic: str
    kind: SubscriptionKind
    endpoint: str
    filter: Mapping[str, Any] | None = None
    filter_scope: FilterScope = "attributes"
    #: Queues and webhooks only: deliver the message itself, not the SNS notification JSON.
    raw: bool = False
    #: Webhooks only: the shared secret their signature is made with.
    secret: str | None = None
    #: The queue that gets what could not be delivered; None: `topic-dead-letter.<topic>`.
    dead_letter: str | None = None
    retry: DeliveryRetry = field(default_factory=DeliveryRetry)
    source: Literal["app", "api"] = "api"
    #: When it was subscribed (epoch seconds; 0 for the app's): listings keep this order.
    created_at: float = 0.0
    #: An http(s) subscription made with SNS's Subscribe waits for its endpoint to confirm it (SNS's
    #: SubscriptionConfirmation handshake): nothing is delivered to it until then.
    pending: bool = False
    #: When it was confirmed (epoch seconds; 0: it needed no confirmation): messages published before it are
    #: not delivered to it, as SNS delivers nothing published while a subscription waited.
    confirmed_at: float = 0.0

    def __post_init__(self) -> None:
        check_topic(self.topic)
        where = f"subscription to topic {self.topic!r}"
        if self.kind not in KINDS:
            raise InvalidInputError(f"{where}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.kind == "webhook":
            if not isinstance(self.endpoint, str) or not self.endpoint.startswith(("http://", "https://")):
                raise InvalidInputError(
                    f"{where}: a webhook's endpoint is its http:// or https:// URL, not {self.endpoint!r}"
                )
        elif self.kind == "queue":
            _name(where, "queue", self.endpoint)
        elif not isinstance(self.endpoint, str) or not self.endpoint:
            raise InvalidInputError(
                f"{where}: a function subscription needs the function's name, not {self.endpoint!r}"
            )
        if self.filter is not None:
            if not isinstance(self.filter, Mapping) or not self.filter:
                raise InvalidInputError(
                    f'{where}: the filter must be a non-empty pattern such as {{"kind": ["order"]}},'
                    f" not {self.filter!r}"
                )
            try:
                compile_pattern(self.filter)
            except InvalidPatternError as exc:
                raise InvalidPatternError(f"{exc.reason} (in the filter of the {where})", path=exc.path) from None
        try:
            check_scope(self.filter_scope)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}: {exc}") from None
        if not isinstance(self.raw, bool):
            raise InvalidInputError(f"{where}: raw must be True or False, not {self.raw!r}")
        if self.raw and self.kind == "function":
            raise InvalidInputError(
                f"{where}: raw delivery is for queue and webhook subscriptions; functions get SNS records"
            )
        if self.secret is not None and (self.kind != "webhook" or not isinstance(self.secret, str) or not self.secret):
            raise InvalidInputError(
                f"{where}: secret is for webhook subscriptions only, and must be a non-empty string"
            )
        if self.dead_letter is not None:
            _name(where, "dead-letter queue", self.dead_letter)
        if not isinstance(self.retry, DeliveryRetry):
            raise InvalidInputError(f"{where}: retry must be a DeliveryRetry, not {type(self.retry).__name__}")
        if not isinstance(self.pending, bool) or (self.pending and self.kind != "webhook"):
            raise InvalidInputError(f"{where}: only a webhook subscription can wait for confirmation (pending)")

    @property
    def arn(self) -> str:
        """`arn:aws:sns:local:000000000000:<topic>:<id>`, the SubscriptionArn SNS records carry."""
        return f"{sns_topic_arn(self.topic)}:{self.id}"

    def settings(self) -> dict[str, Any]:
        """Everything but the id, when it was made and whether it is confirmed: equal settings, same subscription."""
        document = self.to_dict()
        del document["id"], document["created_at"], document["pending"], document["confirmed_at"]
        return document

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "filter": None if self.filter is None else dict(self.filter),
            "filter_scope": self.filter_scope,
            "raw": self.raw,
            "secret": self.secret,
            "dead_letter": self.dead_letter,
            "retry": self.retry.to_dict(),
            "created_at": self.created_at,
            "pending": self.pending,
            "confirmed_at": self.confirmed_at,
        }

    @classmethod
    def from_dict(cls, document: Any, *, source: Literal["app", "api"] = "api") -> Subscription:
        if not isinstance(document, Mapping):
            raise InvalidInputError(f"a subscription must be an object, not {type(document).__name__}")
        known = {"id", "topic", "kind", "endpoint", "filter", "filter_scope", "raw", "secret", "dead_letter"}
        known |= {"retry", "created_at", "pending", "confirmed_at"}
        unknown = sorted(set(document) - known)
        if unknown:
            raise InvalidInputError(f"unknown subscription field {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(
            id=document.get("id") or str(uuid.uuid4()),
            topic=document.get("topic"),  # type: ignore[arg-type]  # checked in __post_init__
            kind=document.get("kind"),  # type: ignore[arg-type]
            endpoint=document.get("endpoint"),  # type: ignore[arg-type]
            filter=document.get("filter"),
            filter_scope=document.get("filter_scope", "attributes"),
            raw=document.get("raw", False),
            secret=document.get("secret"),
            dead_letter=document.get("dead_letter"),
            retry=DeliveryRetry.from_dict(document.get("retry")),
            source=source,
            created_at=_seconds(document.get("created_at", 0.0)),
            pending=document.get("pending", False),
            confirmed_at=_seconds(document.get("confirmed_at", 0.0)),
        )


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"created_at must be seconds since the epoch, not {value!r}")
    return float(value)


def _name(where: str, kind: str, name: object) -> None:
    try:
        check_resource_name(kind, name)
    except ValueError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None


def app_subscriptions(specs: Mapping[str, FunctionSpec]) -> list[Subscription]:
    """The app's `@app.on_topic` triggers as function subscriptions, with ids from the function names."""
    subscriptions = []
    for spec in specs.values():
        triggers = [t for t in spec.triggers if isinstance(t, TopicTrigger)]
        for index, trigger in enumerate(triggers, start=1):
            same_topic = [t for t in triggers if t.topic == trigger.topic]
            ident = spec.name if len(same_topic) == 1 else f"{spec.name}#{index}"
            subscriptions.append(
                Subscription(
                    ident,
                    trigger.topic,
                    "function",
                    spec.name,
                    filter=None if trigger.filter is None else dict(trigger.filter),
                    filter_scope=trigger.filter_scope,
                    source="app",
                )
            )
    return subscriptions


class _TopicIndex:
    """One topic's subscriptions in order, and a RuleSet per filter scope to match them."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self.sets: dict[FilterScope, RuleSet] = {}

    def add(self, subscription: Subscription) -> None:
        self.remove(subscription.id)
        self.subscriptions[subscription.id] = subscription
        if subscription.filter is not None:
            self.sets.setdefault(subscription.filter_scope, RuleSet()).add(subscription.id, subscription.filter)

    def remove(self, ident: str) -> None:
        old = self.subscriptions.pop(ident, None)
        if old is not None and old.filter is not None:
            self.sets[old.filter_scope].remove(ident)

    def matching(self, message: TopicMessage) -> list[Subscription]:
        matched: set[str] = set()
        for scope, ruleset in self.sets.items():
            if not len(ruleset):
                continue
            document = filter_document(message, scope)
            if document is not None:
                matched.update(ruleset.matches(document))
        return [
            s
            for s in self.subscriptions.values()
            if not s.pending and message.timestamp >= s.confirmed_at and (s.filter is None or s.id in matched)
        ]


class Subscriptions:
    """Every subscription of every topic: the app's and run-time ones (persisted in the store)."""

    def __init__(self, store: Store, specs: Mapping[str, FunctionSpec] | None = None) -> None:
        self.store = store
        self._app = app_subscriptions(specs or {})
        self._stored: list[Subscription] = []
        self._topics: dict[str, _TopicIndex] = {}
        self._generation = 0
        #: The (key, version) of each run-time subscription the last `load` installed; None before the first.
        self._loaded: tuple[tuple[str, int], ...] | None = None
        #: Whether the run-time subscriptions were read from the store yet.
        self.loaded = False
        self._install()

    def _install(self) -> None:
        topics: dict[str, _TopicIndex] = {}
        for subscription in [*self._app, *self._stored]:
            topics.setdefault(subscription.topic, _TopicIndex()).add(subscription)
        self._topics = topics

    def update(self, specs: Mapping[str, FunctionSpec]) -> None:
        """Take the app subscriptions of a new app version; run-time ones stay."""
        self._app = app_subscriptions(specs)
        self._install()

    async def load(self) -> None:
        """Read the run-time subscriptions from the store again (another server may have changed them)."""
        while True:
            generation = self._generation
            records = await self.store.kv.scan(SUBSCRIPTIONS_NAMESPACE, limit=MAX_STORED_SUBSCRIPTIONS)
            # An add or remove here while the scan ran may be missing from it: read again.
            if generation == self._generation:
                break
        # The same keys at the same versions are the same subscriptions (a version is never reused), so the
        # topics' filter sets stand: rebuilding them on every periodic load holds the event loop for nothing.
        read = tuple((record.key, record.version) for record in records)
        if read == self._loaded:
            return
        stored = []
        for record in records:
            try:
                stored.append(Subscription.from_dict(orjson.loads(record.value)))
            except (ValueError, TypeError) as exc:
                # One unreadable subscription (written by a newer version, say) must not stop the others.
                logger.error("topic subscription %r in the store cannot be read and is ignored: %s", record.key, exc)
        self._stored = sorted(stored, key=lambda s: (s.created_at, s.id))
        self.loaded = True
        self._install()
        self._loaded = read

    async def add(self, subscription: Subscription) -> Subscription:
        """Add a run-time subscription durably; an equal one (same kind, endpoint, settings) is returned instead.

        As SNS's Subscribe: subscribing the same endpoint again with the same
        settings is not an error and changes nothing; with other settings it is.
        """
        for existing in self.of(subscription.topic):
            if (existing.kind, existing.endpoint) != (subscription.kind, subscription.endpoint):
                continue
            if existing.settings() == subscription.settings():
                return existing
            raise InvalidInputError(
                f"topic {subscription.topic!r} already has a {existing.kind} subscription to {existing.endpoint!r}"
                f" with other settings ({existing.arn}); unsubscribe it first, or subscribe with the same settings"
            )
        stored = Subscription.from_dict(subscription.to_dict())
        await self.store.kv.put(SUBSCRIPTIONS_NAMESPACE, _key(stored), orjson.dumps(stored.to_dict()))
        self._generation += 1
        self._stored = [s for s in self._stored if s.arn != stored.arn] + [stored]
        self._topics.setdefault(stored.topic, _TopicIndex()).add(stored)
        return stored

    async def replace(self, subscription: Subscription) -> Subscription:
        """Store new settings for a run-time subscription that exists (same ARN); raises InvalidInputError if none."""
        existing = self.get(subscription.arn)
        if existing is None:
            raise InvalidInputError(f"there is no subscription {subscription.arn}")
        if existing.source == "app":
            raise InvalidInputError(
                f"subscription {subscription.arn} comes from the app's code (@app.on_topic); change it there"
            )
        stored = Subscription.from_dict(subscription.to_dict())
        await self.store.kv.put(SUBSCRIPTIONS_NAMESPACE, _key(stored), orjson.dumps(stored.to_dict()))
        self._generation += 1
        self._stored = [stored if s.arn == stored.arn else s for s in self._stored]
        self._topics.setdefault(stored.topic, _TopicIndex()).add(stored)
        return stored

    async def remove(self, subscription: Subscription) -> bool:
        """Remove a run-time subscription; False when there is none."""
        if subscription.source == "app":
            raise InvalidInputError(
                f"subscription {subscription.arn} comes from the app's code (@app.on_topic); remove it there"
            )
        deleted = await self.store.kv.delete(SUBSCRIPTIONS_NAMESPACE, _key(subscription))
        self._generation += 1
        self._stored = [s for s in self._stored if s.arn != subscription.arn]
        index = self._topics.get(subscription.topic)
        if index is not None:
            index.remove(subscription.id)
        return deleted

    def get(self, arn: str) -> Subscription | None:
        """The subscription with that ARN, or None."""
        return next((s for s in self.of() if s.arn == arn), None)

    def of(self, topic: str | None = None) -> list[Subscription]:
        """The subscriptions of `topic` (or of every topic): the app's first, then run-time ones."""
        return [
            s
            for name, index in self._topics.items()
            if topic is None or name == topic
            for s in index.subscriptions.values()
        ]

    def topics(self) -> list[str]:
        """The topics with at least one subscription."""
        return sorted(name for name, index in self._topics.items() if index.subscriptions)

    def matching(self, topic: str, message: TopicMessage) -> list[Subscription]:
        """The subscriptions of `topic` whose filter (if any) matches the message, in order."""
        index = self._topics.get(topic)
        return [] if index is None else index.matching(message)


def _key(subscription: Subscription) -> str:
    return f"{subscription.topic}/{subscription.id}"
