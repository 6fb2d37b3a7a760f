"""An app that counts how often its module was imported, and reports its process family."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from triggerfish.app import App

IMPORTED_AT = time.time()
# Counted only where a test asked for it by creating the file (the import sees none of the test's environment).
IMPORTS = Path(__file__).with_name("imports.txt")
if IMPORTS.exists():
    with IMPORTS.open("a") as f:
        f.write(f"{os.getpid()}\n")

app = App("counted")


@app.function(timeout=2.0)
def family(event: Any) -> Any:
    return {"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0), "sid": os.getsid(0)}


@app.function()
def settings(event: Any, context: Any) -> Any:
    return {"memory": context.memory_limit_in_mb, "env": os.environ.get("STAGE_NAME")}
