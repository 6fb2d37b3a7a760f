"""One partition's batches: records shaped as Lambda's, IoT rules and filters applied, tumbling windows,
invocations (or the bus, with `to_bus`), and failure destinations. Used by `streams.consumer`'s readers."""

from __future__ import annotations

import base64
import contextlib
import datetime
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import orjson

from triggerfish.bus.publisher import Publisher
from triggerfish.errors import InvalidInputError, InvocationError
from triggerfish.events.cloudevent import Event
from triggerfish.events.patterns import compile_pattern
from triggerfish.names import STREAMS_NAMESPACE
from triggerfish.retry import RetryPolicy
from triggerfish.store import LogClaim, Store
from triggerfish.streams.batches import Attempt, GivenUp, Invoke, Item, run_batch
from triggerfish.streams.failures import BatchContext, failure_record, send_failure
from triggerfish.streams.iot_rules import compile_rule
from triggerfish.streams.records import decode_record, lambda_record, offset_of, partition_id
from triggerfish.streams.subscription import DeadLetters, StreamInvoker, StreamSubscription
from triggerfish.streams.windows import WindowState, returned_state, split_by_window, window_event

logger = logging.getLogger("triggerfish.streams")


class BatchOwner(Protocol):
    """What batches need of the consumers running them (`StreamConsumers`)."""

    store: Store
    invoker: StreamInvoker
    publisher: Publisher
    app: str
    retry_policy: RetryPolicy
    clock: Callable[[], float]
    #: Where records given up on go back to their broker (AMQP's dead-letter exchange), when a source can.
    dead_letters: DeadLetters | None


class PartitionBatches:
    """Runs one partition's batches: records as Lambda shapes them, rules and filters, windows, invocations
    (or the bus, with `to_bus`), failure destinations."""

    def __init__(self, owner: BatchOwner, sub: StreamSubscription, partition: int) -> None:
        self.owner = owner
        self.sub = sub
        self.partition = partition
        self.filters = [compile_pattern(text) for text in sub.filters]
        self.rule = None if sub.rule is None else compile_rule(sub.rule)
        self.window_key = f"window:{sub.owner_key(partition)}"

    def wanted(self, body: Mapping[str, Any], payload: bytes) -> bool:
        """Whether a record passes the filters: matched against its body, `data` decoded from JSON (Lambda's
        filter criteria; a payload that is not JSON has no `data` to match, so a filter naming it fails)."""
        if not self.filters:
            return True
        view = {key: value for key, value in body.items() if key != "data"}
        with contextlib.suppress(orjson.JSONDecodeError):
            view["data"] = orjson.loads(payload)
        return any(pattern.matches(view) for pattern in self.filters)

    async def run(self, claims: list[LogClaim], sleep: Callable[[float], Awaitable[None]]) -> None:
        """Run the claims' records until each is handled or given up on (the caller commits the claims)."""
        items = self.items(claims)
        if not items:
            return
        if self.sub.window:
            await self._run_windows(items, sleep)
            return
        await self._run(items, self.invoke, sleep)

    async def _run(self, items: Sequence[Item], invoke: Invoke, sleep: Callable[[float], Awaitable[None]]) -> None:
        await run_batch(
            items,
            invoke,
            self.sub.options,
            fail=self.fail,
            backoff=self.owner.retry_policy.backoff,
            sleep=sleep,
            clock=self.owner.clock,
        )

    def items(self, claims: list[LogClaim]) -> list[Item]:
        items: list[Item] = []
        for claim in claims:
            for stored in claim.records:
                try:
                    record = decode_record(stored.data)
                except InvalidInputError as exc:
                    logger.error("%s offset %d: %s", self.sub.stream(self.partition), stored.offset, exc)
                    continue
                if self.sub.records == "payload":
                    event = orjson.loads(record.payload)
                    if self.filters and not any(pattern.matches(event) for pattern in self.filters):
                        continue
                    sequence = event[self.sub.source]["SequenceNumber"]
                    items.append(Item(sequence, record.arrived, event, record.traceparent))
                    continue
                if self.rule is not None:
                    try:
                        selected = self.rule.apply(record.key, orjson.loads(record.payload))
                    except orjson.JSONDecodeError:
                        selected = None  # a rule reads JSON payloads: others have no fields to select
                    if selected is None:
                        continue  # dropped by the rule: never shown, and the checkpoint moves past it
                    record = replace(record, payload=orjson.dumps(selected))
                event = lambda_record(
                    record, stored, source=self.sub.source, partition=self.partition, source_arn=self.sub.source_arn
                )
                if not self.wanted(event[self.sub.source], record.payload):
                    continue  # filtered out: never shown, and the checkpoint moves past it
                items.append(Item(event[self.sub.source]["sequenceNumber"], record.arrived, event, record.traceparent))
        return items

    async def invoke(self, batch: Sequence[Item]) -> Attempt:
        if self.sub.to_bus is not None:
            return await self._to_bus(batch)
        # The first record's trace goes on; the others' are span links, as a queue batch's are.
        traces = list(dict.fromkeys(item.traceparent for item in batch if item.traceparent is not None))
        trace = {"traceparent": traces[0], "links": traces[1:]} if traces else {}
        return await self._invoke({"Records": [dict(item.record) for item in batch]}, **trace)

    async def _invoke(self, event: dict[str, Any], **trace: Any) -> Attempt:
        sub = self.sub
        try:
            result = await self.owner.invoker.invoke(
                sub.function, event, wait=min(sub.timeout + 1.0, 900.0), trigger=sub.source, **trace
            )
        except InvocationError as exc:
            logger.warning("%s: a batch of %d failed: %s", sub.stream(self.partition), len(event["Records"]), exc)
            return Attempt(False, error=str(exc))
        except Exception as exc:  # the platform's own failure: the batch did not run, so it is tried again
            logger.exception("%s: invoking %s failed", sub.stream(self.partition), sub.function)
            return Attempt(False, error=f"{type(exc).__name__}: {exc}")
        return Attempt(True, result)

    async def _to_bus(self, batch: Sequence[Item]) -> Attempt:
        """Publish the records as CloudEvents (ids from stream and offset, so a batch sent twice dedupes)."""
        assert self.sub.to_bus is not None
        events = [record_event(item.record, self.sub.source, self.sub.owner_key(self.partition)) for item in batch]
        try:
            await self.owner.publisher.publish(self.sub.to_bus, events)
        except Exception as exc:
            logger.exception("%s: publishing to bus %s failed", self.sub.stream(self.partition), self.sub.to_bus)
            return Attempt(False, error=f"{type(exc).__name__}: {exc}")
        return Attempt(True)

    # --- tumbling windows ---------------------------------------------------------------------

    async def _window(self) -> WindowState | None:
        stored = await self.owner.store.kv.get(STREAMS_NAMESPACE, self.window_key)
        return None if stored is None else WindowState.decode(stored.value)

    async def _run_windows(self, items: list[Item], sleep: Callable[[float], Awaitable[None]]) -> None:
        size = self.sub.window
        current = await self._window()
        if current is not None:
            # Records the state already holds (a batch run again after a crash) are not folded in twice.
            items = [item for item in items if offset_of(item.sequence) > current.through]
        for start, part in split_by_window(items, size):
            if current is not None and current.start != start:
                await self._final(current)
                current = None
            holder = [current.state if current is not None else {}]

            async def invoke(batch: Sequence[Item], start: float = start, holder: list[Any] = holder) -> Attempt:
                event = window_event(
                    [item.record for item in batch], start=start, size=size, state=holder[0], final=False,
                    shard=partition_id(self.partition), arn=self.sub.source_arn,
                )  # fmt: skip
                attempt = await self._invoke(event)
                if attempt.ok:
                    holder[0] = returned_state(attempt.result, holder[0])
                return attempt

            await self._run(part, invoke, sleep)
            current = WindowState(start, holder[0], offset_of(part[-1].sequence))
            # Written before the checkpoint moves: the state and the batch are checkpointed together.
            await self.owner.store.kv.put(STREAMS_NAMESPACE, self.window_key, current.encode())

    async def close_due(self) -> None:
        """Tell the function a window closed (`isFinalInvokeForWindow`) once its end has passed."""
        if not self.sub.window:
            return
        current = await self._window()
        if current is not None and current.start + self.sub.window <= self.owner.clock():
            await self._final(current)

    async def _final(self, current: WindowState) -> None:
        event = window_event(
            [], start=current.start, size=self.sub.window, state=current.state, final=True,
            shard=partition_id(self.partition), arn=self.sub.source_arn,
        )  # fmt: skip
        attempt = await self._invoke(event)
        if not attempt.ok:
            # Kept: the final invocation is tried again on the next pass (at least once, as on Lambda).
            raise InvocationError(f"the final invocation of a window failed: {attempt.error}")
        await self.owner.store.kv.delete(STREAMS_NAMESPACE, self.window_key)

    async def fail(self, gone: GivenUp) -> None:
        sub = self.sub
        if sub.dead_letter_exchange is not None:
            dead_letters = self.owner.dead_letters
            if dead_letters is None:  # a consumer without sources: the batch is settled by whoever reads it next
                raise InvocationError(f"nothing to dead-letter to {sub.dead_letter_exchange!r} with")
            reason = f"{gone.condition}: {gone.error}" if gone.error else gone.condition
            records = [item.record for item in gone.items]
            await dead_letters.dead_letter(sub.dead_letter_exchange, records, reason=reason)
            if sub.on_failure is None:
                return
        # Lambda names a DynamoDB stream's batch info `DDBStreamBatchInfo`, a Kinesis one `KinesisBatchInfo`.
        label = {"kinesis": "Kinesis", "dynamodb": "DDBStream"}.get(sub.source, sub.source.upper())
        context = BatchContext(self.owner.app, sub.function, label, sub.source_arn, self.partition)
        await send_failure(
            sub.on_failure,
            failure_record(gone, context, now=self.owner.clock()),
            store=self.owner.store,
            publisher=self.owner.publisher,
            invoker=self.owner.invoker,
        )


def record_event(record: Mapping[str, Any], source: str, stream: str) -> Event:
    """A stream record as a CloudEvent for a bus: the payload as `data` (JSON when it is), the key as `subject`."""
    body = record[source]
    payload = base64.b64decode(body["data"])
    try:
        data: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        data = {"base64": body["data"]}
    return Event(
        id=f"{stream}:{body['sequenceNumber']}",
        source=str(record["eventSourceARN"]),
        type=f"{source}.record",
        subject=str(body["partitionKey"]) or None,
        time=_iso(float(body["approximateArrivalTimestamp"])),
        datacontenttype="application/json",
        data=data,
        extensions={"sequence": str(body["sequenceNumber"])},
    )


def _iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
