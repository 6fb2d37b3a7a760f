"""The `table` platform call: a handler's `context.table(...)` request, carried out on the app's tables.

    answer = await table_call(tables, {"operation": "PutItem", "params": {...}, "outbox": [...]}, hop_count=0)
    # {"result": {...DynamoDB's response...}} or {"error": {"code": "ConditionalCheckFailedException", ...}}

A table error is an answer, not a failed call, so the handler gets the error class it can catch
(`triggerfish.tables.client` raises it again); bad arguments are InvalidInputError as for any
platform call. Outbox events carry a hop count one higher than the invocation's, as published
events do; the change records the write makes carry `traceparent` (the calling invocation's), so
the functions reacting to them continue its trace.
"""

from __future__ import annotations

from typing import Any

from triggerfish.errors import InvalidInputError
from triggerfish.events.cloudevent import Event
from triggerfish.names import is_reserved_namespace
from triggerfish.tables import api
from triggerfish.tables.errors import ConditionFailedError, TableError, TransactionCanceledError
from triggerfish.tables.table import Tables


async def table_call(
    tables: Tables, args: dict[str, Any], *, hop_count: int, traceparent: str | None = None
) -> dict[str, Any]:
    operation, params = args.get("operation"), args.get("params")
    if not isinstance(operation, str) or not isinstance(params, dict):
        raise InvalidInputError("table: give the DynamoDB 'operation' and its 'params' object")
    outbox = []
    for entry in args.get("outbox") or []:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("bus"), str)
            or not isinstance(entry.get("event"), dict)
        ):
            raise InvalidInputError("table: each outbox entry is {'bus': name, 'event': CloudEvent}")
        if is_reserved_namespace(entry["bus"]):
            raise InvalidInputError(f"table: bus {entry['bus']!r} belongs to the platform")
        hops = max(int(entry["event"].get("hopcount") or 0), hop_count + 1)
        outbox.append((entry["bus"], Event.from_dict({**entry["event"], "hopcount": hops})))
    try:
        return {"result": await api.run(tables.traced(traceparent), operation, params, outbox=outbox)}
    except TableError as exc:
        return {"error": error_document(exc)}


def error_document(exc: TableError) -> dict[str, Any]:
    document: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if isinstance(exc, ConditionFailedError) and exc.item is not None:
        document["item"] = exc.item
    if isinstance(exc, TransactionCanceledError):
        document["reasons"] = [{"code": r.code, "message": r.message, "item": r.item} for r in exc.reasons]
    return document
