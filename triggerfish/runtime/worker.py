"""A worker: one process, forked from its app's zygote, that runs one function's invocations one at a time.

Right after the fork (`become_worker`) the child takes its own session and
process group (so a timeout kills it and everything it started with one
`killpg`), applies its limits, moves into its working directory (making
it the first time), hands itself to the sandbox hook, replaces its
environment with the function's own and points file descriptors 1 and 2
at the output pipe the parent reads.
Then `serve` answers requests on its socket until the parent says stop or
goes away.

Output: print(), logging, C-level writes and child processes all write to
fd 1/2, which is a pipe the parent drains while the handler runs, so a
handler that prints without end is never blocked and the parent keeps only
the first DEFAULT_OUTPUT_LIMIT bytes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import inspect
import logging
import os
import socket
import sys
import termios
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, Protocol

import orjson

from triggerfish.errors import InvocationError, ProtocolError
from triggerfish.identity import function_name
from triggerfish.model import FunctionSpec
from triggerfish.names import OUT_OF_MEMORY_ERROR
from triggerfish.observe.handler_spans import HandlerTracing
from triggerfish.runtime import call_errors, lambda_env, limits, memory, private_tmp
from triggerfish.runtime.context import Context, Secrets
from triggerfish.runtime.handler import run_handler
from triggerfish.runtime.protocol import (
    Cancel,
    FrameReader,
    Heartbeat,
    Log,
    PlatformAnswer,
    PlatformCallFrame,
    Ready,
    Request,
    Spawn,
    frame,
    send_frame,
    start_marker,
)

#: The largest result a handler may return, in bytes of JSON (Lambda's limit for a synchronous invocation).
MAX_RESPONSE = 6 * 1024 * 1024
#: The errorType of a result over MAX_RESPONSE (Lambda's name for it).
RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
#: The only variables zygotes and workers take from the environment the runner was started in.
INHERITED_ENVIRONMENT = ("PATH", "LANG", "TZ")
#: The variables a runner may be given for its app (`ProcessRunner.start(environment=...)`): where the AWS
#: endpoint is, the app's own credentials for it and the region (an AWS client made at import needs one).
#: The zygote's import sees them and every worker keeps them (a function's `env=` may replace them); they
#: never come from the server's own environment.
PLATFORM_ENVIRONMENT = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)
_INHERITED = INHERITED_ENVIRONMENT
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class Sandbox(Protocol):
    """A hook applied in a new worker after its limits and before it runs user code.

    The seam for stronger isolation (namespaces, bubblewrap, seccomp) in a
    later release; it runs in the child and may raise to refuse to start.
    """

    def enter(self, spec: FunctionSpec, cwd: str) -> None: ...


class NoSandbox:
    """The default: process, limits and environment isolation only."""

    def enter(self, spec: FunctionSpec, cwd: str) -> None:
        return None


#: The hook every worker applies; set it in the zygote (before workers fork) to change it.
sandbox: Sandbox = NoSandbox()


def worker_environment(
    spec: FunctionSpec,
    *,
    app_name: str,
    version: str,
    cwd: str,
    secrets: Mapping[str, str] | None = None,
    task_root: str = "",
) -> dict[str, str]:
    """The whole environment of a worker: a documented minimal set with Lambda's standard variables (see
    triggerfish.runtime.lambda_env; `task_root` is the app's directory), the function's declared `env`, and the
    values of its declared `secrets` (names the runtime sets are refused at declaration, so none is replaced)."""
    inherited = os.environ
    env = {
        "PATH": inherited.get("PATH", _DEFAULT_PATH),
        "LANG": inherited.get("LANG", "C.UTF-8"),
        "TZ": inherited.get("TZ", "UTC"),
        "HOME": cwd,
        **lambda_env.function_environment(app_name, spec.name, version, spec.settings.memory_mb, task_root or cwd),
        "_HANDLER": spec.ref,
        "TRIGGERFISH_APP": app_name,
        "TRIGGERFISH_FUNCTION": spec.name,
        "TRIGGERFISH_VERSION": version,
    }
    env.update((name, inherited[name]) for name in PLATFORM_ENVIRONMENT if name in inherited)
    env.update(spec.settings.env)
    env.update(secrets or {})
    return env


def become_worker(
    sock: socket.socket,
    output_fd: int,
    spawn: Spawn,
    spec: FunctionSpec,
    *,
    app_name: str,
    version: str,
    cgroup: str | None = None,
    memory_cgroup: str | None = None,
    task_root: str = "",
    tmp_mount: int | None = None,
) -> NoReturn:
    """Turn a freshly forked child of the app zygote into a worker and serve until told to stop.

    `cgroup` and `memory_cgroup`: the pids and memory cgroups it was born in (None: none, the rlimits apply).
    `tmp_mount`: in a box, the mount fd of the tmpfs the server made for its /tmp (None: it made none).
    """
    code = 0
    try:
        os.setsid()
        address_space = None if memory_cgroup is not None else spawn.memory_bytes
        unenforced = limits.apply_in_child(address_space, spawn.max_processes, cgroup is not None)
        if tmp_mount is not None:  # in a box: the server made the tmpfs, the worker attaches it
            try:
                private_tmp.enter_mount(tmp_mount)
            except private_tmp.PrivateTmpError:
                unenforced.append("tmp")  # /tmp stays the box's
        elif limits.box_tasks is None:
            try:
                keep = private_tmp.paths_to_keep(spawn.cwd, [task_root, *sys.path])  # the app's data files too
                private_tmp.enter(spec.settings.ephemeral_storage, keep)
            except private_tmp.PrivateTmpError as exc:
                if exc.mounted:  # /tmp is neither the host's nor whole: do not run user code over it
                    raise
                unenforced.append("tmp")
        # Otherwise a box whose server makes no /tmp per worker: /tmp is the box's (the runner reports it once).
        _enter_directory(spawn.cwd)
        sandbox.enter(spec, spawn.cwd)
        _set_environment(
            worker_environment(
                spec, app_name=app_name, version=version, cwd=spawn.cwd, secrets=spawn.secrets, task_root=task_root
            )
        )
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(null)
        # Kept (not inherited by the handler's children) to tell the parent whether output is unread.
        os.set_inheritable(output_fd, False)
        send_frame(sock, Ready(pid=os.getpid(), unenforced=unenforced, cgroup=cgroup, memory_cgroup=memory_cgroup))
        peak = None if memory_cgroup is None else os.path.join(memory_cgroup, _peak_file(memory_cgroup))
        worker = Worker(sock, spec, app_name=app_name, version=version, output_fd=output_fd, secrets=spawn.secrets)
        worker.peak = memory.PeakReader(peak)
        worker.serve()
    except BaseException as exc:  # whatever happens, a worker never returns into the zygote's code
        code = 70
        with contextlib.suppress(BaseException):
            # The output pipe, not fd 2: a failure before the dup2s (limits, sandbox, chdir) would
            # otherwise reach the zygote's stderr, and the failed invocation would not say why.
            os.write(output_fd, f"triggerfish worker for {spec.name!r} failed: {exc!r}\n".encode())
    finally:
        os._exit(code)


def prepare_zygote(specs: Mapping[str, FunctionSpec]) -> None:
    """Work every worker would repeat, done once in the app zygote after the app is imported.

    The environment shrinks to the inherited part of the minimal set (the
    app's import saw the full environment; handlers will not), logging goes
    to stderr (fd 2 is the output pipe in a worker), and each function's
    logger exists already.
    """
    base = {name: os.environ[name] for name in (*_INHERITED, *PLATFORM_ENVIRONMENT) if name in os.environ}
    os.environ.clear()
    os.environ.update(base)
    _setup_logging()
    for name in specs:
        logging.getLogger(f"triggerfish.function.{name}")


def _enter_directory(cwd: str) -> None:
    """chdir to the function's working directory, making it the first time (one system call after that).

    Made here, not by the parent: in a box only the box's own processes can write where it is.
    """
    try:
        os.chdir(cwd)
    except FileNotFoundError:
        os.makedirs(cwd, exist_ok=True)
        os.chdir(cwd)


def _set_environment(env: Mapping[str, str]) -> None:
    environ = os.environ
    for name in [name for name in environ if name not in env]:
        del environ[name]
    for name, value in env.items():
        if environ.get(name) != value:
            environ[name] = value


def _setup_logging() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    root.addHandler(handler)
    if root.level == logging.WARNING:  # the default: let handlers' INFO lines through, as Lambda does
        root.setLevel(logging.INFO)


class Worker:
    """The serving loop of a worker: requests in, results out, platform calls relayed to the parent."""

    def __init__(
        self,
        sock: socket.socket,
        spec: FunctionSpec,
        *,
        app_name: str,
        version: str,
        output_fd: int | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        self.sock = sock
        #: Every read of the socket goes through it (it may hold bytes past a frame).
        self.reader = FrameReader(sock)
        self.secrets = Secrets(secrets or {}, spec.name)
        #: The output pipe's write end, which fds 1 and 2 point at (None: not known, always say "unread").
        self.output_fd = output_fd
        self.spec = spec
        self.app_name = app_name
        self.version = version
        self.logger = logging.getLogger(f"triggerfish.function.{spec.name}")
        self.lambda_name = function_name(app_name, spec.name)
        #: The worker's log stream, as its environment names it (None outside a worker: one per invocation).
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        # One loop for the worker's life, so async clients a handler caches in globals stay usable.
        self.loop = asyncio.new_event_loop() if _is_async(spec.handler) else None
        self.call_platform: Callable[[str, dict[str, Any]], Any] = self._call_platform
        #: Reads the worker's peak memory for the REPORT line (its peak resident set until told its cgroup).
        self.peak = memory.PeakReader(None)
        #: The handler's own OpenTelemetry spans, joined to the invocation's trace (observe/handler_spans.py).
        self.tracing = HandlerTracing()
        #: Requests the parent queued behind the running one that arrived while a platform call waited for its
        #: answer: they run next, in order.
        self.queued: collections.deque[Request] = collections.deque()

    def serve(self) -> None:
        sock, reader, queued = self.sock, self.reader, self.queued
        while True:
            message = queued.popleft() if queued else reader.recv()
            if message is None or isinstance(message, Cancel):
                return
            if isinstance(message, Request):
                sock.sendall(self.invoke(message))
            elif isinstance(message, Heartbeat):
                send_frame(sock, Heartbeat(pid=os.getpid()))
            else:
                raise ProtocolError(f"a worker cannot handle a {message.TYPE!r} frame between invocations")

    def invoke(self, request: Request) -> bytes:
        """Run one request; the encoded Result frame."""
        spec = self.spec
        deadline = request.deadline
        if request.time_limit is not None:
            # Queued behind another: its time counts from now, and its output from the marker on.
            deadline = time.time() + request.time_limit
            if self.output_fd is not None:
                os.write(self.output_fd, start_marker(request.id))
        context = Context(
            request_id=request.id,
            function_name=self.lambda_name,
            function=spec.name,
            log_stream_name=self.log_stream_name,
            function_version=self.version,
            memory_limit_in_mb=spec.settings.memory_mb,
            deadline=deadline,
            attempt=request.attempt,
            traceparent=request.traceparent,
            hop_count=request.hop_count,
            call_platform=self.call_platform,
            defers_calls=True,
            prelude=request.prelude,
            app_name=self.app_name,
            logger=self.logger,
            secrets=self.secrets,
        )
        traceparent = context.traceparent  # checked (a pattern match) once, not once per use
        # Per invocation, as Lambda sets it: the X-Ray header of this invocation's trace.
        os.environ["_X_AMZN_TRACE_ID"] = lambda_env.x_amzn_trace_id(traceparent)
        started = time.time()
        with self.tracing.joined(traceparent):
            outcome = run_handler(spec.handler, request.event, context, loop=self.loop)
        ended = time.time()
        self._send_spans(request.id)
        _flush()
        if _has_children() and (killed := limits.kill_children()):
            # The platform's log, not the handler's output: the user did not print this.
            message = f"request {request.id}: killed {killed} process(es) the handler left behind"
            send_frame(self.sock, Log(level="warning", message=message))
        body: dict[str, Any] = {"t": "result", "id": request.id, "ok": outcome.ok, "started": started, "ended": ended}
        body["max_memory"] = self.peak.read()
        if self.output_fd is not None and _pipe_empty(self.output_fd):
            # Everything written so far was already read by the parent: spare it a read per invocation.
            body["unread_output"] = False
        if outcome.ok and context.final_call is not None:
            # The platform's answer to this call is the result (Context.finish_with_platform_call).
            op, args = context.final_call
            body["call"] = {"op": op, "args": args}
        elif outcome.ok:
            result_json = outcome.result_json or b"null"
            body["result"] = orjson.Fragment(result_json)
            body["result_bytes"] = len(result_json)
        else:
            error = outcome.error or {}
            if error.get("errorType") == "MemoryError":
                error = _out_of_memory(error, spec.settings.memory_mb)
                body["retire"] = True
            body["error"] = error
            body["retryable"] = outcome.retryable
            body["retry_delay"] = outcome.retry_delay
        try:
            data = orjson.dumps(body)
        except (TypeError, orjson.JSONEncodeError) as exc:  # an error document that cannot be encoded
            data = self._failure(body, "Runtime.MarshalError", str(exc))
        if len(data) > MAX_RESPONSE:
            message = (
                f"Response payload size ({len(data)} bytes) exceeded maximum allowed payload size "
                f"({MAX_RESPONSE} bytes)."
            )
            data = self._failure(body, RESPONSE_TOO_LARGE, message)
        return frame(data)

    def _send_spans(self, request_id: str) -> None:
        """Hand the spans the handler ended to the platform (only a handler using OpenTelemetry has any)."""
        spans = self.tracing.drain(function=self.spec.name, request_id=request_id)
        if not spans:
            return
        try:
            self.call_platform("spans", {"spans": spans})
        except Exception as exc:  # the invocation's outcome stands; its spans are what is lost
            send_frame(self.sock, Log(level="warning", message=f"request {request_id}: spans not kept: {exc}"))

    @staticmethod
    def _failure(body: dict[str, Any], error_type: str, message: str) -> bytes:
        body.pop("result", None)
        body.pop("call", None)
        body["ok"] = False
        body["error"] = {"errorType": error_type, "errorMessage": message, "stackTrace": []}
        return orjson.dumps(body)

    def _call_platform(self, op: str, args: dict[str, Any]) -> Any:
        # Blocks the handler until the parent answers: context calls are synchronous by contract.
        send_frame(self.sock, PlatformCallFrame(op=op, args=args))
        answer = self.reader.recv()
        while isinstance(answer, Request):  # queued behind this invocation: it runs next
            self.queued.append(answer)
            answer = self.reader.recv()
        if not isinstance(answer, PlatformAnswer):
            raise InvocationError(f"context.call_platform({op!r}): the platform sent no answer")
        if not answer.ok:
            if answer.error_type is None:  # refused before it reached the platform (an unknown operation, ...)
                raise InvocationError(f"context.call_platform({op!r}) failed: {answer.error}")
            raise call_errors.rebuild(op, answer.error_type, answer.error or "", answer.details or {})
        return answer.value


def _out_of_memory(error: Mapping[str, Any], memory_mb: int) -> dict[str, Any]:
    return {
        "errorType": OUT_OF_MEMORY_ERROR,
        "errorMessage": (
            f"the handler ran out of memory: the function's limit is {memory_mb} MB (memory_mb); "
            "raise memory_mb or allocate less"
        ),
        "stackTrace": list(error.get("stackTrace") or []),
    }


def _peak_file(cgroup: str) -> str:
    """The peak-usage file of a memory cgroup: v1's where it has one, else v2's."""
    v1 = memory.MemoryController(1, Path(cgroup)).peak_file
    return v1 if os.path.exists(os.path.join(cgroup, v1)) else memory.MemoryController(2, Path(cgroup)).peak_file


def _has_children() -> bool:
    """Whether this process has a child (running or exited, reaped or not: nothing is reaped here).

    One system call, where `limits.kill_children` opens and reads a /proc file: most handlers
    start no process, and on the async path this was the largest cost a no-op invocation had.
    """
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT | _WALL)
    except ChildProcessError:
        return False
    except OSError:
        return True  # cannot tell: look the expensive way
    return True


#: Linux's __WALL: children of any kind, including those created by clone() with another exit signal.
_WALL = 0x40000000


def _pipe_empty(fd: int) -> bool:
    """Whether the pipe `fd` (either end) holds no unread bytes; False when that cannot be told."""
    try:
        unread = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return False
    return int.from_bytes(unread, sys.byteorder) == 0


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # a handler may have replaced or closed them
            pass


def _is_async(handler: Callable[..., Any]) -> bool:
    target = inspect.unwrap(handler)
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(getattr(target, "__call__", None))  # noqa: B004
