"""The frames the parent, the zygotes and the workers exchange.

A frame is a 4-byte big-endian length followed by that many bytes of JSON
(orjson). The JSON is an object whose `t` names the message type; each type
is a frozen dataclass here, so both ends agree on the fields. Decoding
checks the type and the fields and raises ProtocolError, never anything
else, so a peer sending garbage fails one connection, not the process.

The worker side uses blocking sockets (`send_frame`, and `FrameReader`,
which takes a frame in one `recv` where `recv_frame` takes two); the parent
side feeds bytes into a `FrameBuffer` from an asyncio protocol.
"""

from __future__ import annotations

import select
import socket
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import orjson

from triggerfish.errors import ProtocolError

#: Largest frame accepted, in bytes: far above any event (256 KiB) or result, small enough to refuse nonsense.
MAX_FRAME = 64 * 1024 * 1024
_HEADER = 4
#: Bytes a FrameReader asks the socket for at once: a whole request frame in one system call.
_READ_SIZE = 256 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    """Parent -> worker: run the handler once."""

    TYPE: ClassVar[str] = "request"
    id: str
    event: Any
    #: Epoch seconds at which the invocation times out (the context's deadline).
    deadline: float
    attempt: int = 1
    traceparent: str | None = None
    hop_count: int = 0
    #: Set on a request queued behind the one the worker is running (the async path's prefetch): the deadline is
    #: then this many seconds after the worker starts it, and the worker writes `start_marker(id)` to its output
    #: first, so the parent can tell the two invocations' output apart.
    time_limit: float | None = None


def start_marker(request_id: str) -> bytes:
    """What a worker writes to its output pipe as it starts a queued request: where that request's output begins.

    One write of a few dozen bytes (under PIPE_BUF: never split by the kernel, so one read of the
    parent's holds all of it or none).
    """
    return b"\x00triggerfish-start:" + request_id.encode("utf-8", "replace")[:200] + b"\x00"


@dataclass(frozen=True, slots=True)
class Result:
    """Worker -> parent: how the invocation went (the handler's result or Lambda's error document)."""

    TYPE: ClassVar[str] = "result"
    id: str
    ok: bool
    result: Any = None
    error: dict[str, Any] | None = None
    retryable: bool = True
    retry_delay: float | None = None
    #: Epoch seconds at which the handler was entered and left, as the worker saw them.
    started: float = 0.0
    ended: float = 0.0
    #: The worker exits after this result (after running out of memory its state cannot be trusted).
    retire: bool = False
    #: False when the worker saw its output pipe empty after flushing: the parent already read it all.
    unread_output: bool = True
    #: The most memory the worker has had in use so far, in bytes (its memory cgroup's peak, or its peak RSS).
    max_memory: int | None = None
    #: Bytes of the result's JSON when ok (the worker encoded it anyway): usage's data out.
    result_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Log:
    """Worker -> parent: a line for the platform's own log (worker problems, not handler output)."""

    TYPE: ClassVar[str] = "log"
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Either way: are you alive? The worker answers a heartbeat with one."""

    TYPE: ClassVar[str] = "heartbeat"
    pid: int = 0


@dataclass(frozen=True, slots=True)
class Cancel:
    """Parent -> worker (between invocations): stop serving and exit cleanly."""

    TYPE: ClassVar[str] = "cancel"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PlatformCallFrame:
    """Worker -> parent: the handler's context asks the platform for something (publish, send, kv)."""

    TYPE: ClassVar[str] = "platform_call"
    op: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PlatformAnswer:
    """Parent -> worker: the answer to a platform call, or the error it raised."""

    TYPE: ClassVar[str] = "platform_answer"
    ok: bool
    value: Any = None
    error: str | None = None
    #: The error's class and its details (see `triggerfish.runtime.call_errors`), so the worker raises it again.
    error_type: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Ready:
    """Worker -> parent, once: set up and waiting for requests."""

    TYPE: ClassVar[str] = "ready"
    pid: int
    #: What the worker could not enforce (e.g. "processes"), for the pool's `limits` report.
    unenforced: list[str]
    #: The pids cgroup the worker was born in, if any.
    cgroup: str | None = None
    #: The memory cgroup the worker was born in, if any.
    memory_cgroup: str | None = None


@dataclass(frozen=True, slots=True)
class LoadApp:
    """Parent -> base zygote: fork an app zygote for this app version (its socket comes with the frame)."""

    TYPE: ClassVar[str] = "load_app"
    target: str
    version: str
    work_dir: str
    stage: str | None = None
    overrides: dict[str, Any] | None = None
    #: The runner's pids cgroup directory (None: no cgroup), and the processes a worker may have.
    cgroup_root: str | None = None
    max_processes: int = 64
    #: Directories put at the front of sys.path before the app is imported (its installed requirements).
    extra_paths: list[str] = field(default_factory=list)
    #: The runner's memory cgroup directory and its controller's version (None: workers use RLIMIT_AS).
    memory_root: str | None = None
    memory_version: int = 1
    #: A zygote of one function's own (None: of the whole app), and the variables its import sees besides the
    #: app-wide ones: the function's `env` and Lambda's variables naming it.
    function: str | None = None
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Loaded:
    """App zygote -> parent: the app imported; these are its functions (`spec_to_dict` form)."""

    TYPE: ClassVar[str] = "loaded"
    pid: int
    app_name: str
    functions: list[dict[str, Any]]
    #: The zygote's address-space size in bytes, the baseline a worker's memory limit is added to.
    baseline_bytes: int


@dataclass(frozen=True, slots=True)
class LoadFailed:
    """App zygote -> parent: the app could not be imported or its configuration is wrong."""

    TYPE: ClassVar[str] = "load_failed"
    message: str
    details: str = ""


@dataclass(frozen=True, slots=True)
class Spawn:
    """Parent -> app zygote: fork a worker for `function` (the worker's socket comes with the frame)."""

    TYPE: ClassVar[str] = "spawn"
    function: str
    #: The worker's working directory and limits, decided by the parent.
    cwd: str
    #: RLIMIT_AS, for a worker the zygote cannot put in a memory cgroup.
    memory_bytes: int
    max_processes: int
    #: The limit of the worker's memory cgroup: the function's memory_mb, in bytes.
    memory_limit: int = 0
    #: The values of the secrets the function declares: only over this socket, never on a command line or in a
    #: file, and never in a repr (the zygote prints frames it refuses).
    secrets: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class Exited:
    """Zygote -> parent: a child was reaped; `status` as os.waitpid returned it."""

    TYPE: ClassVar[str] = "exited"
    pid: int
    status: int


Message = (
    Request
    | Result
    | Log
    | Heartbeat
    | Cancel
    | PlatformCallFrame
    | PlatformAnswer
    | Ready
    | LoadApp
    | Loaded
    | LoadFailed
    | Spawn
    | Exited
)
_TYPES: dict[str, Any] = {
    cls.TYPE: cls
    for cls in (
        Request,
        Result,
        Log,
        Heartbeat,
        Cancel,
        PlatformCallFrame,
        PlatformAnswer,
        Ready,
        LoadApp,
        Loaded,
        LoadFailed,
        Spawn,
        Exited,
    )
}
_FIELDS: dict[str, tuple[str, ...]] = {name: tuple(f.name for f in fields(cls)) for name, cls in _TYPES.items()}


def encode(message: Message) -> bytes:
    """The frame for `message`: header and body in one bytes object, so it goes out in one write."""
    body = {"t": message.TYPE}
    for name in _FIELDS[message.TYPE]:
        body[name] = getattr(message, name)
    return frame(orjson.dumps(body))


def request_frame(
    request_id: str,
    event_json: bytes,
    deadline: float,
    attempt: int,
    traceparent: str | None,
    hop_count: int,
    time_limit: float | None = None,
) -> bytes:
    """The frame of `Request(request_id, Fragment(event_json), ...)` as `encode` writes it, without building the
    dataclass and reading it back: the one frame every invocation sends (a third of `encode`'s time)."""
    return frame(
        orjson.dumps(
            {
                "t": "request",
                "id": request_id,
                "event": orjson.Fragment(event_json),
                "deadline": deadline,
                "attempt": attempt,
                "traceparent": traceparent,
                "hop_count": hop_count,
                "time_limit": time_limit,
            }
        )
    )


def frame(body: bytes) -> bytes:
    """Prefix an already-encoded JSON body with its length."""
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes is over the limit of {MAX_FRAME} bytes")
    return len(body).to_bytes(_HEADER, "big") + body


def decode(body: bytes | bytearray | memoryview) -> Message:
    """The message a frame body carries; ProtocolError when it is not JSON, not an object or not a known type."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"malformed frame: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"malformed frame: expected a JSON object, got {type(data).__name__}")
    kind = data.pop("t", None)
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown frame type {kind!r}; known: {', '.join(sorted(_TYPES))}")
    try:
        message: Message = cls(**data)
    except TypeError as exc:
        raise ProtocolError(f"malformed {kind!r} frame: {exc}") from None
    return message


class FrameBuffer:
    """Splits a byte stream into frame bodies (the parent side: feed what the socket delivered)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held of a frame not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add `data`; return the bodies of the frames now complete. ProtocolError on an oversized length."""
        buffer = self._buffer
        if not buffer and len(data) >= _HEADER:
            # The common case, one whole frame per read, without copying into the buffer.
            size = int.from_bytes(data[:_HEADER], "big")
            if len(data) == _HEADER + size and size <= MAX_FRAME:
                return [data[_HEADER:]]
        buffer += data
        bodies: list[bytes] = []
        while len(buffer) >= _HEADER:
            size = int.from_bytes(buffer[:_HEADER], "big")
            if size > MAX_FRAME:
                raise ProtocolError(f"frame length {size} is over the limit of {MAX_FRAME} bytes")
            if len(buffer) < _HEADER + size:
                break
            bodies.append(bytes(buffer[_HEADER : _HEADER + size]))
            del buffer[: _HEADER + size]
        return bodies


class FrameReader:
    """Messages from a blocking socket, a frame in one `recv` (the worker side; `recv_frame` takes two).

    The worker reads a request per invocation; the length and the body come
    in one read into a buffer rather than a read for each. Bytes past a frame
    stay for the next `recv()`, so use one reader per socket for all reads.

    It waits for a frame in `poll`, not in a blocking `recv`: a Unix socket wakes every task sleeping on it
    when the peer reads what this side sent (to say there is room to write again), and a `recv` sleeping
    there wakes for nothing; `poll` asked for input only is not woken by that. Without it a worker woke twice
    per invocation, once when the parent read its result (from the parent's read: its time, often its CPU).
    """

    __slots__ = ("_bodies", "_buffer", "_readable", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = FrameBuffer()
        self._bodies: deque[bytes] = deque()
        self._readable = select.poll()
        self._readable.register(sock, select.POLLIN)

    def recv(self) -> Message | None:
        """The next message; None when the peer closed the socket between frames; ProtocolError for a bad one."""
        bodies = self._bodies
        while not bodies:
            self._readable.poll()  # input, a hang-up or an error: recv then says which
            data = self._sock.recv(_READ_SIZE)
            if not data:
                if self._buffer.pending:
                    raise ProtocolError("connection closed in the middle of a frame")
                return None
            bodies.extend(self._buffer.feed(data))
        return decode(bodies.popleft())


def send_frame(sock: socket.socket, message: Message) -> None:
    """Send one message on a blocking socket."""
    sock.sendall(encode(message))


def recv_frame(sock: socket.socket) -> Message | None:
    """Receive one message from a blocking socket; None when the peer closed it between frames."""
    header = _recv_exactly(sock, _HEADER)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    if size > MAX_FRAME:
        raise ProtocolError(f"frame length {size} is over the limit of {MAX_FRAME} bytes")
    body = _recv_exactly(sock, size) if size else b""
    if body is None:
        raise ProtocolError("connection closed in the middle of a frame")
    return decode(body)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = sock.recv(size, socket.MSG_WAITALL)
    if len(data) == size:
        return data
    if not data:
        return None
    # MSG_WAITALL may return early on a signal; gather the rest.
    parts = [data]
    missing = size - len(data)
    while missing:
        more = sock.recv(missing, socket.MSG_WAITALL)
        if not more:
            raise ProtocolError("connection closed in the middle of a frame")
        parts.append(more)
        missing -= len(more)
    return b"".join(parts)
