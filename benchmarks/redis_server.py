"""A Redis server the benchmark starts itself: on a free port, in a temporary directory, stopped after.

    with redis_server(durable=True, work=work) as url:    # redis://127.0.0.1:PORT/0
        ...

`durable=False` is Redis with no persistence at all (no snapshots, no
append-only file): what a broker benchmark gets from a Redis left at its
defaults with snapshots off, and loses everything on a crash.
`durable=True` is the configuration that keeps every acknowledged write:
`appendonly yes` with `appendfsync always` (an fsync before each reply to a
write; Redis groups the writes of one event-loop turn into one fsync).
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.processes import Child, free_port

DURABLE = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")
VOLATILE = ("--appendonly", "no", "--save", "")


def redis_settings(durable: bool) -> str:
    """How a report names the configuration."""
    return "`appendonly yes`, `appendfsync always`" if durable else 'no persistence (`save ""`, `appendonly no`)'


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(*, durable: bool, work: Path, attempts: int = 3) -> Iterator[str]:
    """A fresh redis-server; yields its URL (database 0). RuntimeError when it does not start.

    A port free a moment ago may be taken before Redis binds it: then it is started on another.
    """
    for attempt in range(1, attempts + 1):
        child, port = _start(durable, work)
        if child is not None:
            break
        if attempt == attempts:
            raise RuntimeError(f"redis-server did not start; see {work}")
    assert child is not None
    with child:
        yield f"redis://127.0.0.1:{port}/0"


def _start(durable: bool, work: Path) -> tuple[Child | None, int]:
    """A redis-server answering PING, and its port; None when it exited first (its port was taken)."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    directory = work / f"redis-{port}"
    directory.mkdir(parents=True)
    command = [
        executable,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
        "--logfile",
        "",
        *(DURABLE if durable else VOLATILE),
    ]
    child = Child(command, log=directory / "redis.log")
    deadline = time.monotonic() + 20
    while not _ping(port):
        if child.process.poll() is not None:
            return None, port
        if time.monotonic() > deadline:
            child.stop()
            raise RuntimeError(f"redis-server did not answer on port {port} within 20 s")
        time.sleep(0.02)  # polled: a starting server has nothing to wait on
    return child, port
