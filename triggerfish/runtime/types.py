"""What goes into an invocation and what comes out of it: the seam between the
invocation paths (sync, async, testing) and whatever runs the handler (a
worker forked from a zygote, or this process in `triggerfish.testing`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from triggerfish.model import FunctionSettings, FunctionSpec

#: Captured output (stdout, stderr, logging) kept per invocation, at most.
DEFAULT_OUTPUT_LIMIT = 256 * 1024


@dataclass(slots=True)
class InvokeRequest:
    request_id: str
    function: str
    #: The event as the handler receives it: any JSON value.
    event: Any
    attempt: int = 1
    #: What caused it: "direct", "async", "http", "event", "queue", "schedule", ...
    trigger: str = "direct"
    #: W3C trace context the handler runs in (its context's traceparent): the invocation's own span, which
    #: the invokers make a child of the caller's (`tracecontext.span_of`).
    traceparent: str | None = None
    #: How many function-to-function hops led here (loop guard).
    hop_count: int = 0
    #: The version of the app to run (None: the current one).
    version: str | None = None
    #: The caller's span id (the parent of this invocation's span); None when the invocation started its trace.
    parent_span_id: str | None = None
    #: Traceparents of the other messages of a batch (the parent is the first's): span links, as OpenTelemetry's
    #: messaging conventions give a batch's processing span.
    links: tuple[str, ...] = ()
    #: What the platform read for the handler before sending it (a workflow run's `begin` answer), handed to the
    #: handler as `context.prelude`: the round trip it spares (None: nothing).
    prelude: Any = None
    #: The event's JSON, once a runner encoded it for a worker (None: not encoded yet). The same bytes
    #: `orjson.dumps(event)` gives: the kept input (runtime/inputs.py) takes them instead of encoding the event again.
    event_json: bytes | None = None


@dataclass(slots=True)
class InvokeOutcome:
    request_id: str
    ok: bool
    #: The handler's return value (JSON value) when ok.
    result: Any = None
    #: Lambda's error shape when not ok: {"errorType", "errorMessage", "stackTrace"}.
    error: dict[str, Any] | None = None
    #: False when another attempt cannot help (NonRetryable, or the event itself was rejected).
    retryable: bool = True
    #: Set when the handler raised Retry(delay=...).
    retry_delay: float | None = None
    cold_start: bool = False
    #: Milliseconds from asking for a worker to the worker being ready, on a cold start.
    init_duration_ms: float | None = None
    #: Milliseconds the handler ran.
    duration_ms: float = 0.0
    started_at: float = 0.0
    ended_at: float = 0.0
    output: str = ""
    output_truncated: bool = False
    worker_pid: int | None = None
    version: str | None = None
    #: The most memory the worker had in use so far, in whole MB (the REPORT line's Max Memory Used); None: unknown.
    max_memory_used_mb: int | None = None
    #: Bytes of the event's JSON as it was sent to the handler (0: it never was), and of the result's JSON when
    #: ok (0: no result). Measured from the encodings the runner makes anyway: usage's data in and out.
    input_bytes: int = 0
    output_bytes: int = 0


#: What a handler may ask of the platform from inside its worker, through its context:
#: publish an event, send a queue message, or read and write key-value records
#: (idempotency keys). The worker sends the call to the parent and waits for the answer.
PlatformOp = Literal[
    "publish",
    "send",
    "kv_get",
    "kv_put",
    "kv_delete",
    "table",
    "workflow",
    "events",
    "stream_put",
    "mqtt_publish",
    "spans",
    "objects",
]


@dataclass(frozen=True, slots=True)
class PlatformCall:
    op: PlatformOp
    #: The operation's arguments, JSON values only (bytes travel base64-encoded or as text).
    args: dict[str, Any]
    #: Who asked: the function and invocation, and the trace and hop count they carry.
    function: str
    request_id: str
    traceparent: str | None = None
    hop_count: int = 0


#: Carries out a PlatformCall in the parent (routing through the store and the bus); returns a JSON value.
PlatformHandler = Callable[[PlatformCall], Awaitable[Any]]


#: The values of secrets a function declares, read when one of its workers starts: given the app's name as its code
#: declares it and the secret names, their values by name. Raises SecretNotSetError for one that is not set and
#: SecretsKeyError for one that does not open; the worker is then not started and the invocation fails, naming it.
SecretsSource = Callable[[str, tuple[str, ...]], Awaitable[Mapping[str, str]]]


class Runner(Protocol):
    """Runs one invocation of a declared function and reports how it went.

    Implemented by the process runtime (workers forked from zygotes) and by the
    in-process runner of `triggerfish.testing`. It raises ThrottledError when the
    function is at its concurrency limit for longer than `wait`; every other
    failure is reported in the outcome, never raised.
    """

    async def run(self, request: InvokeRequest, *, wait: float = 1.0) -> InvokeOutcome: ...

    def settings(self, function: str) -> FunctionSettings: ...

    def functions(self) -> list[str]: ...


class PipelinedRunner(Runner, Protocol):
    """A Runner that can queue an invocation behind one running on a worker (the process runtime): the async
    dispatcher then keeps each worker's next invocation waiting in it, so the worker never waits for the
    dispatcher between two. `concurrency` still bounds how many run at once."""

    #: Requests queued on a worker behind the one it runs, at most.
    queue_depth: int

    def run_behind(self, request: InvokeRequest, *, wait: float = 1.0) -> Awaitable[InvokeOutcome]: ...


class LoadedRunner(Runner, Protocol):
    """A Runner that loaded one app version: what an `AppVersion` holds (the process runtime, or the
    in-process runner of `triggerfish.testing`).

    `specs` are the functions as loaded, `descriptions` each one's JSON description (what a deploy
    fingerprints to tell changed functions from unchanged ones), `stats()` a function's counters.
    """

    app_name: str
    specs: dict[str, FunctionSpec]
    descriptions: dict[str, dict[str, Any]]

    def stats(self, function: str) -> dict[str, Any]: ...

    def renew_secrets(self) -> None:
        """The app's secrets changed: invocations starting from now see the new values (workers started before
        are stopped once idle)."""
        ...

    async def close(self) -> None: ...
