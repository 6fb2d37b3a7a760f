"""The server's durable records of what is deployed: apps, their immutable versions, and aliases.

Kept in the store's key-value records (namespace `triggerfish.server`), so a
restarted server serves what it served, and several servers on one store
agree:

- `app/<name>`: the app, and the last version number handed out (a new
  number is taken by compare-and-set, so two deploys never share one);
- `version/<name>/<number>`: the bundle it was built from, the stage, when,
  and a fingerprint per function (settings, triggers and code) to tell a
  deploy's changed functions from its unchanged ones;
- `alias/<name>/<alias>`: the version an alias points at, and optionally a
  second version with a share of the traffic (Lambda's routing config).
  `live` is the alias the server serves.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from triggerfish.errors import InvalidInputError
from triggerfish.model import check_resource_name
from triggerfish.names import SERVER_NAMESPACE
from triggerfish.store import ABSENT, Store

LIVE = "live"
#: Versions listed at most for one app.
MAX_VERSIONS = 10_000
_ALIAS_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def check_app_name(name: object) -> str:
    """An app name: what the store's names allow, with no `/` (it is a URL path segment)."""
    try:
        check_resource_name("app", name)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    assert isinstance(name, str)
    if "/" in name or name.startswith("-") or len(name) > 64:
        raise InvalidInputError(f"invalid app name {name!r}: use at most 64 letters, digits and . _ : @ -, no '/'")
    return name


def check_alias(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or not set(name) <= _ALIAS_CHARS or name.isdigit():
        raise InvalidInputError(
            f"invalid alias {name!r}: use 1 to 64 letters, digits, - and _, not only digits (those are versions)"
        )
    return name


@dataclass(frozen=True, slots=True)
class VersionRecord:
    app: str
    version: int
    bundle: str
    created_at: float
    stage: str | None = None
    #: Function name -> fingerprint of its description (settings, triggers, code).
    functions: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "version": self.version,
            "bundle": self.bundle,
            "created_at": self.created_at,
            "stage": self.stage,
            "functions": dict(self.functions),
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> VersionRecord:
        return cls(
            app=str(document["app"]),
            version=int(document["version"]),
            bundle=str(document["bundle"]),
            created_at=float(document["created_at"]),
            stage=document.get("stage"),
            functions={str(k): str(v) for k, v in dict(document.get("functions") or {}).items()},
        )


@dataclass(frozen=True, slots=True)
class Alias:
    """`version` serves; `weights` gives at most one other version a share (0 to 1) of synchronous traffic."""

    name: str
    version: int
    weights: Mapping[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_alias(self.name)
        if len(self.weights) > 1:
            raise InvalidInputError("an alias splits traffic between two versions at most: give one weight")
        for version, weight in self.weights.items():
            if version == self.version:
                raise InvalidInputError(f"alias {self.name!r}: the weighted version must differ from {version}")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 < weight < 1.0:
                raise InvalidInputError(f"alias {self.name!r}: a weight is a fraction between 0 and 1, not {weight!r}")

    @property
    def canary(self) -> tuple[int, float] | None:
        return next(iter(self.weights.items()), None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "weights": {str(v): w for v, w in self.weights.items()}}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Alias:
        weights = {int(v): float(w) for v, w in dict(document.get("weights") or {}).items()}
        return cls(str(document["name"]), int(document["version"]), weights)


class VersionConflictError(InvalidInputError):
    """Two deploys of one app raced for a version number; the later one changed nothing."""


class Registry:
    """Reads and writes the records above on `store` (the server's own, unscoped store)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def apps(self) -> list[str]:
        records = await self.store.kv.scan(SERVER_NAMESPACE, prefix="app/", limit=100_000)
        return sorted(r.key.removeprefix("app/") for r in records)

    async def exists(self, app: str) -> bool:
        return await self.store.kv.get(SERVER_NAMESPACE, f"app/{app}") is not None

    async def last_version(self, app: str) -> int:
        """The highest version number `app` was given (0 before its first deploy)."""
        record = await self.store.kv.get(SERVER_NAMESPACE, f"app/{app}")
        return 0 if record is None else int(orjson.loads(record.value)["last_version"])

    async def claim_version(self, app: str, number: int) -> None:
        """Record `number` as `app`'s newest version (registering the app on its first deploy).

        By compare-and-set: a version is numbered only once it imported, and
        when another server published that number first, this raises
        VersionConflictError so the deploy can be tried again.
        """
        record = await self.store.kv.get(SERVER_NAMESPACE, f"app/{app}")
        document = {"name": app, "created_at": time.time(), "last_version": 0}
        if record is not None:
            document = orjson.loads(record.value)
        if document["last_version"] != number - 1:
            raise VersionConflictError(f"app {app!r}: version {number} was published by another deploy; deploy again")
        document["last_version"] = number
        expected = ABSENT if record is None else record.version
        if await self.store.kv.put(SERVER_NAMESPACE, f"app/{app}", orjson.dumps(document), if_version=expected) is None:
            raise VersionConflictError(f"app {app!r}: version {number} was published by another deploy; deploy again")

    async def add_version(self, record: VersionRecord) -> None:
        await self.store.kv.put(
            SERVER_NAMESPACE, _version_key(record.app, record.version), orjson.dumps(record.to_dict())
        )

    async def version(self, app: str, number: int) -> VersionRecord | None:
        record = await self.store.kv.get(SERVER_NAMESPACE, _version_key(app, number))
        return None if record is None else VersionRecord.from_dict(orjson.loads(record.value))

    async def versions(self, app: str) -> list[VersionRecord]:
        records = await self.store.kv.scan(SERVER_NAMESPACE, prefix=f"version/{app}/", limit=MAX_VERSIONS)
        found = [VersionRecord.from_dict(orjson.loads(r.value)) for r in records]
        return sorted(found, key=lambda v: v.version)

    async def alias(self, app: str, name: str = LIVE) -> Alias | None:
        record = await self.store.kv.get(SERVER_NAMESPACE, f"alias/{app}/{name}")
        return None if record is None else Alias.from_dict(orjson.loads(record.value))

    async def aliases(self, app: str) -> list[Alias]:
        records = await self.store.kv.scan(SERVER_NAMESPACE, prefix=f"alias/{app}/", limit=10_000)
        return [Alias.from_dict(orjson.loads(r.value)) for r in records]

    async def set_alias(self, app: str, alias: Alias) -> None:
        await self.store.kv.put(SERVER_NAMESPACE, f"alias/{app}/{alias.name}", orjson.dumps(alias.to_dict()))

    async def remove(self, app: str) -> None:
        """Forget the app: its record, versions and aliases (its data stays in its scope of the store)."""
        for prefix in (f"alias/{app}/", f"version/{app}/"):
            for record in await self.store.kv.scan(SERVER_NAMESPACE, prefix=prefix, limit=MAX_VERSIONS):
                await self.store.kv.delete(SERVER_NAMESPACE, record.key)
        await self.store.kv.delete(SERVER_NAMESPACE, f"app/{app}")


def _version_key(app: str, number: int) -> str:
    # Zero-padded so that a scan lists versions in order.
    return f"version/{app}/{number:010d}"


@dataclass(frozen=True, slots=True)
class AppReleases:
    """One app's versions and aliases, read-only: what an app's platform may ask of the registry."""

    registry: Registry
    app: str

    async def alias(self, name: str) -> Alias | None:
        return await self.registry.alias(self.app, name)

    async def aliases(self) -> list[Alias]:
        return sorted(await self.registry.aliases(self.app), key=lambda alias: alias.name)

    async def versions(self) -> list[VersionRecord]:
        return await self.registry.versions(self.app)
