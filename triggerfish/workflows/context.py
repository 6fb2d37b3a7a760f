"""A workflow's code and its context, in the worker: the replay model carried out, checkpoints asked of the platform.

    @app.workflow
    def order(ctx, order):
        stock = ctx.step(reserve, order["items"])
        ctx.sleep(3600)
        paid = ctx.wait_for_event({"type": ["payment.done"], "data": {"order": [order["id"]]}}, timeout=86400)
        return {"stock": stock, "paid": paid["data"]}

`@app.workflow` declares the function with `workflow_handler(fn)` as its
handler: any trigger invokes it like any function. The handler asks the
platform for the workflow's record (`begin`: created on the first run, with
the invocation's event as input), runs the code from the top with a
`WorkflowContext` over the history, and returns a summary (the result once
finished). An operation that has to wait (a sleep, an event, a callback,
children, a step's retry) is checkpointed and the run ends there (`Suspend`):
the worker is free, and the platform invokes the function again when the wait
is over. Every checkpoint names what the run believed each operation's state
was: a run that lost a race with another (or whose workflow was cancelled)
is told so and stops quietly (`Superseded`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import functools
import importlib
import os
import random as _random
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from triggerfish.errors import NonRetryable
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.handler import lambda_error
from triggerfish.workflows.errors import BatchFailedError, StepFailedError, WaitTimeoutError, WorkflowError
from triggerfish.workflows.history import (
    CANCELLED,
    FAILED,
    READY,
    RETRYING,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    WAITING,
    Replay,
    check_wait_seconds,
)

#: The key of the event that resumes a workflow (or starts a child): `{"triggerfish-workflow": {"id": ...}}`.
RESUME_KEY = "triggerfish-workflow"
#: The platform call every workflow request goes through.
PLATFORM_OP = "workflow"
#: A step's retries unless it says otherwise: 3 attempts, about 1 s then 2 s apart.
DEFAULT_STEP_RETRY = RetryPolicy(base=1.0, multiplier=2.0, ceiling=300.0, jitter=0.2)
DEFAULT_MAX_ATTEMPTS = 3
#: The attribute `@app.workflow` sets on the user's function: its declared name (for `ctx.child`).
WORKFLOW_ATTRIBUTE = "__triggerfish_workflow__"


class Suspend(BaseException):  # a signal, not an error: user code's `except Exception` must not catch it
    """The run ends here: the workflow waits (checkpointed); the platform resumes it.

    `seq` is the operation the run ends on: one it has just begun (sent with the run's last checkpoint), or one it
    saw waiting in the history it loaded. That view may be old (the wait was answered while this run went on, and
    the resume that answer queued found this run ahead of it and stopped), so the platform checks it when the run
    ends and resumes the workflow if it is.
    """

    def __init__(self, seq: int | None = None) -> None:
        super().__init__(seq)
        self.seq = seq


class Superseded(BaseException):
    """Another run of this workflow got further first, or the workflow was cancelled: this run stops."""


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One child of a `map` or `parallel`: its position, status (SUCCEEDED, FAILED, CANCELLED, or None when it
    never started), result or error document."""

    index: int
    status: str | None
    result: Any
    error: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a `map` or `parallel` gives back: every child's outcome, in the order of the items."""

    items: tuple[BatchItem, ...]

    def succeeded(self) -> list[BatchItem]:
        return [item for item in self.items if item.status == SUCCEEDED]

    def failed(self) -> list[BatchItem]:
        """The children that failed (not those cancelled when the batch was decided without them)."""
        return [item for item in self.items if item.status == FAILED]

    def cancelled(self) -> list[BatchItem]:
        """The children cancelled: still running when the batch was decided, or cancelled by hand."""
        return [item for item in self.items if item.status == CANCELLED]

    def results(self) -> list[Any]:
        """The results of the children that succeeded, in order."""
        return [item.result for item in self.succeeded()]


class Callback:
    """A callback's token (hand it to the system that answers) and, with `result()`, its answer."""

    def __init__(self, context: WorkflowContext, op: dict[str, Any]) -> None:
        self._context = context
        self._op = op
        self.token: str = op["token"]

    def result(self) -> Any:
        """The payload the callback was completed with; suspends until it is. Raises StepFailedError when it was
        completed with a failure, WaitTimeoutError when its timeout passed first."""
        op = self._context._current(self._op["seq"])
        status = op["status"]
        if status == SUCCEEDED:
            return op.get("result")
        if status == FAILED:
            raise StepFailedError(f"callback {op['name']!r}", op.get("error") or {})
        if status == TIMED_OUT:
            raise WaitTimeoutError(f"callback {op['name']!r} was not completed within {op.get('timeout'):g} s")
        raise Suspend(op["seq"])


class WorkflowContext:
    """What a workflow's code is given: durable operations, deterministic values, the invocation's context.

    `id`, `input`, `function_name`, `lambda_context` (the Lambda-style context of this run) and `logger`.
    Every operation takes the next position in the history; see docs/workflows.md.
    """

    def __init__(self, record: Mapping[str, Any], lambda_context: Any, call: Callable[[dict[str, Any]], Any]) -> None:
        self.id: str = record["id"]
        self.input: Any = record.get("input")
        self.function_name: str = record["function"]
        self.lambda_context = lambda_context
        self._call = call
        self._replay = Replay(self.id, record.get("ops") or [], record.get("markers") or {})
        self._pending: list[dict[str, Any]] = []
        # A step's success waiting in `_pending` for the next checkpoint: written before anything else runs.
        self._unsaved_step = False

    @property
    def logger(self) -> Any:
        return self.lambda_context.logger

    @property
    def replaying(self) -> bool:
        """Whether the code is re-running operations the history already has (log once with `if not ...`)."""
        return self._replay.replaying

    def key(self) -> str:
        """The idempotency key of the next operation: the same on every replay and every run again of it. Hand it
        to what a step calls (a payment API's Idempotency-Key), so a step that ran but was not checkpointed (the
        platform died in between) and so runs again does not charge twice."""
        return f"{self.id}#{self._replay.position + 1}"

    # --- steps --------------------------------------------------------------------------------

    def step(
        self,
        fn: Callable[..., Any],
        *args: Any,
        name: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run `fn(*args, **kwargs)` once: its result is checkpointed and returned again on every replay.

        The result is written with the workflow's next checkpoint: before the next step or invoke runs, with the
        next wait, or with the workflow's outcome, whichever comes first (so a workflow's last step and its
        result are one write).

        A failure is tried again after the retry policy's backoff (the workflow is suspended meanwhile), up to
        `max_attempts` in all; `triggerfish.NonRetryable` is not retried. Then StepFailedError. The result must
        be JSON (it is returned as JSON gives it back, the same on every replay).
        """
        step_name = _name(name, fn, "step")
        _check_attempts(max_attempts)
        return self._attempt("step", step_name, lambda: fn(*args, **kwargs), max_attempts, retry)

    def invoke(self, function: str, payload: Any = None, *, name: str | None = None, max_attempts: int = 1) -> Any:
        """Invoke another function of the app synchronously, as a step: its result is checkpointed.

        Its failure (an error, a timeout) is tried again up to `max_attempts` (default 1: Lambda's own retries
        do not apply to a synchronous call), then raises StepFailedError.
        """
        if not isinstance(function, str) or not function:
            raise ValueError(f"ctx.invoke: function must be the name of one of the app's functions, not {function!r}")
        _check_attempts(max_attempts)

        def call() -> Any:
            answer = self._call({"action": "invoke", "function": function, "payload": payload})
            if "error" in answer:
                raise _InvokeFailed(answer["error"])
            return answer.get("result")

        return self._attempt("invoke", name or function, call, max_attempts, None)

    def _attempt(
        self, kind: str, name: str, run: Callable[[], Any], max_attempts: int, retry: RetryPolicy | None
    ) -> Any:
        op = self._replay.next(kind, name)
        if op is not None:
            status = op["status"]
            if status == SUCCEEDED:
                return op.get("result")
            if status == FAILED:
                raise StepFailedError(f"{kind} {name!r}", op.get("error") or {})
            if status == RETRYING:
                raise Suspend(op["seq"])
        if self._unsaved_step:
            # The step before this one is written before this one runs (its success rode on the next checkpoint).
            self.flush()
        if op is not None:
            attempt, expect, started = int(op.get("attempts", 0)) + 1, READY, op.get("started", time.time())
        else:
            attempt, expect, started = 1, None, time.time()
        seq = self._replay.position - 1
        base = {"seq": seq, "kind": kind, "name": name, "started": started, "attempts": attempt}
        try:
            result = _as_json(run(), f"{kind} {name!r}")
        except Exception as exc:
            error = exc.error if isinstance(exc, _InvokeFailed) else lambda_error(exc)
            if not isinstance(exc, NonRetryable) and attempt < max_attempts:
                delay = (retry or DEFAULT_STEP_RETRY).backoff(attempt)
                self._checkpoint({**base, "status": RETRYING, "error": error, "delay": delay}, expect)
                raise Suspend from None
            self._checkpoint({**base, "status": FAILED, "error": error, "ended": time.time()}, expect)
            raise StepFailedError(f"{kind} {name!r}", error) from exc
        # A success is written with the workflow's next checkpoint: before the next step (or invoke) runs, with the
        # next wait, or with the workflow's outcome, whichever comes first, so nothing that could act on the world
        # runs before it is durable, and the last step of a workflow costs no call of its own.
        done = {**base, "status": SUCCEEDED, "result": result, "ended": time.time()}
        self._pending.append({"op": done, "expect": expect})
        self._replay.record(done)
        self._unsaved_step = True
        return result

    # --- waits --------------------------------------------------------------------------------

    def sleep(self, duration: float | datetime.timedelta, *, name: str = "sleep") -> None:
        """Wait `duration` (seconds or a timedelta, up to a year) with no worker held: the run ends here and the
        platform's timers resume the workflow when the time has passed (across restarts)."""
        seconds = check_wait_seconds(duration, "ctx.sleep's duration")
        op = self._replay.next("sleep", name)
        if op is None:
            seq = self._replay.position - 1
            op = {"seq": seq, "kind": "sleep", "name": name, "status": WAITING, "seconds": seconds}
            self._end_on(op)
        if op["status"] != SUCCEEDED:
            raise Suspend(op["seq"])

    def wait_for_event(
        self,
        pattern: Mapping[str, Any],
        *,
        timeout: float | datetime.timedelta | None = None,
        bus: str = "default",
        name: str = "event",
    ) -> dict[str, Any]:
        """Wait for the first event on `bus` published from now on that matches the EventBridge `pattern` (as
        `@app.on_event` takes it); returns the CloudEvent as a dict. Raises WaitTimeoutError after `timeout`."""
        from triggerfish.events.patterns import compile_pattern

        if not isinstance(pattern, Mapping) or not pattern:
            raise ValueError(f"ctx.wait_for_event: the pattern must be a non-empty dict, not {pattern!r}")
        compile_pattern(dict(pattern))
        seconds = None if timeout is None else check_wait_seconds(timeout, "ctx.wait_for_event's timeout")
        op = self._replay.next("event", name)
        if op is None:
            seq = self._replay.position - 1
            op = {
                "seq": seq,
                "kind": "event",
                "name": name,
                "status": WAITING,
                "pattern": dict(pattern),
                "bus": bus,
                "timeout": seconds,
                "started": time.time(),
            }
            self._end_on(op)
        if op["status"] == SUCCEEDED:
            return dict(op.get("result") or {})
        if op["status"] == TIMED_OUT:
            raise WaitTimeoutError(f"no event matched {name!r} within {op.get('timeout'):g} s")
        raise Suspend(op["seq"])

    def callback(self, *, timeout: float | datetime.timedelta | None = None, name: str = "callback") -> Callback:
        """A callback: give `.token` to the system that answers (over `POST /-/api/v1/workflows/callbacks/...` or
        `triggerfish workflows callback`), then `.result()` waits for its answer. The token is checkpointed before
        this returns, so an answer that comes at once is never lost."""
        seconds = None if timeout is None else check_wait_seconds(timeout, "ctx.callback's timeout")
        op = self._replay.next("callback", name)
        if op is None:
            seq = self._replay.position - 1
            nonce = base64.urlsafe_b64encode(os.urandom(12)).decode().rstrip("=")
            token = callback_token(self.id, seq, nonce)
            op = {
                "seq": seq,
                "kind": "callback",
                "name": name,
                "status": WAITING,
                "token": token,
                "timeout": seconds,
                "started": time.time(),
            }
            self._checkpoint(op, None)
        return Callback(self, op)

    # --- children ------------------------------------------------------------------------------

    def child(self, workflow: Callable[..., Any] | str, input: Any = None, *, name: str | None = None) -> Any:
        """Run another workflow of the app as a child with `input`, and return its result (StepFailedError when it
        fails). The child is durable on its own; this workflow waits with no worker held."""
        function = workflow if isinstance(workflow, str) else getattr(workflow, WORKFLOW_ATTRIBUTE, None)
        if not isinstance(function, str) or not function:
            raise ValueError(f"ctx.child takes a function declared with @app.workflow (or its name), not {workflow!r}")
        op = self._batch(
            name or function, "child", function, None, [_as_json(input, "the child's input")], None, None, None
        )
        [item] = op.items
        if item.status != SUCCEEDED:
            raise StepFailedError(f"child {name or function!r}", item.error or {"errorType": str(item.status)})
        return item.result

    def map(
        self,
        items: Iterable[Any],
        fn: Callable[[WorkflowContext, Any], Any],
        *,
        max_concurrency: int | None = None,
        min_successful: int | None = None,
        tolerated_failures: int | None = None,
        name: str | None = None,
    ) -> BatchResult:
        """Run `fn(ctx, item)` for every item, each as a child workflow of its own (its own steps, waits and
        retries), at most `max_concurrency` at once. Done when every child succeeded (by default: the first
        failure fails the batch), or once `min_successful` did, or when more than `tolerated_failures` failed;
        children still running then are cancelled. Raises BatchFailedError when the criteria were not met."""
        listed = [_as_json(item, "a map item") for item in items]
        return self._batch(
            name or _name(None, fn, "map"),
            "map",
            self.function_name,
            _ref(fn, "ctx.map"),
            listed,
            max_concurrency,
            min_successful,
            tolerated_failures,
        )

    def parallel(
        self,
        *branches: Callable[[WorkflowContext], Any],
        max_concurrency: int | None = None,
        min_successful: int | None = None,
        tolerated_failures: int | None = None,
        name: str = "parallel",
    ) -> BatchResult:
        """Run each `branch(ctx)` as a child workflow of its own, at most `max_concurrency` at once; completion as
        `map` says. Returns the BatchResult (results in the order of the branches)."""
        if not branches:
            raise ValueError("ctx.parallel needs at least one branch")
        refs = [_ref(branch, "ctx.parallel") for branch in branches]
        return self._batch(
            name, "parallel", self.function_name, None, refs, max_concurrency, min_successful, tolerated_failures
        )

    def _batch(
        self,
        name: str,
        mode: str,
        function: str,
        ref: str | None,
        items: list[Any],
        max_concurrency: int | None,
        min_successful: int | None,
        tolerated_failures: int | None,
    ) -> BatchResult:
        for what, value, low in (
            ("max_concurrency", max_concurrency, 1),
            ("min_successful", min_successful, 0),
            ("tolerated_failures", tolerated_failures, 0),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"ctx.{mode}: {what} must be a whole number from {low}, not {value!r}")
        if min_successful is not None and min_successful > len(items):
            raise ValueError(f"ctx.{mode}: min_successful is {min_successful}, but there are {len(items)} items")
        op = self._replay.next("batch", name)
        if op is None:
            seq = self._replay.position - 1
            spec = {
                "mode": mode,
                "function": function,
                "ref": ref,
                "items": items,
                "max_concurrency": max_concurrency,
                "min_successful": min_successful,
                "tolerated_failures": tolerated_failures,
            }
            op = {"seq": seq, "kind": "batch", "name": name, "status": WAITING, "batch": spec, "started": time.time()}
            self._end_on(op)
        if op["status"] == WAITING:
            raise Suspend(op["seq"])
        state = op["batch"]
        result = BatchResult(
            tuple(
                BatchItem(index, status, state["results"][index], state["errors"][index])
                for index, status in enumerate(state["children"])
            )
        )
        if op["status"] == FAILED and mode != "child":
            raise BatchFailedError(f"{mode} {name!r}", result)
        return result

    # --- determinism helpers -------------------------------------------------------------------

    def now(self) -> datetime.datetime:
        """The current time (UTC), recorded once: the same on every replay."""
        return datetime.datetime.fromtimestamp(self._value("now", time.time), datetime.UTC)

    def random(self) -> float:
        """A random float in [0, 1), recorded once: the same on every replay."""
        return float(self._value("random", _random.random))

    def uuid(self) -> str:
        """A random UUID, recorded once: the same on every replay."""
        return str(self._value("uuid", lambda: str(uuid.uuid4())))

    def version(self, change: str, maximum: int, *, minimum: int = 0) -> int:
        """The version of `change` this execution follows: `maximum` for executions that reach this point with the
        code as it is now, 0 for ones whose history was made before the marker was added. Raises
        NonDeterminismError for a recorded version outside `minimum..maximum`."""
        if not isinstance(change, str) or not change:
            raise ValueError(f"ctx.version: change must be a non-empty string, not {change!r}")
        for what, value in (("maximum", maximum), ("minimum", minimum)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ctx.version: {what} must be a whole number from 0, not {value!r}")
        return self._replay.version(change, minimum, maximum)

    def _value(self, name: str, make: Callable[[], Any]) -> Any:
        op = self._replay.next("value", name)
        if op is not None:
            return op["result"]
        value = make()
        op = {"seq": self._replay.position - 1, "kind": "value", "name": name, "status": SUCCEEDED, "result": value}
        # Kept with the next checkpoint: nothing durable depends on it before then.
        self._pending.append({"op": op, "expect": None})
        self._replay.record(op)
        return value

    # --- the platform -------------------------------------------------------------------------

    def _current(self, seq: int) -> dict[str, Any]:
        return self._replay._ops[seq]

    def _end_on(self, op: dict[str, Any]) -> NoReturn:
        """The run ends on a wait it has just begun: the wait goes out with the run's last checkpoint, which tells
        the platform that this run is over (so that its invocation, delivered again after a crash, runs nothing)."""
        op.setdefault("started", time.time())
        self._pending.append({"op": op, "expect": None})
        self._replay.record(op)
        raise Suspend(op["seq"])

    def _checkpoint(self, op: dict[str, Any], expect: str | None, finish: dict[str, Any] | None = None) -> None:
        self._pending.append({"op": op, "expect": expect})
        self._replay.record(op)
        self.flush(finish)

    def finish_request(self, outcome: dict[str, Any]) -> dict[str, Any]:
        """The `finish` request of the workflow's outcome: its last checkpoint (what this run recorded since the last
        one, and the outcome), which the platform writes and answers with the run's summary (`run_workflow`)."""
        request = self._request("finish", outcome)
        self._saved()
        return request

    def flush(self, finish: dict[str, Any] | None = None, *, waiting_on: int | None = None) -> None:
        """Checkpoint what this run recorded (and, with `finish`, the workflow's outcome; with `waiting_on`, the
        operation the run ends on, as it saw it waiting)."""
        if not self._pending and not self._replay.new_markers and finish is None and waiting_on is None:
            return
        answer = self._call(self._request("checkpoint", finish, waiting_on))
        self._saved()
        if isinstance(answer, dict) and answer.get("superseded"):
            raise Superseded(answer["superseded"])
        if isinstance(answer, dict) and answer.get("refused"):
            raise WorkflowError(not_kept(self.id, answer["refused"]))

    def _request(self, action: str, finish: dict[str, Any] | None, waiting_on: int | None = None) -> dict[str, Any]:
        """A checkpoint's request (`checkpoint` or `finish`): what this run recorded since the last one."""
        request: dict[str, Any] = {
            "action": action,
            "id": self.id,
            "ops": self._pending,
            "markers": self._replay.new_markers,
        }
        if finish is not None:
            request["finish"] = finish
        if waiting_on is not None:
            request["waiting_on"] = waiting_on
        return request

    def _saved(self) -> None:
        """What was recorded has gone to the platform: the next checkpoint starts empty."""
        self._pending = []
        self._unsaved_step = False
        self._replay.new_markers = {}


class _InvokeFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("errorMessage", ""))
        self.error = error


def not_kept(workflow_id: str, reason: str) -> str:
    """Why a workflow fails when the platform refused its checkpoint (a result over the store's record limit)."""
    return f"workflow {workflow_id!r}: the platform could not keep this checkpoint: {reason}"


def callback_token(workflow_id: str, seq: int, nonce: str) -> str:
    """The token of a callback: where it is (workflow, position) and a secret part only the history holds."""
    raw = orjson.dumps([workflow_id, seq, nonce])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_token(token: str) -> tuple[str, int, str]:
    """(workflow id, position, nonce) of a callback token; ValueError when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        workflow_id, seq, nonce = orjson.loads(raw)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise ValueError("not a callback token (it is the text ctx.callback(...).token gave)") from None
    if not isinstance(workflow_id, str) or not isinstance(seq, int) or not isinstance(nonce, str):
        raise ValueError("not a callback token (it is the text ctx.callback(...).token gave)")
    return workflow_id, seq, nonce


# --- the handler ---------------------------------------------------------------------------------------


def workflow_handler(fn: Callable[..., Any]) -> Callable[[Any, Any], Any]:
    """The handler `@app.workflow` declares for `fn(ctx, input)`: runs the workflow as this invocation's part."""

    @functools.wraps(fn)
    def handler(event: Any, context: Any) -> Any:
        return run_workflow(fn, event, context)

    return handler


def run_workflow(fn: Callable[..., Any], event: Any, context: Any) -> dict[str, Any]:
    """One run of a workflow: begin (or resume), replay and go on until it finishes or has to wait."""

    def call(request: dict[str, Any]) -> Any:
        return context.call_platform(PLATFORM_OP, request)

    marker = event.get(RESUME_KEY) if isinstance(event, dict) and len(event) == 1 else None
    prelude = getattr(context, "prelude", None)
    if isinstance(marker, dict) and isinstance(marker.get("id"), str):
        if isinstance(prelude, dict) and prelude.get("resume") == marker["id"] and "record" in prelude:
            # The platform read the record as it sent this request (Workflows.prelude): the begin's answer.
            answer = prelude
        else:
            answer = call({"action": "begin", "resume": marker["id"]})
    else:
        answer = call({"action": "begin", "input": event})
    record = answer["record"]
    if record["status"] != RUNNING or answer.get("ended"):
        # Finished, or this invocation's run already ended on a wait (delivered again after a crash): the wait's
        # own resume carries the workflow on.
        return summary(record)
    ctx = WorkflowContext(record, context, call)
    try:
        branch = record.get("branch")
        if branch is None:
            result = fn(ctx, ctx.input)
        elif branch["mode"] == "map":
            result = resolve(branch["ref"])(ctx, ctx.input)
        else:
            result = resolve(ctx.input)(ctx)
        ctx._replay.finish()
        outcome = {"status": SUCCEEDED, "result": _as_json(result, "the workflow's result")}
    except Suspend as suspended:
        with contextlib.suppress(Superseded):
            ctx.flush(waiting_on=suspended.seq)
        return {"workflow_id": ctx.id, "status": RUNNING}
    except Superseded:
        return {"workflow_id": ctx.id, "status": RUNNING}
    except Exception as exc:
        outcome = {"status": FAILED, "error": _error(exc)}
    finish_with = getattr(context, "finish_with_platform_call", None)
    if callable(finish_with) and finish_with(PLATFORM_OP, ctx.finish_request(outcome)):
        # The worker sends the last checkpoint in its result frame, and the platform's answer to it (`finish`: the
        # summary, as below) is the invocation's result: the outcome is written before the result stands, without
        # a round trip of its own. What is returned here is dropped.
        return {"workflow_id": ctx.id, "status": RUNNING}
    try:
        try:
            ctx.flush(outcome)
        except WorkflowError as exc:
            # The outcome could not be kept (a result over the store's record limit): the workflow fails saying so.
            outcome = {"status": FAILED, "error": lambda_error(exc)}
            ctx.flush(outcome)
    except Superseded:
        return {"workflow_id": ctx.id, "status": RUNNING}
    return {"workflow_id": ctx.id, **outcome}


def summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a run of a workflow answers its caller: its id, status, and result or error once it has them."""
    answer = {"workflow_id": record["id"], "status": record["status"]}
    for key in ("result", "error"):
        if record.get(key) is not None:
            answer[key] = record[key]
    return answer


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, StepFailedError):
        return {**exc.error, "errorMessage": str(exc)} if exc.error else lambda_error(exc)
    return lambda_error(exc)


def _name(name: str | None, fn: object, default: str) -> str:
    if name is not None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"an operation's name must be a non-empty string, not {name!r}")
        return name
    found = getattr(fn, "__name__", None)
    return found if isinstance(found, str) and found and found != "<lambda>" else default


def _check_attempts(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise ValueError(f"max_attempts must be a whole number from 1 to 100, not {value!r}")


def _as_json(value: Any, what: str) -> Any:
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError as exc:
        raise TypeError(f"{what} must be JSON (dict, list, str, number, bool, None): {exc}") from None


def _ref(fn: object, where: str) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not callable(fn) or not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        raise ValueError(
            f"{where} runs each function in a child workflow, which finds it by name: give a function defined at the"
            f" top level of a module (or a class in one), not {fn!r}"
        )
    ref = f"{module}:{qualname}"
    if resolve(ref) is not fn:
        raise ValueError(f"{where}: {ref} does not name {fn!r}; give a function defined at the top level of a module")
    return ref


def resolve(ref: str) -> Callable[..., Any]:
    """The function `module:qualname` names."""
    module_name, _, qualname = ref.partition(":")
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]
