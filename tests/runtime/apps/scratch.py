"""Functions that use /tmp by its literal path, as functions written for Lambda do."""

from __future__ import annotations

import os
from typing import Any

from triggerfish.app import App

app = App("scratch")


def _swap(path: str, text: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            found: str | None = f.read()
    except FileNotFoundError:
        found = None
    with open(path, "w") as f:
        f.write(text)
    return {"found": found, "pid": os.getpid()}


@app.function(timeout=5.0)
def first(event: Any) -> Any:
    """Write `event["text"]` to `event["path"]` in /tmp; what was there before."""
    return _swap(event["path"], event["text"])


@app.function(timeout=5.0)
def second(event: Any) -> Any:
    return _swap(event["path"], event["text"])


@app.function(timeout=20.0, memory_mb=1024, ephemeral_storage=512)
def fills(event: Any) -> Any:
    """Write to /tmp until it is full; how much was written and the error."""
    written = 0
    chunk = b"\x01" * (4 * 1024 * 1024)
    try:
        with open("/tmp/big", "wb") as f:
            while written < 2 * 1024 * 1024 * 1024:
                f.write(chunk)
                f.flush()
                written += len(chunk)
    except OSError as exc:
        os.remove("/tmp/big")
        return {"written": written, "error": f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"}
    return {"written": written, "error": None}
