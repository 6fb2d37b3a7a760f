"""The app tests/eventstore/test_crash.py runs in a platform it kills: a projection that stops at position 23 until
a file named `go` exists beside this file, and logs every event it applies (a side effect outside the store)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from triggerfish import App

HERE = Path(__file__).resolve().parent
app = App("crashy")


@app.projection("acct", batch_size=5)
def totals(event: Any, view: Any) -> None:
    with (HERE / "applied.log").open("a") as log:
        log.write(f"{event.position}\n")
    while event.position == 23 and not (HERE / "go").exists():
        time.sleep(0.02)
    view.put("count", view.get("count", 0) + 1)
    view.put("sum", view.get("sum", 0) + event.data["amount"])
