"""A projection's code in the worker: events applied one by one, writes gathered for one commit with the checkpoint.

    @app.projection("account")
    def balances(event, view):
        if event.type == "Deposited":
            row = view.get(event.stream) or {"balance": 0}
            view.put(event.stream, {"balance": row["balance"] + event.data["amount"]})

The platform invokes the projection's function with a batch of events (from its
checkpoint on, in global order); `fn(event, view)` runs for each, upcast. The
view reads the projection's records through the platform and sees its own
writes at once, but writes nothing itself: the batch's writes are the
invocation's result, and the platform commits them together with the new
checkpoint (one atomic write). A batch that fails, or a worker killed half way,
commits nothing, so the next attempt starts from the same checkpoint and every
event is applied exactly once.

Writes are records of a kind (`{"kind": "kv", ...}`), so another kind of
target (a platform table) can join without changing the commit. A write of a
key the batch read carries the version it read (`read_version`, 0: there was
none): a projection in per-stream order applies several streams at once, and
the platform makes such a write conditional on it, so two streams changing one
record cannot lose either's update (the loser's batch is applied again).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from triggerfish.eventstore.records import RecordedEvent
from triggerfish.eventstore.upcasting import upcast
from triggerfish.tables.values import item_from_python, item_to_python

_DELETED = object()


class ProjectionTable:
    """One of the projection's tables (declared with `@app.projection(..., tables=[...])`), plain Python values as
    `context.table` takes them: `get(key)` sees this batch's writes; `put(item)` and `delete(key)` wait for the
    commit. Each write carries the item as the batch read it, so a per-stream projection's commit refuses it if
    another stream changed the item meanwhile (the batch is applied again)."""

    def __init__(self, name: str, view: ProjectionView) -> None:
        self.name = name
        self._view = view

    def get(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The item with this key (as this batch left it), or None."""
        typed = item_from_python(key, "key")
        for write in reversed(self._view._table_writes):
            if write["table"] == self.name and _holds_key(write, typed):
                return None if write["op"] == "delete" else item_to_python(write["item"])
        slot = self._slot(typed)
        if slot not in self._view._table_reads:
            answer = self._view._call(
                "table", {"operation": "GetItem", "params": {"TableName": self.name, "Key": typed}}
            )
            if "error" in answer:
                raise ValueError(f"table {self.name!r}: {answer['error'].get('message', answer['error'])}")
            self._view._table_reads[slot] = (typed, answer["result"].get("Item"))
        found = self._view._table_reads[slot][1]
        return None if found is None else item_to_python(found)

    def put(self, item: Mapping[str, Any]) -> None:
        """Write the whole item (replacing any), when the batch commits."""
        self._add({"kind": "table", "table": self.name, "op": "put", "item": item_from_python(item)})

    def delete(self, key: Mapping[str, Any]) -> None:
        """Delete the item, when the batch commits."""
        self._add({"kind": "table", "table": self.name, "op": "delete", "key": item_from_python(key, "key")})

    def _add(self, write: dict[str, Any]) -> None:
        for table_and_key, (key, item) in self._view._table_reads.items():
            if table_and_key[0] == self.name and _holds_key(write, key):
                write["read"] = item
                break
        self._view._table_writes.append(write)

    def _slot(self, key: Mapping[str, Any]) -> tuple[str, bytes]:
        return self.name, orjson.dumps(key, option=orjson.OPT_SORT_KEYS)


def _holds_key(write: Mapping[str, Any], key: Mapping[str, Any]) -> bool:
    """Whether `write` is of the item with `key` (typed values)."""
    if write["op"] == "delete":
        return bool(write["key"] == key)
    return all(write["item"].get(name) == value for name, value in key.items())


class ProjectionView:
    """The projection's own key-value records (JSON values): reads see this batch's writes; writes wait for the
    commit."""

    def __init__(self, namespace: str, call_platform: Callable[[str, dict[str, Any]], Any]) -> None:
        self.namespace = namespace
        self._call = call_platform
        self._pending: dict[str, Any] = {}
        self._read: dict[str, Any] = {}
        self._versions: dict[str, int] = {}
        self._table_writes: list[dict[str, Any]] = []
        self._table_reads: dict[tuple[str, bytes], tuple[Any, Any]] = {}

    def get(self, key: str, default: Any = None) -> Any:
        """The record's value (decoded JSON), or `default` when there is none."""
        if key in self._pending:
            value = self._pending[key]
            return default if value is _DELETED else copy.deepcopy(value)
        if key not in self._read:
            # Read once per batch: nothing else writes the projection's records while its batch runs.
            answer = self._call("kv_get", {"namespace": self.namespace, "key": key})
            self._read[key] = _DELETED if answer is None else orjson.loads(answer["value"])
            self._versions[key] = 0 if answer is None else int(answer["version"])
        value = self._read[key]
        return default if value is _DELETED else copy.deepcopy(value)

    def put(self, key: str, value: Any) -> None:
        """Set the record to `value` (any JSON value), when the batch commits."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"a projection's key is a non-empty string, not {key!r}")
        orjson.dumps(value)  # a value that is not JSON fails here, naming the event being applied
        self._pending[key] = copy.deepcopy(value)

    def delete(self, key: str) -> None:
        """Remove the record, when the batch commits."""
        self._pending[key] = _DELETED

    def table(self, name: str) -> ProjectionTable:
        """One of the tables the projection declares (`tables=[...]`): its writes commit with the checkpoint too."""
        return ProjectionTable(name, self)

    def writes(self) -> list[dict[str, Any]]:
        """The batch's writes as the platform commits them."""
        writes: list[dict[str, Any]] = []
        for key, value in self._pending.items():
            write: dict[str, Any] = (
                {"kind": "kv", "op": "delete", "key": key}
                if value is _DELETED
                else {"kind": "kv", "op": "put", "key": key, "value": orjson.dumps(value).decode()}
            )
            if key in self._versions:
                write["read_version"] = self._versions[key]
            writes.append(write)
        return writes + self._table_writes


def projection_handler(fn: Callable[[RecordedEvent, ProjectionView], Any]) -> Callable[[Any, Any], Any]:
    """The handler `@app.projection` declares for `fn(event, view)`."""

    @functools.wraps(fn)
    def handler(event: Any, context: Any) -> Any:
        view = ProjectionView(event["namespace"], context.call_platform)
        for document in event["events"]:
            fn(RecordedEvent.from_dict(upcast(document)), view)
        return {"writes": view.writes(), "applied": len(event["events"])}

    return handler
