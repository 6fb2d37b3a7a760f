"""What a stream consumer reads and how: a function's subscription to its partition streams (pure but for
`start_group`, which places a new consumer group at its starting position)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from triggerfish.model import Destination
from triggerfish.names import SOURCE_GROUP, source_stream
from triggerfish.streams.batches import BatchOptions


class DeadLetters(Protocol):
    """Where a source publishes records given up on back to its broker (AMQP's dead-letter exchange)."""

    async def dead_letter(self, exchange: str, records: Sequence[Mapping[str, Any]], *, reason: str) -> None: ...


class StreamInvoker(Protocol):
    """What a consumer invokes through: the platform (the version serving now)."""

    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any: ...

    async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str: ...


@dataclass(frozen=True, slots=True)
class StreamSubscription:
    """A function reading a source's partition streams; a reader restarts on `update` only if this changed."""

    function: str
    #: The source's kind: names its streams (`source.mqtt...`) and the records' body key (`mqtt`).
    source: str
    #: The source's ARN in every record (`eventSourceARN`).
    source_arn: str
    partitions: int = 1
    batch_size: int = 100
    batch_window: float = 0.0
    options: BatchOptions = field(default_factory=BatchOptions)
    #: The function's timeout: how long one invocation may take before it counts as failed.
    timeout: float = 3.0
    on_failure: Destination | None = None
    #: Event patterns (JSON text) a record must match one of to reach the function; () lets every record through.
    filters: tuple[str, ...] = ()
    #: The log streams read, `<log_name>.<n>`, when not the function's own source streams (the built-in stream).
    log_name: str | None = None
    #: The consumer group that holds this function's checkpoint in those streams.
    group: str = SOURCE_GROUP
    #: Where a new group starts in a stream that others write (`log_name`): TRIM_HORIZON, LATEST, AT_TIMESTAMP.
    starting_position: str = "TRIM_HORIZON"
    starting_timestamp: float | None = None
    #: Tumbling window in seconds (0: none; `streams.windows`).
    window: float = 0.0
    #: The bus records are published to as CloudEvents instead of invoking the function (None: invoke it).
    to_bus: str | None = None
    #: An IoT rule's SQL, applied to each record before the function sees it (`streams.iot_rules`).
    rule: str | None = None
    #: How stored records become the handler's: "kinesis" (a SourceRecord in Kinesis's shape, the body under
    #: `source`) or "payload" (the payload is the Lambda record itself, as a change stream stores it; filters match
    #: the whole record and `dynamodb.SequenceNumber` is what `batchItemFailures` names).
    records: str = "kinesis"
    #: An AMQP exchange the messages given up on are published to (`@app.on_amqp(dead_letter_exchange=)`).
    dead_letter_exchange: str | None = None

    def stream(self, partition: int) -> str:
        if self.log_name is not None:
            return f"{self.log_name}.{partition}"
        return source_stream(self.source, self.function, partition)

    def owner_key(self, partition: int) -> str:
        """The key-value key of the partition's ownership and window state: one per stream and group."""
        stream = self.stream(partition)
        return stream if self.group == SOURCE_GROUP else f"{stream}@{self.group}"


async def start_group(log: Any, sub: StreamSubscription, stream: str) -> None:
    """Place a group that never read `stream` at its starting position (a no-op for a source's own streams).

    TRIM_HORIZON starts at the oldest record kept, LATEST after the newest, AT_TIMESTAMP before the first
    record stored at or after the timestamp.
    """
    if sub.log_name is None or sub.group in await log.groups(stream):
        return
    if sub.starting_position == "LATEST":
        offset = await log.last_offset(stream)
    elif sub.starting_position == "AT_TIMESTAMP" and sub.starting_timestamp is not None:
        first = await log.read(stream, since=sub.starting_timestamp, limit=1)
        offset = first[0].offset - 1 if first else await log.last_offset(stream)
    else:
        offset = 0
    await log.seek(stream, sub.group, offset)
