"""`SecretStore`: every app's secrets, sealed, in the store's key-value records.

    secrets = await open_secrets(store.kv, environ=os.environ, key_file=None, default_file=data_dir / "secrets.key")
    await secrets.set("shop", "STRIPE_KEY", "sk_live_...")     # SecretInfo: name, version, times; never the value
    await secrets.list("shop")                                 # names, versions, times, the key id: no values
    await secrets.values("shop", ("STRIPE_KEY",))              # {"STRIPE_KEY": "sk_live_..."}, for a worker only

Each secret is one record `secret/<app>/<name>` of the namespace
`triggerfish.secrets`, holding its version, its times and its value sealed
for that app and name (sealing.py). One more record, `key-check`, holds a
value sealed with the key the store's secrets are sealed with: a server
whose ring does not open it refuses to start (`open_secrets`), so two nodes of
one cluster cannot seal with different keys unnoticed.

A server that has no key at all (a new node of a cluster not yet given the
cluster's key) still starts: it serves everything but secrets, and every
read or write of one fails with a SecretsKeyError saying how to give it the key.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triggerfish._json import dumps, loads
from triggerfish.errors import InvalidInputError, SecretNotSetError, SecretsKeyError
from triggerfish.model import check_app_name, check_secret_name
from triggerfish.names import SECRETS_NAMESPACE
from triggerfish.secrets.keyring import KEY_ENV, Keyring, SecretsKey, find_keyring, make_key_file
from triggerfish.secrets.sealing import Sealed, holds_check, missing_key, open_value, seal, seal_check
from triggerfish.store import ABSENT, KVRecord
from triggerfish.store.base import KeyValue

log = logging.getLogger("triggerfish.secrets")

#: The largest value a secret may have, in bytes of UTF-8 (a certificate chain fits).
MAX_VALUE_BYTES = 32 * 1024
#: The most secrets one app may have.
MAX_APP_SECRETS = 1000
_RECORD = "secret/"
_CHECK = "key-check"


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What may be shown of a secret: never its value."""

    app: str
    name: str
    #: 1 when first set, one more at every set after.
    version: int
    created_at: float
    updated_at: float
    #: The id of the secrets key its value is sealed with (a rotation reseals them all with the new key).
    key_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "key_id": self.key_id,
        }


@dataclass(frozen=True, slots=True)
class ResealResult:
    """What a reseal did: the key every secret is now sealed with, how many were resealed or already were, and
    those it could not open (app, name, the id of the key they are sealed with)."""

    key_id: str
    resealed: int
    unchanged: int
    unreadable: list[tuple[str, str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "resealed": self.resealed,
            "unchanged": self.unchanged,
            "unreadable": [{"app": a, "name": n, "key_id": k} for a, n, k in self.unreadable],
        }


class SecretStore:
    """The secrets of every app in one store. `keyring` None: a server with no key (see the module docstring),
    `no_key` saying why and what to do."""

    def __init__(self, kv: KeyValue, keyring: Keyring | None, *, no_key: str = "") -> None:
        self._kv = kv
        self.keyring = keyring
        self._no_key = no_key or f"this server has no secrets key: give it one (${KEY_ENV}, or a key file)"

    def ring(self) -> Keyring:
        """The ring, or the SecretsKeyError of a server that has none."""
        if self.keyring is None:
            raise SecretsKeyError(self._no_key)
        return self.keyring

    async def set(self, app: str, name: str, value: str) -> SecretInfo:
        """Seal `value` as secret `name` of `app` (a new one, or its next version). Raises InvalidInputError
        for a bad name or value (the message never holds the value), SecretsKeyError with no key."""
        app, name = _checked(app, name)
        value = check_secret_value(value)
        ring = self.ring()
        key = _record(app, name)
        while True:
            current = await self._kv.get(SECRETS_NAMESPACE, key)
            now = self._kv.clock()
            if current is None:
                if len(await self._kv.scan(SECRETS_NAMESPACE, prefix=_prefix(app), limit=MAX_APP_SECRETS)) >= (
                    MAX_APP_SECRETS
                ):
                    raise InvalidInputError(f"app {app!r} has {MAX_APP_SECRETS} secrets, the most it may have")
                info = SecretInfo(app, name, 1, now, now, ring.sealing.id)
            else:
                before = _info(current)
                info = SecretInfo(app, name, before.version + 1, before.created_at, now, ring.sealing.id)
            document = _document(info, seal(ring.sealing, app, name, value))
            expected = ABSENT if current is None else current.version
            if await self._kv.put(SECRETS_NAMESPACE, key, document, if_version=expected) is not None:
                return info
            # Set or removed meanwhile (by another request or node): read it again.

    async def remove(self, app: str, name: str) -> SecretInfo:
        """Remove secret `name` of `app`; what it was. SecretNotSetError when there is none."""
        app, name = _checked(app, name)
        while True:
            current = await self._kv.get(SECRETS_NAMESPACE, _record(app, name))
            if current is None:
                raise _not_set(app, name, await self.list(app))
            if await self._kv.delete(SECRETS_NAMESPACE, current.key, if_version=current.version):
                return _info(current)

    async def list(self, app: str) -> list[SecretInfo]:
        """`app`'s secrets by name: names, versions, times and key ids, never a value (no key needed)."""
        app = _checked_app(app)
        records = await self._kv.scan(SECRETS_NAMESPACE, prefix=_prefix(app), limit=MAX_APP_SECRETS)
        return [_info(record) for record in records]

    async def remove_app(self, app: str) -> int:
        """Remove every secret of `app` (the app was removed); how many went."""
        removed = 0
        for info in await self.list(app):
            removed += await self._kv.delete(SECRETS_NAMESPACE, _record(app, info.name))
        return removed

    async def values(self, app: str, names: Sequence[str]) -> dict[str, str]:
        """The values of `names` of `app`, for a worker about to start. SecretNotSetError for the first one
        that is not set, SecretsKeyError for one that does not open (or when this server has no key)."""
        found: dict[str, str] = {}
        for name in names:
            record = await self._kv.get(SECRETS_NAMESPACE, _record(app, name))
            if record is None:
                raise _not_set(app, name, None)
            found[name] = open_value(self.ring(), app, name, _sealed(record))
        return found

    async def reseal(self) -> ResealResult:
        """Seal every secret of every app with this server's sealing key (after a new key was put first in every
        node's ring), then record that key as the store's. Secrets already sealed with it are left alone; one
        that does not open is listed and left as it is (and the store's key stays the old one)."""
        ring = self.ring()
        resealed = unchanged = 0
        unreadable: list[tuple[str, str, str]] = []
        for record in await self._kv.scan(SECRETS_NAMESPACE, prefix=_RECORD, limit=2**31):
            info = _info(record)
            if info.key_id == ring.sealing.id:
                unchanged += 1
                continue
            try:
                value = open_value(ring, info.app, info.name, _sealed(record))
            except SecretsKeyError:
                unreadable.append((info.app, info.name, info.key_id))
                continue
            again = SecretInfo(info.app, info.name, info.version, info.created_at, info.updated_at, ring.sealing.id)
            document = _document(again, seal(ring.sealing, info.app, info.name, value))
            # Changed meanwhile (set again, so sealed with the new key already, or removed): nothing to do.
            if await self._kv.put(SECRETS_NAMESPACE, record.key, document, if_version=record.version) is not None:
                resealed += 1
        if not unreadable:
            await self._kv.put(SECRETS_NAMESPACE, _CHECK, _check_document(ring.sealing))
        return ResealResult(ring.sealing.id, resealed, unchanged, unreadable)

    async def key_in_use(self) -> str | None:
        """The id of the key the store's secrets are sealed with, as its record says (None: no record yet)."""
        record = await self._kv.get(SECRETS_NAMESPACE, _CHECK)
        return None if record is None else _check_sealed(record).key_id


async def open_secrets(
    kv: KeyValue, *, environ: Mapping[str, str], key_file: Path | None, default_file: Path | None
) -> SecretStore:
    """The secret store of a server starting on `kv`, with the ring `find_keyring` finds.

    - A ring whose keys do not include the store's key: SecretsKeyError (the server must not start: it would seal
      with a key the other nodes cannot open).
    - No ring, and the store has no secrets key yet: a new key is written to `default_file` (0600) and recorded
      as the store's; with several servers starting at once, one key wins and the others go without.
    - No ring, and the store's secrets are sealed with a key: a store with no key, whose every use says how to
      give this server the key.
    """
    ring = find_keyring(environ, key_file, default_file)
    check = await kv.get(SECRETS_NAMESPACE, _CHECK)
    if ring is None and check is None and default_file is not None:
        ring = await _first_key(kv, default_file)
        check = await kv.get(SECRETS_NAMESPACE, _CHECK)
    if ring is None:
        in_use = None if check is None else _check_sealed(check).key_id
        where = f" ({default_file})" if default_file is not None else ""
        said = f"the store's secrets are sealed with key {in_use}" if in_use else "no key is in use yet"
        no_key = (
            f"this server has no secrets key ({said}): give it the key the other nodes have, in ${KEY_ENV}, the"
            f" key file its configuration names, or its data directory's secrets.key{where}, and restart it"
        )
        log.warning("%s; functions that declare secrets fail here until then", no_key)
        return SecretStore(kv, None, no_key=no_key)
    first = _check_document(ring.sealing)
    if check is None and await kv.put(SECRETS_NAMESPACE, _CHECK, first, if_version=ABSENT) is None:
        check = await kv.get(SECRETS_NAMESPACE, _CHECK)
    if check is not None:
        sealed = _check_sealed(check)
        if not holds_check(ring, sealed):
            if ring.get(sealed.key_id) is None:
                raise missing_key(sealed.key_id, ring, "every secret in the store")
            raise SecretsKeyError(
                f"the store's secrets key record does not open with key {sealed.key_id} from {ring.source}: the"
                " record was changed; restore the store from a backup, or remove the record and set every secret again"
            )
    return SecretStore(kv, ring)


def check_secret_value(value: object) -> str:
    """A secret's value: text of 1 to MAX_VALUE_BYTES bytes of UTF-8 with no NUL (an environment cannot hold one).
    The error never repeats the value."""
    if not isinstance(value, str):
        raise InvalidInputError(f"a secret's value must be a string, not {type(value).__name__}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInputError("a secret's value must be valid UTF-8 text (it holds a lone surrogate)") from None
    if not 1 <= size <= MAX_VALUE_BYTES:
        raise InvalidInputError(
            f"a secret's value must be 1 to {MAX_VALUE_BYTES} bytes, not {size}"
            + ("; to take a secret away, remove it" if size == 0 else "")
        )
    if "\x00" in value:
        raise InvalidInputError("a secret's value cannot contain a NUL character: no environment can hold one")
    return value


async def _first_key(kv: KeyValue, path: Path) -> Keyring | None:
    """Make the store's first key in `path` and record it; None when another server recorded its own first."""
    key = SecretsKey.generate()
    ring = make_key_file(path, [key])
    if await kv.put(SECRETS_NAMESPACE, _CHECK, _check_document(key), if_version=ABSENT) is not None:
        log.info("made the secrets key %s in %s: keep a copy of it apart from the store", key.id, path)
        return ring
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return None


def _checked(app: str, name: str) -> tuple[str, str]:
    try:
        return _checked_app(app), check_secret_name(name)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def _checked_app(app: str) -> str:
    try:
        return check_app_name(app)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def _not_set(app: str, name: str, known: list[SecretInfo] | None) -> SecretNotSetError:
    listed = "" if known is None else f"; its secrets are: {', '.join(i.name for i in known) or 'none'}"
    return SecretNotSetError(
        f"app {app!r} has no secret {name}{listed}; set it with `triggerfish secrets set {app} {name}`",
        app=app,
        name=name,
    )


def _record(app: str, name: str) -> str:
    return f"{_prefix(app)}{name}"


def _prefix(app: str) -> str:
    # App names hold no '/', so one app's prefix never matches another app's records.
    return f"{_RECORD}{app}/"


def _document(info: SecretInfo, sealed: Sealed) -> bytes:
    fields = info.as_dict()
    del fields["key_id"]  # the sealed value names its key
    return dumps({"app": info.app, **fields, **sealed.to_json()})


def _info(record: KVRecord) -> SecretInfo:
    document = loads(record.value, where=f"secret record {record.key}")
    return SecretInfo(
        app=str(document["app"]),
        name=str(document["name"]),
        version=int(document["version"]),
        created_at=float(document["created_at"]),
        updated_at=float(document["updated_at"]),
        key_id=str(document["key_id"]),
    )


def _sealed(record: KVRecord) -> Sealed:
    return Sealed.from_json(loads(record.value, where=f"secret record {record.key}"), where=f"record {record.key}")


def _check_document(key: SecretsKey) -> bytes:
    return dumps({"check": seal_check(key).to_json()})


def _check_sealed(record: KVRecord) -> Sealed:
    document = loads(record.value, where="the store's secrets key record")
    return Sealed.from_json(document.get("check") if isinstance(document, dict) else None, where="key-check")
