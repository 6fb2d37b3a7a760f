"""The app tests/eventstore/test_crash.py runs in a platform it kills: a projection in per-stream order that stops
at version 7 of acct-2 until a file named `go` exists beside this file, and logs every event it applies (a side
effect outside the store)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from triggerfish import App

HERE = Path(__file__).resolve().parent
app = App("crashy")


@app.projection("acct", order="stream", batch_size=4, max_concurrency=3, timeout=60)
def totals(event: Any, view: Any) -> None:
    with (HERE / "applied.log").open("a") as log:
        log.write(f"{event.stream} {event.version}\n")
    while (event.stream, event.version) == ("acct-2", 7) and not (HERE / "go").exists():
        time.sleep(0.02)
    row = view.get(event.stream, {"sum": 0, "versions": []})
    view.put(event.stream, {"sum": row["sum"] + event.data["amount"], "versions": [*row["versions"], event.version]})
