"""Snapshots of an aggregate's state, keyed by the stream's version and the schema they were taken with.

    snapshots = Snapshots(store)
    await snapshots.save("account-1", version=120, state={"balance": 40}, schema="2")
    snap = await snapshots.load("account-1", schema="2")    # None under any other schema
    events = await EventStore(store).read_stream("account-1", start=snap.version + 1)

A snapshot is kept per (stream, schema): code that changed the shape of its
state names a new schema, and the old snapshots are then never read (a
snapshot read under the wrong schema would be misread, silently). A save
older than the snapshot kept is ignored, so two writers cannot move it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from triggerfish.errors import InvalidInputError
from triggerfish.eventstore.records import check_stream
from triggerfish.names import EVENTSTORE_NAMESPACE
from triggerfish.store import ABSENT, Store


@dataclass(frozen=True, slots=True)
class Snapshot:
    stream: str
    version: int
    schema: str
    state: Any

    def to_dict(self) -> dict[str, Any]:
        return {"stream": self.stream, "version": self.version, "schema": self.schema, "state": self.state}


class Snapshots:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def save(self, stream: str, *, version: int, state: Any, schema: str) -> bool:
        """Keep `state` as of `version` under `schema`; False when a snapshot as new or newer is kept already."""
        key = _key(stream, schema)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidInputError(f"snapshot version must be the stream's version (from 1), not {version!r}")
        try:
            value = orjson.dumps({"version": version, "schema": schema, "state": state})
        except TypeError as exc:
            raise InvalidInputError(f"snapshot of {stream!r}: the state is not JSON: {exc}") from None
        while True:
            kept = await self.store.kv.get(EVENTSTORE_NAMESPACE, key)
            if kept is not None and int(orjson.loads(kept.value)["version"]) >= version:
                return False
            done = await self.store.kv.put(
                EVENTSTORE_NAMESPACE, key, value, if_version=ABSENT if kept is None else kept.version
            )
            if done is not None:
                return True

    async def load(self, stream: str, *, schema: str) -> Snapshot | None:
        """The newest snapshot of `stream` taken under `schema` (None when there is none under it)."""
        kept = await self.store.kv.get(EVENTSTORE_NAMESPACE, _key(stream, schema))
        if kept is None:
            return None
        document = orjson.loads(kept.value)
        if document.get("schema") != schema:  # belt and braces: the key names the schema already
            return None
        return Snapshot(stream, int(document["version"]), schema, document["state"])


def _key(stream: str, schema: object) -> str:
    check_stream(stream)
    if not isinstance(schema, str) or not schema or len(schema) > 100 or "/" in schema:
        raise InvalidInputError(
            f"snapshot schema must be a non-empty string of at most 100 characters without '/', "
            f"e.g. '2', not {schema!r}"
        )
    return f"snapshot/{stream}/{schema}"
