"""An app that plugs its own sandbox into the worker seam, as a stronger isolation layer would."""

from __future__ import annotations

import os
from typing import Any

from triggerfish.app import App
from triggerfish.model import FunctionSpec
from triggerfish.runtime import worker

app = App("sandboxed")
# What the hook saw in this worker process: set in the child before any handler runs.
ENTERED: list[dict[str, Any]] = []


class RecordingSandbox:
    def enter(self, spec: FunctionSpec, cwd: str) -> None:
        if spec.name == "refused":
            raise PermissionError("this sandbox refuses 'refused'")
        ENTERED.append({"function": spec.name, "cwd": cwd, "pid": os.getpid(), "pgid": os.getpgid(0)})


worker.sandbox = RecordingSandbox()


@app.function()
def inside(event: Any) -> Any:
    return {"entered": ENTERED, "pid": os.getpid(), "cwd": os.getcwd()}


@app.function()
def refused(event: Any) -> Any:
    return "ran outside its sandbox"
