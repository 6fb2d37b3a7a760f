"""The platform process's heap after start: what startup built is left out of the garbage collector's full passes.

A platform process holds hundreds of thousands of long-lived objects once it has
started (modules, the app, compiled rules, the ASGI stack). CPython's full
(generation 2) collection walks every one of them, and runs whenever enough new
objects survived: under load every few seconds, each holding the event loop for
tens of milliseconds (60 ms of CPU measured with 100 rules), which every event
and request arriving meanwhile waits for. `freeze()` moves what exists into
the permanent generation (`gc.freeze`), so later full passes walk only what was
made since. Frozen objects are still freed by reference counting; only cycles
among them would stay, so a reload thaws first and freezes again after.
"""

from __future__ import annotations

import gc


def freeze() -> None:
    """Collect what startup left behind, then leave everything that remains out of later collections."""
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """Let the collector see the frozen objects again (before replacing the app: its old objects may form cycles)."""
    gc.unfreeze()
