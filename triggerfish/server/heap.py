"""The platform process's heap after start: what startup built is left out of the garbage collector's full passes,
and its young generation is collected every YOUNG_OBJECTS allocations rather than CPython's 700.

A platform process holds hundreds of thousands of long-lived objects once it has
started (modules, the app, compiled rules, the ASGI stack). CPython's full
(generation 2) collection walks every one of them, and runs whenever enough new
objects survived: under load every few seconds, each holding the event loop for
tens of milliseconds (60 ms of CPU measured with 100 rules), which every event
and request arriving meanwhile waits for. `freeze()` moves what exists into
the permanent generation (`gc.freeze`), so later full passes walk only what was
made since. Frozen objects are still freed by reference counting; only cycles
among them would stay, so a reload thaws first and freezes again after.

A young pass runs when the containers allocated since the last one, less those freed, pass a threshold
(CPython's: 700). A busy platform holds thousands of short-lived containers at once (every request, workflow
checkpoint and store write in flight has its dicts, futures and coroutines), so at 700 the count crossed the
threshold every few requests and each pass walked objects about to be freed anyway, promoting the survivors to
be walked again in the older generations: 3 to 5% of the event loop's CPU with 1,000 workflows running
(docs/benchmarks.md, wf12h). At YOUNG_OBJECTS the allocations of work in flight are mostly freed before the count gets
there; cyclic garbage is still collected, up to that many containers later.
"""

from __future__ import annotations

import gc

#: Containers allocated (net of those freed) between two young collections in a serving platform.
YOUNG_OBJECTS = 10_000


def freeze() -> None:
    """Collect what startup left behind, then leave everything that remains out of later collections."""
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """Let the collector see the frozen objects again (before replacing the app: its old objects may form cycles)."""
    gc.unfreeze()


def settle() -> None:
    """The heap as a started platform keeps it: what startup built frozen (`freeze`), and the young generation
    collected every YOUNG_OBJECTS allocations (the older generations' thresholds as they were)."""
    freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS, middle, old)
