"""Serving an ASGI app (the gateway, or the platform app it is mounted in) with uvicorn, holding ground.

    async with GatewayServer(gateway, port=0) as server:     # port 0: the system picks a free port
        ...  # requests to server.url
    await serve_gateway(gateway, "127.0.0.1", 8080)          # until cancelled

What bounds a client, and where:
- connections: `ConnectionLimits` (connections.py): a cap that closes the
  longest-idle connection to make room and answers 503 only when every
  connection is busy, a timeout for the request head (slowloris: 408), the
  keep-alive timeout, and file descriptors planned so that accepting never
  runs the process out of them (the server accepts connections itself and
  stops while the cap is used up);
- headers: a request head still arriving past `max_header_bytes` is refused
  (the connection is answered 400 and closed; the gateway answers a head
  that arrived whole and too large with 431);
- a body that has not arrived in full after the gateway's `body_timeout`
  gets 408 (uvicorn has no body timeout of its own; see Gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import importlib.util
import logging
import os
import socket
from collections.abc import Generator
from types import TracebackType
from typing import Any

import uvicorn

from triggerfish.gateway.connections import (
    DEFAULT_KEEP_ALIVE,
    ConnectionGuard,
    ConnectionLimits,
    reserve_descriptors,
)
from triggerfish.gateway.forwarded import ForwardedHeaders, TrustedProxies
from triggerfish.gateway.log_limit import LogLimiter

log = logging.getLogger("triggerfish.gateway")

#: h11's default: the request line and headers together may not exceed this many bytes.
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
#: Names the HTTP/1.1 parser to serve with: "httptools" or "h11" (default: httptools where installed).
PARSER_VARIABLE = "TRIGGERFISH_HTTP"
_PARSERS = ("httptools", "h11")
#: Seconds `stop()` lets requests in flight finish before it cancels them.
GRACEFUL_SHUTDOWN = 5


def http_parser() -> str:
    """The HTTP/1.1 parser to serve with: `TRIGGERFISH_HTTP` if set, else httptools where installed, else h11.

    httptools (llhttp, in C) parses a head several times faster than h11 (pure Python); both serve behind
    the same connection guard (connections.py, httptools_guard.py). Raises ValueError for another name,
    or for httptools asked for by name and not installed.
    """
    wanted = os.environ.get(PARSER_VARIABLE)
    if wanted is not None and wanted not in _PARSERS:
        raise ValueError(f"{PARSER_VARIABLE}={wanted!r}: use httptools or h11")
    installed = importlib.util.find_spec("httptools") is not None
    if wanted == "httptools" and not installed:
        raise ValueError(f"{PARSER_VARIABLE}=httptools: httptools is not installed (pip install httptools)")
    if wanted is not None:
        return wanted
    return "httptools" if installed else "h11"


def server_config(
    app: Any,
    *,
    http: str | None = None,
    timeout_keep_alive: float = DEFAULT_KEEP_ALIVE,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    backlog: int = 2048,
    access_log: bool = False,
) -> uvicorn.Config:
    """The uvicorn configuration Triggerfish serves with: `http` ("httptools" or "h11"; default `http_parser()`),
    no lifespan, uvicorn's logging left alone."""
    if http is None:
        http = http_parser()
    elif http not in _PARSERS:
        raise ValueError(f"http={http!r}: use httptools or h11")
    return uvicorn.Config(
        app,
        http=http,
        # The platform's app owns startup and shutdown; the server only carries requests.
        lifespan="off",
        timeout_keep_alive=timeout_keep_alive,  # type: ignore[arg-type]  # uvicorn reads any number of seconds
        # h11 bounds a head still arriving by this; the httptools protocol reads it for the same bound.
        h11_max_incomplete_event_size=max_header_bytes,
        backlog=backlog,
        access_log=access_log,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1; forwarded.py believes only named proxies.
        proxy_headers=False,
    )


class _SignalFreeServer(uvicorn.Server):
    """uvicorn's server without its signal handlers: the command running the platform owns SIGINT and
    SIGTERM (it must drain the platform after the server stops, and uvicorn would re-raise the signal
    once it has stopped, cutting that short)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class GatewayServer:
    """`app` served by uvicorn on `host`:`port` in the running event loop; an async context manager.

    The socket is bound by `start()`, so with `port=0` the chosen port is
    known (`.port`, `.url`) as soon as it returns. `limits` bounds
    connections (connections.py; the default allows 1024, a 10 s head and a
    5 s keep-alive); `start()` raises the open-file limit to what they need.
    `trusted_proxies` are believed about the client's address (forwarded.py; default: none).
    Other keyword arguments go to `server_config`. With
    `handle_signals=False` the server leaves SIGINT and SIGTERM to its caller.
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        handle_signals: bool = True,
        limits: ConnectionLimits | None = None,
        trusted_proxies: TrustedProxies | None = None,
        **settings: Any,
    ) -> None:
        self.host = host
        self.limits = limits or ConnectionLimits()
        app = ForwardedHeaders(app, trusted_proxies)
        self.config = server_config(app, timeout_keep_alive=self.limits.keep_alive_timeout, **settings)
        self._requested_port = port
        self._server = uvicorn.Server(self.config) if handle_signals else _SignalFreeServer(self.config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._accepting: asyncio.Task[None] | None = None
        self.guard: ConnectionGuard | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the server is not started; call start() first")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind the socket and start serving; returns once the server accepts connections."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto must say TCP: asyncio sets TCP_NODELAY only on sockets that do, and without it
        # Nagle's algorithm and delayed ACKs add ~40 ms to every response written in two parts.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
            sock.listen(self.config.backlog)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._socket = sock
        self.limits = reserve_descriptors(self.limits)
        self.guard = ConnectionGuard(self.limits, LogLimiter(log))
        # No sockets for uvicorn: it serves the connections this server accepts (see _accept).
        self._task = asyncio.create_task(self._server.serve(sockets=[]))
        try:
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises why it stopped
                    raise RuntimeError("uvicorn stopped before it started serving")
                await asyncio.sleep(0.01)
        except BaseException:
            await self.stop()
            raise
        self._accepting = asyncio.create_task(self._accept(sock, self.guard))

    async def _accept(self, listener: socket.socket, guard: ConnectionGuard) -> None:
        """Accept connections while the guard has room for them; the kernel's backlog holds the rest meanwhile."""
        loop = asyncio.get_running_loop()
        server = self._server
        state = server.server_state
        while True:
            await guard.room.wait()
            try:
                connection, _ = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    guard.limiter.warning(
                        "accept",
                        "cannot accept connections: %s; waiting for some to close (raise the open-file limit?)",
                        exc.strerror,
                    )
                    await asyncio.sleep(0.1)
                # ECONNABORTED and the like: that client gave up; the next one may not.
                continue
            protocol = guard.admit(self.config, state, server.lifespan.state)
            try:
                await loop.connect_accepted_socket(functools.partial(_given, protocol), connection)
            except OSError:
                connection.close()

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to a few seconds), close the socket.

        An app with a `close_streams()` method is called first, to end its long-lived responses.
        """
        task, self._task = self._task, None
        accepting, self._accepting = self._accepting, None
        try:
            if accepting is not None:
                accepting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await accepting
            if self._socket is not None:
                self._socket.close()
            if task is not None:
                # Responses that never end by themselves (a log follow) are told to end first, or the
                # graceful shutdown would wait for them until it cancels them.
                close_streams = getattr(self.config.app, "close_streams", None)
                if callable(close_streams):
                    close_streams()
                self._server.should_exit = True
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            if self._socket is not None:
                self._socket.close()
            if self.guard is not None:
                self.guard.close_refusals()
                self.guard.limiter.close()

    async def wait(self) -> None:
        """Wait until the server stops (by `stop()`, a signal, or cancellation of the caller)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _given(protocol: asyncio.BaseProtocol) -> asyncio.BaseProtocol:
    return protocol


async def serve_gateway(app: Any, host: str = "127.0.0.1", port: int = 8080, **settings: Any) -> None:
    """Serve `app` until cancelled or stopped by a signal; settings as for `server_config`."""
    server = GatewayServer(app, host, port, **settings)
    await server.start()
    try:
        await server.wait()
    finally:
        await server.stop()
