"""A connection's writes gathered into one send per response, or per turn of the event loop.

    transport = CoalescingTransport(transport, loop)
    transport.write(head); transport.write(body)   # held
    transport.flush()                               # one send: head and body together

uvicorn writes a response's status line and headers as soon as the app
sends `http.response.start`, then its body as a second write: two system
calls per response, and on a loaded machine each send that wakes the client
may hand it the core. Profiles of the platform under HTTP, event and async
load put a third of its main thread in socket writes (docs/benchmarks.md).
Here a write is held until the response is complete (the protocol calls
`flush()` then) or, for a response that streams, until the event loop's
next turn: the bytes and their order are the same, only the number of sends
drops. Closing, ending the write side, handing the connection to another
protocol or asking for the buffer's size sends what is held first.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport:
    """`transport` with its writes held and sent together (see the module docstring); the rest passes through."""

    __slots__ = ("_held", "_loop", "_timer", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._timer: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._timer is None:
            # A response that streams (or a protocol that never says it is done) still goes out promptly.
            self._timer = self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Send what is held, as one write."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held = self._held
        if not held:
            return
        self._held = []
        self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._held = []
        self._transport.abort()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.flush()
        self._transport.set_protocol(protocol)

    def is_closing(self) -> bool:
        # Asked at least twice per response (uvicorn, the guard): its own method, not a `__getattr__` lookup.
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def __getattr__(self, name: str) -> Any:
        # is_closing, get_extra_info, pause_reading, resume_reading, ...: the transport's own.
        return getattr(self._transport, name)
