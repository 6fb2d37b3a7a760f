"""Handing one event to one target: a function, a queue, a topic, another bus or a webhook.

What the target gets is the event in the target's shape (the CloudEvent as
JSON, or the EventBridge envelope), or, with an input transformer, the
filled template. `Targets.deliver()` returns when the target has it (for a
function: when the invocation is durably queued) and raises when it does
not; `delivery.py` decides about retries.

A topic target publishes the payload's JSON text as the topic's message:
it appends the topic's own record to `topic.<name>`, which the topic's
consumer (triggerfish/triggers/topics.py) fans out to the subscriptions.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from triggerfish.bus import webhook
from triggerfish.bus.publisher import Publisher
from triggerfish.bus.rules import RuleTarget
from triggerfish.errors import InvalidInputError, NonRetryable
from triggerfish.events.cloudevent import Event
from triggerfish.events.eventbridge import to_envelope
from triggerfish.events.http_binding import STRUCTURED_CONTENT_TYPE
from triggerfish.identity import bus_rule_arn
from triggerfish.names import HOPCOUNT_ATTRIBUTE, TRACEPARENT_ATTRIBUTE
from triggerfish.store import OutgoingMessage, Store
from triggerfish.triggers.sns import new_message

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("triggerfish.bus")


class AsyncInvoker(Protocol):
    """What runs a function target: `invoke_async` queues an invocation; `message` builds one without sending
    it, for a consumer that stores it together with other writes (see `Invoker.message`)."""

    async def invoke_async(
        self,
        function: str,
        event: Any = None,
        *,
        trigger: str = ...,
        traceparent: str | None = ...,
        hop_count: int = ...,
    ) -> str: ...

    def message(
        self,
        function: str,
        event: Any,
        *,
        trigger: str,
        traceparent: str | None = ...,
        hop_count: int = ...,
        consumed: dict[str, str] | None = ...,
    ) -> tuple[str, OutgoingMessage, str]: ...


def render(target: RuleTarget, event: Event, *, bus: str, rule_id: str, ingested: float) -> Any:
    """What `target` receives for `event`: a JSON value, or text when a transformer's output is not JSON."""
    # AWS's keys only: what an EventBridge target gets (the CloudEvent itself: shape="cloudevent").
    document = to_envelope(event, extras=False) if target.shape == "eventbridge" else event.to_dict()
    if target.transformer is None:
        return document
    moment = datetime.datetime.fromtimestamp(ingested, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = target.transformer.render(
        document, rule_name=rule_id, rule_arn=bus_rule_arn(bus, rule_id), ingestion_time=moment
    )
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _body(payload: Any) -> bytes:
    return payload.encode("utf-8") if isinstance(payload, str) else orjson.dumps(payload)


class Targets:
    """Delivers to every kind of target. `invoker` is needed for function targets; buses and topics are
    written through `publisher` (default: a new one on `store`)."""

    def __init__(
        self,
        store: Store,
        *,
        invoker: AsyncInvoker | None = None,
        publisher: Publisher | None = None,
        http: httpx.AsyncClient | None = None,
        webhook_timeout: float = webhook.DEFAULT_TIMEOUT,
    ) -> None:
        self.store = store
        self.invoker = invoker
        self.publisher = publisher or Publisher(store)
        self._http = http
        self._own_http = http is None
        self.webhook_timeout = webhook_timeout

    async def close(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def deliver(self, target: RuleTarget, event: Event, *, bus: str, rule_id: str, ingested: float) -> None:
        """Hand `event` to `target`. Raises NonRetryable for failures a retry cannot fix, other errors otherwise."""
        hops = event.hopcount or 0
        if target.kind == "bus":
            await self._to_bus(target, event, hops)
            return
        payload = render(target, event, bus=bus, rule_id=rule_id, ingested=ingested)
        if target.kind == "function":
            if self.invoker is None:
                raise NonRetryable(f"function target {target.name!r}: this bus has no invoker to run functions")
            try:
                await self.invoker.invoke_async(
                    target.name, payload, trigger="event", traceparent=event.traceparent, hop_count=hops
                )
            except InvalidInputError as exc:
                raise NonRetryable(f"function target {target.name!r}: {exc}") from None
            except LookupError as exc:
                raise NonRetryable(f"function target {target.name!r}: {exc}") from None
        elif target.kind == "queue":
            attributes = {HOPCOUNT_ATTRIBUTE: str(hops)}
            if event.traceparent:
                attributes[TRACEPARENT_ATTRIBUTE] = event.traceparent
            await self.store.queues.send(target.name, _body(payload), attributes=attributes)
        elif target.kind == "topic":
            try:
                message = new_message(
                    _body(payload).decode("utf-8"), hop_count=hops, traceparent=event.traceparent, limit=None
                )
            except InvalidInputError as exc:
                raise NonRetryable(f"topic target {target.name!r}: {exc}") from None
            await self.publisher.publish_message(target.name, message)
        else:
            await self._to_webhook(
                target, _body(payload), structured=target.shape == "cloudevent" and target.transformer is None
            )

    async def _to_bus(self, target: RuleTarget, event: Event, hops: int) -> None:
        # One hop further: the publisher's loop guard keeps (and does not retry) what went round too often.
        await self.publisher.publish(target.name, [event.with_extensions(hopcount=hops + 1)])

    async def _to_webhook(self, target: RuleTarget, body: bytes, *, structured: bool) -> None:
        # A CloudEvent as it is goes in the HTTP binding's structured mode, which names its media type.
        headers = {"content-type": STRUCTURED_CONTENT_TYPE} if structured else None
        await self.post(target.name, body, secret=target.secret, headers=headers)

    async def post(self, url: str, body: bytes, *, secret: str | None, headers: dict[str, str] | None = None) -> None:
        """POST a webhook (signed when there is a secret); raises NonRetryable for answers a retry cannot change."""
        if self._http is None:
            import httpx  # at the first webhook: the platform imports this module, and httpx is slow to import

            self._http = httpx.AsyncClient()
        try:
            await webhook.send(self._http, url, body, secret=secret, headers=headers, timeout=self.webhook_timeout)
        except webhook.WebhookError as exc:
            if not exc.retryable:
                raise NonRetryable(str(exc)) from None
            raise


__all__ = ["AsyncInvoker", "Targets", "render"]
