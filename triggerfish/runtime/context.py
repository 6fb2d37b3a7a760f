"""The context object a handler receives: Lambda's attributes plus Triggerfish's own.

A handler written for AWS Lambda reads `context.aws_request_id`,
`context.get_remaining_time_in_millis()` and friends and finds them here
with the same meaning. Triggerfish adds a logger bound to the request id,
the attempt number, the trace context, and `publish`/`send`, which ask the
platform (the parent process) to emit an event or a queue message.

A context is built for every invocation on the warm path, so construction
stores its arguments and nothing more: the trace context, the logger and
the ARN are made on first use.
"""

from __future__ import annotations

import base64
import datetime
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from triggerfish.errors import InvalidEventError, InvalidInputError, InvocationError
from triggerfish.events import tracecontext
from triggerfish.identity import named_function_arn

if TYPE_CHECKING:
    from triggerfish.runtime.objects_client import ObjectsClient

_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
# Attribute names `publish` sets itself; an extension may not shadow them.
_RESERVED = frozenset(
    {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data", "data_base64"}
    | {"traceparent", "hopcount"}
)


class _RequestLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds the request id (and function) to every record, as attributes and as a message prefix."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = self.extra or {}
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        return f"[{extra['aws_request_id']}] {msg}", kwargs


class Secrets(Mapping[str, str]):
    """`context.secrets`: the values of the secrets the function declares, by name, read-only.

    Its repr names the secrets and never shows a value, so printing or logging the context leaks nothing;
    asking for a secret the function does not declare is a KeyError saying how to declare it.
    """

    __slots__ = ("_function", "_values")

    def __init__(self, values: Mapping[str, str], function: str = "") -> None:
        self._values = dict(values)
        self._function = function

    def __getitem__(self, name: str) -> str:
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(
                f"{name!r}: function {self._function!r} declares no secret of that name (it declares"
                f" {', '.join(self._values) or 'none'}); declare it: @app.function(secrets=[{name!r}])"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<secrets {', '.join(self._values) or '(none)'}: values not shown>"


class CognitoIdentity:
    """`context.identity`, as Lambda's runtime gives it: an object whose fields are None unless a mobile SDK
    caller sent a Cognito identity."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, cognito_identity_id: str | None = None, cognito_identity_pool_id: str | None = None) -> None:
        self.cognito_identity_id = cognito_identity_id
        self.cognito_identity_pool_id = cognito_identity_pool_id

    def __repr__(self) -> str:
        return f"CognitoIdentity(cognito_identity_id={self.cognito_identity_id!r})"


class Context:
    """What a handler learns about its invocation, and how it reaches the platform.

    Lambda-compatible, with the values and types Lambda's Python runtime gives: `aws_request_id`,
    `function_name` (the Lambda name, `<app>-<function>`, which `invoked_function_arn` and
    `log_group_name` also name), `function_version`, `memory_limit_in_mb` (a string, "128"),
    `log_stream_name` (the worker's, as AWS_LAMBDA_LOG_STREAM_NAME), `identity` (a CognitoIdentity
    whose fields are None), `client_context` (None: no mobile SDK caller), `tenant_id` (None),
    `get_remaining_time_in_millis()`.

    Triggerfish's own: `request_id`, `function` (the name the app declares), `logger` (records carry
    `aws_request_id`),
    `attempt` (1 for the first try), `traceparent`/`trace_id` (W3C trace
    context; a new trace when the caller sent none or an invalid one),
    `hop_count`, `publish(...)`, `send(...)`, `call_platform(op, args)`, and `secrets`: the values of the
    secrets the function declares (`secrets=[...]`), read-only, as its environment also has them.

        def handler(event, context):
            context.logger.info("order %s", event["id"])
            context.publish("order.created", {"id": event["id"]})
            return {"left_ms": context.get_remaining_time_in_millis()}
    """

    # No __slots__: Lambda's own context object takes new attributes, and some handler code relies on it.

    def __init__(
        self,
        *,
        request_id: str,
        function_name: str,
        function_version: str = "$LATEST",
        memory_limit_in_mb: int | str = 128,
        deadline: float,
        attempt: int = 1,
        traceparent: str | None = None,
        hop_count: int = 0,
        call_platform: Callable[[str, dict[str, Any]], Any] | None = None,
        defers_calls: bool = False,
        prelude: Any = None,
        app_name: str = "app",
        logger: logging.Logger | None = None,
        secrets: Mapping[str, str] | None = None,
        function: str | None = None,
        log_stream_name: str | None = None,
        tenant_id: str | None = None,
    ) -> None:
        self.aws_request_id = request_id
        #: The Lambda name (the runtime passes `<app>-<function>`); `function` is the name the app declares.
        self.function_name = function_name
        self.function = function or function_name
        self.function_version = function_version
        # A string, as Lambda's runtime reads it from AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
        self.memory_limit_in_mb = str(memory_limit_in_mb)
        #: The tenant of a multi-tenant function's invocation (Lambda's tenant isolation mode); None otherwise.
        self.tenant_id = tenant_id
        self._log_stream_name = log_stream_name
        #: Epoch seconds (time.time()) at which the invocation times out.
        self.deadline = deadline
        self.attempt = attempt
        self.hop_count = hop_count
        self.app_name = app_name
        # As Lambda's runtime: an identity object always (its fields None without a Cognito caller), and a
        # client context only when a mobile SDK caller sent one.
        self.identity: Any = CognitoIdentity()
        self.client_context: Any = None
        self._traceparent = traceparent
        self._call_platform = call_platform
        self._defers_calls = defers_calls
        #: What the platform read for this invocation before sending it (a workflow run's `begin` answer): None
        #: when nothing (another runner, another kind of function); the handler asks the platform itself then.
        self.prelude = prelude
        #: The platform call whose answer is to be this invocation's result (`finish_with_platform_call`).
        self.final_call: tuple[str, dict[str, Any]] | None = None
        self._logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = logger
        self._arn: str | None = None
        self._secrets = secrets

    @property
    def secrets(self) -> Secrets:
        """The function's declared secrets by name, read-only (a KeyError for one it does not declare)."""
        found = self._secrets
        if not isinstance(found, Secrets):
            found = self._secrets = Secrets(found or {}, self.function)
        return found

    # --- Lambda's attributes ------------------------------------------------------------------

    @property
    def request_id(self) -> str:
        """The invocation's id (the same as `aws_request_id`)."""
        return self.aws_request_id

    @property
    def invoked_function_arn(self) -> str:
        """`arn:aws:lambda:local:000000000000:function:<function_name>:<version>`."""
        if self._arn is None:
            self._arn = named_function_arn(self.function_name, self.function_version)
        return self._arn

    @property
    def log_group_name(self) -> str:
        """`/aws/lambda/<function_name>`, as Lambda names a function's log group."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        """`<YYYY/MM/DD>/[<version>]<32 hex>`: the worker's stream (a bare Context: one per invocation)."""
        if self._log_stream_name is not None:
            return self._log_stream_name
        day = datetime.datetime.now(datetime.UTC).strftime("%Y/%m/%d")
        return f"{day}/[{self.function_version}]{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out (0 once it has)."""
        return max(0, int((self.deadline - time.time()) * 1000))

    # --- Triggerfish's own --------------------------------------------------------------------

    @property
    def logger(self) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
        """A logger whose records carry `aws_request_id` and `function_name` and start with the request id."""
        if self._logger is None or isinstance(self._logger, logging.Logger):
            base = self._logger or logging.getLogger(f"triggerfish.function.{self.function}")
            extra = {"aws_request_id": self.aws_request_id, "function_name": self.function}
            self._logger = _RequestLogger(base, extra)
        return self._logger

    @property
    def traceparent(self) -> str:
        """The W3C traceparent of this invocation; a new trace if the caller sent none or an invalid one."""
        current = self._traceparent if tracecontext.is_valid(self._traceparent) else None
        if current is None:
            current = self._traceparent = tracecontext.new_traceparent()
        return current

    @property
    def trace_id(self) -> str:
        """The 32-hex-digit trace id shared by every invocation this one causes."""
        return self.traceparent.split("-")[1]

    @property
    def events(self) -> Any:
        """The app's event store: `append(stream, events, expected_version=...)`, `read(stream, ...)`,
        `read_all(...)`, snapshots (`triggerfish.eventstore.client.Events`; docs/event-store.md)."""
        from triggerfish.eventstore.client import Events

        return Events(self.call_platform)

    def call_platform(self, op: str, args: dict[str, Any]) -> Any:
        """Ask the platform to carry out `op` ("publish", "send", "kv_get", "kv_put", "kv_delete").

        Blocks until the platform answers and returns its JSON answer. Raises
        InvocationError when this context has no platform (a bare Context in a test).
        """
        if self._call_platform is None:
            raise InvocationError(
                f"context.{op}: this context has no platform to call; run the handler through "
                "triggerfish.testing or the runtime, or pass call_platform= to Context"
            )
        return self._call_platform(op, args)

    def finish_with_platform_call(self, op: str, args: dict[str, Any]) -> bool:
        """Make the platform's answer to `op` this invocation's result, asked together with the result (the worker
        sends the call in its result frame: no round trip of its own; what the handler returns is dropped, and a
        failed call fails the invocation as a failed `call_platform` would). Whether this runner does that: where
        it does not (False), nothing is kept, and the handler calls `call_platform` and returns the answer itself.
        """
        if not self._defers_calls:
            return False
        self.final_call = (op, args)
        return True

    def publish(
        self,
        type: str,
        data: Any = None,
        *,
        source: str | None = None,
        subject: str | None = None,
        bus: str = "default",
        **extensions: str | int | bool,
    ) -> str:
        """Publish a CloudEvent on `bus` and return its id.

        The event continues this invocation's trace (a child `traceparent`)
        and carries `hopcount` one higher than this invocation's, so a chain
        of functions triggering each other can be stopped. `source` defaults
        to `/<app>/<function>`. Extension names are lowercase letters and
        digits, at most 20 characters (the CloudEvents naming rule).
        """
        event = self.event(type, data, source=source, subject=subject, **extensions)
        self.call_platform("publish", {"bus": bus, "event": event})
        return str(event["id"])

    def event(
        self,
        type: str,
        data: Any = None,
        *,
        source: str | None = None,
        subject: str | None = None,
        **extensions: str | int | bool,
    ) -> dict[str, Any]:
        """The CloudEvent `publish` would send, without sending it: for a table write's `publish=` (its outbox).

        orders = context.table("orders")
        orders.put({"id": "o-1", "total": 42}, publish=[context.event("order.placed", {"id": "o-1"})])
        """
        if not isinstance(type, str) or not type:
            raise InvalidEventError("type", "must be a non-empty string, e.g. 'order.created'")
        if source is not None and (not isinstance(source, str) or not source):
            raise InvalidEventError("source", "must be a non-empty URI-reference string, e.g. '/shop/orders'")
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": source or f"/{self.app_name}/{self.function}",
            "type": type,
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if subject is not None:
            if not isinstance(subject, str) or not subject:
                raise InvalidEventError("subject", "must be a non-empty string when given")
            event["subject"] = subject
        if data is not None:
            event["datacontenttype"] = "application/json"
            event["data"] = data
        for name, value in extensions.items():
            if not _EXTENSION_NAME.match(name):
                raise InvalidEventError(name, "an extension name is 1 to 20 lowercase letters or digits")
            if name in _RESERVED:
                raise InvalidEventError(name, "is set by context.publish; pass it as an argument, not an extension")
            if not isinstance(value, str | int | bool):
                raise InvalidEventError(name, f"an extension value is a string, integer or boolean, not {value!r}")
            event[name] = value
        event["traceparent"] = tracecontext.child(self.traceparent)
        event["hopcount"] = self.hop_count + 1
        return event

    def start_workflow(self, function: str, input: Any = None, *, id: str | None = None) -> str:
        """Start the workflow `function` (an `@app.workflow`) with `input`; its id (docs/workflows.md).

        With `id`, a workflow that exists already under it goes on and nothing new starts: a handler that runs
        again (a retried request, a redelivered event) cannot start two.
        """
        answer = self.call_platform("workflow", {"action": "start", "function": function, "input": input, "id": id})
        return str(answer["workflow_id"])

    def table(self, name: str) -> Any:
        """The app's table `name` (docs/tables.md): get, put, update, delete, query, scan, batches, transactions.

        Items are plain dicts (numbers as int or float, sets as sets, bytes as bytes); each call is one
        request to the platform, and a write can publish events atomically with it (`publish=`).

            orders = context.table("orders")
            orders.put({"id": "o-1", "status": "NEW"}, condition="attribute_not_exists(id)")
            orders.update({"id": "o-1"}, set={"status": "PAID"})
        """
        from triggerfish.tables.client import Table

        return Table(name, self.call_platform)

    def send(
        self,
        queue: str,
        body: str | bytes | Any,
        *,
        delay: float = 0.0,
        group: str | None = None,
        dedup_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        """Send a message to `queue` and return its message id.

        A str body is sent as is, bytes travel base64-encoded and arrive as
        bytes, and any other JSON value is sent as its JSON text (as code
        calling SQS with `json.dumps(...)` would). The store checks the
        queue name, the delay and the size.
        """
        args: dict[str, Any] = {"queue": queue, "delay": delay, "group": group, "dedup_id": dedup_id}
        if isinstance(body, str):
            args["body"] = body
        elif isinstance(body, bytes | bytearray | memoryview):
            args["body_base64"] = base64.b64encode(bytes(body)).decode("ascii")
        else:
            try:
                args["body"] = orjson.dumps(body).decode()
            except TypeError as exc:
                raise InvocationError(f"context.send({queue!r}): the body is not JSON-serialisable: {exc}") from None
        args["attributes"] = dict(attributes) if attributes else {}
        args["traceparent"] = tracecontext.child(self.traceparent)
        args["hop_count"] = self.hop_count + 1
        answer = self.call_platform("send", args)
        if isinstance(answer, dict):
            return str(answer.get("message_id") or answer.get("id") or "")
        return str(answer)

    @property
    def mqtt(self) -> Mqtt:
        """The app's MQTT broker: `context.mqtt.publish("home/hall/fan/set", {"power": "on"})` (commands to devices)."""
        return Mqtt(self)

    @property
    def streams(self) -> Streams:
        """The app's built-in partitioned streams: `context.streams.put("readings", {"device": "d1", ...})`."""
        return Streams(self)

    @property
    def objects(self) -> ObjectsClient:
        """The app's object store: `get`, `put`, `delete`, `list` of small objects (docs/objects.md)."""
        from triggerfish.runtime.objects_client import ObjectsClient

        return ObjectsClient(self.call_platform)

    def __repr__(self) -> str:
        return (
            f"Context(request_id={self.aws_request_id!r}, function_name={self.function_name!r}, "
            f"attempt={self.attempt}, remaining_ms={self.get_remaining_time_in_millis()})"
        )


class Streams:
    """`context.streams`: puts records into the app's built-in streams (`@app.on_stream`, docs/streams.md)."""

    def __init__(self, context: Context) -> None:
        self._context = context

    def put(self, stream: str, data: Any, *, key: str | None = None) -> dict[str, Any]:
        """Put one record (any JSON value) and return where it went: `{"partition": ..., "sequenceNumber": ...}`.

        `key` orders it (records with one key are read in order); None takes the stream's `partition_key`
        field from `data`. Raises InvalidInputError for a stream no function reads or a record without a key.
        """
        return self.put_many(stream, [data], keys=None if key is None else [key])[0]

    def put_many(
        self, stream: str, records: Sequence[Any], *, keys: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Put up to 500 records in order (all or none); where each went."""
        if keys is not None and len(keys) != len(records):
            raise InvalidInputError(f"put_many: {len(records)} records but {len(keys)} keys; give one key per record")
        entries = [{"data": data, "key": None if keys is None else keys[n]} for n, data in enumerate(records)]
        answer = self._context.call_platform("stream_put", {"stream": stream, "records": entries})
        return list(answer["records"])


class Mqtt:
    """`context.mqtt`: publishes to the app's MQTT broker (`[mqtt] url`), e.g. commands to devices."""

    def __init__(self, context: Context) -> None:
        self._context = context

    def publish(self, topic: str, payload: Any = b"", *, qos: int = 1, retain: bool = False) -> None:
        """Publish `payload` to `topic`; returns once the broker has it (QoS 1).

        A str is sent as UTF-8, bytes as they are, any other value as its JSON text. Raises
        InvalidInputError for a topic with wildcards, or when no broker is configured.
        """
        args: dict[str, Any] = {"topic": topic, "qos": qos, "retain": retain}
        if isinstance(payload, str):
            args["payload"] = payload
        elif isinstance(payload, bytes | bytearray | memoryview):
            args["payload_base64"] = base64.b64encode(bytes(payload)).decode("ascii")
        else:
            try:
                args["payload"] = orjson.dumps(payload).decode()
            except TypeError as exc:
                raise InvalidInputError(f"context.mqtt.publish({topic!r}): the payload is not JSON: {exc}") from None
        self._context.call_platform("mqtt_publish", args)
