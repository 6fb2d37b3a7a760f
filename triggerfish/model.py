"""The declarative model of an app: functions, their settings and their triggers.

`triggerfish.App`'s decorators build these; everything downstream (the
runtime, the gateway, the bus, the schedulers) reads them. They are plain
frozen data so they can be compared between versions ("did this function
change?") and sent between processes. The checks on settings live here
too, so the decorators, triggerfish.toml and command-line overrides agree.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

# Settings every decorator accepts, with Lambda's defaults where Lambda has one.
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT = 3.0
DEFAULT_CONCURRENCY = 10
DEFAULT_RETRIES = 2
DEFAULT_MAX_EVENT_AGE = 6 * 3600.0
#: MB of each worker's private /tmp (Lambda's default ephemeral storage).
DEFAULT_EPHEMERAL_STORAGE_MB = 512

DestinationKind = Literal["function", "queue", "topic", "bus"]


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a result or failure is sent: written `function:name`, `queue:name`, `topic:name` or `bus:name`."""

    kind: DestinationKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class FunctionSettings:
    """How a function runs: its limits, retries and destinations. Build or change one with `apply_settings`."""

    memory_mb: int = DEFAULT_MEMORY_MB
    #: Seconds an invocation may run before its worker's process group is killed.
    timeout: float = DEFAULT_TIMEOUT
    #: Invocations in flight at most; more wait (sync: then ThrottledError) or stay queued (async).
    concurrency: int = DEFAULT_CONCURRENCY
    #: Workers kept warm even when idle.
    min_warm: int = 0
    #: Further attempts after a failed asynchronous invocation.
    retries: int = DEFAULT_RETRIES
    #: Seconds after which an asynchronous invocation not yet run goes to the failure destination.
    max_event_age: float = DEFAULT_MAX_EVENT_AGE
    on_success: Destination | None = None
    on_failure: Destination | None = None
    dead_letter: Destination | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    #: The app's secrets this function sees, by name: as variables of its environment and in `context.secrets`.
    secrets: tuple[str, ...] = ()
    #: MB of the worker's private /tmp (Lambda's EphemeralStorage): writing past it is ENOSPC.
    ephemeral_storage: int = DEFAULT_EPHEMERAL_STORAGE_MB
    #: Whether each invocation's input is kept beside its record (for re-runs; docs/dashboard.md). None: the
    #: platform's default, on under `triggerfish dev` and off under `serve` (inputs may hold personal data).
    keep_inputs: bool | None = None


SETTING_NAMES = frozenset(FunctionSettings.__dataclass_fields__)


# --- triggers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpTrigger:
    method: str
    path: str
    auth: Any = None
    kind: Literal["http"] = "http"


@dataclass(frozen=True, slots=True)
class EventTrigger:
    #: The EventBridge pattern as the user wrote it (validated at declaration).
    pattern: Mapping[str, Any]
    bus: str = "default"
    #: "cloudevent" delivers the CloudEvent as a dict; "eventbridge" the EventBridge envelope.
    shape: Literal["cloudevent", "eventbridge"] = "cloudevent"
    kind: Literal["event"] = "event"


@dataclass(frozen=True, slots=True)
class QueueTrigger:
    queue: str
    batch_size: int = 1
    batch_window: float = 0.0
    kind: Literal["queue"] = "queue"


@dataclass(frozen=True, slots=True)
class TopicTrigger:
    topic: str
    filter: Mapping[str, Any] | None = None
    #: What `filter` matches: the message attributes ("attributes", SNS's default) or its JSON body ("body").
    filter_scope: Literal["attributes", "body"] = "attributes"
    kind: Literal["topic"] = "topic"


@dataclass(frozen=True, slots=True)
class ScheduleTrigger:
    expression: str
    tz: str | None = None
    kind: Literal["schedule"] = "schedule"


@dataclass(frozen=True, slots=True)
class ObjectTrigger:
    bucket: str
    events: tuple[str, ...] = ("created",)
    prefix: str = ""
    suffix: str = ""
    kind: Literal["object"] = "object"


#: Lambda's largest stream batch, and its longest batch window.
MAX_BATCH_SIZE = 10_000
MAX_BATCH_WINDOW = 300.0
#: Filter patterns one stream trigger may have (Lambda's quota of filters per event source mapping).
MAX_FILTERS = 5
#: Where a new consumer starts reading, as Lambda names it for Kinesis.
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
#: Lambda's longest tumbling window.
MAX_WINDOW = 900.0
_BUS_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How a stream trigger reads its records: Lambda's stream settings (Kinesis and Kafka event source mappings)
    and the platform's own (`window`, `to_bus`, `rule`), the same for every source (docs/streams.md).

    The stream decorators take these as keyword arguments (`filter=` for `filters`); `StreamSettings.checked`
    turns them into this value, so every trigger checks them alike.
    """

    #: Records one invocation gets at most (1 to 10,000).
    batch_size: int = 100
    #: Seconds to wait for a batch to fill (0 to 300).
    batch_window: float = 0.0
    #: Retries of a failing batch; -1 retries until the records expire (Lambda's default).
    max_retries: int = -1
    #: Seconds after which a record not yet handled goes to the failure destination; -1: never.
    max_record_age: float = -1.0
    bisect_on_error: bool = False
    report_batch_item_failures: bool = False
    #: Partitions consumed in parallel (1 to 10); records with one partition key always share one.
    parallelization: int = 1
    #: Event patterns a record must match one of to reach the function (Lambda's filter criteria); () for all.
    filters: tuple[Mapping[str, Any], ...] = ()
    #: Tumbling window in seconds (0: none): the handler gets each window's records with the state it returned.
    window: float = 0.0
    #: The bus records go to as CloudEvents instead of to the function (None: to the function).
    to_bus: str | None = None
    #: An IoT rule (`SELECT ... FROM '<topic filter>' WHERE ...`) applied before the function runs (None: none).
    rule: str | None = None
    #: Where a new consumer starts, for sources with positions: TRIM_HORIZON (the oldest record kept), LATEST,
    #: or AT_TIMESTAMP.
    starting_position: str = "TRIM_HORIZON"
    #: With AT_TIMESTAMP: seconds since the epoch; the first record stored at or after it is read first.
    starting_position_timestamp: float | None = None

    #: The decorators' keyword arguments for these settings (`filter` is `filters`).
    OPTIONS: ClassVar[tuple[str, ...]] = (
        "batch_size", "batch_window", "max_retries", "max_record_age", "bisect_on_error",
        "report_batch_item_failures", "parallelization", "filter", "window", "to_bus", "rule", "starting_position",
        "starting_position_timestamp",
    )  # fmt: skip

    @classmethod
    def checked(cls, options: Mapping[str, Any], *, default: StreamSettings | None = None) -> StreamSettings:
        """The settings from a decorator's keyword arguments (those not given are `default`'s), each checked
        against Lambda's ranges; ValueError with the reason (the caller adds where it was written)."""
        base = default or cls()
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            raise ValueError(unknown_name_message("stream setting", unknown[0], cls.OPTIONS))

        def given(name: str, attribute: str | None = None) -> Any:
            return options[name] if name in options else getattr(base, attribute or name)

        def whole(name: str, low: int, high: int, allowed: tuple[int, ...] = ()) -> int:
            value = given(name)
            if isinstance(value, bool) or not isinstance(value, int) or not (low <= value <= high or value in allowed):
                extra = f" (or {allowed[0]})" if allowed else ""
                raise ValueError(f"{name} must be a whole number from {low} to {high:,}{extra}, not {value!r}")
            return value

        window_value = given("batch_window")
        if isinstance(window_value, bool) or not isinstance(window_value, int | float) or window_value != window_value:
            window_value = None
        if window_value is None or not 0 <= window_value <= MAX_BATCH_WINDOW:
            raise ValueError(
                f"batch_window must be from 0 to {MAX_BATCH_WINDOW:g} seconds, not {given('batch_window')!r}"
            )
        age = given("max_record_age")
        if isinstance(age, bool) or not isinstance(age, int | float) or not (age == -1 or 60 <= age <= 604_800):
            raise ValueError(
                f"max_record_age must be -1 (no limit) or from 60 to 604,800 seconds, as on Lambda, not {age!r}"
            )
        for flag in ("bisect_on_error", "report_batch_item_failures"):
            if not isinstance(given(flag), bool):
                raise ValueError(f"{flag} must be True or False, not {given(flag)!r}")
        return cls(
            batch_size=whole("batch_size", 1, MAX_BATCH_SIZE),
            batch_window=float(window_value),
            max_retries=whole("max_retries", 0, 10_000, (-1,)),
            max_record_age=float(age),
            bisect_on_error=given("bisect_on_error"),
            report_batch_item_failures=given("report_batch_item_failures"),
            parallelization=whole("parallelization", 1, 10),
            filters=_filters(given("filter", "filters")),
            **_window_bus_rule(given("window"), given("to_bus"), given("rule")),
            **_position(given("starting_position"), given("starting_position_timestamp")),
        )


def _filters(patterns: object) -> tuple[Mapping[str, Any], ...]:
    """Lambda's filter criteria: an event pattern, or a list of 1 to MAX_FILTERS, each compiled once to check it."""
    if patterns is None:
        return ()
    if isinstance(patterns, Mapping):
        patterns = [patterns]
    elif isinstance(patterns, tuple) and not patterns:
        return ()
    elif isinstance(patterns, str) or not isinstance(patterns, Sequence) or not 1 <= len(patterns) <= MAX_FILTERS:
        raise ValueError(f"filter must be an event pattern or a list of 1 to {MAX_FILTERS} of them, not {patterns!r}")
    checked: list[Mapping[str, Any]] = []
    for pattern in patterns:
        if not isinstance(pattern, Mapping) or not pattern:
            raise ValueError(f'the filter must be a non-empty dict such as {{"source": ["shop"]}}, not {pattern!r}')
        # Imported here: the pattern engine is only needed by apps that declare filters.
        from triggerfish.errors import InvalidPatternError
        from triggerfish.events.patterns import compile_pattern

        try:
            compile_pattern(dict(pattern))
        except InvalidPatternError as exc:
            where = f" at {exc.path}" if exc.path else ""
            raise ValueError(f"invalid event filter{where}: {exc.reason}") from None
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid event filter: {exc}") from None
        checked.append(dict(pattern))
    return tuple(checked)


def _window_bus_rule(window: object, to_bus: object, rule: object) -> dict[str, Any]:
    """`window` (1 to 900 s, as on Lambda; 0: none), `to_bus` (True: the default bus), `rule` (compiled to check it)."""
    if isinstance(window, bool) or not isinstance(window, int | float) or not (0 <= window <= MAX_WINDOW):
        raise ValueError(f"window must be 0 (none) or a tumbling window of 1 to {MAX_WINDOW:g} seconds, not {window!r}")
    if 0 < window < 1 or (window and not math.isfinite(window)):
        raise ValueError(f"window must be at least 1 second, not {window!r}")
    bus: str | None
    if to_bus is True:
        bus = "default"
    elif to_bus is None or to_bus is False:
        bus = None
    elif isinstance(to_bus, str) and _BUS_NAME.match(to_bus):
        bus = to_bus
    else:
        raise ValueError(
            f"to_bus must be True (the default bus), False, or a bus name such as 'devices', not {to_bus!r}"
        )
    if bus and window:
        raise ValueError("to_bus and window do not go together: records sent to a bus are not windowed")
    if rule is not None:
        from triggerfish.streams.iot_rules import compile_rule

        compile_rule(rule)  # a bad rule fails the declaration (ValueError naming what is wrong)
    return {"window": float(window), "to_bus": bus, "rule": rule}


def _position(position: object, stamp: object) -> dict[str, Any]:
    if position not in STARTING_POSITIONS:
        raise ValueError(f"starting_position must be one of {', '.join(STARTING_POSITIONS)}, not {position!r}")
    if position == "AT_TIMESTAMP":
        if isinstance(stamp, bool) or not isinstance(stamp, int | float) or not math.isfinite(stamp) or stamp < 0:
            raise ValueError(
                "starting_position='AT_TIMESTAMP' needs starting_position_timestamp, seconds since the epoch"
                f" such as 1767225600, not {stamp!r}"
            )
        stamp = float(stamp)
    elif stamp is not None:
        raise ValueError(f"starting_position_timestamp goes with starting_position='AT_TIMESTAMP', not {position!r}")
    return {"starting_position": position, "starting_position_timestamp": stamp}


@dataclass(frozen=True, slots=True)
class ChangeTrigger:
    """`@app.on_change`: a table's change stream consumed with Lambda's stream settings (docs/changes.md)."""

    table: str
    ops: tuple[str, ...] = ("insert", "modify", "remove")
    #: How changes are read ("LATEST" or "TRIM_HORIZON" starting positions; no windows, buses or rules).
    stream_settings: StreamSettings = StreamSettings(starting_position="LATEST")
    kind: Literal["change"] = "change"


@dataclass(frozen=True, slots=True)
class ProjectionTrigger:
    """`@app.projection`: the event store's events of `category` ("*": every stream), in global order, or
    (`order="stream"`) each stream in its own order with a checkpoint of its own, up to `max_concurrency`
    streams at once."""

    category: str
    batch_size: int = 100
    order: Literal["global", "stream"] = "global"
    max_concurrency: int = 1
    #: The tables its writes go to besides its key-value records (committed with its checkpoint; a rebuild
    #: empties them).
    tables: tuple[str, ...] = ()
    kind: Literal["projection"] = "projection"


@dataclass(frozen=True, slots=True)
class MqttTrigger:
    """`@app.on_mqtt`: an MQTT topic filter consumed as a stream, with Lambda's stream settings (docs/streams.md)."""

    #: The topic filter as the user wrote it (`home/+/temperature`), without any `$share/` prefix.
    topic: str
    qos: int = 1
    #: The shared-subscription group nodes split the messages in (`$share/<share>/<topic>`); None: not shared.
    share: str | None = None
    #: How records are read: batches, retries, order, windows (shared by every stream trigger).
    stream_settings: StreamSettings = StreamSettings()
    kind: Literal["mqtt"] = "mqtt"


@dataclass(frozen=True, slots=True)
class AmqpTrigger:
    """`@app.on_amqp`: an AMQP 0-9-1 queue (RabbitMQ) consumed as a stream, with Lambda's stream settings."""

    queue: str
    #: An exchange the queue is bound to with `routing_key` (declared durable, of `exchange_type`); None: no binding.
    exchange: str | None = None
    routing_key: str = "#"
    exchange_type: str = "topic"
    #: Unacknowledged messages the broker sends ahead (basic.qos); they are acknowledged once stored.
    prefetch: int = 500
    #: The exchange messages given up on are published to, as RabbitMQ dead-letters them (None: none).
    dead_letter_exchange: str | None = None
    #: How records are read: batches, retries, order, windows (shared by every stream trigger).
    stream_settings: StreamSettings = StreamSettings()
    kind: Literal["amqp"] = "amqp"


@dataclass(frozen=True, slots=True)
class NatsTrigger:
    """`@app.on_nats`: a NATS JetStream subject consumed by a durable pull consumer, as a stream."""

    #: The subject filter (`orders.>`); the JetStream stream holding it is `stream` (created when missing).
    subject: str
    #: The JetStream stream's name (None: one named after the subject's first token, created to hold it).
    stream: str | None = None
    #: The durable consumer's name (None: one named after the app and function).
    durable: str | None = None
    #: How records are read: batches, retries, order, windows (shared by every stream trigger).
    stream_settings: StreamSettings = StreamSettings()
    kind: Literal["nats"] = "nats"


@dataclass(frozen=True, slots=True)
class RedisStreamTrigger:
    """`@app.on_redis_stream`: a Redis stream read through a consumer group, as a stream."""

    stream: str
    #: The consumer group (None: one named after the app and function).
    group: str | None = None
    #: The entry field whose value orders it (records with one value in order; partitions run in parallel);
    #: None: the stream key, so the whole stream is one ordered partition.
    partition_key: str | None = None
    #: How records are read: batches, retries, order, windows (shared by every stream trigger).
    stream_settings: StreamSettings = StreamSettings()
    kind: Literal["redis"] = "redis"


@dataclass(frozen=True, slots=True)
class PartitionedStreamTrigger:
    """`@app.on_stream`: the platform's own partitioned stream (`context.streams.put`), read as Kinesis is."""

    stream: str
    #: The field of each record whose value orders it (records with one value are read in order).
    partition_key: str
    #: How records are read: batches, retries, order, windows (shared by every stream trigger).
    stream_settings: StreamSettings = StreamSettings()
    kind: Literal["stream"] = "stream"


@dataclass(frozen=True, slots=True)
class PgChangeTrigger:
    """`@app.on_change("env:ORDERS_DB", table="public.orders")`: a PostgreSQL table's changes (docs/pg-changes.md)."""

    #: Where the database URL comes from: `env:VARIABLE` (never the URL: it holds a password).
    source: str
    #: `schema.table`.
    table: str
    ops: tuple[str, ...] = ("insert", "modify", "remove")
    stream_view_type: str = "NEW_IMAGE"
    #: How changes are read (from LATEST; `parallelization` partitions by primary key, one row's changes in order).
    stream_settings: StreamSettings = StreamSettings(starting_position="LATEST")
    kind: Literal["pgchange"] = "pgchange"


Trigger = (
    HttpTrigger
    | EventTrigger
    | QueueTrigger
    | TopicTrigger
    | ScheduleTrigger
    | ObjectTrigger
    | ChangeTrigger
    | ProjectionTrigger
    | MqttTrigger
    | AmqpTrigger
    | NatsTrigger
    | RedisStreamTrigger
    | PartitionedStreamTrigger
    | PgChangeTrigger
)


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A declared function: its handler, its settings and what triggers it."""

    name: str
    handler: Callable[..., Any]
    #: Where the handler lives, `module:qualname`, for messages and for workers to find it.
    ref: str
    settings: FunctionSettings
    triggers: tuple[Trigger, ...] = ()
    #: Declared with `@app.workflow`: a durable workflow (triggerfish.workflows).
    workflow: bool = False
    #: Declared with `durable=True` (or the AWS SDK's `@durable_execution`): an AWS durable function.
    durable: bool = False


# --- validating settings ---------------------------------------------------------------------
# The decorators, triggerfish.toml and command-line overrides all go through these, so a value
# means the same and is checked the same wherever it is written. They raise ValueError with the
# reason only; the caller adds where the value was written (a function, a file and table).

MEMORY_MB_RANGE = (128, 10240)
EPHEMERAL_STORAGE_RANGE = (512, 10240)
MAX_TIMEOUT = 900.0
MAX_CONCURRENCY = 10_000
MAX_RETRIES = 185
MAX_EVENT_AGE_RANGE = (60.0, 21600.0)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,254}")
_APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables the runtime sets for every worker; a function may not replace them.
_RESERVED_ENV = frozenset(
    {"_HANDLER", "_X_AMZN_TRACE_ID", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV"}
    | {"LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"}
)
_RESERVED_ENV_PREFIXES = ("AWS_LAMBDA_", "TRIGGERFISH_")
_DESTINATION_KINDS: tuple[DestinationKind, ...] = ("function", "queue", "topic", "bus")
#: The longest secret name, and the most secrets one function may declare.
MAX_SECRET_NAME = 128
MAX_DECLARED_SECRETS = 100


def check_app_name(name: object) -> str:
    """An app's name: it names the app's records in a shared store and its URL prefix on a server."""
    if not isinstance(name, str) or not _APP_NAME.fullmatch(name):
        raise ValueError(
            f"invalid app name {name!r}: use 1 to 64 letters, digits, _ or -, starting with a letter or digit"
        )
    return name


def check_resource_name(kind: str, name: object) -> str:
    """A bus, queue, topic, bucket or table name: the store's naming rule."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid {kind} name {name!r}: use 1 to 255 characters from letters, digits and . _ : / @ -,"
            " starting with a letter or digit"
        )
    return name


def parse_destination(value: object) -> Destination:
    """`"queue:orders-failed"` -> Destination("queue", "orders-failed"); a Destination is returned as is."""
    if isinstance(value, Destination):
        return value
    kinds = ", ".join(f'"{kind}:NAME"' for kind in _DESTINATION_KINDS)
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"a destination is written {kinds}, not {value!r}")
    kind, _, name = value.partition(":")
    if kind not in _DESTINATION_KINDS:
        raise ValueError(f"unknown destination kind {kind!r} in {value!r}; write {kinds}")
    check_resource_name(kind, name)
    return Destination(kind, name)


def _whole(name: str, value: object, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bounds}, not {value}")
    return value


def _seconds(name: str, value: object, low: float, high: float, *, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValueError(f"{name} must be a number of seconds, not {value!r}")
    if value < low or (low_open and value == low) or value > high:
        bounds = f"more than {low:g} and at most {high:g}" if low_open else f"from {low:g} to {high:g}"
        raise ValueError(f"{name} must be {bounds} seconds, not {value!r}")
    return float(value)


def _env(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"env must be a table of names to strings, not {value!r}")
    env: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise ValueError(f"env: {name!r} is not a valid variable name (letters, digits and _, not first a digit)")
        if name in _RESERVED_ENV or name.startswith(_RESERVED_ENV_PREFIXES):
            raise ValueError(f"env: {name} is set by the runtime and cannot be replaced; choose another name")
        if not isinstance(text, str):
            raise ValueError(f"env: the value of {name} must be a string, not {text!r}; quote it")
        if "\x00" in text:
            raise ValueError(f"env: the value of {name} contains a NUL character, which no environment can hold")
        env[name] = text
    return env


def check_secret_name(name: object) -> str:
    """A secret's name: it becomes a variable of the environment, so a variable's name the runtime leaves free."""
    if not isinstance(name, str) or not _ENV_NAME.fullmatch(name) or len(name) > MAX_SECRET_NAME:
        raise ValueError(
            f"{name!r} is not a valid secret name: use 1 to {MAX_SECRET_NAME} letters, digits and _, not first a"
            " digit (it is the name of an environment variable), such as STRIPE_KEY"
        )
    if name in _RESERVED_ENV or name.startswith(_RESERVED_ENV_PREFIXES):
        raise ValueError(f"secret name {name} is a variable the runtime sets; choose another name")
    return name


def _secret_names(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f'secrets must be a list of secret names, such as ["STRIPE_KEY"], not {value!r}')
    names: list[str] = []
    for item in value:
        try:
            name = check_secret_name(item)
        except ValueError as exc:
            raise ValueError(f"secrets: {exc}") from None
        if name not in names:
            names.append(name)
    if len(names) > MAX_DECLARED_SECRETS:
        raise ValueError(f"secrets: a function may declare at most {MAX_DECLARED_SECRETS} secrets, not {len(names)}")
    return tuple(names)


def check_setting(name: str, value: object) -> Any:
    """Validate one setting and return it normalised (seconds as float, destinations parsed, env copied).

    Raises ValueError with the reason; an unknown name gets the closest valid one.
    """
    if name == "memory_mb":
        return _whole(name, value, *MEMORY_MB_RANGE)
    if name == "timeout":
        return _seconds(name, value, 0.0, MAX_TIMEOUT, low_open=True)
    if name == "concurrency":
        return _whole(name, value, 1, MAX_CONCURRENCY)
    if name == "min_warm":
        return _whole(name, value, 0, MAX_CONCURRENCY)
    if name == "retries":
        return _whole(name, value, 0, MAX_RETRIES)
    if name == "max_event_age":
        return _seconds(name, value, *MAX_EVENT_AGE_RANGE)
    if name in ("on_success", "on_failure", "dead_letter"):
        return None if value is None else parse_destination(value)
    if name == "env":
        return _env(value)
    if name == "secrets":
        return _secret_names(value)
    if name == "ephemeral_storage":
        low, high = EPHEMERAL_STORAGE_RANGE
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"ephemeral_storage is the MB of /tmp, a whole number from {low} to {high}, not {value!r}")
        return value
    if name == "keep_inputs":
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"keep_inputs is true or false (whether invocations' inputs are kept), not {value!r}")
        return value
    raise ValueError(unknown_name_message("setting", name, SETTING_NAMES))


def unknown_name_message(what: str, name: str, valid: Iterable[str]) -> str:
    """`unknown setting 'memory' (did you mean 'memory_mb'?)`, listing the valid names when nothing is close."""
    choices = sorted(valid)
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(choices)}"
    return f"unknown {what} {name!r} ({hint})"


def apply_settings(base: FunctionSettings, changes: Mapping[str, Any]) -> FunctionSettings:
    """`base` with `changes` applied (each validated; env merged key by key), then checked as a whole."""
    values: dict[str, Any] = {}
    for name, value in changes.items():
        checked = check_setting(name, value)
        if name == "env":
            checked = {**values.get("env", base.env), **checked}
        values[name] = checked
    settings = replace(base, **values) if values else base
    both = sorted(set(settings.env) & set(settings.secrets))
    if both:
        raise ValueError(
            f"{both[0]} is both in env and in secrets; a secret is set with `triggerfish secrets set`: drop it from env"
        )
    if settings.min_warm > settings.concurrency:
        raise ValueError(
            f"min_warm ({settings.min_warm}) cannot exceed concurrency ({settings.concurrency}); "
            "lower min_warm or raise concurrency"
        )
    return settings
