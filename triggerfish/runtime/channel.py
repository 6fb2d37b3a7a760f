"""The parent's ends of the sockets: a worker connection (asyncio protocol) and a zygote channel.

A worker connection is an asyncio.Protocol rather than a StreamReader: the
warm path reads one frame per invocation, and handing the decoded message
straight to a waiting future skips the stream's extra buffering and the two
`readexactly` calls per frame.

A zygote channel also carries file descriptors (the sockets and pipes of
new workers), which asyncio transports cannot send, so it drives a
non-blocking socket with `add_reader` and sends with `socket.send_fds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import cast

from triggerfish.errors import ProtocolError
from triggerfish.runtime.protocol import Exited, FrameBuffer, Message, decode, encode

log = logging.getLogger("triggerfish.runtime")


class WorkerConnection(asyncio.Protocol):
    """Frames to and from one worker; `recv()` returns None once the worker's socket closed."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buffer = FrameBuffer()
        self._messages: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: ProtocolError | None = None
        self.closed = False
        #: Called once when the socket closes (the worker exited or was killed).
        self.on_close: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        # The loop the transport is bound to, asked for once: on Python 3.11 asking is a getpid system call, and
        # `recv` makes a future on it per invocation.
        self._loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        try:
            for body in self._buffer.feed(data):
                self._messages.append(decode(body))
        except ProtocolError as exc:
            self._error = exc
            if self.transport is not None:
                self.transport.close()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()
        if self.on_close is not None:
            self.on_close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> Message | None:
        """The next message; None when the worker closed its socket; ProtocolError for a bad frame."""
        while True:
            if self._messages:
                return self._messages.popleft()
            if self._error is not None:
                raise self._error
            if self.closed:
                return None
            self._waiter = (self._loop or asyncio.get_running_loop()).create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def send(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise ProtocolError("the worker's connection is closed")
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ZygoteChannel:
    """The socket to a zygote: send frames with fds, receive `Exited` and other messages."""

    def __init__(self, sock: socket.socket, on_message: Callable[[Message], None] | None = None) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self._buffer = FrameBuffer()
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._unclaimed: dict[int, int] = {}
        self._inbox: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.on_message = on_message
        self.closed = False
        self.loop.add_reader(sock.fileno(), self._readable)

    def send(self, message: Message, fds: list[int] | None = None) -> None:
        if self.closed:
            raise ProtocolError("the zygote is gone")
        data = encode(message)
        # Small frames on an idle socket: a non-blocking send takes them whole.
        sent = socket.send_fds(self.sock, [data], fds or [])
        if sent != len(data):
            self.sock.setblocking(True)
            try:
                self.sock.sendall(data[sent:])
            finally:
                self.sock.setblocking(False)

    def watch(self, pid: int) -> asyncio.Future[int]:
        """A future for the exit status of child `pid`, as the zygote reports it."""
        future = self._exits.get(pid)
        if future is None and self.closed:  # no report will ever come
            future = self.loop.create_future()
            future.cancel()
            return future
        if future is None:
            future = self._exits[pid] = self.loop.create_future()
            status = self._unclaimed.pop(pid, None)
            if status is not None:
                future.set_result(status)
                del self._exits[pid]
        return future

    def forget(self, pid: int) -> None:
        self._exits.pop(pid, None)

    async def recv(self) -> Message | None:
        """The next message that is not an exit report; None when the zygote closed its socket."""
        while True:
            if self._inbox:
                return self._inbox.popleft()
            if self.closed:
                return None
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._closed()
            return
        try:
            bodies = self._buffer.feed(data)
        except ProtocolError as exc:
            log.error("bad frame from a zygote: %s", exc)
            self._closed()
            return
        for body in bodies:
            try:
                message = decode(body)
            except ProtocolError as exc:
                log.error("bad frame from a zygote: %s", exc)
                continue
            if isinstance(message, Exited):
                future = self._exits.pop(message.pid, None)
                if future is None:
                    # Reported before anyone watched (a worker that died right after starting): keep a few.
                    self._unclaimed[message.pid] = message.status
                    while len(self._unclaimed) > 256:
                        del self._unclaimed[next(iter(self._unclaimed))]
                elif not future.done():
                    future.set_result(message.status)
            elif self.on_message is not None:
                self.on_message(message)
            else:
                self._inbox.append(message)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.sock.fileno())
        for future in self._exits.values():
            if not future.done():
                future.cancel()
        self._exits.clear()
        self._wake()

    def close(self) -> None:
        fileno = self.sock.fileno()
        if not self.closed and fileno >= 0:
            self.loop.remove_reader(fileno)
        self.closed = True
        self._wake()
        with contextlib.suppress(OSError):
            self.sock.close()
