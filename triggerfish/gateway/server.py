"""Serving an ASGI app (the gateway, or the platform app it is mounted in) with uvicorn, with bounds on slow clients.

    async with GatewayServer(gateway, port=0) as server:     # port 0: the system picks a free port
        ...  # requests to server.url
    await serve_gateway(gateway, "127.0.0.1", 8080)          # until cancelled

What bounds a client, and where:
- headers: h11 refuses a request whose head is over `max_header_bytes`
  (the connection is answered 400 and closed);
- idle keep-alive connections close after `timeout_keep_alive` seconds;
- a body that has not arrived in full after the gateway's `body_timeout`
  gets 408 (uvicorn has no body timeout of its own; see Gateway);
- `limit_concurrency` answers 503 beyond that many connections and tasks.
uvicorn has no timeout for a request head that arrives slowly; run behind a
reverse proxy to bound that on a public network (docs/http.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from types import TracebackType
from typing import Any

import uvicorn

#: h11's default: the request line and headers together may not exceed this many bytes.
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_KEEP_ALIVE = 5
#: Seconds `stop()` lets requests in flight finish before it cancels them.
GRACEFUL_SHUTDOWN = 5


def server_config(
    app: Any,
    *,
    timeout_keep_alive: int = DEFAULT_KEEP_ALIVE,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    limit_concurrency: int | None = None,
    backlog: int = 2048,
    access_log: bool = False,
) -> uvicorn.Config:
    """The uvicorn configuration Triggerfish serves with: h11, no lifespan, uvicorn's logging left alone."""
    return uvicorn.Config(
        app,
        http="h11",
        # The platform's app owns startup and shutdown; the server only carries requests.
        lifespan="off",
        timeout_keep_alive=timeout_keep_alive,
        h11_max_incomplete_event_size=max_header_bytes,
        limit_concurrency=limit_concurrency,
        backlog=backlog,
        access_log=access_log,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
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
    known (`.port`, `.url`) as soon as it returns. Other keyword arguments
    go to `server_config`. With `handle_signals=False` the server leaves
    SIGINT and SIGTERM to its caller.
    """

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 8080, *, handle_signals: bool = True, **settings: Any
    ) -> None:
        self.host = host
        self.config = server_config(app, **settings)
        self._requested_port = port
        self._server = uvicorn.Server(self.config) if handle_signals else _SignalFreeServer(self.config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

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
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        try:
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises why it stopped
                    raise RuntimeError("uvicorn stopped before it started serving")
                await asyncio.sleep(0.01)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to a few seconds), close the socket.

        An app with a `close_streams()` method is called first, to end its long-lived responses.
        """
        task, self._task = self._task, None
        try:
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


async def serve_gateway(app: Any, host: str = "127.0.0.1", port: int = 8080, **settings: Any) -> None:
    """Serve `app` until cancelled or stopped by a signal; settings as for `server_config`."""
    server = GatewayServer(app, host, port, **settings)
    await server.start()
    try:
        await server.wait()
    finally:
        await server.stop()
