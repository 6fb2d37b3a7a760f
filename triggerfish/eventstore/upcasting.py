"""Upcasters: old versions of an event's data raised to the current one when read (pure: no I/O).

Events are never rewritten. An app registers, per event type, a function from
schema version n to n + 1; an event read (by `context.events.read` or handed to
a projection) goes through every step from its stored version up:

    @app.upcaster("Deposited", 1)
    def cents(data):                     # version 1 held euros as a float; version 2 holds cents
        return {**data, "amount": round(data["amount"] * 100)}

The registry lives in the worker (where the app's code is), filled when the app is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from triggerfish.errors import DeclarationError

Upcaster = Callable[[Any], Any]

#: (event type, from schema version) -> the function raising its data one version.
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register(event_type: str, from_schema: int, fn: Upcaster) -> None:
    """Raise `event_type`'s data from `from_schema` to `from_schema + 1` with `fn` whenever it is read."""
    if not isinstance(event_type, str) or not event_type:
        raise DeclarationError(f"an upcaster names the event type it raises, not {event_type!r}")
    if isinstance(from_schema, bool) or not isinstance(from_schema, int) or from_schema < 1:
        raise DeclarationError(f"upcaster for {event_type!r}: from_schema is a version from 1, not {from_schema!r}")
    if (event_type, from_schema) in _UPCASTERS and _UPCASTERS[(event_type, from_schema)] is not fn:
        raise DeclarationError(f"two upcasters raise {event_type!r} from schema version {from_schema}; keep one")
    _UPCASTERS[(event_type, from_schema)] = fn


def upcast(document: dict[str, Any]) -> dict[str, Any]:
    """An event document (as `RecordedEvent.to_dict`) with its data raised through every registered step."""
    kind, schema = document.get("type"), int(document.get("schema", 1))
    data = document.get("data")
    changed = False
    while (step := _UPCASTERS.get((str(kind), schema))) is not None:
        data = step(data)
        schema += 1
        changed = True
    return {**document, "data": data, "schema": schema} if changed else document


def clear() -> None:
    """Forget every upcaster (tests)."""
    _UPCASTERS.clear()
