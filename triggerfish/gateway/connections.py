"""Holding ground against many, idle or slow connections: a cap that evicts idle ones, a head timeout, fds in reserve.

    limits = ConnectionLimits(max_connections=1024, header_timeout=10, keep_alive_timeout=5)
    async with GatewayServer(app, port=8080, limits=limits): ...

uvicorn alone keeps a connection that never sends a byte open forever, has no
timeout for a request head that arrives a byte at a time (slowloris), answers
503 over `limit_concurrency` only once a request head has arrived, and lets
asyncio's accept loop run the process out of file descriptors. Here:

- **Head timeout.** A connection whose request head has not arrived in full
  `header_timeout` seconds after the connection opened (or after its first
  byte, on a kept-alive connection) is closed: with a 408 when part of a head
  came, silently when nothing did. Bytes arriving slowly do not extend it.
- **A cap that evicts.** At most `max_connections` are open. A connection
  waiting for a request head (idle, kept alive, or a head still arriving)
  does no work and can be closed at any time, so a new connection over the
  cap closes the one that has waited longest instead of being refused: a
  client holding a thousand idle sockets delays nobody. Only when every
  connection is busy with a request is the new one answered 503 with
  `Retry-After` and closed (after reading what it sent, so it gets the
  answer rather than a reset).
- **No EMFILE.** `GatewayServer` accepts connections itself and stops
  accepting (the kernel's backlog holds the rest) while the cap and the
  refusals in progress use the descriptors planned for them. At start,
  `plan_descriptors` raises the soft `RLIMIT_NOFILE` to what the cap needs
  beside what is open already and a reserve for the store, workers and the
  file watcher; a hard limit too low for that lowers the cap, with a warning.
- **Quiet logs.** Refusals, evictions, timeouts, accept errors and uvicorn's
  own warnings are logged once per interval with a count (log_limit.py).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import resource
from dataclasses import dataclass
from typing import Any, Protocol, cast

import h11
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from triggerfish.errors import InvalidInputError
from triggerfish.gateway.coalesce import CoalescingTransport
from triggerfish.gateway.log_limit import LimitedLogger, LogLimiter

log = logging.getLogger("triggerfish.gateway")

DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEP_ALIVE = 5.0
#: File descriptors kept free beside the connections, for the store, worker channels and pipes, zygotes,
#: the file watcher and the answers in flight.
FD_RESERVE = 256
#: Seconds a connection refused over the cap has to send its request and read the 503 before it is closed.
REFUSAL_LINGER = 1.0
#: Bytes of a refused connection's request read (and dropped) before it is closed anyway.
_REFUSAL_READ_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How many connections a server keeps open, and how long it waits for them.

    `max_connections`: open at once (over it, the longest-waiting idle one is
    closed, or the new one is answered 503 when none is idle);
    `header_timeout`: seconds for a request head to arrive in full (408);
    `keep_alive_timeout`: seconds an idle kept-alive connection stays open;
    `retry_after`: the `Retry-After` of a 503 over the cap.
    Raises InvalidInputError naming the setting for a value out of range.
    """

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE
    retry_after: int = 1

    def __post_init__(self) -> None:
        _check_number("max_connections", self.max_connections, 1, 1_000_000, whole=True)
        _check_number("header_timeout", self.header_timeout, 0.1, 3600)
        _check_number("keep_alive_timeout", self.keep_alive_timeout, 0.1, 3600)
        _check_number("retry_after", self.retry_after, 0, 3600, whole=True)

    @property
    def refusing(self) -> int:
        """How many connections over the cap may be in the middle of their 503 at once."""
        return max(16, self.max_connections // 16)


def _check_number(name: str, value: Any, low: float, high: float, *, whole: bool = False) -> None:
    kind = "a whole number" if whole else "a number"
    ok = not isinstance(value, bool) and isinstance(value, int if whole else int | float)
    if not ok or not low <= value <= high:
        raise InvalidInputError(f"{name} must be {kind} from {low:g} to {high:g}, not {value!r}")


# --- file descriptors ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DescriptorPlan:
    """What the process's descriptor limit allows: the soft limit to set, the cap to use, and why it is lower."""

    soft_limit: int
    max_connections: int
    warning: str | None = None


def plan_descriptors(limits: ConnectionLimits, *, open_now: int, soft: int, hard: int) -> DescriptorPlan:
    """The soft RLIMIT_NOFILE `limits` need, given `open_now` descriptors open and the current limits (pure).

    `hard` is `resource.RLIM_INFINITY` (-1) when unlimited. When the hard limit
    is too low for the cap, the cap is lowered to what fits (at least 1) and
    `warning` says how to get the rest.
    """
    needed = open_now + FD_RESERVE + limits.max_connections + limits.refusing
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return DescriptorPlan(soft, limits.max_connections)
    if hard == resource.RLIM_INFINITY or hard >= needed:
        return DescriptorPlan(needed, limits.max_connections)
    fits = max(1, hard - open_now - FD_RESERVE - limits.refusing)
    warning = (
        f"the open-file limit (hard {hard}, {open_now} open) leaves room for {fits} connections, not the"
        f" {limits.max_connections} asked for; raise it (ulimit -Hn, LimitNOFILE= in systemd) or lower"
        " --max-connections"
    )
    return DescriptorPlan(hard, fits, warning)


def open_descriptors() -> int:
    """How many file descriptors this process has open (Linux's /proc; elsewhere a guess of 64)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 64


def reserve_descriptors(limits: ConnectionLimits) -> ConnectionLimits:
    """Raise the soft RLIMIT_NOFILE for `limits`; the limits to serve with (a lower cap when the hard limit says so)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    plan = plan_descriptors(limits, open_now=open_descriptors(), soft=soft, hard=hard)
    if plan.soft_limit != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (plan.soft_limit, hard))
        except (OSError, ValueError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, plan.soft_limit, exc)
    if plan.warning is not None:
        log.warning("%s", plan.warning)
    if plan.max_connections == limits.max_connections:
        return limits
    return ConnectionLimits(plan.max_connections, limits.header_timeout, limits.keep_alive_timeout, limits.retry_after)


# --- the guard ---------------------------------------------------------------------------------------


def _raw_answer(status: int, reason: str, code: str, message: str, headers: dict[str, str]) -> bytes:
    """A whole HTTP/1.1 answer as bytes, for connections no request cycle exists for (yet)."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    lines = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Guarded(Protocol):
    """A served connection as the guard sees it (GuardedH11Protocol, GuardedHttpToolsProtocol)."""

    def evict(self) -> None: ...


class ConnectionGuard:
    """The connections of one server: who is open, who may be evicted, and whether there is room to accept.

    One per GatewayServer; its protocols report to it. `admit()` is asked for
    each accepted socket's protocol; `room` is set while another may be accepted.
    """

    def __init__(self, limits: ConnectionLimits, limiter: LogLimiter | None = None) -> None:
        self.limits = limits
        self.limiter = limiter or LogLimiter(log)
        self.uvicorn_log = LimitedLogger(logging.getLogger("uvicorn.error"), self.limiter)
        #: Open guarded connections; those waiting for a request head, oldest first.
        self.open: set[Guarded] = set()
        self.waiting: collections.OrderedDict[Guarded, None] = collections.OrderedDict()
        self.refusing: set[RefusingProtocol] = set()
        self.room = asyncio.Event()
        self.room.set()
        #: Counters for tests and benchmarks: connections evicted, refused with 503, closed by the head timeout.
        self.evicted = 0
        self.refused = 0
        self.timed_out = 0
        self.timeout_answer = _raw_answer(
            408,
            "Request Timeout",
            "RequestTimeout",
            f"the request head did not arrive within {limits.header_timeout:g} s",
            {},
        )
        self._refusal = _raw_answer(
            503,
            "Service Unavailable",
            "TooManyConnections",
            f"the server has {limits.max_connections} connections busy with requests; try again shortly",
            {"retry-after": str(limits.retry_after)},
        )

    def admit(self, config: Config, server_state: ServerState, app_state: dict[str, Any]) -> asyncio.Protocol:
        """The protocol for a connection just accepted: served, or answered 503 when every slot is busy."""
        if len(self.open) >= self.limits.max_connections:
            if self.waiting:
                oldest, _ = self.waiting.popitem(last=False)
                self.evicted += 1
                self.limiter.emit(
                    logging.INFO,
                    "evict",
                    "closed an idle connection to make room: %d connections open, the limit is %d",
                    len(self.open),
                    self.limits.max_connections,
                )
                oldest.evict()
            else:
                self.refused += 1
                self.limiter.warning(
                    "refuse",
                    "answered a new connection 503: all %d connections are busy with requests (--max-connections)",
                    self.limits.max_connections,
                )
                return RefusingProtocol(self)
        if config.http == "httptools":
            from triggerfish.gateway.httptools_guard import GuardedHttpToolsProtocol

            return GuardedHttpToolsProtocol(config, server_state, app_state, guard=self)
        return GuardedH11Protocol(config, server_state, app_state, guard=self)

    # --- what the protocols report ---

    def opened(self, protocol: Guarded) -> None:
        self.open.add(protocol)
        self.waiting[protocol] = None
        self._update_room()

    def busy(self, protocol: Guarded) -> None:
        self.waiting.pop(protocol, None)

    def idle(self, protocol: Guarded) -> None:
        if protocol in self.open:
            self.waiting[protocol] = None
            self.waiting.move_to_end(protocol)

    def closed(self, protocol: Guarded) -> None:
        self.open.discard(protocol)
        self.waiting.pop(protocol, None)
        self._update_room()

    def refusal_started(self, protocol: RefusingProtocol) -> None:
        self.refusing.add(protocol)
        self._update_room()

    def refusal_ended(self, protocol: RefusingProtocol) -> None:
        self.refusing.discard(protocol)
        self._update_room()

    def head_timed_out(self, partial: bool) -> bytes | None:
        """Count a head timeout; the 408 to write when part of a head arrived."""
        self.timed_out += 1
        self.limiter.emit(
            logging.INFO,
            "head-timeout",
            "closed a connection whose request head did not arrive within %g s",
            self.limits.header_timeout,
        )
        return self.timeout_answer if partial else None

    @property
    def refusal(self) -> bytes:
        return self._refusal

    def close_refusals(self) -> None:
        for protocol in list(self.refusing):
            protocol.close()

    def _update_room(self) -> None:
        if len(self.open) + len(self.refusing) < self.limits.max_connections + self.limits.refusing:
            self.room.set()
        else:
            self.room.clear()


class GuardedConnection:
    """What both guarded protocols (h11's below, httptools' in httptools_guard.py) do alike: report to the
    guard, time the request head, and close a connection waiting for one, with or without an answer. Each
    protocol says, from its own parser, whether a head has begun to arrive and whether it still waits for one.
    """

    guard: ConnectionGuard
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _head_timer: asyncio.TimerHandle | None

    def _head_started(self) -> bool:
        raise NotImplementedError

    def _waiting_for_head(self) -> bool:
        raise NotImplementedError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        # A response's head and body go out in one send, not two (coalesce.py); uvicorn's flow control keeps
        # the real transport, whose buffer it watches.
        self.transport = cast(asyncio.Transport, CoalescingTransport(cast(asyncio.Transport, transport), self.loop))
        self.guard.opened(self)
        # A connection that never sends a whole head is closed: nothing else would close it.
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self.guard.closed(self)
        super().connection_lost(exc)  # type: ignore[misc]

    def evict(self) -> None:
        """Close this connection, which is waiting for a request head, to make room for another.

        A head half arrived gets a 408 first; an idle connection is closed as a keep-alive timeout would.
        """
        self._close_waiting(self.guard.timeout_answer if self._head_started() else None)

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.guard.limits.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._waiting_for_head():
            return
        self._close_waiting(self.guard.head_timed_out(self._head_started()))

    def _close_waiting(self, answer: bytes | None) -> None:
        self._stop_head_timer()
        if answer is not None:
            self.transport.write(answer)
        self.guard.closed(self)
        self.transport.close()


class GuardedH11Protocol(GuardedConnection, H11Protocol):
    """uvicorn's h11 protocol with a request-head timeout, reporting to a ConnectionGuard what it is doing."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        guard: ConnectionGuard,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard = guard
        # uvicorn logs every malformed request; through the guard's limiter that is a line per interval.
        self.logger = guard.uvicorn_log  # type: ignore[assignment]
        self._head_timer: asyncio.TimerHandle | None = None
        self._waiting = True

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        cast(CoalescingTransport, self.transport).flush()
        super().on_response_complete()
        self._track()

    def _track(self) -> None:
        if self.transport.is_closing():
            return
        waiting = self.conn.their_state is h11.IDLE
        if not waiting:
            # The head is in: the request is the app's now; only its body timeout and the app bound it.
            self._stop_head_timer()
            if self._waiting:
                self._waiting = False
                self.guard.busy(self)
            return
        if not self._waiting:
            self._waiting = True
            self.guard.idle(self)
        # Kept alive and idle, uvicorn's keep-alive timer runs; once a byte of the next head arrives it stops
        # that timer, and this one starts.
        if self._head_started() and self._head_timer is None:
            self._start_head_timer()

    def _head_started(self) -> bool:
        return bool(self.conn.trailing_data[0])

    def _waiting_for_head(self) -> bool:
        return self.conn.their_state is h11.IDLE


class RefusingProtocol(asyncio.Protocol):
    """A connection over the cap: answered 503 with Retry-After, its request read and dropped, then closed.

    Reading what the client sends before closing matters: closing a socket
    with unread data sends a reset, and the client would see that instead of
    the answer.
    """

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard
        self.transport: asyncio.Transport | None = None
        self._read = 0
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.guard.refusal_started(self)
        transport.write(self.guard.refusal)
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER, self.close)

    def data_received(self, data: bytes) -> None:
        self._read += len(data)
        if self._read > _REFUSAL_READ_LIMIT:
            self.close()
            return
        seen = self._tail + data
        self._tail = seen[-3:]
        if b"\r\n\r\n" in seen and self.transport is not None and self.transport.can_write_eof():
            # The head is in: end our side after the answer, so the client reads it to the end at once;
            # the socket closes when the client closes its side (or the linger ends).
            self.transport.write_eof()

    def eof_received(self) -> bool:
        return False  # the client is done: close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.guard.refusal_ended(self)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
