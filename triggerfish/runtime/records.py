"""Invocation records: what ran, how it went, how long it took and what it would bill.

One record per attempt, stored once: a row of the event log, in stream `invocations.<function>`, with the two
keys it is found by besides (`EventLog.find`):

- the stream holds a function's records in the order they were written, read by time range (the log indexes
  time) and followed as they come (`triggerfish logs --follow`, usage). Records finishing together are appended
  in one batch, so listing costs next to nothing per invocation;
- its first key, `r/<request id>/<attempt>`, finds one invocation's attempts at once (a prefix);
- its second key, `t/<trace id>/<span id>`, finds the attempts of a trace: a trace's reader builds each one's span
  from its record (triggerfish.observe.traces).

Earlier versions wrote each record twice: the same row (without keys), and a key-value copy under
`r/<request id>/<attempt>` (namespace `invocations`) beside a trace index entry under `t/<trace id>/<span id>`
(namespace `triggerfish.traces`; the span's JSON, or a pointer to the copy). Those are still read, and expire on
their own (a ttl).

Retention: the log streams are trimmed to the retention's age as records are written and read; a record's keys go
with its row.

The input an invocation was given is kept with its record when the function keeps inputs (`keep_inputs`,
triggerfish.runtime.inputs): inside the record's row, as its last field `kept_input`, so it costs no row of its
own and goes with the record. Earlier versions kept it in the key-value copy the same way, or in a row of its own,
key `i/<request id>`, which is still read; so is an input too large to share its record's row (the store's limit
on a body), which is written so.

A record is stored as a JSON object without the fields that hold their defaults (no error, no HTTP
route, nothing consumed, ...: `encode_record`): about 30% fewer bytes, and every reader,
this version's and earlier ones', builds the record with `InvocationRecord(**document)`, which fills
them back in. Records written whole (by earlier versions) read the same.

Why one row with keys and not a key-value record with a time-ordered key: the log is what listing by time and
following need (a function's records in the order they were written, a waiting read for the next), and a log row
with two keys is four B-tree entries (the row, its offset and its two keys) where the two copies and the trace
entry were eight (docs/architecture.md, rec14).

Billing follows Lambda: the duration is billed rounded up to the whole
millisecond, and GB-seconds are `billed_ms / 1000 * memory_mb / 1024`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, Generic, Literal, TypeVar

import orjson

from triggerfish.errors import InvalidInputError
from triggerfish.model import FunctionSettings
from triggerfish.names import (
    INVOCATIONS_NAMESPACE,
    OUT_OF_MEMORY_ERROR,
    RECORD_STREAM_PREFIX,
    SANDBOX_TIMEOUT_ERROR,
    TIMEOUT_ERROR,
    record_stream,
)
from triggerfish.observe.spans import trace_key
from triggerfish.runtime.background_writes import BackgroundWrites
from triggerfish.runtime.inputs import KeptInput, keep_input, read_input, shown_input
from triggerfish.runtime.types import InvokeOutcome, InvokeRequest
from triggerfish.store import Store
from triggerfish.store.atomic import Append, Op, Put
from triggerfish.store.base import RecordKeys

T = TypeVar("T")
R = TypeVar("R")

#: Told of each record once it is stored (metrics, usage, `triggerfish dev`'s invocation lines); must be quick.
RecordListener = Callable[["InvocationRecord"], None]

#: Records are kept this long unless the Invoker is told otherwise: 7 days.
DEFAULT_RETENTION = 7 * 24 * 3600.0
#: The errorType runners use for an invocation that ran past its timeout.
TIMEOUT_ERROR_TYPES = frozenset({TIMEOUT_ERROR, SANDBOX_TIMEOUT_ERROR})

Status = Literal["succeeded", "failed", "timed_out", "out_of_memory", "throttled", "expired"]
STATUSES: tuple[str, ...] = ("succeeded", "failed", "timed_out", "out_of_memory", "throttled", "expired")

#: Seconds the record of a sync invocation waits for others to share its write (`add_soon`): under load one
#: transaction (and one wake-up of the store's writer thread, and one back) per few milliseconds, not per turn of
#: the event loop; alone, a record is committed that much later (reads of the records wait for it).
SYNC_RECORD_GATHER = 0.005
#: How often (seconds) writing records also trims the log streams to the retention.
TRIM_INTERVAL = 60.0
# A record is appended when its attempt ended, at most the longest timeout (plus slack) after it
# started: a time-range query by start time reads the log that much further.
_END_SLACK = 900.0 + 60.0
_PAGE = 1000


@dataclass(slots=True)
class InvocationRecord:
    """One attempt of one invocation. Times are epoch seconds; durations milliseconds."""

    request_id: str
    function: str
    version: str | None
    trigger: str
    attempt: int
    status: str
    started_at: float
    ended_at: float
    duration_ms: float
    billed_duration_ms: int
    memory_mb: int
    gb_seconds: float
    cold_start: bool = False
    init_duration_ms: float | None = None
    error: dict[str, Any] | None = None
    output: str = ""
    output_truncated: bool = False
    worker_pid: int | None = None
    #: The attempt's span: its trace, its own span id and its caller's (None: it started the trace).
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    #: The REPORT line's Max Memory Used, in MB (None: not measured; records written before it was).
    max_memory_used_mb: int | None = None
    #: Traceparents of a batch's other messages: the span's links (empty for one message).
    links: tuple[str, ...] = ()
    #: Bytes of the event's JSON the handler was sent, and of its result's JSON (0: none; records written before
    #: they were measured): usage's data in and out.
    input_bytes: int = 0
    output_bytes: int = 0
    #: An HTTP invocation's route (API Gateway's routeKey, `GET /orders/{id}`) and the status it answered with
    #: (None: not an HTTP invocation): its span's HTTP attributes.
    http_route: str | None = None
    http_status: int | None = None
    #: What an event, queue or topic invocation consumed, in OpenTelemetry's messaging and CloudEvents terms
    #: (`messaging.destination.name`, `cloudevents.event_id`, ...): its span's attributes (None: nothing).
    consumed: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The record's fields every stored record has, and those left out of it when they hold their default.
_ALWAYS = tuple(f.name for f in fields(InvocationRecord) if f.default is MISSING)
_UNLESS_DEFAULT = tuple((f.name, f.default) for f in fields(InvocationRecord) if f.default is not MISSING)


def encode_record(record: InvocationRecord) -> bytes:
    """A record as it is stored: its JSON, without the fields that hold their defaults (`InvocationRecord(**doc)`
    gives them back). Also quicker than orjson's own writing of the whole dataclass."""
    document = {name: getattr(record, name) for name in _ALWAYS}
    for name, default in _UNLESS_DEFAULT:
        value = getattr(record, name)
        if value != default or type(value) is not type(default):
            document[name] = value
    return orjson.dumps(document)


def billed_ms(duration_ms: float) -> int:
    """Lambda bills the duration rounded up to the whole millisecond (and at least 1 ms)."""
    return max(1, math.ceil(max(duration_ms, 0.0) - 1e-9))


def gb_seconds(billed: int, memory_mb: int) -> float:
    return billed / 1000.0 * memory_mb / 1024.0


def status_of(outcome: InvokeOutcome) -> Status:
    if outcome.ok:
        return "succeeded"
    error_type = None if outcome.error is None else outcome.error.get("errorType")
    if error_type in TIMEOUT_ERROR_TYPES:
        return "timed_out"
    if error_type == OUT_OF_MEMORY_ERROR:
        return "out_of_memory"
    return "failed"


def record_from_outcome(
    request: InvokeRequest,
    outcome: InvokeOutcome,
    *,
    memory_mb: int,
    status: Status | None = None,
    event: Any = None,
    consumed: dict[str, Any] | None = None,
) -> InvocationRecord:
    """The record of an attempt; `event` is the request's event in another form where its own is opaque (the
    bytes of a queued invocation's, which the request carries as an orjson.Fragment); `consumed`, what the
    invocation consumed when its queuer said (the event is not read for it then)."""
    billed = billed_ms(outcome.duration_ms)
    return InvocationRecord(
        request_id=request.request_id,
        function=request.function,
        version=outcome.version or request.version,
        trigger=request.trigger,
        attempt=request.attempt,
        status=status or status_of(outcome),
        started_at=outcome.started_at,
        ended_at=outcome.ended_at,
        duration_ms=outcome.duration_ms,
        billed_duration_ms=billed,
        memory_mb=memory_mb,
        gb_seconds=gb_seconds(billed, memory_mb),
        cold_start=outcome.cold_start,
        init_duration_ms=outcome.init_duration_ms,
        error=outcome.error,
        output=outcome.output,
        output_truncated=outcome.output_truncated,
        worker_pid=outcome.worker_pid,
        trace_id=_trace_of(request),
        span_id=_span_of(request),
        parent_span_id=request.parent_span_id,
        max_memory_used_mb=outcome.max_memory_used_mb,
        links=request.links,
        input_bytes=outcome.input_bytes,
        output_bytes=outcome.output_bytes,
        **(_http_of(request, outcome) if request.trigger == "http" else {}),
        consumed=consumed
        if consumed is not None
        else consumed_attributes(request.trigger, request.event if event is None else event),
    )


def _http_of(request: InvokeRequest, outcome: InvokeOutcome) -> dict[str, Any]:
    """The route of an HTTP invocation's event and the status the gateway answered with: the handler's
    `statusCode` (200 without one), 504 for a timeout, 500 for any other failure."""
    event = request.event
    route = event.get("routeKey") if isinstance(event, dict) else None
    if outcome.ok:
        result = outcome.result
        code = result.get("statusCode") if isinstance(result, dict) else None
        status = code if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599 else 200
    else:
        status = 504 if status_of(outcome) == "timed_out" else 500
    return {"http_route": route if isinstance(route, str) else None, "http_status": status}


def event_consumed(event_id: object, source: object, kind: object) -> dict[str, str]:
    """What an invocation of an event consumed: the CloudEvent's id, source and type (those that are strings)."""
    found = {
        "messaging.system": "triggerfish",
        "messaging.operation.type": "process",
        "cloudevents.event_id": event_id,
        "cloudevents.event_source": source,
        "cloudevents.event_type": kind,
    }
    return {name: value for name, value in found.items() if isinstance(value, str)}


def consumed_attributes(trigger: str, event: object) -> dict[str, Any] | None:
    """The messaging and CloudEvents attributes of what an invocation consumed, read off its event.

    An event (EventBridge's envelope, or a CloudEvent for `format="cloudevents"`) gives its id,
    source and type; SQS and SNS records give the queue or topic (the last part of their ARN), and
    one record its message id, a batch its size.
    """
    if trigger not in ("event", "queue", "topic"):
        return None
    if isinstance(event, bytes):  # a queued invocation's event, as the dispatcher has it
        try:
            event = orjson.loads(event)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(event, dict):
        return None
    if trigger == "event":
        kind = event.get("type") if "specversion" in event else event.get("detail-type")
        return event_consumed(event.get("id"), event.get("source"), kind)
    records = event.get("Records")
    if not isinstance(records, list) or not records or not isinstance(records[0], dict):
        return None
    first = records[0]
    sns = first.get("Sns")
    arn = sns.get("TopicArn") if isinstance(sns, dict) else first.get("eventSourceARN")
    message_id = sns.get("MessageId") if isinstance(sns, dict) else first.get("messageId")
    attributes: dict[str, Any] = {"messaging.system": "triggerfish", "messaging.operation.type": "process"}
    if isinstance(arn, str):
        attributes["messaging.destination.name"] = arn.rsplit(":", 1)[-1]
    if len(records) == 1 and isinstance(message_id, str):
        attributes["messaging.message.id"] = message_id
    else:
        attributes["messaging.batch.message_count"] = len(records)
    return attributes


def unrun_record(
    request: InvokeRequest, status: Status, error: dict[str, Any], *, at: float, memory_mb: int
) -> InvocationRecord:
    """A record of an attempt that never ran: throttled, or expired before it could run. Bills nothing."""
    return InvocationRecord(
        request_id=request.request_id,
        function=request.function,
        version=request.version,
        trigger=request.trigger,
        attempt=request.attempt,
        status=status,
        started_at=at,
        ended_at=at,
        duration_ms=0.0,
        billed_duration_ms=0,
        memory_mb=memory_mb,
        gb_seconds=0.0,
        error=error,
        trace_id=_trace_of(request),
        span_id=_span_of(request),
        parent_span_id=request.parent_span_id,
    )


def _trace_of(request: InvokeRequest) -> str | None:
    """The trace id of the span the request runs in (the invokers give every request a valid traceparent)."""
    traceparent = request.traceparent
    return traceparent[3:35] if traceparent is not None and len(traceparent) >= 55 else None


def _span_of(request: InvokeRequest) -> str | None:
    traceparent = request.traceparent
    return traceparent[36:52] if traceparent is not None and len(traceparent) >= 55 else None


log = logging.getLogger("triggerfish.runtime")


class BatchWriter(Generic[T, R]):
    """Coalesces concurrent writes: items arriving while one batch is written go out in the next.

    `write` takes the batch and returns one result per item. Under load every
    store round trip carries many items; alone, an item goes out at once.
    """

    def __init__(self, write: Callable[[list[T]], Awaitable[Sequence[R]]]) -> None:
        self._write = write
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        # The flushing task's loop while a batch is written (under load, nearly every item): asking for the running
        # loop is a getpid system call on Python 3.11.
        task = self._task
        loop = task.get_loop() if self._flushing and task is not None else asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if not self._flushing:
            self._flushing = True
            self._task = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._write([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._flushing = False


class InvocationRecords:
    """Writes and queries invocation records in a store. `retention` is in seconds."""

    def __init__(
        self,
        store: Store,
        *,
        retention: float = DEFAULT_RETENTION,
        clock: Callable[[], float],
        listeners: list[RecordListener] | None = None,
        keep_inputs: bool = False,
    ) -> None:
        if isinstance(retention, bool) or not isinstance(retention, int | float) or not 0 < retention <= 1e9:
            raise InvalidInputError(f"record retention must be a number of seconds above 0, not {retention!r}")
        self.store = store
        self.retention = float(retention)
        self.clock = clock
        #: Told of every record stored through this object, after its write (a list shared with the platform,
        #: so listeners added later hear every version's records).
        self.listeners: list[RecordListener] = [] if listeners is None else listeners
        #: Whether a function that does not say (`keep_inputs` unset) has its invocations' inputs kept.
        self.keep_inputs = keep_inputs
        self._writers: dict[str, BatchWriter[_Entry, None]] = {}
        self._last_trim = clock()
        #: The records of `add_soon`, written in batches off the request path.
        self._soon: BackgroundWrites[tuple[InvocationRecord, KeptInput | None]] = BackgroundWrites(
            self._write_soon, gather=SYNC_RECORD_GATHER
        )

    def kept_input(self, request: InvokeRequest, settings: FunctionSettings) -> KeptInput | None:
        """`request`'s input as it is to be stored with its record, or None when its function does not keep inputs."""
        keep = self.keep_inputs if settings.keep_inputs is None else settings.keep_inputs
        return keep_input(request) if keep else None

    async def input(self, request_id: str) -> dict[str, Any] | None:
        """The kept input of an invocation (triggerfish.runtime.inputs.read_input), or None: not kept, or expired.

        Found in its latest attempt's record that holds one, or in a row of its own (earlier versions', or one
        too large to share its record's)."""
        await self.settled()
        for stored in reversed(await self._stored(request_id)):
            document = orjson.loads(stored).get(_INPUT_FIELD)
            if isinstance(document, dict):
                return shown_input(document)
        found = await self.store.kv.get(INVOCATIONS_NAMESPACE, _input_key(request_id))
        return None if found is None else read_input(found.value)

    async def _stored(self, request_id: str) -> list[bytes]:
        """Every attempt of an invocation as stored, first to last: log rows found by their key, and the key-value
        copies of earlier versions (a record is in one or the other, never both).

        The copies are looked for only when the rows do not begin with the first attempt: an invocation whose first
        attempt this version stored has all its attempts stored so (a read here is a round trip to the store's
        reader, as costly as what it reads)."""
        prefix = f"r/{request_id}/"
        # Rows older than the retention that the streams' next trim has not reached yet read as gone, as expired
        # copies do.
        kept_since = self.store.log.clock() - self.retention
        rows = [
            (key, row.data)
            for key, row in await self.store.log.find(prefix, limit=10_000)
            if row.time >= kept_since and row.stream.startswith(RECORD_STREAM_PREFIX)
        ]
        if rows and rows[0][0] == record_key(request_id, 1):
            return [data for _, data in rows]
        copies = await self.store.kv.scan(INVOCATIONS_NAMESPACE, prefix=prefix, limit=10_000)
        by_key = {row.key: row.value for row in copies}
        by_key.update(rows)
        return [by_key[key] for key in sorted(by_key)]

    def _fits(self, body: bytes, document: bytes) -> bool:
        """Whether a record and its input fit in one log row (far the common case: inputs are cut at 64 KiB,
        bodies may have 1 MiB)."""
        return len(body) + len(document) + _INPUT_OVERHEAD <= self.store.log.max_record_bytes

    def add_soon(self, record: InvocationRecord, kept: KeptInput | None = None) -> None:
        """Store a record in the background: the sync path answers its caller without waiting for the commit.

        Every read here (`get`, `attempts`, `query`) and `settled()` waits
        for the records given so far, so whoever asks sees them; a crash in
        the moment between the answer and the commit loses the record, not
        the invocation (whose result the caller already has).
        """
        self._soon.add((record, kept))

    async def settled(self) -> None:
        """Wait until every record given to `add_soon` so far is stored (or its write failed and was logged)."""
        await self._soon.settled()

    async def _write_soon(self, batch: list[tuple[InvocationRecord, KeptInput | None]]) -> None:
        """Records of `add_soon` that arrived together: their rows (and inputs) in one atomic write (one
        operation of the store's writer, however many records). When it fails, each record goes alone, so that
        one bad record loses only itself."""
        records = [record for record, _ in batch]
        try:
            await self.store.atomic(self.writes(records, [kept for _, kept in batch if kept is not None]))
        except Exception:
            if len(batch) > 1:
                for item in batch:
                    await self._write_soon([item])
                return
            record = records[0]
            log.exception("invocation record %s (attempt %d) could not be stored", record.request_id, record.attempt)
            return
        self.stored(records)
        await self.trim_when_due()

    async def add(self, record: InvocationRecord, kept: KeptInput | None = None) -> None:
        """Store a record, and its invocation's input if `kept` (durable when this returns)."""
        body = encode_record(record)
        stream = record_stream(record.function)
        writer = self._writers.get(stream)
        if writer is None:
            writer = self._writers[stream] = BatchWriter(functools.partial(self._write, stream))
        await writer.submit((record_keys(record), body, kept))
        self.stored((record,))
        await self.trim_when_due()

    async def add_many(self, records: Sequence[InvocationRecord]) -> None:
        """Store several records at once (all durable when this returns): one write per function."""
        by_stream: dict[str, list[_Entry]] = {}
        for record in records:
            entry = (record_keys(record), encode_record(record), None)
            by_stream.setdefault(record_stream(record.function), []).append(entry)
        if len(by_stream) == 1:
            ((stream, batch),) = by_stream.items()
            await self._write(stream, batch)
        else:
            await asyncio.gather(*(self._write(stream, batch) for stream, batch in by_stream.items()))
        self.stored(records)
        await self.trim_when_due()

    def writes(self, records: Sequence[InvocationRecord], kept: Sequence[KeptInput] = ()) -> list[Op]:
        """The rows of `records` (with the `kept` inputs) as writes, for a caller that stores them with others in one
        `Store.atomic` (the dispatcher: the records of a batch of invocations and the acknowledgement of their
        messages)."""
        by_stream: dict[str, tuple[list[bytes], list[RecordKeys]]] = {}
        # Each input goes into its record's row; one whose record is not here goes alone.
        inputs_of = dict(kept) if kept else None
        for record in records:
            body = encode_record(record)
            if inputs_of is not None:
                document = inputs_of.get(record.request_id)
                if document is not None and self._fits(body, document):
                    body = _with_input(body, document)
                    del inputs_of[record.request_id]
            stream = record_stream(record.function)
            rows = by_stream.get(stream)
            if rows is None:
                rows = by_stream[stream] = ([], [])
            rows[0].append(body)
            rows[1].append(record_keys(record))
        inputs = [
            Put(INVOCATIONS_NAMESPACE, _input_key(key), document, ttl=self.retention)
            for key, document in (inputs_of or {}).items()
        ]
        return [*(Append(stream, bodies, keys) for stream, (bodies, keys) in by_stream.items()), *inputs]

    def stored(self, records: Sequence[InvocationRecord]) -> None:
        """Tell the listeners that `records` are stored (`add` and `add_many` do; a caller of `writes` does after
        its write). A listener that fails is logged and never fails the invocation."""
        for listener in self.listeners:
            for record in records:
                try:
                    listener(record)
                except Exception:
                    log.exception("an invocation record listener failed on %s", record.request_id)

    async def trim_when_due(self) -> None:
        """Trim the record streams when the last trim is TRIM_INTERVAL old."""
        if self.clock() - self._last_trim > TRIM_INTERVAL:
            self._last_trim = self.clock()
            await self.trim()

    async def _write(self, stream: str, batch: list[_Entry]) -> list[None]:
        """A batch of records' rows, with their keys, in one append (an input too large to share its record's row
        goes in a put of its own, written at the same time)."""
        bodies: list[bytes] = []
        keys: list[RecordKeys] = []
        inputs: list[tuple[str, bytes]] = []
        for found, body, kept in batch:
            if kept is not None:
                if self._fits(body, kept[1]):
                    body = _with_input(body, kept[1])
                else:
                    inputs.append((_input_key(kept[0]), kept[1]))
            bodies.append(body)
            keys.append(found)
        if inputs:
            await asyncio.gather(
                self.store.log.append_many(stream, bodies, keys=keys),
                self.store.kv.put_many(INVOCATIONS_NAMESPACE, inputs, ttl=self.retention),
            )
        else:
            await self.store.log.append_many(stream, bodies, keys=keys)
        return [None] * len(batch)

    async def trim(self) -> int:
        """Drop records older than the retention from the log streams; returns how many went."""
        removed = 0
        for stream in await self._streams():
            removed += await self.store.log.trim(stream, max_age=self.retention)
        return removed

    async def get(self, request_id: str) -> InvocationRecord | None:
        """The latest attempt of an invocation, or None when there is no record (or it expired)."""
        attempts = await self.attempts(request_id)
        return attempts[-1] if attempts else None

    async def attempts(self, request_id: str) -> list[InvocationRecord]:
        """Every recorded attempt of an invocation, first to last."""
        if not isinstance(request_id, str) or not request_id or "/" in request_id:
            raise InvalidInputError(f"a request id is a non-empty string without '/', not {request_id!r}")
        await self.settled()
        return [decode_record(stored) for stored in await self._stored(request_id)]

    async def query(
        self,
        function: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[InvocationRecord]:
        """Records of `function` (or all), with `status`, started in [since, until), oldest start first.

        `status` is one of succeeded, failed, timed_out, out_of_memory, throttled, expired.
        At most `limit` records: the oldest that match.
        """
        if status is not None and status not in STATUSES:
            raise InvalidInputError(f"unknown invocation status {status!r}; use one of {', '.join(STATUSES)}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInputError(f"limit must be a whole number of at least 1, not {limit!r}")
        for name, value in (("since", since), ("until", until)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InvalidInputError(f"{name} must be a time in epoch seconds, not {value!r}")
        if function is not None and (not isinstance(function, str) or not function):
            raise InvalidInputError(f"a function name is a non-empty string, not {function!r}")
        await self.settled()
        if self.clock() - self._last_trim > TRIM_INTERVAL:
            self._last_trim = self.clock()
            await self.trim()
        streams = [record_stream(function)] if function is not None else await self._streams()
        found: list[InvocationRecord] = []
        for stream in streams:
            found.extend(await self._read(stream, status, since, until))
        found.sort(key=lambda r: (r.started_at, r.request_id, r.attempt))
        return found[:limit]

    async def _read(
        self, stream: str, status: str | None, since: float | None, until: float | None
    ) -> list[InvocationRecord]:
        log = self.store.log
        read_until = None if until is None else until + _END_SLACK
        found: list[InvocationRecord] = []
        after = 0
        while True:
            page = await log.read(stream, after=after, since=since, until=read_until, limit=_PAGE)
            for raw in page:
                record = decode_record(raw.data)
                if status is not None and record.status != status:
                    continue
                if since is not None and record.started_at < since:
                    continue
                if until is not None and record.started_at >= until:
                    continue
                found.append(record)
            if len(page) < _PAGE:
                return found
            after = page[-1].offset

    async def _streams(self) -> list[str]:
        return [s for s in await self.store.log.streams() if s.startswith(RECORD_STREAM_PREFIX)]


def record_key(request_id: str, attempt: int) -> str:
    """The key an attempt's record is found by: its log row's first key (`EventLog.find`), and where earlier versions
    kept its copy in the records' key-value namespace (`INVOCATIONS_NAMESPACE`)."""
    return f"r/{request_id}/{attempt:05d}"


def record_keys(record: InvocationRecord) -> RecordKeys:
    """The keys of an attempt's log row: `record_key`, and its span's key in its trace (`t/<trace id>/<span id>`, as
    the trace index keys spans: triggerfish.observe.spans.trace_key) when it has one."""
    key = record_key(record.request_id, record.attempt)
    trace_id, span_id = record.trace_id, record.span_id
    return (key,) if trace_id is None or span_id is None else (key, trace_key(trace_id, span_id))


def _input_key(request_id: str) -> str:
    """Where an invocation's kept input is, beside its records (a prefix of its own: no scan of `r/` meets it)."""
    return f"i/{request_id}"


#: What a record becomes in the store: its row's keys, its JSON, and its invocation's input (if kept).
_Entry = tuple[RecordKeys, bytes, "KeptInput | None"]


def decode_record(raw: bytes) -> InvocationRecord:
    """A record as `encode_record` (or an earlier version, writing every field) stored it; a kept input in its row
    (`_with_input`) is not part of it."""
    document = orjson.loads(raw)
    document.pop(_INPUT_FIELD, None)
    return InvocationRecord(**document)


#: The field of a record's row that holds its invocation's kept input (no record field has the name).
_INPUT_FIELD = "kept_input"
_INPUT_JOIN = b',"' + _INPUT_FIELD.encode() + b'":'
_INPUT_OVERHEAD = len(_INPUT_JOIN)


def _with_input(body: bytes, document: bytes) -> bytes:
    """A record's JSON (an object, from `encode_record`) with its kept input's document as its last field: joined
    as bytes, neither parsed nor encoded again."""
    return body[:-1] + _INPUT_JOIN + document + b"}"
