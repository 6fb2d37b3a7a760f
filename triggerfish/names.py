"""Every name the platform gives its own streams, queues and key-value namespaces, in one place.

The store knows only names. Which log stream holds a bus's events, which
queue a function's asynchronous invocations wait in, where undeliverable
things go: each is decided here, once, so that the writer and every reader
(the bus, the dispatcher, the control API, the CLI, `triggerfish.testing`)
agree by construction, and a second backend or a cluster node cannot build
one differently.

    >>> bus_stream("orders"), function_queue("ship"), function_dead_letter_queue("ship")
    ('bus.orders', 'fn.ship', 'dlq.ship')

ARNs are names AWS would give; they live with the identity (`triggerfish.identity`).
The Lambda error types the runtime reports are here too, as constants.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Name:
    """A family of names the platform gives: `prefix + name + suffix`. Called with a name, it gives the full
    one; `name_in` reads it back. Each family is declared once below, so a writer, a reader and a check such
    as `is_dead_letter_queue` cannot spell it two ways.

        >>> function_queue("ship"), function_queue.name_in("fn.ship"), function_queue.name_in("dlq.ship")
        ('fn.ship', 'ship', None)
    """

    prefix: str
    suffix: str = ""

    def __call__(self, name: str) -> str:
        return f"{self.prefix}{name}{self.suffix}"

    def name_in(self, full: str) -> str | None:
        """The name `full` was given for, or None when `full` is not of this family."""
        if not (full.startswith(self.prefix) and full.endswith(self.suffix)):
            return None
        return full[len(self.prefix) : len(full) - len(self.suffix)]

    def holds(self, full: str) -> bool:
        """Whether `full` is a name of this family."""
        return self.name_in(full) is not None


# --- log streams -----------------------------------------------------------------------------

#: The log stream holding a bus's events (what `context.publish` and `POST /-/events` append to).
bus_stream: Final = Name("bus.")
#: The bus whose events a stream holds, or None when it is not a bus's stream.
bus_of_stream: Final = bus_stream.name_in
#: The log stream holding a topic's messages before they are fanned out.
topic_stream: Final = Name("topic.")
#: The topic whose messages a stream holds, or None when it is not a topic's stream.
topic_of_stream: Final = topic_stream.name_in
#: The log stream of a function's invocation records (queries by function and time, log follows).
record_stream: Final = Name("invocations.")
#: Log streams of invocation records are named this plus the function's name.
RECORD_STREAM_PREFIX: Final = record_stream.prefix


def source_stream(source: str, function: str, partition: int) -> str:
    """The log stream holding one partition of a function's source records (`source.mqtt.<function>.<n>`).

    A source stores a message here before it acknowledges it to its broker; the stream consumer
    reads it in order and moves the partition's checkpoint only after the function succeeded.
    """
    return f"source.{source}.{function}.{partition}"


def partitioned_stream(stream: str, partition: int | None = None) -> str:
    """The log stream of one partition of a built-in stream (`partitioned.<stream>.<n>`), or their common prefix.

    What `context.streams.put` appends to; each function reading it has a consumer group of its own
    (`partitioned_stream_group`), so each reads every record with its own checkpoint.
    """
    base = f"partitioned.{stream}"
    return base if partition is None else f"{base}.{partition}"


#: The consumer group through which a function reads a built-in stream.
partitioned_stream_group: Final = Name("fn.")
#: The log stream of a table's changes (`table.orders`): appended in the same transaction as each write.
table_stream: Final = Name("table.")
#: The key-value namespace holding a table's items (`platform.table.orders`), out of handlers' reach.
table_items_namespace: Final = Name("platform.table.")
#: The key of the position up to which a PostgreSQL capture with `parallelization` > 1 moved its slot's
#: records into the function's partitions (in `CHANGE_CHECKPOINTS_NAMESPACE`).
pg_capture_checkpoint: Final = Name("pg-capture.")
#: The key of the checkpoint up to which a table's changes were moved into an `@app.on_change` function's
#: partitions (in `CHANGE_CHECKPOINTS_NAMESPACE`).
change_group: Final = Name("on-change.")

#: What the loop guard stopped (events, messages and destinations past the hop limit), kept for inspection.
LOOP_STOPPED_STREAM = "platform.loop-stopped"
#: What changed in a cluster (deploys, aliases, removals, rules): every node follows it and applies it.
CHANGES_STREAM = "triggerfish.changes"
#: Log records that could not be read back (a store written by a buggy or newer version), kept with the reason.
PARKED_STREAM = "platform.parked"
#: The server's audit log: who did what to keys, secrets and deploys, when, from where, and how it went.
AUDIT_STREAM = "triggerfish.audit"

#: The event store's global order: every event of every stream, in commit order (offset = position).
EVENTSTORE_ALL_STREAM = "eventstore.all"
#: The log stream holding one event-store stream's events (offset = the event's version).
event_stream: Final = Name("eventstore.stream.")


# --- queues ----------------------------------------------------------------------------------

#: The store queue holding a function's asynchronous invocations.
function_queue: Final = Name("fn.")
#: Queues named so hold invocations: a user's queue trigger or dead letter there would mix messages into them.
FUNCTION_QUEUE_PREFIX: Final = function_queue.prefix
#: Where a function's final failures go when it names no failure destination or dead letter.
function_dead_letter_queue: Final = Name("dlq.")
#: The dead-letter queue of a user's queue that names none: `<queue>.dlq`.
queue_dead_letter_queue: Final = Name("", ".dlq")
#: The queue of a bus's deliveries to targets other than functions (queues, topics, buses, webhooks).
bus_delivery_queue: Final = Name("deliver.")
#: Where a bus's undeliverable events go when their target names no dead-letter queue.
bus_dead_letter_queue: Final = Name("deliver.", ".dead-letter")
#: The queue holding a topic's deliveries to queues and webhooks (and function retries).
topic_delivery_queue: Final = Name("topic-deliver.")
#: Where a topic's undeliverable messages go when their subscription names no dead-letter queue.
topic_dead_letter_queue: Final = Name("topic-dead-letter.")

_DEAD_LETTER_QUEUES = (
    function_dead_letter_queue,
    queue_dead_letter_queue,
    bus_dead_letter_queue,
    topic_dead_letter_queue,
)


def is_dead_letter_queue(queue: str) -> bool:
    """Whether `queue` is one of the dead-letter queues named above (a function's, a user queue's, a bus's or a
    topic's)."""
    return any(family.holds(queue) for family in _DEAD_LETTER_QUEUES)


#: The prefixes of the queues the platform keeps for itself (invocations, deliveries, their dead letters).
PLATFORM_QUEUE_PREFIXES: Final = tuple(
    family.prefix
    for family in (
        function_queue,
        function_dead_letter_queue,
        bus_delivery_queue,
        topic_delivery_queue,
        topic_dead_letter_queue,
    )
)


def is_platform_queue(queue: str) -> bool:
    """Whether `queue` is one the platform keeps for itself rather than one of the app's own queues."""
    return queue.startswith(PLATFORM_QUEUE_PREFIXES)


# --- key-value namespaces ------------------------------------------------------------------------

#: Invocation records by request id and attempt.
INVOCATIONS_NAMESPACE = "invocations"
#: The bus consumers' own records (consumer groups live in the log; this keeps what else they need).
BUS_NAMESPACE = "triggerfish.bus"
#: Rules added at run time (the app's declared rules live in its code).
RULES_NAMESPACE = "triggerfish.bus-rules"
#: The topics' own records.
TOPICS_NAMESPACE = "triggerfish.topics"
#: Subscriptions added at run time.
SUBSCRIPTIONS_NAMESPACE = "triggerfish.topic-subscriptions"
#: Schedule state: last fire, pause, the claim of each occurrence.
SCHEDULES_NAMESPACE = "triggerfish.schedules"
#: A server's records: apps, versions, aliases, API keys.
SERVER_NAMESPACE = "triggerfish.server"
#: Deployed bundles' archives, per app, for every node of a cluster to fetch.
BUNDLES_NAMESPACE = "triggerfish.bundles"
#: The cluster's records: nodes and their heartbeats, deploy locks.
CLUSTER_NAMESPACE = "triggerfish.cluster"
#: Which node consumes each source partition now: a leased record per partition stream.
STREAMS_NAMESPACE = "triggerfish.streams"
#: What a NATS or Redis source stored, by broker position, and which node reads its broker consumer now.
SOURCES_NAMESPACE = "triggerfish.sources"
#: Every app's secrets, sealed (`secret/<app>/<name>`), and the record naming the key they are sealed with.
SECRETS_NAMESPACE = "triggerfish.secrets"
#: Usage rolled up from the invocation records: one record per function and hour (triggerfish.observe.usage).
USAGE_NAMESPACE = "triggerfish.usage"
#: The trace index: every span of the app (invocation attempts, handlers' publishes and sends) by trace id
#: (`t/<trace id>/<span id>`), kept as long as the invocation records (triggerfish.observe.spans).
TRACES_NAMESPACE = "triggerfish.traces"


#: What the AWS endpoint knows of a queue beyond the store's config (SQS attributes, deletion), per app.
SQS_QUEUES_NAMESPACE = "triggerfish.sqs-queues"
#: The EventBridge definitions of the rules made at the AWS endpoint (state, targets as AWS names them), per app.
EVENTS_RULES_NAMESPACE = "triggerfish.events-rules"
#: The SQS message move tasks (dead-letter redrives) started at the AWS endpoint, per app.
SQS_MOVES_NAMESPACE = "triggerfish.sqs-moves"
#: The topics made at the AWS endpoint with CreateTopic (a topic otherwise exists by use), per app.
SNS_TOPICS_NAMESPACE = "triggerfish.sns-topics"
#: Where each `@app.on_change` function's mover keeps its checkpoint in its table's stream (`change_group`).
CHANGE_CHECKPOINTS_NAMESPACE = "triggerfish.change-checkpoints"
#: Every table's definition (keys, stream view type, creation time), by table name.
TABLES_NAMESPACE = "triggerfish.tables"
#: The replication slots PostgreSQL change captures read, by slot name: which app and function, and the
#: `env:` reference of the database, so a slot no longer declared can be dropped (triggerfish.changes.pg_triggers).
PG_SLOTS_NAMESPACE = "triggerfish.pg-slots"
#: The event store's records: each stream's head (`head/<stream>`), snapshots, projection checkpoints.
EVENTSTORE_NAMESPACE = "triggerfish.eventstore"


#: Where a projection's own key-value writes go (handlers read them with `kv_get`).
projection_namespace: Final = Name("projection.")


#: `@idempotent`'s records.
IDEMPOTENCY_NAMESPACE = "idempotency"
#: Namespaces handlers may not touch through the key-value calls: the platform's own records.
RESERVED_NAMESPACE_PREFIXES = ("invocations", "triggerfish", "platform")


def is_reserved_namespace(namespace: str) -> bool:
    """Whether a handler's key-value call names one of the platform's own namespaces."""
    return namespace.split(".", 1)[0].lower() in RESERVED_NAMESPACE_PREFIXES


# --- message attributes ----------------------------------------------------------------------

#: Queue-message attributes the platform sets to carry the trace and the loop guard's hop count on.
TRACEPARENT_ATTRIBUTE = "triggerfish.traceparent"
HOPCOUNT_ATTRIBUTE = "triggerfish.hopcount"
#: The SQS data types of a message's attributes that are not plain `String` (JSON), set by the AWS endpoint.
SQS_TYPES_ATTRIBUTE = "triggerfish.sqs-types"
#: The SequenceNumber a FIFO message was given when the AWS endpoint sent it (what SendMessage answered).
SQS_SEQUENCE_ATTRIBUTE = "triggerfish.sqs-sequence"


# --- consumer groups ---------------------------------------------------------------------------

#: The consumer group every node of a platform joins to route a bus's events.
BUS_GROUP = "router"
#: The consumer group that fans a topic's messages out.
TOPIC_GROUP = "fan-out"
#: The consumer group that runs a function on its source's partition streams, one batch at a time.
SOURCE_GROUP = "stream-consumer"
#: The consumer group that rolls a function's invocation records up into its usage.
USAGE_GROUP = "usage"


# --- PostgreSQL replication slots ----------------------------------------------------------------


def pg_change_slot(app: str, function: str) -> str:
    """The replication slot a function's PostgreSQL change capture reads: `tf_<app>_<function>_<hash>`.

    Slot names are lower-case letters, digits and `_`, at most 63 characters, and unique across the
    whole server (every database): the readable parts are cut to fit, and a hash of the exact app and
    function names keeps two that shorten alike apart.

        >>> pg_change_slot("shop", "ship-order")
        'tf_shop_ship_order_2397d38f'
    """
    digest = hashlib.sha256(f"{app}\0{function}".encode()).hexdigest()[:8]
    return f"tf_{_slot_part(app)[:16]}_{_slot_part(function)[:28]}_{digest}"


def _slot_part(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name.lower())


# --- Lambda's error types ------------------------------------------------------------------------

#: The handler ran past its timeout.
TIMEOUT_ERROR = "Runtime.Timeout"
#: What a timeout is called by older Lambda runtimes (accepted when reading records).
SANDBOX_TIMEOUT_ERROR = "Sandbox.Timedout"
#: The worker ran out of memory.
OUT_OF_MEMORY_ERROR = "Runtime.OutOfMemory"
#: The worker process exited (or was killed) during the invocation.
EXIT_ERROR = "Runtime.ExitError"
#: The worker could not be started.
START_ERROR = "Runtime.StartError"
#: The handler's result could not be turned into JSON.
MARSHAL_ERROR = "Runtime.MarshalError"
#: A parent and worker disagreed on the protocol.
PROTOCOL_ERROR = "Runtime.ProtocolError"
#: The event could not be given to the handler (not JSON, too large).
INVALID_EVENT_ERROR = "InvalidRequestContentException"
#: Every concurrency slot was taken.
THROTTLED_ERROR = "TooManyRequestsException"
#: A secret the function declares is not set for its app (the worker was not started).
SECRET_NOT_SET_ERROR = "Runtime.SecretNotSet"
#: A secret the function declares could not be opened with this server's secrets key (the worker was not started).
SECRET_UNREADABLE_ERROR = "Runtime.SecretUnreadable"


# --- object storage (triggerfish.objects) ----------------------------------------------------------
# Under `triggerfish.`: reserved, so a handler's key-value calls cannot reach objects' metadata.

#: The key-value namespace of the app's buckets: one record per bucket, keyed by its name.
BUCKETS_NAMESPACE = "triggerfish.objects.buckets"
#: Blobs written but not yet committed (a write intent, deleted by the commit): what a crash left behind.
PENDING_BLOBS_NAMESPACE = "triggerfish.objects.pending"
#: The key-value namespace of multipart uploads in progress, keyed `<bucket>/<upload id>`.
UPLOADS_NAMESPACE = "triggerfish.objects.uploads"
#: The key-value namespace of buckets' notification configurations (queues and topics), keyed by bucket.
BUCKET_NOTIFICATIONS_NAMESPACE = "triggerfish.objects.notifications"


#: The key-value namespace of one bucket's object metadata, keyed by object key (S3's listing order).
objects_namespace: Final = Name("triggerfish.objects.bucket.")
#: The key-value namespace of the bytes of one bucket's small objects, kept in the store (objects/service.py).
object_data_namespace: Final = Name("triggerfish.objects.data.")
#: The key-value namespace of one multipart upload's parts, keyed by zero-padded part number.
parts_namespace: Final = Name("triggerfish.objects.parts.")
