"""An app that reports what its box lets it see and do, one function per question."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from triggerfish.app import App

app = App("boxed")
#: The environment the module's import saw (in the app zygote).
IMPORT_ENVIRONMENT = dict(os.environ)


@app.function(env={"GREETING": "hello"})
def look(event: Any) -> Any:
    try:
        with open(event["read"]) as f:
            read: Any = f.read()
    except OSError as exc:
        read = type(exc).__name__
    try:
        with open(event["write"], "w") as f:
            f.write("x")
        wrote: Any = True
    except OSError as exc:
        wrote = type(exc).__name__
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "import_env": IMPORT_ENVIRONMENT,
        "read": read,
        "wrote": wrote,
        "proc": sorted(int(name) for name in os.listdir("/proc") if name.isdigit()),
    }


@app.function(timeout=1.0)
def loops(event: Any) -> Any:
    if event == "quick":
        return os.getpid()
    while True:
        pass


@app.function(timeout=5.0, memory_mb=128)
def hoards(event: Any) -> Any:
    chunks = []
    while True:
        chunks.append(b"\x01" * (16 * 1024 * 1024))  # written: resident, as a real workload's memory is


@app.function(timeout=10.0)
def fills(event: Any) -> Any:
    written = 0
    try:
        with open(event, "wb") as f:
            while written < 1 << 32:
                f.write(b"x" * (1 << 20))
                f.flush()
                written += 1 << 20
    except OSError as exc:
        return {"written": written, "error": exc.strerror}
    return {"written": written, "error": None}


@app.function(timeout=10.0)
def forks(event: Any) -> Any:
    forked = 0
    try:
        while forked < 10_000:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            forked += 1
    except OSError as exc:
        return {"forked": forked, "error": type(exc).__name__}
    return {"forked": forked, "error": None}


@app.function(timeout=5.0)
def connects(event: Any) -> Any:
    try:
        with socket.create_connection(("127.0.0.1", event), timeout=2):
            return "connected"
    except OSError as exc:
        return type(exc).__name__
