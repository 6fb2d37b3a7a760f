"""`App`: where a user declares functions, their settings and their triggers.

    app = triggerfish.App("shop")

    @app.http("POST", "/orders")
    @app.on_queue("orders", batch_size=10, batch_window=2)
    def create_order(event, context):
        ...

Each decorator checks its arguments at once and raises DeclarationError
naming the function and the fix, so a mistake stops the app from loading
instead of surfacing when the first event arrives. Decorators return the
user's function unchanged: it stays a plain function that tests can call.
Stacked decorators add triggers to one function; settings given by more
than one of them must agree.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from triggerfish.errors import DeclarationError, InvalidPatternError
from triggerfish.http_auth import check_auth
from triggerfish.model import (
    MAX_BATCH_SIZE,
    MAX_BATCH_WINDOW,
    SETTING_NAMES,
    AmqpTrigger,
    ChangeTrigger,
    EventTrigger,
    FunctionSettings,
    FunctionSpec,
    HttpTrigger,
    MqttTrigger,
    NatsTrigger,
    ObjectTrigger,
    PartitionedStreamTrigger,
    PgChangeTrigger,
    ProjectionTrigger,
    QueueTrigger,
    RedisStreamTrigger,
    ScheduleTrigger,
    StreamSettings,
    TopicTrigger,
    Trigger,
    apply_settings,
    check_app_name,
    check_resource_name,
    check_setting,
    unknown_name_message,
)
from triggerfish.runtime.handler import signature_problem
from triggerfish.schedule import parse_schedule

F = TypeVar("F", bound=Callable[..., Any])

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"})
#: `created`/`deleted`, or S3's own event type names (`s3:ObjectCreated:*`).
OBJECT_EVENTS = frozenset(
    {
        "created",
        "deleted",
        "s3:ObjectCreated:*",
        "s3:ObjectCreated:Put",
        "s3:ObjectCreated:Post",
        "s3:ObjectCreated:Copy",
        "s3:ObjectCreated:CompleteMultipartUpload",
        "s3:ObjectRemoved:*",
        "s3:ObjectRemoved:Delete",
    }
)
CHANGE_OPS = frozenset({"insert", "modify", "remove"})
#: How `@app.on_change`'s first argument names a PostgreSQL database rather than a platform table.
PG_SOURCE_PREFIXES = ("env:", "postgresql://", "postgres://")
#: Above this batch size Lambda requires a batch window of at least 1 s; so do we.
UNWINDOWED_BATCH_LIMIT = 10

_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_PATH_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}")
_PATH_LITERAL = re.compile(r"[A-Za-z0-9._~:@!$&'()*+,;=-]+")


@dataclass
class _Draft:
    """A function being declared: what its decorators have said so far."""

    handler: Callable[..., Any]
    settings: dict[str, Any] = field(default_factory=dict)
    triggers: list[Trigger] = field(default_factory=list)
    spec: FunctionSpec | None = None
    #: Declared with @app.workflow: its handler runs it as a durable workflow.
    workflow: bool = False
    #: Declared with durable=True (or wrapped by the AWS SDK's @durable_execution): an AWS durable function.
    durable: bool = False


class App:
    """An app: a named set of functions and their triggers.

    `app.functions` maps each function's name to its FunctionSpec, in the
    order they were declared. Every decorator takes the settings of
    FunctionSettings as keywords (memory_mb, timeout, concurrency,
    min_warm, retries, max_event_age, on_success, on_failure, dead_letter,
    env, secrets, ephemeral_storage, keep_inputs) and `name=` to name the function other than by its `__name__`;
    `durable=True` runs a handler written with AWS's durable execution SDK as a durable function
    (docs/durable-functions.md).
    """

    def __init__(self, name: str) -> None:
        try:
            self.name = check_app_name(name)
        except ValueError as exc:
            raise DeclarationError(str(exc)) from None
        self._drafts: dict[str, _Draft] = {}
        # (method, path shape) -> function, to find two functions on one route
        self._routes: dict[tuple[str, str], tuple[str, str]] = {}

    def __repr__(self) -> str:
        return f"App({self.name!r}, functions={list(self._drafts)})"

    @property
    def functions(self) -> dict[str, FunctionSpec]:
        """Every declared function by name, in declaration order."""
        specs: dict[str, FunctionSpec] = {}
        for name, draft in self._drafts.items():
            if draft.spec is None:
                try:
                    # Checked here, not per decorator: stacked decorators may each give one half of a pair.
                    settings = apply_settings(FunctionSettings(), draft.settings)
                except ValueError as exc:
                    raise DeclarationError(f"function {name!r}: {exc}") from None
                if draft.workflow and draft.durable:
                    raise DeclarationError(
                        f"function {name!r}: @app.workflow and durable=True are two ways to write a durable"
                        " function; choose one (docs/workflows.md)"
                    )
                handler = _workflow_handler(draft.handler) if draft.workflow else draft.handler
                draft.spec = FunctionSpec(
                    name=name,
                    handler=_durable_handler(handler) if draft.durable else handler,
                    ref=_ref(draft.handler),
                    settings=settings,
                    triggers=tuple(draft.triggers),
                    workflow=draft.workflow,
                    durable=draft.durable,
                )
            specs[name] = draft.spec
        return specs

    # --- decorators ---------------------------------------------------------------------------

    @overload
    def function(self, handler: F, /) -> F: ...

    @overload
    def function(self, handler: None = None, /, *, name: str | None = None, **settings: Any) -> Callable[[F], F]: ...

    def function(self, handler: F | None = None, /, *, name: str | None = None, **settings: Any) -> Any:
        """Declare a function with no trigger: it runs when invoked directly or asynchronously.

        Works with or without parentheses: `@app.function` and `@app.function(timeout=30)`.
        """
        if handler is not None:
            return self._declare(handler, name, settings, None, "@app.function")
        return self._decorator(name, settings, lambda _fn: None, "@app.function()")

    @overload
    def workflow(self, handler: F, /) -> F: ...

    @overload
    def workflow(self, handler: None = None, /, *, name: str | None = None, **settings: Any) -> Callable[[F], F]: ...

    def workflow(self, handler: F | None = None, /, *, name: str | None = None, **settings: Any) -> Any:
        """Declare a durable workflow `fn(ctx, input)`: its steps are checkpointed, it sleeps and waits with no
        worker held, and it survives restarts (see docs/workflows.md). Any trigger starts one (stack
        `@app.http`, `@app.on_event`, ...); so do `triggerfish workflows start` and the control API.
        """

        def declare(fn: F) -> F:
            declared = self._declare(fn, name, settings, None, "@app.workflow")
            function = _function_name(fn, name, "@app.workflow")
            draft = self._drafts[function]
            draft.workflow = True
            draft.spec = None
            # `ctx.child(fn, ...)` finds the function's declared name here.
            fn.__triggerfish_workflow__ = function  # type: ignore[attr-defined]
            return declared

        return declare(handler) if handler is not None else declare

    def http(
        self, method: str, path: str, *, auth: Any = None, name: str | None = None, **settings: Any
    ) -> Callable[[F], F]:
        """Run the function for HTTP requests to `method` `path` ("ANY" for every method).

        `path` is a template: `/orders/{id}`, with a greedy `{proxy+}` allowed as the last segment.
        `auth` is None (public), `"api_key"` or `triggerfish.hmac_auth(...)` (see docs/security.md).
        """
        where = f"@app.http({method!r}, {path!r})"
        self._not_bare(method, "@app.http", '@app.http("GET", "/path")')

        def trigger(function: str) -> Trigger:
            verb = _http_method(method, function)
            template = _http_path(path, function)
            checked = check_auth(auth, function)
            self._claim_route(verb, template, function)
            return HttpTrigger(verb, template, checked)

        return self._decorator(name, settings, trigger, where, ("auth",))

    def on_event(
        self,
        pattern: Mapping[str, Any],
        *,
        bus: str = "default",
        shape: str = "cloudevent",
        name: str | None = None,
        **settings: Any,
    ) -> Callable[[F], F]:
        """Run the function for every event on `bus` that matches the EventBridge `pattern`.

        `shape="cloudevent"` delivers the CloudEvent as a dict; `"eventbridge"` the EventBridge envelope.
        """
        self._not_bare(pattern, "@app.on_event", '@app.on_event({"type": ["order.created"]})')

        def trigger(function: str) -> Trigger:
            checked = _pattern(pattern, function, "pattern")
            _resource(function, "bus", bus)
            if shape not in ("cloudevent", "eventbridge"):
                raise DeclarationError(
                    f"function {function!r}: shape must be 'cloudevent' or 'eventbridge', not {shape!r}"
                )
            return EventTrigger(checked, bus, shape)  # type: ignore[arg-type]

        return self._decorator(name, settings, trigger, "@app.on_event", ("bus", "shape"))

    def on_queue(
        self,
        queue: str,
        *,
        batch_size: int = 1,
        batch_window: float = 0.0,
        name: str | None = None,
        **settings: Any,
    ) -> Callable[[F], F]:
        """Run the function for messages on `queue`, up to `batch_size` at a time (SQS's event shape).

        `batch_window` is how many seconds to wait to fill a batch; as on Lambda,
        a batch_size over 10 needs a batch_window of at least 1 second.
        """
        self._not_bare(queue, "@app.on_queue", '@app.on_queue("orders")')

        def trigger(function: str) -> Trigger:
            _resource(function, "queue", queue)
            size = _batch_size(batch_size, function)
            window = _batch_window(batch_window, function)
            if size > UNWINDOWED_BATCH_LIMIT and window < 1:
                raise DeclarationError(
                    f"function {function!r}: batch_size {size} is over {UNWINDOWED_BATCH_LIMIT}, which needs "
                    "batch_window of at least 1 second (as on Lambda); set batch_window=1 or more"
                )
            return QueueTrigger(queue, size, window)

        return self._decorator(name, settings, trigger, f"@app.on_queue({queue!r})", ("batch_size", "batch_window"))

    def on_topic(
        self,
        topic: str,
        *,
        filter: Mapping[str, Any] | None = None,
        filter_scope: str = "attributes",
        name: str | None = None,
        **settings: Any,
    ) -> Callable[[F], F]:
        """Run the function for every message published to `topic`, optionally only those matching `filter`.

        `filter` is an EventBridge-style pattern, as SNS filter policies are, matched against the
        message attributes (`filter_scope="attributes"`, SNS's default) or the message's JSON body
        (`filter_scope="body"`). The handler receives SNS-shaped records (docs/topics.md).
        """
        self._not_bare(topic, "@app.on_topic", '@app.on_topic("alerts")')

        def trigger(function: str) -> Trigger:
            _resource(function, "topic", topic)
            checked = None if filter is None else _pattern(filter, function, "filter")
            if filter_scope not in ("attributes", "body"):
                raise DeclarationError(
                    f"function {function!r}: filter_scope must be 'attributes' (the message attributes, SNS's"
                    f" default) or 'body' (the message's JSON body), not {filter_scope!r}"
                )
            return TopicTrigger(topic, checked, "body" if filter_scope == "body" else "attributes")

        return self._decorator(name, settings, trigger, f"@app.on_topic({topic!r})", ("filter", "filter_scope"))

    def schedule(
        self, expression: str, *, tz: str | None = None, name: str | None = None, **settings: Any
    ) -> Callable[[F], F]:
        """Run the function on a schedule: `rate(5 minutes)`, `cron(0 3 * * ? *)`, `0 3 * * *` or `at(...)`.

        `tz` is an IANA time zone name for cron and at(); UTC when None.
        """
        self._not_bare(expression, "@app.schedule", '@app.schedule("rate(5 minutes)")')

        def trigger(function: str) -> Trigger:
            try:
                parsed = parse_schedule(expression, tz)
            except ValueError as exc:
                raise DeclarationError(f"function {function!r}: invalid schedule: {exc}") from None
            return ScheduleTrigger(parsed.expression, tz)

        return self._decorator(name, settings, trigger, f"@app.schedule({expression!r})", ("tz",))

    def on_object(
        self,
        bucket: str,
        *,
        events: Iterable[str] = ("created",),
        prefix: str = "",
        suffix: str = "",
        name: str | None = None,
        **settings: Any,
    ) -> Callable[[F], F]:
        """Run the function when objects in `bucket` whose keys match `prefix`/`suffix` are created or deleted."""
        self._not_bare(bucket, "@app.on_object", '@app.on_object("uploads")')

        def trigger(function: str) -> Trigger:
            _resource(function, "bucket", bucket)
            from triggerfish.objects.model import InvalidObjectNameError, check_bucket_name

            try:
                check_bucket_name(bucket)
            except InvalidObjectNameError as exc:
                raise DeclarationError(f"function {function!r}: {exc}") from None
            kinds = _choices(events, OBJECT_EVENTS, function, "events")
            for label, affix in (("prefix", prefix), ("suffix", suffix)):
                if not isinstance(affix, str) or len(affix) > 1024 or "\x00" in affix:
                    raise DeclarationError(
                        f"function {function!r}: {label} must be a string of at most 1024 characters "
                        f"without NUL, not {affix!r}"
                    )
            return ObjectTrigger(bucket, kinds, prefix, suffix)

        return self._decorator(name, settings, trigger, f"@app.on_object({bucket!r})", ("events", "prefix", "suffix"))

    def on_change(
        self,
        source: str,
        *,
        table: str | None = None,
        ops: Iterable[str] = ("insert", "modify", "remove"),
        stream_view_type: str = "NEW_IMAGE",
        batch_size: int = 100,
        batch_window: float = 0.0,
        starting_position: str = "LATEST",
        max_retries: int = -1,
        max_record_age: float = -1,
        bisect_on_error: bool = False,
        report_batch_item_failures: bool = False,
        parallelization: int = 1,
        filter: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        name: str | None = None,
        **settings: Any,
    ) -> Callable[[F], F]:
        """Run the function on batches of a table's changes, as Lambda reads a DynamoDB stream (docs/changes.md).

        `source` is a platform table's name (`@app.on_change("orders")`), or a PostgreSQL database named by
        the environment variable holding its URL, with `table=`: `@app.on_change("env:ORDERS_DB",
        table="public.orders")` captures that table's changes from a replication slot (docs/pg-changes.md), with
        `stream_view_type` (KEYS_ONLY, NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES). Records have DynamoDB Streams'
        shape (eventName INSERT, MODIFY, REMOVE); `ops` picks which. `starting_position` is "LATEST" (changes
        made after the trigger first ran) or "TRIM_HORIZON" (every change the stream holds; platform tables
        only). The stream settings are `@app.on_mqtt`'s:
        `batch_size`, `batch_window`, `max_retries`, `max_record_age`, `bisect_on_error`,
        `report_batch_item_failures`, `parallelization` (changes of one item always go to one partition)
        and `filter` (event patterns matched against the whole record).
        """
        self._not_bare(source, "@app.on_change", '@app.on_change("orders")')

        options = {
            "batch_size": batch_size, "batch_window": batch_window, "max_retries": max_retries,
            "max_record_age": max_record_age, "bisect_on_error": bisect_on_error,
            "report_batch_item_failures": report_batch_item_failures, "parallelization": parallelization,
            "filter": filter, "starting_position": starting_position,
        }  # fmt: skip

        def trigger(function: str) -> Trigger:
            def bad(message: str) -> DeclarationError:
                return DeclarationError(f"function {function!r}: @app.on_change({source!r}): {message}")

            if isinstance(source, str) and source.startswith(PG_SOURCE_PREFIXES):
                return _pg_change_trigger(function, source, ops, table, stream_view_type, options)
            if table is not None:
                raise bad(
                    'table= names a PostgreSQL table and goes with a database ("env:ORDERS_DB"); a platform table'
                    " is named by the first argument"
                )
            _resource(function, "table", source)
            if starting_position not in ("LATEST", "TRIM_HORIZON"):
                raise bad(f"starting_position must be 'LATEST' or 'TRIM_HORIZON', not {starting_position!r}")
            checked = _stream_settings(options, bad)
            return ChangeTrigger(source, _choices(ops, CHANGE_OPS, function, "ops"), checked)

        names = (
            "table", "ops", "stream_view_type", "batch_size", "batch_window", "starting_position", "max_retries",
            "max_record_age", "bisect_on_error", "report_batch_item_failures", "parallelization", "filter",
        )  # fmt: skip
        return self._decorator(name, settings, trigger, f"@app.on_change({source!r})", names)

    def projection(
        self,
        category: str,
        *,
        batch_size: int = 100,
        order: str = "global",
        max_concurrency: int | None = None,
        tables: Sequence[str] = (),
        name: str | None = None,
        **settings: Any,
    ) -> Callable[[F], F]:
        """Declare a projection `fn(event, view)` of the event store's streams in `category` ("*": every stream).

        It receives their events in global order; what it writes through `view` (`get`, `put`, `delete` on its
        own key-value namespace, `projection.<name>`) commits together with its checkpoint, so each event is
        applied exactly once. A new projection starts from the first event; `triggerfish eventstore rebuild NAME`
        starts one again (see docs/event-store.md).

        `order="stream"` gives each stream's events in that stream's order with a checkpoint per stream:
        `max_concurrency` streams (4 unless given) are applied at once, and an event that fails holds up its
        own stream only. `tables` names the platform tables it writes (`view.table(name)`), committed with its
        checkpoint as its key-value records are; a rebuild empties them.
        """
        self._not_bare(category, "@app.projection", '@app.projection("account")')

        def trigger(function: str) -> Trigger:
            if category != "*":
                _resource(function, "category", category)
            size = _batch_size(batch_size, function)
            if isinstance(tables, str) or not all(isinstance(t, str) and t for t in tables):
                raise DeclarationError(f"function {function!r}: tables is a list of table names, not {tables!r}")
            owned = tuple(tables)
            if order not in ("global", "stream"):
                raise DeclarationError(f"function {function!r}: order must be 'global' or 'stream', not {order!r}")
            if order == "global":
                if max_concurrency is not None:
                    raise DeclarationError(
                        f"function {function!r}: max_concurrency is for order='stream' (a projection in global"
                        " order applies one batch at a time)"
                    )
                return ProjectionTrigger(category, size, tables=owned)
            streams = 4 if max_concurrency is None else max_concurrency
            if isinstance(streams, bool) or not isinstance(streams, int) or not 1 <= streams <= MAX_STREAMS_AT_ONCE:
                raise DeclarationError(
                    f"function {function!r}: max_concurrency must be from 1 to {MAX_STREAMS_AT_ONCE}, not {streams!r}"
                )
            return ProjectionTrigger(category, size, "stream", streams, owned)

        def declare(fn: F) -> F:
            if inspect.iscoroutinefunction(fn):
                raise DeclarationError(f"@app.projection({category!r}): {fn.__name__} must be a plain def, not async")
            declared = self._declare(fn, name, settings, trigger, f"@app.projection({category!r})")
            draft = self._drafts[_function_name(fn, name, "@app.projection")]
            if len(draft.triggers) > 1:
                raise DeclarationError(
                    f"@app.projection({category!r}): {fn.__name__} takes events from the event"
                    " store only; declare other triggers on a function of their own"
                )
            # The handler the workers run applies batches of events (its ref and fingerprint are still fn's).
            draft.handler = _projection_handler(fn)
            return declared

        return declare

    def upcaster(self, event_type: str, from_schema: int) -> Callable[[F], F]:
        """Declare `fn(data) -> data` raising `event_type`'s data from schema `from_schema` to the next, applied
        whenever such an event is read by a handler or a projection (docs/event-store.md)."""
        from triggerfish.eventstore.upcasting import register

        def declare(fn: F) -> F:
            register(event_type, from_schema, fn)
            return fn

        return declare

    def on_mqtt(
        self,
        topic: str,
        *,
        qos: int = 1,
        share: str | bool = True,
        batch_size: int = 100,
        batch_window: float = 0.0,
        max_retries: int = -1,
        max_record_age: float = -1,
        bisect_on_error: bool = False,
        report_batch_item_failures: bool = False,
        parallelization: int = 1,
        filter: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        window: float = 0,
        to_bus: bool | str = False,
        rule: str | None = None,
        name: str | None = None,
        **settings: Any,
    ) -> Callable[[F], F]:
        """Run the function on batches of MQTT messages matching `topic`, in order per topic (docs/streams.md).

        Messages are stored durably before the broker hears they were received (QoS 1), then read in
        batches as Lambda reads a Kinesis stream: `batch_size` (1 to 10,000, default 100),
        `batch_window` (seconds to fill a batch, up to 300), `max_retries` (-1: until the records
        expire), `max_record_age` (-1, or 60 to 604,800 s), `bisect_on_error`,
        `report_batch_item_failures`, and `parallelization` (1 to 10 partitions; one topic always
        maps to one). `share` is the shared-subscription group the nodes split messages in
        (True: one named after the app and function; False: every node gets every message).
        Records given up on go to the function's `on_failure` destination. `filter` is an event pattern, or
        a list of up to 5, that a record must match one of (Lambda's filter criteria, on the record's `mqtt`
        object with `data` decoded from JSON); the others are skipped.
        """
        self._not_bare(topic, "@app.on_mqtt", '@app.on_mqtt("home/+/temperature")')

        def trigger(function: str) -> Trigger:
            return _mqtt_trigger(
                self.name,
                function,
                topic,
                qos=qos,
                share=share,
                batch_size=batch_size,
                batch_window=batch_window,
                max_retries=max_retries,
                max_record_age=max_record_age,
                bisect_on_error=bisect_on_error,
                report_batch_item_failures=report_batch_item_failures,
                parallelization=parallelization,
                filter=filter,
                window=window,
                to_bus=to_bus,
                rule=rule,
            )

        options = (
            "qos", "share", "batch_size", "batch_window", "max_retries", "max_record_age", "bisect_on_error",
            "report_batch_item_failures", "parallelization", "filter", "window", "to_bus", "rule",
        )  # fmt: skip
        return self._decorator(name, settings, trigger, f"@app.on_mqtt({topic!r})", options)

    def on_amqp(
        self,
        queue: str,
        *,
        exchange: str | None = None,
        routing_key: str = "#",
        exchange_type: str = "topic",
        prefetch: int = 500,
        dead_letter_exchange: str | None = None,
        batch_size: int = 100,
        batch_window: float = 0.0,
        max_retries: int = -1,
        max_record_age: float = -1,
        bisect_on_error: bool = False,
        report_batch_item_failures: bool = False,
        parallelization: int = 1,
        filter: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        window: float = 0,
        to_bus: bool | str = False,
        rule: str | None = None,
        name: str | None = None,
        **settings: Any,
    ) -> Callable[[F], F]:
        """Run the function on batches of an AMQP 0-9-1 queue's messages (RabbitMQ), in order per routing key.

        The queue is declared durable (and bound to `exchange`, declared durable of `exchange_type`,
        with `routing_key`, when an exchange is named). Each message is acknowledged once it is
        stored; `prefetch` (1 to 65,535) is how many the broker sends ahead. Messages given up on
        (after `max_retries`, or past `max_record_age`) are published to `dead_letter_exchange`, when named,
        with RabbitMQ's dead-letter headers (and the failure record still goes to `on_failure`). The stream
        settings are `@app.on_mqtt`'s (docs/streams.md).
        """
        self._not_bare(queue, "@app.on_amqp", '@app.on_amqp("readings")')

        def trigger(function: str) -> Trigger:
            return _amqp_trigger(
                function,
                queue,
                exchange=exchange,
                routing_key=routing_key,
                exchange_type=exchange_type,
                prefetch=prefetch,
                dead_letter_exchange=dead_letter_exchange,
                batch_size=batch_size,
                batch_window=batch_window,
                max_retries=max_retries,
                max_record_age=max_record_age,
                bisect_on_error=bisect_on_error,
                report_batch_item_failures=report_batch_item_failures,
                parallelization=parallelization,
                filter=filter,
                window=window,
                to_bus=to_bus,
                rule=rule,
            )

        options = (
            "exchange", "routing_key", "exchange_type", "prefetch", "dead_letter_exchange", "batch_size",
            "batch_window", "max_retries",
            "max_record_age", "bisect_on_error", "report_batch_item_failures", "parallelization", "filter", "window",
            "to_bus", "rule",
        )  # fmt: skip
        return self._decorator(name, settings, trigger, f"@app.on_amqp({queue!r})", options)

    def on_nats(
        self,
        subject: str,
        *,
        stream: str | None = None,
        durable: str | None = None,
        name: str | None = None,
        **options: Any,
    ) -> Callable[[F], F]:
        """Run the function on batches of a NATS JetStream subject's messages, in order per subject.

        A durable pull consumer (`durable`, default `<app>-<function>`) on the JetStream `stream` that holds
        `subject` (created, file-backed, when none does) fetches messages; each is acknowledged once stored,
        with AckWait from the function's timeout and MaxDeliver from `max_retries`. `starting_position`
        (TRIM_HORIZON, LATEST, AT_TIMESTAMP) picks where a new consumer starts. The stream settings are
        `@app.on_mqtt`'s (docs/sources.md).
        """
        self._not_bare(subject, "@app.on_nats", '@app.on_nats("orders.>")')
        stream_options, settings = _split_stream_options(options)

        def trigger(function: str) -> Trigger:
            from triggerfish.streams.declare import check_nats_name, check_nats_subject

            def bad(message: str) -> DeclarationError:
                return DeclarationError(f"function {function!r}: @app.on_nats({subject!r}): {message}")

            try:
                checked = check_nats_subject(subject)
                held = None if stream is None else check_nats_name("stream", stream)
                consumer = None if durable is None else check_nats_name("consumer", durable)
            except ValueError as exc:
                raise bad(str(exc)) from None
            return NatsTrigger(checked, held, consumer, _stream_settings(stream_options, bad))

        return self._decorator(name, settings, trigger, f"@app.on_nats({subject!r})", StreamSettings.OPTIONS)

    def on_redis_stream(
        self,
        stream: str,
        *,
        group: str | None = None,
        partition_key: str | None = None,
        name: str | None = None,
        **options: Any,
    ) -> Callable[[F], F]:
        """Run the function on batches of a Redis stream's entries, read through consumer group `group`.

        The group (default `<app>.<function>`) is created at `starting_position` when missing; entries are
        acknowledged (XACK) once stored; entries read but never acknowledged (a dropped connection, a node
        that died) are stored first, in order, when a session begins, and taken over with XAUTOCLAIM. In order
        per stream key, or per value of the entries' `partition_key` field (then `parallelization` partitions
        run in parallel); the stream settings are `@app.on_mqtt`'s (docs/sources.md).
        """
        self._not_bare(stream, "@app.on_redis_stream", '@app.on_redis_stream("readings")')
        stream_options, settings = _split_stream_options(options)

        def trigger(function: str) -> Trigger:
            from triggerfish.streams.declare import check_partition_key, check_stream_name

            def bad(message: str) -> DeclarationError:
                return DeclarationError(f"function {function!r}: @app.on_redis_stream({stream!r}): {message}")

            try:
                key = check_stream_name("Redis stream key", stream)
                checked_group = None if group is None else check_stream_name("consumer group", group)
                field_name = None if partition_key is None else check_partition_key(partition_key)
            except ValueError as exc:
                raise bad(str(exc)) from None
            return RedisStreamTrigger(key, checked_group, field_name, _stream_settings(stream_options, bad))

        return self._decorator(name, settings, trigger, f"@app.on_redis_stream({stream!r})", StreamSettings.OPTIONS)

    def on_stream(
        self, stream: str, *, partition_key: str, name: str | None = None, **options: Any
    ) -> Callable[[F], F]:
        """Run the function on batches of the platform's own partitioned stream `stream`, as Lambda reads Kinesis.

        Records are put with `context.streams.put(stream, record)`, `POST /-/partitioned-streams/<stream>`
        or `triggerfish stream put`; each record's `partition_key` field orders it (records with one
        value are read in order, one batch at a time). `parallelization` is the stream's partition
        count: every function reading one stream declares the same. Each function reads with its own
        checkpoint from `starting_position`. The stream settings are `@app.on_mqtt`'s (docs/streams.md).
        """
        self._not_bare(stream, "@app.on_stream", '@app.on_stream("readings", partition_key="device")')
        stream_options, settings = _split_stream_options(options)

        def trigger(function: str) -> Trigger:
            from triggerfish.streams.declare import check_partition_key, check_stream_name

            def bad(message: str) -> DeclarationError:
                return DeclarationError(f"function {function!r}: @app.on_stream({stream!r}): {message}")

            try:
                checked = check_stream_name("stream name", stream)
                field_name = check_partition_key(partition_key)
            except ValueError as exc:
                raise bad(str(exc)) from None
            return PartitionedStreamTrigger(checked, field_name, _stream_settings(stream_options, bad))

        return self._decorator(name, settings, trigger, f"@app.on_stream({stream!r})", StreamSettings.OPTIONS)

    # --- the machinery ------------------------------------------------------------------------

    def _decorator(
        self,
        name: str | None,
        settings: dict[str, Any],
        trigger: Callable[[str], Trigger | None],
        where: str,
        options: Iterable[str] = (),
    ) -> Callable[[F], F]:
        def decorate(handler: F) -> F:
            return self._declare(handler, name, settings, trigger, where, options)

        return decorate

    def _declare(
        self,
        handler: F,
        name: str | None,
        settings: dict[str, Any],
        trigger: Callable[[str], Trigger | None] | None,
        where: str,
        options: Iterable[str] = (),
    ) -> F:
        function = _function_name(handler, name, where)
        problem = _handler_problem(handler)
        if problem:
            raise DeclarationError(f"function {function!r} ({where}): {problem}")
        draft = self._drafts.get(function)
        if draft is not None and draft.handler is not handler:
            raise DeclarationError(
                f"two functions are named {function!r}: {_ref(draft.handler)} and {_ref(handler)}; "
                "rename one, or pass name= to its decorator"
            )
        settings = dict(settings)
        durable = settings.pop("durable", None)
        if durable is not None and not isinstance(durable, bool):
            raise DeclarationError(f"function {function!r} ({where}): durable is True or False, not {durable!r}")
        checked = _settings(settings, function, where, (*options, "name"))
        made = trigger(function) if trigger is not None else None
        if draft is None:
            draft = self._drafts[function] = _Draft(handler)
        for key, value in checked.items():
            if key in draft.settings and draft.settings[key] != value:
                raise DeclarationError(
                    f"function {function!r}: {key} is set twice with different values "
                    f"({draft.settings[key]!r} and {value!r}); set it on one decorator"
                )
            draft.settings[key] = value
        if durable or (durable is None and _is_sdk_durable(handler)):
            draft.durable = True
        if made is not None:
            draft.triggers.insert(0, made)  # decorators apply bottom-up; keep the order they are written in
        draft.spec = None
        return handler

    def _claim_route(self, method: str, path: str, function: str) -> None:
        shape = _route_shape(path)
        methods = HTTP_METHODS - {"ANY"} if method == "ANY" else {method, "ANY"}
        for other in sorted(methods | {method}):
            taken = self._routes.get((other, shape))
            if taken is not None and taken[0] != function:
                raise DeclarationError(
                    f"functions {taken[0]!r} and {function!r} both handle {method} {path} "
                    f"({taken[0]!r} declared {other} {taken[1]}); give one of them another method or path"
                )
        self._routes[(method, shape)] = (function, path)

    @staticmethod
    def _not_bare(first: object, decorator: str, example: str) -> None:
        if inspect.isfunction(first) or inspect.ismethod(first):
            raise DeclarationError(f"{decorator} needs its arguments, e.g. {example}; it was used without them")


# --- checks, each raising DeclarationError naming the function --------------------------------


def _function_name(handler: Callable[..., Any], name: str | None, where: str) -> str:
    if not callable(handler):
        # Checked before the name, or a non-callable would be reported as a naming problem.
        raise DeclarationError(f"{where}: the handler is not callable ({handler!r}); decorate a function")
    chosen = name if name is not None else getattr(handler, "__name__", None)
    if chosen is None:
        raise DeclarationError(f"{where}: this handler has no __name__ ({handler!r}); pass name= to the decorator")
    if not isinstance(chosen, str) or not _FUNCTION_NAME.fullmatch(chosen):
        raise DeclarationError(
            f"{where}: invalid function name {chosen!r}: use 1 to 64 letters, digits, _ or -, "
            "not starting with a digit or -; pass name= to choose another"
        )
    return chosen


def _handler_problem(handler: object) -> str | None:
    if inspect.isgeneratorfunction(handler) or inspect.isasyncgenfunction(handler):
        return "the handler is a generator (it uses yield); a handler returns its result"
    return signature_problem(handler)


def _settings(settings: Mapping[str, Any], function: str, where: str, options: Iterable[str]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for key, value in settings.items():
        if key not in SETTING_NAMES:
            message = unknown_name_message("setting", key, SETTING_NAMES | set(options))
            raise DeclarationError(f"function {function!r} ({where}): {message}")
        try:
            checked[key] = check_setting(key, value)
        except ValueError as exc:
            raise DeclarationError(f"function {function!r} ({where}): {exc}") from None
    return checked


def _http_method(method: object, function: str) -> str:
    verb = method.upper() if isinstance(method, str) else method
    if verb not in HTTP_METHODS:
        raise DeclarationError(
            f"function {function!r}: unknown HTTP method {method!r}; use one of {', '.join(sorted(HTTP_METHODS))}"
        )
    return str(verb)


def _http_path(path: object, function: str) -> str:
    def bad(reason: str) -> DeclarationError:
        return DeclarationError(f"function {function!r}: invalid path {path!r}: {reason}")

    if not isinstance(path, str) or not path.startswith("/"):
        raise bad("a path starts with '/', e.g. '/orders/{id}'")
    if path == "/":
        return path
    if path == "/-" or path.startswith("/-/"):
        raise bad("paths under /-/ are reserved for the platform's own endpoints (/-/health, /-/events, ...)")
    segments = path[1:].split("/")
    seen: set[str] = set()
    for index, segment in enumerate(segments):
        if not segment:
            raise bad("it has an empty segment ('//' or a trailing '/'); remove it")
        match = _PATH_PARAMETER.fullmatch(segment)
        if match:
            parameter, greedy = match.groups()
            if parameter in seen:
                raise bad(f"the parameter {{{parameter}}} appears twice; give each a distinct name")
            seen.add(parameter)
            if greedy and index != len(segments) - 1:
                raise bad(f"the greedy parameter {{{parameter}+}} must be the last segment")
        elif "{" in segment or "}" in segment:
            raise bad(f"segment {segment!r}: a parameter is a whole segment written {{name}} with a Python-style name")
        elif not _PATH_LITERAL.fullmatch(segment):
            raise bad(f"segment {segment!r} has characters a path cannot hold unescaped (spaces, %, ?, #, ...)")
    return path


def _route_shape(path: str) -> str:
    """Paths that differ only in parameter names match the same requests."""
    return _PATH_PARAMETER.sub(lambda m: "{+}" if m.group(2) else "{}", path)


def _pattern(pattern: object, function: str, what: str) -> dict[str, Any]:
    if not isinstance(pattern, Mapping) or not pattern:
        raise DeclarationError(
            f'function {function!r}: the {what} must be a non-empty dict such as {{"source": ["shop"]}}, '
            f"not {pattern!r}"
        )
    try:
        # Imported here: the pattern engine is only needed by apps that declare event triggers.
        patterns = importlib.import_module("triggerfish.events.patterns")
    except ModuleNotFoundError as exc:
        if exc.name != "triggerfish.events.patterns":
            raise
        return dict(pattern)
    try:
        patterns.compile_pattern(dict(pattern))
    except InvalidPatternError as exc:
        where = f" at {exc.path}" if exc.path else ""
        raise DeclarationError(f"function {function!r}: invalid event {what}{where}: {exc.reason}") from None
    except (ValueError, TypeError) as exc:
        raise DeclarationError(f"function {function!r}: invalid event {what}: {exc}") from None
    return dict(pattern)


def _resource(function: str, kind: str, name: object) -> None:
    try:
        check_resource_name(kind, name)
    except ValueError as exc:
        raise DeclarationError(f"function {function!r}: {exc}") from None


#: Most streams a per-stream projection applies at once.
MAX_STREAMS_AT_ONCE = 64


def _batch_size(value: object, function: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BATCH_SIZE:
        raise DeclarationError(f"function {function!r}: batch_size must be from 1 to {MAX_BATCH_SIZE}, not {value!r}")
    return value


def _batch_window(value: object, function: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != value
        or not 0 <= value <= MAX_BATCH_WINDOW
    ):
        raise DeclarationError(
            f"function {function!r}: batch_window must be from 0 to {MAX_BATCH_WINDOW:g} seconds, not {value!r}"
        )
    return float(value)


def _mqtt_trigger(app: str, function: str, topic: object, **options: Any) -> MqttTrigger:
    """An MqttTrigger from `@app.on_mqtt`'s arguments, each checked against MQTT's and Lambda's limits."""
    from triggerfish.sources.mqtt_config import check_share_group, check_topic_filter

    def bad(message: str) -> DeclarationError:
        return DeclarationError(f"function {function!r}: @app.on_mqtt({topic!r}): {message}")

    try:
        checked = check_topic_filter(topic)
    except ValueError as exc:
        raise bad(str(exc)) from None
    qos = options["qos"]
    if qos not in (0, 1) or isinstance(qos, bool):
        raise bad(
            f"qos must be 0 or 1, not {qos!r}: QoS 1 messages are acknowledged once stored, so none is lost; QoS 2"
            " hands a message over before it can be stored (use qos=1; records carry a sequence number to dedupe)"
        )
    share = options["share"]
    if share is True:
        group: str | None = f"{app}.{function}"
    elif share is False or share is None:
        group = None
    else:
        try:
            group = check_share_group(share)
        except ValueError as exc:
            raise bad(str(exc)) from None

    return MqttTrigger(checked, qos, group, _stream_settings(_only_stream(options), bad))


def _amqp_trigger(function: str, queue: object, **options: Any) -> AmqpTrigger:
    """An AmqpTrigger from `@app.on_amqp`'s arguments, each checked against AMQP's and Lambda's limits."""
    from triggerfish.sources.amqp_config import EXCHANGE_TYPES, check_amqp_name, check_routing_key

    def bad(message: str) -> DeclarationError:
        return DeclarationError(f"function {function!r}: @app.on_amqp({queue!r}): {message}")

    try:
        name = check_amqp_name("queue", queue)
        exchange = None if options["exchange"] is None else check_amqp_name("exchange", options["exchange"])
        dead = options["dead_letter_exchange"]
        dead_letters = None if dead is None else check_amqp_name("exchange", dead)
        routing_key = check_routing_key(options["routing_key"])
    except ValueError as exc:
        raise bad(str(exc)) from None
    if options["exchange_type"] not in EXCHANGE_TYPES:
        raise bad(f"exchange_type must be one of {', '.join(EXCHANGE_TYPES)}, not {options['exchange_type']!r}")
    prefetch = options["prefetch"]
    if isinstance(prefetch, bool) or not isinstance(prefetch, int) or not 1 <= prefetch <= 65_535:
        raise bad(f"prefetch must be a whole number from 1 to 65,535, not {prefetch!r}")
    return AmqpTrigger(
        name,
        exchange,
        routing_key,
        options["exchange_type"],
        prefetch,
        dead_letters,
        _stream_settings(_only_stream(options), bad),
    )


def _split_stream_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A decorator's keyword arguments split into stream settings and function settings (memory, timeout...)."""
    stream = _only_stream(options)
    return stream, {key: value for key, value in options.items() if key not in StreamSettings.OPTIONS}


def _only_stream(options: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key in StreamSettings.OPTIONS}


def _stream_settings(options: Mapping[str, Any], bad: Callable[[str], DeclarationError]) -> StreamSettings:
    """The checked StreamSettings of a decorator's stream keyword arguments; `bad` says where a bad one is."""
    try:
        return StreamSettings.checked(options)
    except ValueError as exc:
        raise bad(str(exc)) from None


def _pg_change_trigger(
    function: str, source: str, ops: Iterable[str], table: object, view: object, options: Mapping[str, Any]
) -> PgChangeTrigger:
    """A PgChangeTrigger from `@app.on_change("env:VAR", table=...)`'s arguments, each checked."""
    from triggerfish.changes.pg_records import VIEW_TYPES
    from triggerfish.changes.pg_setup import parse_table

    def bad(message: str) -> DeclarationError:
        return DeclarationError(f"function {function!r}: @app.on_change({source!r}): {message}")

    if not source.startswith("env:"):
        raise bad(
            "a database URL holds a password and differs per stage, so it is never written in code: put it in an"
            ' environment variable and name that, as @app.on_change("env:ORDERS_DB", table="public.orders")'
        )
    variable = source[4:]
    if not variable or not variable.replace("_", "a").isalnum() or variable[0].isdigit():
        raise bad(f"env: must name an environment variable (letters, digits, '_'), not {variable!r}")
    if table is None:
        raise bad('name the table whose changes run the function: table="public.orders"')
    try:
        parsed = parse_table(table)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if view not in VIEW_TYPES:
        raise bad(f"stream_view_type must be one of {', '.join(VIEW_TYPES)}, not {view!r}")
    if options["starting_position"] != "LATEST":
        raise bad(
            f"starting_position must be 'LATEST' for PostgreSQL, not {options['starting_position']!r}: a replication"
            " slot starts where it is made, and the server keeps no changes from before it"
        )
    checked = _stream_settings(options, bad)
    return PgChangeTrigger(source, str(parsed), _choices(ops, CHANGE_OPS, function, "ops"), str(view), checked)


def _choices(values: object, allowed: frozenset[str], function: str, what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = (values,)
    if not isinstance(values, Iterable):
        raise DeclarationError(f"function {function!r}: {what} must be a list of names, not {values!r}")
    chosen = tuple(values)
    options = ", ".join(sorted(allowed))
    if not chosen:
        raise DeclarationError(f"function {function!r}: {what} is empty; choose from {options}")
    for value in chosen:
        if value not in allowed:
            raise DeclarationError(f"function {function!r}: unknown {what} entry {value!r}; choose from {options}")
    if len(set(chosen)) != len(chosen):
        raise DeclarationError(f"function {function!r}: {what} lists an entry twice: {list(chosen)}")
    return chosen


def _projection_handler(fn: Callable[..., Any]) -> Callable[..., Any]:
    from triggerfish.eventstore.projection_handler import projection_handler

    return projection_handler(fn)


def _workflow_handler(fn: Callable[..., Any]) -> Callable[..., Any]:
    # Imported on use: only apps with workflows need the workflow runtime.
    from triggerfish.workflows.context import workflow_handler

    return workflow_handler(fn)


def _durable_handler(fn: Callable[..., Any]) -> Callable[..., Any]:
    from triggerfish.workflows.durable import durable_handler

    return durable_handler(fn)


def _is_sdk_durable(handler: Callable[..., Any]) -> bool:
    # Only a wrapped handler can be the SDK's: the workflow runtime is imported for those alone.
    if not hasattr(handler, "__wrapped__"):
        return False
    from triggerfish.workflows.durable import is_sdk_durable

    return is_sdk_durable(handler)


def _ref(handler: Callable[..., Any]) -> str:
    target = getattr(handler, "func", handler)  # functools.partial
    module = getattr(target, "__module__", None) or "?"
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}:{qualname}"
