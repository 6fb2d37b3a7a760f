"""Topics: SNS-style fan-out of each published message to every subscription whose filter matches.

A topic is the log stream `topic.<name>`. `Topics.publish()` appends the
message (with its id, timestamp, subject and attributes, see sns.py) and
returns the SNS message id only once the append is durable; a bus rule's
topic target and a function's `topic:NAME` destination append the same
record, so they fan out the same way.

Each topic has one consumer at a time across every server on the store (the
leased lock and the checkpoint moved by compare-and-set are the bus's, see
triggerfish/bus/consumer.py, in the key-value namespace `triggerfish.topics`).
For each message it makes one delivery per matching subscription durable
before the checkpoint moves past the message, so every message reaches every
subscription at least once:

- a function subscription is an asynchronous invocation, queued at once, with
  Lambda's retries; its event is SNS's (`{"Records": [{"EventSource": "aws:sns", ...}]}`);
- a queue or webhook subscription is a message on the store queue
  `topic-deliver.<topic>`, delivered with retries and backoff (the bus's
  `DeliveryQueue`) and, when they run out, sent to the subscription's
  dead-letter queue (by default `topic-dead-letter.<topic>`). Queues get the
  SNS notification JSON as the body (or the message itself, with raw
  delivery); webhooks get it as a POST signed as bus webhooks are.

    topics = Topics(store, app.functions, invoker=invoker)
    await topics.start()
    await topics.subscribe("orders", "queue", "order-audit", filter={"kind": ["refund"]})
    message_id = await topics.publish("orders", '{"id": 7}', attributes={"kind": "refund"})
    ...
    await topics.stop()
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from triggerfish.aws.sns_signing import SnsSigning
from triggerfish.bus.consumer import CLAIM_LEASE, LogConsumer
from triggerfish.bus.delivery import LEASE, DeliveryQueue
from triggerfish.bus.parking import park
from triggerfish.bus.publisher import Publisher
from triggerfish.bus.rules import DeliveryRetry
from triggerfish.bus.targets import AsyncInvoker, Targets
from triggerfish.errors import FunctionNotFoundError, InvalidInputError, NonRetryable
from triggerfish.events.shapes import iso_millis, sns_records, sns_topic_arn
from triggerfish.model import FunctionSpec
from triggerfish.names import (
    HOPCOUNT_ATTRIBUTE,
    TOPIC_GROUP,
    TOPICS_NAMESPACE,
    TRACEPARENT_ATTRIBUTE,
    topic_dead_letter_queue,
    topic_delivery_queue,
    topic_of_stream,
    topic_stream,
)
from triggerfish.store import LogRecord, Message, OutgoingMessage, Store
from triggerfish.store.atomic import Op, Send
from triggerfish.triggers.sns import TopicMessage, check_topic, new_message, notification
from triggerfish.triggers.subscriptions import Subscription, SubscriptionKind, Subscriptions

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("triggerfish.topics")


@dataclass(frozen=True, slots=True)
class TopicDelivery:
    """One message for one subscription. `queued_at` starts the clock of the retry policy's `max_event_age`."""

    subscription: Subscription
    message: TopicMessage
    queued_at: float

    @property
    def topic(self) -> str:
        return self.subscription.topic

    @property
    def retry(self) -> DeliveryRetry:
        return self.subscription.retry

    def to_message(self) -> OutgoingMessage:
        document = {
            "subscription": self.subscription.to_dict(),
            "message": self.message.to_dict(),
            "queued_at": self.queued_at,
        }
        return OutgoingMessage(orjson.dumps(document))

    @classmethod
    def from_message(cls, message: Message) -> TopicDelivery:
        document = orjson.loads(message.body)
        return cls(
            subscription=Subscription.from_dict(document["subscription"]),
            message=TopicMessage.from_dict(document["message"]),
            queued_at=float(document["queued_at"]),
        )


class TopicDeliverer(DeliveryQueue[TopicDelivery]):
    """Hands topic messages to subscriptions, with the subscription's retries and dead-letter queue."""

    kind = "topic"

    def __init__(
        self, store: Store, targets: Targets, *, clock: Callable[[], float] = time.time, lease: float = LEASE
    ) -> None:
        super().__init__(store, clock=clock, lease=lease)
        self.targets = targets
        #: Signs what subscribers get as SNS does (None: the signature fields stay empty, as in unit tests).
        self.signing: SnsSigning | None = None
        self._confirmations: set[asyncio.Task[None]] = set()

    def queue(self, name: str) -> str:
        return topic_delivery_queue(name)

    def name_of(self, job: TopicDelivery) -> str:
        return job.topic

    def decode(self, message: Message) -> TopicDelivery:
        return TopicDelivery.from_message(message)

    def unreadable_queue(self, name: str) -> str:
        return topic_dead_letter_queue(name)

    def describe(self, job: TopicDelivery) -> str:
        return f"message {job.message.message_id} for {job.subscription.kind} {job.subscription.endpoint!r}"

    async def deliver(self, job: TopicDelivery) -> None:
        subscription, message = job.subscription, job.message
        if subscription.kind == "function":
            await self._invoke(subscription, message)
            return
        if subscription.raw:
            body = message.message.encode("utf-8")
        else:
            document = notification(job.topic, message)
            if self.signing is not None:
                await self.signing.ready({job.topic})
                self.signing.sign_notification(document, job.topic, subscription.arn)
            body = orjson.dumps(document)
        if subscription.kind == "queue":
            attributes = {HOPCOUNT_ATTRIBUTE: str(message.hop_count)}
            if message.traceparent:
                attributes[TRACEPARENT_ATTRIBUTE] = message.traceparent
            if subscription.raw:
                # As SNS's raw delivery to SQS: the message attributes become the queue message's.
                attributes.update(message.attributes)
            try:
                await self.store.queues.send(subscription.endpoint, body, attributes=attributes)
            except InvalidInputError as exc:
                raise NonRetryable(f"queue subscription {subscription.endpoint!r}: {exc}") from None
            return
        headers = {
            "x-amz-sns-message-type": "Notification",
            "x-amz-sns-message-id": message.message_id,
            "x-amz-sns-topic-arn": sns_topic_arn(job.topic),
            "x-amz-sns-subscription-arn": subscription.arn,
        }
        if subscription.raw:
            headers.update({"x-amz-sns-rawdelivery": "true", "content-type": "text/plain; charset=utf-8"})
        await self.targets.post(subscription.endpoint, body, secret=subscription.secret, headers=headers)

    def send_confirmation(self, subscription: Subscription, *, attempts: int = 3) -> None:
        """POST SNS's SubscriptionConfirmation to a pending webhook, in the background.

        As SNS, it is not queued durably: a few tries, then subscribing again sends it again.
        """
        task = asyncio.get_running_loop().create_task(self._confirm(subscription, attempts))
        self._confirmations.add(task)
        task.add_done_callback(self._confirmations.discard)

    async def _confirm(self, subscription: Subscription, attempts: int) -> None:
        if self.signing is None:
            return
        await self.signing.ready({subscription.topic})
        topic_arn = sns_topic_arn(subscription.topic)
        document: dict[str, Any] = {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Message": f"You have chosen to subscribe to the topic {topic_arn}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message.",
            "Timestamp": iso_millis(self.clock()),
        }
        self.signing.sign_confirmation(document, subscription.topic, subscription.arn)
        order = ("Type", "MessageId", "Token", "TopicArn", "Message", "SubscribeURL", "Timestamp")
        body = orjson.dumps({name: document[name] for name in (*order, *document) if name in document})
        headers = {
            "x-amz-sns-message-type": "SubscriptionConfirmation",
            "x-amz-sns-message-id": document["MessageId"],
            "x-amz-sns-topic-arn": topic_arn,
            "content-type": "text/plain; charset=UTF-8",
        }
        for attempt in range(attempts):
            try:
                await self.targets.post(subscription.endpoint, body, secret=subscription.secret, headers=headers)
                return
            except NonRetryable as exc:
                logger.warning("subscription confirmation for %s not taken: %s", subscription.arn, exc)
                return
            except Exception as exc:  # a refused connection, a 5xx, a timeout: try again a little later
                logger.warning("confirmation for %s failed (try %d): %s", subscription.arn, attempt + 1, exc)
                if attempt + 1 < attempts:
                    await asyncio.sleep(2.0**attempt)

    async def stop_confirmations(self) -> None:
        for task in list(self._confirmations):
            task.cancel()
        await asyncio.gather(*self._confirmations, return_exceptions=True)

    async def _invoke(self, subscription: Subscription, message: TopicMessage) -> None:
        invoker = self.targets.invoker
        if invoker is None:
            raise NonRetryable(f"function subscription {subscription.endpoint!r}: no invoker to run functions")
        if self.signing is not None:
            await self.signing.ready({subscription.topic})
        event = signed_records(self.signing, subscription, message)
        try:
            await invoker.invoke_async(
                subscription.endpoint,
                event,
                trigger="topic",
                traceparent=message.traceparent,
                hop_count=message.hop_count,
            )
        except (InvalidInputError, LookupError) as exc:
            raise NonRetryable(f"function subscription {subscription.endpoint!r}: {exc}") from None

    def dead_letter(
        self, job: TopicDelivery, *, condition: str, error: Exception, attempts: int
    ) -> tuple[str, dict[str, Any], dict[str, str]]:
        subscription = job.subscription
        record = {
            "message": job.message.to_dict(),
            "topic": job.topic,
            "subscription": {"arn": subscription.arn, "kind": subscription.kind, "endpoint": subscription.endpoint},
            "condition": condition,
            "error": f"{type(error).__name__}: {error}",
            "attempts": attempts,
            "first_queued_at": job.queued_at,
            "failed_at": self.clock(),
        }
        attributes = {
            "TOPIC_ARN": sns_topic_arn(job.topic),
            "SUBSCRIPTION_ARN": subscription.arn,
            "ERROR_CODE": condition,
            "ERROR_MESSAGE": str(error)[:1000],
            "RETRY_ATTEMPTS": str(attempts),
        }
        return subscription.dead_letter or topic_dead_letter_queue(job.topic), record, attributes


class Topics(LogConsumer):
    """Every topic of a platform: durable publish, subscriptions, and at-least-once fan-out.

    One per platform, not per app version: `update()` takes the function
    subscriptions (and, optionally, the invoker) of a new version. Every
    node fans every topic out, in the log's consumer group `fan-out`, each
    claiming the next range of messages. `lease` is how long a delivery in
    progress is hidden from other workers; in the background the run-time
    subscriptions are read again every `refresh` seconds, so one another
    node added takes effect here too.
    """

    kind = "topic"

    def __init__(
        self,
        store: Store,
        specs: Mapping[str, FunctionSpec],
        *,
        invoker: AsyncInvoker | None = None,
        http: httpx.AsyncClient | None = None,
        publisher: Publisher | None = None,
        clock: Callable[[], float] = time.time,
        batch_size: int = 256,
        lease: float = LEASE,
        claim_lease: float = CLAIM_LEASE,
        refresh: float = 5.0,
    ) -> None:
        super().__init__(
            store,
            group=TOPIC_GROUP,
            namespace=TOPICS_NAMESPACE,
            clock=clock,
            claim_lease=claim_lease,
            batch_size=batch_size,
            refresh=refresh,
        )
        self.specs: dict[str, FunctionSpec] = dict(specs)
        self.registry = Subscriptions(store, self.specs)
        self.publisher = publisher or Publisher(store)
        self.targets = Targets(store, invoker=invoker, publisher=self.publisher, http=http)
        self.deliverer = TopicDeliverer(store, self.targets, clock=clock, lease=lease)

    @property
    def invoker(self) -> AsyncInvoker | None:
        return self.targets.invoker

    def update(self, specs: Mapping[str, FunctionSpec], *, invoker: AsyncInvoker | None = None) -> None:
        """Serve a new app version: its `@app.on_topic` subscriptions replace the old version's.

        Run-time subscriptions stay. With `invoker`, function subscribers are
        invoked through it from now on (deliveries already queued included).
        """
        self.specs = dict(specs)
        self.registry.update(self.specs)
        if invoker is not None:
            self.targets.invoker = invoker

    # --- publishing ------------------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        message: str,
        *,
        subject: str | None = None,
        attributes: Mapping[str, str] | None = None,
        traceparent: str | None = None,
        hop_count: int = 0,
    ) -> str:
        """Publish `message` to `topic`; returns its SNS message id once the message is durable.

        Raises InvalidInputError naming what is wrong (the topic name, a
        message that is not a non-empty str or is over 256 KiB with its
        attributes, the subject, an attribute name or a value that is not a
        str); nothing is stored then. `traceparent` and `hop_count` carry an
        invocation's trace and the loop guard's count on to the subscribers.
        """
        check_topic(topic)
        if isinstance(hop_count, bool) or not isinstance(hop_count, int) or hop_count < 0:
            raise InvalidInputError(f"hop_count must be a whole number from 0, not {hop_count!r}")
        built = new_message(
            message,
            subject=subject,
            attributes=attributes,
            hop_count=hop_count,
            traceparent=traceparent,
            clock=self.clock,
        )
        await self.publisher.publish_message(topic, built)
        return built.message_id

    # --- subscriptions ---------------------------------------------------------------------------

    async def subscribe(
        self,
        topic: str,
        kind: SubscriptionKind,
        endpoint: str,
        *,
        filter: Mapping[str, Any] | None = None,
        filter_scope: str = "attributes",
        raw: bool = False,
        secret: str | None = None,
        dead_letter: str | None = None,
        retry: DeliveryRetry | Mapping[str, Any] | None = None,
        pending: bool = False,
    ) -> Subscription:
        """Subscribe a function, a queue or a webhook to `topic`, durably; returns the subscription.

        `kind` is "function" (`endpoint` a function of the app), "queue" (a
        queue name) or "webhook" (an http:// or https:// URL). `filter` is an
        EventBridge pattern matched against the message attributes
        (`filter_scope="attributes"`, SNS's default) or its JSON body
        ("body"). `raw` delivers the message itself to a queue or webhook
        instead of the SNS notification JSON; `secret` signs webhooks;
        `dead_letter` names the queue that gets what could not be delivered;
        `retry` is a DeliveryRetry (or its dict form). Subscribing the same
        endpoint again with the same settings returns the existing
        subscription. `pending` (webhooks: SNS's Subscribe over the AWS
        endpoint) holds deliveries until `confirm`. Raises InvalidInputError
        (InvalidPatternError for the filter) naming what is wrong,
        FunctionNotFoundError for a function the app does not declare.
        """
        subscription = Subscription.from_dict(
            {
                "topic": topic,
                "kind": kind,
                "endpoint": endpoint,
                "filter": None if filter is None else _filter(filter, topic),
                "filter_scope": filter_scope,
                "raw": raw,
                "secret": secret,
                "dead_letter": dead_letter,
                "retry": retry.to_dict() if isinstance(retry, DeliveryRetry) else retry,
                "created_at": self.clock(),
                "pending": pending,
            }
        )
        if kind == "function" and endpoint not in self.specs:
            known = ", ".join(sorted(self.specs)) or "none"
            raise FunctionNotFoundError(f"no function named {endpoint!r} to subscribe; the app declares: {known}")
        await self.registry.load()
        return await self.registry.add(subscription)

    async def unsubscribe(self, subscription: Subscription | str) -> bool:
        """Remove a run-time subscription (a Subscription or its ARN); False when there is none.

        Raises InvalidInputError for an app subscription: those change with the code.
        """
        arn = subscription.arn if isinstance(subscription, Subscription) else subscription
        if not isinstance(arn, str):
            raise InvalidInputError(f"unsubscribe takes a Subscription or its ARN, not {type(arn).__name__}")
        await self.registry.load()
        found = self.registry.get(arn)
        return False if found is None else await self.registry.remove(found)

    async def change(self, subscription: Subscription) -> Subscription:
        """Store new settings (or the confirmation) of a run-time subscription, found by its ARN."""
        await self.registry.load()
        return await self.registry.replace(subscription)

    async def subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """The subscriptions of `topic` (or of every topic), as the store has them now: the app's first."""
        if topic is not None:
            check_topic(topic)
        await self.registry.load()
        return self.registry.of(topic)

    # --- what the LogConsumer asks -------------------------------------------------------------

    def stream(self, name: str) -> str:
        return topic_stream(name)

    async def names(self) -> list[str]:
        """Every topic with subscriptions or with messages in the log."""
        logged = [topic for topic in map(topic_of_stream, await self.store.log.streams()) if topic is not None]
        return sorted({*self.registry.topics(), *logged})

    async def reload(self) -> None:
        await self.registry.load()

    def workers(self, name: str) -> list[Coroutine[Any, Any, None]]:
        return [self.deliverer.run(name, self._stop)]

    async def consume(self, name: str, records: list[LogRecord]) -> list[Op]:
        """Every matching subscription's delivery as a write: a function subscriber's asynchronous invocation
        straight into its queue (it has Lambda's retries, as SNS hands messages to Lambda), every other one
        (and an invocation that cannot be queued) a message on `topic-deliver.<topic>`."""
        if not self.registry.loaded:
            # Fanning out before the stored subscriptions are known would skip them for good.
            await self.registry.load()
        if self.deliverer.signing is not None:
            await self.deliverer.signing.ready({name})
        now = self.clock()
        invocations: dict[str, list[OutgoingMessage]] = {}
        queued: list[TopicDelivery] = []
        for record in records:
            try:
                message = TopicMessage.from_json(record.data)
            except ValueError as exc:
                # Publishers validate on write, so this is a store written by something else: keep it, visibly.
                await park(self.store.log, record, f"topic {name!r}: not a readable topic message: {exc}")
                continue
            for subscription in self.registry.matching(name, message):
                delivery = TopicDelivery(subscription, message, queued_at=now)
                invocation = self._invocation(delivery)
                if invocation is None:
                    queued.append(delivery)
                else:
                    invocations.setdefault(invocation[0], []).append(invocation[1])
        writes: list[Op] = [Send(queue, messages) for queue, messages in invocations.items()]
        if queued:
            writes.append(Send(self.deliverer.queue(name), [delivery.to_message() for delivery in queued]))
        return writes

    def _invocation(self, delivery: TopicDelivery) -> tuple[str, OutgoingMessage] | None:
        """A function subscriber's invocation message, or None when it is not one (or cannot be queued: the
        delivery queue then dead-letters it, naming why)."""
        subscription, message = delivery.subscription, delivery.message
        invoker = self.targets.invoker
        if subscription.kind != "function" or invoker is None:
            return None
        event = signed_records(self.deliverer.signing, subscription, message)
        try:
            queue, queued, _ = invoker.message(
                subscription.endpoint,
                event,
                trigger="topic",
                traceparent=message.traceparent,
                hop_count=message.hop_count,
            )
        except (InvalidInputError, LookupError) as exc:
            logger.info(
                "topic %r: %r cannot be invoked, queued for its dead letters: %s",
                delivery.topic,
                subscription.endpoint,
                exc,
            )
            return None
        return queue, queued

    # --- running -----------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Consume every topic and deliver what is due now, once; returns how much was done (for tests)."""
        done = 0
        for topic in await self.names():
            while count := await self.pump(topic):
                done += count
            while count := await self.deliverer.run_once(topic):
                done += count
        return done

    async def drain(self, *, rounds: int = 100) -> None:
        """`deliver_due()` until nothing is left. Deliveries waiting out a retry's backoff are not waited for."""
        for _ in range(rounds):
            if not await self.deliver_due():
                return

    async def stop(self) -> None:
        """Stop the background work, release the locks, close the HTTP client (unless it was given)."""
        await super().stop()
        await self.deliverer.stop_confirmations()
        await self.targets.close()


def signed_records(signing: SnsSigning | None, subscription: Subscription, message: TopicMessage) -> dict[str, Any]:
    """The Lambda event of `message` for a function subscription, signed when there is a signer (ready)."""
    event = sns_records(subscription.topic, [message.sns()], subscription_id=subscription.id)
    if signing is not None:
        signing.sign_record(event["Records"][0]["Sns"], subscription.topic, subscription.arn)
    return event


def _filter(value: object, topic: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f'subscription to topic {topic!r}: the filter must be a dict pattern such as {{"kind": ["refund"]}},'
            f" not {type(value).__name__}"
        )
    return dict(value)


__all__ = ["Subscription", "TopicDeliverer", "TopicDelivery", "Topics"]
