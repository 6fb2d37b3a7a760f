"""Every fault a handler can commit, one function each, with short limits so the tests stay fast."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from typing import Any

from triggerfish.app import App

app = App("faults")


@app.function(timeout=1.0, memory_mb=128)
def ok(event: Any) -> Any:
    return {"ok": event, "pid": os.getpid()}


@app.function(timeout=1.0, memory_mb=128)
def raises(event: Any) -> Any:
    raise ValueError(f"bad event {event!r}")


@app.function(timeout=1.0, memory_mb=128)
def unserialisable(event: Any) -> Any:
    return {"when": object()}


@app.function(timeout=1.0, memory_mb=128)
def loops(event: Any) -> Any:
    if event == "quick":
        return "quick"
    while True:
        pass


@app.function(timeout=10.0, memory_mb=128)  # writing 128 MB takes most of a second on a slow VM
def hog(event: Any) -> Any:
    if event == "small":
        return len(bytearray(10 * 1024 * 1024))
    chunks = []
    while True:
        chunks.append(b"\x01" * (16 * 1024 * 1024))  # written: resident, as a real workload's memory is


@app.function(timeout=1.0, memory_mb=128)
def exits(event: Any) -> Any:
    if event == "stay":
        return "stayed"
    sys.stdout.flush()
    os._exit(3)


@app.function(timeout=1.0, memory_mb=128)
def segfaults(event: Any) -> Any:
    if event == "stay":
        return "stayed"
    ctypes.string_at(0)
    return "unreachable"


@app.function(timeout=5.0)
def prints(event: Any) -> Any:
    line = "x" * 1023 + "\n"
    for _ in range(int(event) * 1024):
        sys.stdout.write(line)
    return "printed"


@app.function(timeout=1.0, memory_mb=128)
def leaves_children(event: Any) -> Any:
    child = subprocess.Popen(["sleep", "60"], start_new_session=False)
    return child.pid


@app.function(timeout=10.0)
def forks(event: Any) -> Any:
    started = failed = 0
    errors = set()
    children = []
    for _ in range(int(event)):
        try:
            pid = os.fork()
        except OSError as exc:
            failed += 1
            errors.add(type(exc).__name__ + ": " + exc.strerror if exc.strerror else str(exc))
            continue
        if pid == 0:
            # Alive until every fork has been tried, even on a loaded machine: a child that exited early
            # would free its slot and let more than the limit start over the whole loop.
            time.sleep(2.0)
            os._exit(0)
        started += 1
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return {"started": started, "failed": failed, "errors": sorted(errors)}


@app.function(timeout=1.0, memory_mb=128)
def sleeps(event: Any) -> Any:
    time.sleep(float(event))
    return "woke"


@app.function(timeout=1.0)
def huge_result(event: Any) -> Any:
    return "x" * (7 * 1024 * 1024) if event == "huge" else "small"


@app.function(timeout=1.0)
def asks_forever(event: Any, context: Any) -> Any:
    return context.call_platform("kv_get", {"key": event})


@app.function(timeout=1.0)
def finishes_with(event: Any, context: Any) -> Any:
    # The platform's answer to this call is the invocation's result; what the handler returns is dropped.
    assert context.finish_with_platform_call("kv_get", {"key": event})
    return "dropped"


@app.function(timeout=1.0)
def asks_twice(event: Any, context: Any) -> Any:
    # Answered, then (with "hang") never, or (with "sleep") past the timeout in the handler: the invocation's one
    # timeout scope, armed at its first call, covers what follows it.
    first = context.call_platform("kv_get", {"key": "answered"})
    if event == "sleep":
        time.sleep(5)
    return [first, context.call_platform("kv_get", {"key": event})]


@app.function(timeout=1.0)
def forges_frames(event: Any) -> Any:
    """Writes protocol frames of its own onto its worker's socket to the parent: hostile user code."""
    import socket as socket_module

    from triggerfish.runtime import protocol

    sock = socket_module.socket(fileno=os.dup(_socket_fd()))
    if event == "ready":
        sock.sendall(protocol.encode(protocol.Ready(pid=1, unenforced=[], cgroup="/sys/fs/cgroup/pids")))
    elif event == "result":
        sock.sendall(protocol.frame(b'{"t": "result", "id": "someone-else", "ok": "yes"}'))
    elif event == "log":
        sock.sendall(protocol.encode(protocol.Log(level="nonsense", message="hi")))
        return "logged"
    elif event == "garbage":
        sock.sendall(b"\x00\x00\x00\x05hello")
    time.sleep(0.5)
    return "not reached"


def _socket_fd() -> int:
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                return int(fd)
        except OSError:  # the directory listing's own fd, closed by now
            continue
    raise RuntimeError("no socket")
