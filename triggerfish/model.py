"""The declarative model of an app: functions, their settings and their triggers.

`triggerfish.App`'s decorators build these; everything downstream (the
runtime, the gateway, the bus, the schedulers) reads them. They are plain
frozen data so they can be compared between versions ("did this function
change?") and sent between processes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# Settings every decorator accepts, with Lambda's defaults where Lambda has one.
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT = 3.0
DEFAULT_CONCURRENCY = 10
DEFAULT_RETRIES = 2
DEFAULT_MAX_EVENT_AGE = 6 * 3600.0

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


@dataclass(frozen=True, slots=True)
class ChangeTrigger:
    table: str
    ops: tuple[str, ...] = ("insert", "modify", "remove")
    kind: Literal["change"] = "change"


Trigger = HttpTrigger | EventTrigger | QueueTrigger | TopicTrigger | ScheduleTrigger | ObjectTrigger | ChangeTrigger


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A declared function: its handler, its settings and what triggers it."""

    name: str
    handler: Callable[..., Any]
    #: Where the handler lives, `module:qualname`, for messages and for workers to find it.
    ref: str
    settings: FunctionSettings
    triggers: tuple[Trigger, ...] = ()
