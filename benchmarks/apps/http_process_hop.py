"""Bare Starlette with its handler moved into worker processes: what one process hop per request costs at least.

Served by uvicorn's command line with bare Starlette's settings
(`python -m uvicorn benchmarks.apps.http_process_hop:app --http httptools`).
It is not a design for Triggerfish but the floor under any design that runs
a function outside the server's process, as Triggerfish does (a worker per
function, boxed on `serve`): the same handler as `http_starlette.py`, but its
work (decode the event, build the answer, encode it) runs in one of
`TRIGGERFISH_BENCH_HOP_WORKERS` (default 2) worker processes, each reached
over a Unix socket pair with a length-prefixed frame. Everything a platform
adds around the hop is left out, and the hop is given every advantage: frames
pipelined on a busy worker (no one-at-a-time limit), the least loaded worker
chosen, no record, no timeout, no isolation. `bench_http.py` runs it beside
bare Starlette, so the ratio of the two bounds what "≥ 0.7x bare Starlette"
can mean for an out-of-process function.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import sys
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

WORKERS = int(os.environ.get("TRIGGERFISH_BENCH_HOP_WORKERS", "2"))
_LENGTH = struct.Struct("!I")


def _worker(fd: int) -> None:
    """A worker: answers each frame with the handler's result, one after another, until the socket closes."""
    connection = socket.socket(fileno=fd)
    buffer = b""
    while True:
        while len(buffer) < _LENGTH.size or len(buffer) < _LENGTH.size + _LENGTH.unpack_from(buffer)[0]:
            chunk = connection.recv(65536)
            if not chunk:
                return
            buffer += chunk
        replies = []
        while len(buffer) >= _LENGTH.size and len(buffer) >= _LENGTH.size + _LENGTH.unpack_from(buffer)[0]:
            size = _LENGTH.unpack_from(buffer)[0]
            event = orjson.loads(buffer[_LENGTH.size : _LENGTH.size + size])
            buffer = buffer[_LENGTH.size + size :]
            answer = orjson.dumps({"ok": True, "n": int(event.get("n", "0"))})
            replies.append(_LENGTH.pack(len(answer)) + answer)
        connection.sendall(b"".join(replies))


class _WorkerLink(asyncio.Protocol):
    """The server's end of one worker's socket: frames out, answers back in order."""

    def __init__(self) -> None:
        self.waiting: deque[asyncio.Future[bytes]] = deque()
        self._buffer = b""
        self._transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport instances, but write like one.
        self._transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        while len(buffer) >= _LENGTH.size:
            size = _LENGTH.unpack_from(buffer)[0]
            if len(buffer) < _LENGTH.size + size:
                break
            self.waiting.popleft().set_result(buffer[_LENGTH.size : _LENGTH.size + size])
            buffer = buffer[_LENGTH.size + size :]
        self._buffer = buffer

    def call(self, payload: bytes) -> asyncio.Future[bytes]:
        assert self._transport is not None
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        self._transport.write(_LENGTH.pack(len(payload)) + payload)
        return future


_links: list[_WorkerLink] = []


async def hello(request: Request) -> Response:
    link = min(_links, key=lambda candidate: len(candidate.waiting))
    answer = await link.call(orjson.dumps({"n": request.query_params.get("n", "0")}))
    return Response(answer, media_type="application/json")


@contextlib.asynccontextmanager
async def _workers(_app: Starlette) -> AsyncIterator[None]:
    processes: list[asyncio.subprocess.Process] = []
    loop = asyncio.get_running_loop()
    for _index in range(WORKERS):
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-c", f"from {__name__} import _worker; _worker({theirs.fileno()})"]
        processes.append(await asyncio.create_subprocess_exec(*command, pass_fds=[theirs.fileno()]))
        theirs.close()
        _, link = await loop.create_connection(_WorkerLink, sock=ours)
        _links.append(link)
    try:
        yield
    finally:
        _links.clear()
        for process in processes:
            process.kill()
            await process.wait()


app = Starlette(routes=[Route("/hello", hello)], lifespan=_workers)
