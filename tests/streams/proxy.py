"""A TCP proxy between a source and a shared broker, to drop its connections or refuse new ones.

    async with TcpProxy("127.0.0.1", 4222) as proxy:   # listens on proxy.port
        await proxy.disconnect()                       # a network blip: every proxied connection closed
        await proxy.restart(2.0)                       # a broker restart: closed, refused for 2 s, then accepted
        proxy.blackhole()                              # the broker's replies lost until the next disconnect()

The broker itself is shared with other tests and never restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: While set, what the broker sends is dropped (what the client sends still reaches it).
        self._blackhole = False

    async def __aenter__(self) -> TcpProxy:
        await self._listen()
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self._close_server()
        await self.disconnect()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def blackhole(self) -> None:
        """Drop everything the broker sends until `disconnect`: it delivers into a connection gone silent."""
        self._blackhole = True

    async def disconnect(self) -> None:
        """Close every proxied connection, both sides (and end a blackhole)."""
        self._blackhole = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def restart(self, down: float = 2.0) -> None:
        """Close every connection and refuse new ones (nothing listens) for `down` seconds."""
        await self._close_server()
        await self.disconnect()
        await asyncio.sleep(down)  # the outage itself, not a wait for a condition
        await self._listen()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer, from_broker=True)),
        ]
        for pipe in pipes:
            self._tasks.add(pipe)
            pipe.add_done_callback(self._tasks.discard)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        for side in (writer, up_writer):
            side.transport.abort()
            self._writers.discard(side)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_broker: bool = False
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if from_broker and self._blackhole:
                    continue
                writer.write(data)
                await writer.drain()
