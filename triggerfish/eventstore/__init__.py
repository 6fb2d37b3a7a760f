"""The event store: streams with expected versions, one gap-free global order, projections, snapshots, upcasters.

    from triggerfish.eventstore import NO_STREAM, WrongExpectedVersionError

Handlers use `context.events` (`triggerfish.eventstore.client`); projections are declared with
`@app.projection` and upcasters with `@app.upcaster`; `EventStore` works on any store directly.
See docs/event-store.md. Names are loaded on first use: workers import this package.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "NO_STREAM": "triggerfish.eventstore.records",
    "NewEvent": "triggerfish.eventstore.records",
    "RecordedEvent": "triggerfish.eventstore.records",
    "WrongExpectedVersionError": "triggerfish.eventstore.records",
    "category_of": "triggerfish.eventstore.records",
    "EventStore": "triggerfish.eventstore.store",
    "AppendResult": "triggerfish.eventstore.store",
    "Snapshot": "triggerfish.eventstore.snapshots",
    "Snapshots": "triggerfish.eventstore.snapshots",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'triggerfish.eventstore' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
