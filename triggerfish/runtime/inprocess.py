"""Run handlers inside this process: the Runner behind `triggerfish.testing`.

Every invocation runs on a thread of its own (threads are reused once idle),
so a handler may block (sleep, do synchronous I/O, call `context.publish`)
without stalling the event loop that runs the platform. An async handler gets its own event loop on that
thread: its `context.call_platform` blocks only its own loop while the
platform's loop answers the call, where blocking the platform's loop from
inside it would deadlock.

Limits this runner cannot enforce the way the process runtime does: a sync
handler that runs past its timeout cannot be stopped from outside its
thread. The invocation is reported as timed out at the deadline and its
concurrency slot is freed, but the thread runs on until the handler
returns, and its late result is dropped. An async handler is cancelled at
the deadline. Memory limits are not enforced. The event is passed as a
JSON copy, as a worker process would receive it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import io
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO, cast, get_args

import orjson

from triggerfish.errors import FunctionNotFoundError, InvocationError, SecretNotSetError, SecretsError, ThrottledError
from triggerfish.identity import function_name
from triggerfish.loader import spec_to_dict
from triggerfish.model import FunctionSettings, FunctionSpec
from triggerfish.names import INVALID_EVENT_ERROR, SECRET_NOT_SET_ERROR, SECRET_UNREADABLE_ERROR, TIMEOUT_ERROR
from triggerfish.runtime import call_errors
from triggerfish.runtime.context import Context
from triggerfish.runtime.handler import HandlerResult, run_handler
from triggerfish.runtime.slots import Slots
from triggerfish.runtime.types import (
    DEFAULT_OUTPUT_LIMIT,
    InvokeOutcome,
    InvokeRequest,
    PlatformCall,
    PlatformHandler,
    PlatformOp,
    SecretsSource,
)

_PLATFORM_OPS: tuple[str, ...] = get_args(PlatformOp)
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class InProcessRunner:
    """A Runner that calls the app's handlers in this process.

        runner = InProcessRunner(app.functions, platform=StorePlatform(store))
        outcome = await runner.run(InvokeRequest(request_id="r1", function="hello", event={}))

    `platform` answers the handlers' `context.publish`, `context.send` and
    key-value calls; without one, those calls raise InvocationError inside
    the handler. Output a handler prints or logs through `context.logger`
    (or any logger, from its own thread) is kept in `InvokeOutcome.output`,
    capped at `output_limit` bytes.
    """

    def __init__(
        self,
        specs: Mapping[str, FunctionSpec],
        *,
        platform: PlatformHandler | None = None,
        version: str = "1",
        app_name: str = "app",
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        secrets: SecretsSource | None = None,
    ) -> None:
        self.specs = dict(specs)
        #: Reads a function's declared secrets at each invocation (no worker outlives a change here).
        self.secrets = secrets
        self.platform = platform
        self.version = version
        self.app_name = app_name
        self.output_limit = output_limit
        #: Each function described as a deployed version's functions are (settings, triggers, code).
        self.descriptions = {name: spec_to_dict(spec) for name, spec in self.specs.items()}
        self._slots: dict[str, Slots] = {}
        self._warm: set[str] = set()
        self._in_flight: dict[str, int] = dict.fromkeys(self.specs, 0)
        self._counts: dict[str, dict[str, int]] = {name: {"invocations": 0, "cold_starts": 0} for name in self.specs}

    def settings(self, function: str) -> FunctionSettings:
        return self._spec(function).settings

    def functions(self) -> list[str]:
        return list(self.specs)

    def in_flight(self, function: str) -> int:
        """Invocations of `function` holding a concurrency slot right now."""
        return self._in_flight.get(function, 0)

    def stats(self, function: str) -> dict[str, Any]:
        """A function's counters: invocations, cold starts (its first), and those running now."""
        spec = self._spec(function)
        return {**self._counts[spec.name], "busy": self.in_flight(spec.name), "workers": 0, "idle": 0}

    async def close(self) -> None:
        """Nothing to stop: handlers run in threads that end with their invocations."""

    def renew_secrets(self) -> None:
        """Nothing to renew: every invocation reads its function's secrets as it starts."""

    async def run(self, request: InvokeRequest, *, wait: float = 1.0) -> InvokeOutcome:
        """Run one invocation; raises ThrottledError when no slot frees up within `wait` seconds.

        Handler errors, timeouts and non-JSON results come back in the outcome.
        """
        spec = self._spec(request.function)
        slots = self._slots.get(spec.name)
        if slots is None:
            slots = self._slots[spec.name] = Slots(spec.settings.concurrency)
        if not await slots.take(wait):
            raise ThrottledError(spec.name, wait)
        self._in_flight[spec.name] = self._in_flight.get(spec.name, 0) + 1
        try:
            return await self._run(spec, request)
        finally:
            self._in_flight[spec.name] -= 1
            slots.release()

    async def _secret_values(self, spec: FunctionSpec) -> Mapping[str, str]:
        names = spec.settings.secrets
        if not names:
            return {}
        if self.secrets is None:
            raise SecretNotSetError(
                f"it declares secrets ({', '.join(names)}), and none were given: TestPlatform(app, secrets={{...}})",
                app=self.app_name,
                name=names[0],
            )
        return await self.secrets(self.app_name, names)

    async def _run(self, spec: FunctionSpec, request: InvokeRequest) -> InvokeOutcome:
        loop = asyncio.get_running_loop()
        try:
            # The event crosses a process boundary in production: give the handler its own JSON copy,
            # so a test cannot pass what a worker could not receive, nor see the handler's mutations.
            event_json = orjson.dumps(request.event)
            event = orjson.loads(event_json)
        except (TypeError, orjson.JSONDecodeError) as exc:
            now = time.time()
            error = {
                "errorType": INVALID_EVENT_ERROR,
                "errorMessage": f"the event of {spec.name!r} is not a JSON value: {exc}",
                "stackTrace": [],
            }
            return InvokeOutcome(
                request.request_id, ok=False, error=error, retryable=False, started_at=now, ended_at=now
            )
        try:
            secrets = await self._secret_values(spec)
        except SecretsError as exc:
            now = time.time()
            kind = SECRET_NOT_SET_ERROR if isinstance(exc, SecretNotSetError) else SECRET_UNREADABLE_ERROR
            error = {"errorType": kind, "errorMessage": f"function {spec.name!r}: {exc}", "stackTrace": []}
            return InvokeOutcome(request.request_id, ok=False, error=error, started_at=now, ended_at=now)
        timeout = spec.settings.timeout
        cold = spec.name not in self._warm
        self._warm.add(spec.name)
        counts = self._counts[spec.name]
        counts["invocations"] += 1
        counts["cold_starts"] += cold
        output = _Output(self.output_limit)
        logger = _invocation_logger(spec.name, request.request_id, output)
        started = time.time()
        context = Context(
            request_id=request.request_id,
            function_name=function_name(self.app_name, spec.name),
            function=spec.name,
            function_version=self.version,
            memory_limit_in_mb=spec.settings.memory_mb,
            deadline=started + timeout,
            attempt=request.attempt,
            traceparent=request.traceparent,
            hop_count=request.hop_count,
            call_platform=self._bridge(loop, spec.name, request),
            app_name=self.app_name,
            logger=logger,
            secrets=secrets,
        )
        handler_loop = asyncio.new_event_loop() if _is_async(spec.handler) else None
        done: asyncio.Future[HandlerResult] = loop.create_future()
        _threads.submit(_call, spec.handler, event, context, handler_loop, output, loop, done)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can lose a cancellation
                result: HandlerResult | None = await asyncio.shield(done)
        except TimeoutError:
            result = None
            if handler_loop is not None:
                _cancel_all(handler_loop)
        except asyncio.CancelledError:
            # The caller gave up (a dispatcher stopping): an async handler stops too; a sync one cannot.
            if handler_loop is not None:
                _cancel_all(handler_loop)
            raise
        ended = time.time()
        common: dict[str, Any] = {
            "request_id": request.request_id,
            "cold_start": cold,
            "duration_ms": (ended - started) * 1000.0,
            "started_at": started,
            "ended_at": ended,
            "output": output.text(),
            "output_truncated": output.truncated,
            "version": self.version,
            "input_bytes": len(event_json),
        }
        if result is None:
            error = {
                "errorType": TIMEOUT_ERROR,
                "errorMessage": f"Task timed out after {timeout:.2f} seconds",
                "stackTrace": [],
            }
            return InvokeOutcome(ok=False, error=error, **common)
        if result.ok:
            result_json = result.result_json if result.result_json is not None else b"null"
            return InvokeOutcome(ok=True, result=orjson.loads(result_json), output_bytes=len(result_json), **common)
        return InvokeOutcome(
            ok=False, error=result.error, retryable=result.retryable, retry_delay=result.retry_delay, **common
        )

    def _spec(self, function: str) -> FunctionSpec:
        spec = self.specs.get(function)
        if spec is None:
            known = ", ".join(sorted(self.specs)) or "none"
            raise FunctionNotFoundError(f"no function named {function!r}; the app declares: {known}")
        return spec

    def _bridge(
        self, loop: asyncio.AbstractEventLoop, function: str, request: InvokeRequest
    ) -> Callable[[str, dict[str, Any]], Any]:
        platform = self.platform

        def call_platform(op: str, args: dict[str, Any]) -> Any:
            if platform is None:
                raise InvocationError(
                    f"context.call_platform({op!r}) needs a platform: create the runner with platform=..."
                )
            if _on_loop(loop):
                # Only reachable when someone calls the bridge from the platform's own loop; waiting
                # here would stop the loop that must answer.
                raise InvocationError("context.call_platform cannot block the platform's own event loop")
            if op not in _PLATFORM_OPS:
                raise InvocationError(f"unknown platform operation {op!r}; use one of {', '.join(_PLATFORM_OPS)}")
            call = PlatformCall(
                op=cast(PlatformOp, op),
                args=args,
                function=function,
                request_id=request.request_id,
                traceparent=request.traceparent,
                hop_count=request.hop_count,
            )
            return _wait_for_answer(loop, platform, call)

        return call_platform


def _call(
    handler: Callable[..., Any],
    event: Any,
    context: Context,
    handler_loop: asyncio.AbstractEventLoop | None,
    output: _Output,
    loop: asyncio.AbstractEventLoop,
    done: asyncio.Future[HandlerResult],
) -> None:
    """The body of an invocation's thread: run the handler, hand the result back to the platform's loop."""
    _capture.register(output)
    try:
        if handler_loop is not None:
            asyncio.set_event_loop(handler_loop)
        try:
            result = run_handler(handler, event, context, loop=handler_loop)
        except BaseException as exc:  # run_handler promises not to raise; a cancelled async handler can
            result = HandlerResult(
                ok=False,
                result_json=None,
                error={"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": []},
            )
    finally:
        _capture.unregister()
        if handler_loop is not None:
            asyncio.set_event_loop(None)
            with contextlib.suppress(RuntimeError):
                handler_loop.close()
    with contextlib.suppress(RuntimeError):  # the platform's loop may be gone after a timeout
        loop.call_soon_threadsafe(_settle, done, result)


def _settle(done: asyncio.Future[HandlerResult], result: HandlerResult) -> None:
    if not done.done():
        done.set_result(result)


def _cancel_all(handler_loop: asyncio.AbstractEventLoop) -> None:
    def cancel() -> None:
        for task in asyncio.all_tasks(handler_loop):
            task.cancel()

    with contextlib.suppress(RuntimeError):  # the loop closed: the handler already finished
        handler_loop.call_soon_threadsafe(cancel)


def _wait_for_answer(loop: asyncio.AbstractEventLoop, platform: PlatformHandler, call: PlatformCall) -> Any:
    """Run the platform call on the platform's loop from a handler's thread and wait for the answer.

    The coroutine is created on the loop itself, so a loop that stops before
    it gets to it leaves no coroutine behind that was never awaited; and a
    platform that stops meanwhile (a test ended while a handler still ran)
    gives the handler an error instead of blocking its thread forever.
    """
    answer: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def settle(task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            answer.set_exception(InvocationError("the platform call was cancelled"))
        elif (error := task.exception()) is not None:
            # As the worker process would raise it: the same class for bad input, InvocationError otherwise.
            answer.set_exception(call_errors.rebuild(call.op, *call_errors.describe(error)))
        else:
            answer.set_result(task.result())

    def start() -> None:
        if answer.set_running_or_notify_cancel():
            asyncio.ensure_future(platform(call)).add_done_callback(settle)

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError:  # the loop is closed
        raise InvocationError(_STOPPED) from None
    while True:
        try:
            return answer.result(timeout=0.25)
        except concurrent.futures.TimeoutError:
            if loop.is_closed() or not loop.is_running():
                answer.cancel()
                raise InvocationError(_STOPPED) from None


_STOPPED = "the platform stopped before it could answer context.call_platform"


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _is_async(handler: Callable[..., Any]) -> bool:
    target = inspect.unwrap(handler)
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(getattr(target, "__call__", None))  # noqa: B004


# --- threads ---------------------------------------------------------------------------------


class _Threads:
    """Threads for invocations, reused when idle.

    Not a ThreadPoolExecutor: a sync handler past its timeout keeps its
    thread, and a fixed-size pool would silently lose capacity to such
    threads. Here a busy thread is simply not idle, and a new one starts
    when no idle one is left.
    """

    def __init__(self, max_idle: int = 64) -> None:
        self._idle: list[queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None]] = []
        self._lock = threading.Lock()
        self._max_idle = max_idle

    def submit(self, function: Callable[..., None], *args: Any) -> None:
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(inbox,), name="triggerfish-invocation", daemon=True).start()
        inbox.put((function, args))

    def _serve(self, inbox: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None]) -> None:
        while True:
            job = inbox.get()
            if job is None:
                return
            function, args = job
            function(*args)
            with self._lock:
                if len(self._idle) >= self._max_idle:
                    return
                self._idle.append(inbox)


_threads = _Threads()


# --- captured output -------------------------------------------------------------------------


class _Output:
    """One invocation's output, capped; what does not fit is dropped and marked."""

    def __init__(self, limit: int) -> None:
        self._buffer = io.StringIO()
        self._size = 0
        self._limit = limit
        self._lock = threading.Lock()
        self.truncated = False

    def write(self, text: str) -> None:
        with self._lock:
            room = self._limit - self._size
            if room <= 0:
                self.truncated = self.truncated or bool(text)
                return
            encoded = text.encode("utf-8", "replace")
            if len(encoded) > room:
                text = encoded[:room].decode("utf-8", "ignore")
                self.truncated = True
            self._buffer.write(text)
            self._size += min(len(encoded), room)

    def text(self) -> str:
        with self._lock:
            return self._buffer.getvalue()


class _OutputHandler(logging.Handler):
    def __init__(self, output: _Output) -> None:
        super().__init__()
        self.output = output
        self.setFormatter(logging.Formatter(_LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.output.write(self.format(record) + "\n")
        except Exception:  # a broken log record must not fail the invocation
            self.handleError(record)


def _invocation_logger(function: str, request_id: str, output: _Output) -> logging.Logger:
    # A logger outside the logging registry, so one per invocation does not leak; it still
    # propagates to `triggerfish.function.<name>` so the user's logging setup sees the records.
    logger = logging.Logger(f"triggerfish.function.{function}", logging.DEBUG)
    logger.parent = logging.getLogger(f"triggerfish.function.{function}")
    logger.addHandler(_OutputHandler(output))
    return logger


class _ThreadRoutedStream(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr: writes from an invocation's thread also go to its output."""

    def __init__(self, original: TextIO, routes: threading.local) -> None:
        self.original = original
        self._routes = routes

    def write(self, text: str) -> int:
        output: _Output | None = getattr(self._routes, "output", None)
        if output is not None:
            output.write(text)
        return self.original.write(text)

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        return self.original.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


class _Capture:
    """Routes print() output of invocation threads to their invocation, process-wide and thread-safe."""

    def __init__(self) -> None:
        self._routes = threading.local()
        self._lock = threading.Lock()

    def register(self, output: _Output) -> None:
        self._install()
        self._routes.output = output

    def unregister(self) -> None:
        self._routes.output = None

    def _install(self) -> None:
        # Re-checked on every invocation: test runners swap sys.stdout between tests.
        with self._lock:
            for name in ("stdout", "stderr"):
                current = getattr(sys, name)
                if not isinstance(current, _ThreadRoutedStream) and current is not None:
                    setattr(sys, name, _ThreadRoutedStream(current, self._routes))


_capture = _Capture()
