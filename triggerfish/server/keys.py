"""API keys: created by an admin, shown once, kept only as a hash, listed, revoked.

    keys = ApiKeys(store)
    text, info = await keys.create("ci", "deployer", app="shop")   # text is shown this once
    await keys.authenticate(text)          # KeyInfo(id="1a2b3c4d", role="deployer", app="shop", ...)
    await keys.revoke(info.prefix)         # from now on, on every server sharing the store:
    await keys.authenticate(text)          # None

A key reads `tfk_<id>_<secret>`: `id` is 8 hex digits, public, and names the
key's record (`key/<id>` in the server's key-value namespace
`triggerfish.server`); `secret` is 32 characters of `secrets.token_urlsafe`.
The record holds the SHA-256 of the whole key text, never the text.

Every `authenticate` reads the key's record from the store rather than a
cache, so a revoke takes effect at once on every server sharing the store:
one indexed key-value read per request is cheap next to an invocation, and
a cache would need invalidating across processes to be as correct.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from triggerfish._json import dumps, loads
from triggerfish.aws.credentials import signing_digest
from triggerfish.errors import InvalidInputError, KeyNotFoundError, StoreError
from triggerfish.model import check_app_name
from triggerfish.names import SERVER_NAMESPACE
from triggerfish.store import ABSENT, Store

#: The roles a key can have, most powerful first.
ROLES = ("admin", "deployer", "publisher", "invoker", "viewer")
KEY_MARK = "tfk_"
MAX_NAME_CHARS = 64

_RECORD = "key/"
_BOOTSTRAP = "bootstrap-admin"
# Held while one server creates the first admin key; it expires by itself should that server die.
_BOOTSTRAP_SECONDS = 60.0
_KEY_TEXT = re.compile(r"tfk_([0-9a-f]{8})_[A-Za-z0-9_-]{32}")
_KEY_ID = re.compile(r"(?:tfk_)?([0-9a-f]{8})")
_ID_ATTEMPTS = 8
_LISTED = 100_000


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What is known about a key besides its secret: never its hash, so this can be shown and logged."""

    id: str
    name: str
    role: str
    #: The one app the key acts on; None for an admin key, which acts on every app.
    app: str | None
    created_at: float
    revoked_at: float | None = None

    @property
    def prefix(self) -> str:
        """How people recognise the key: the start of its text, `tfk_1a2b3c4d`."""
        return f"{KEY_MARK}{self.id}"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "name": self.name,
            "role": self.role,
            "app": self.app,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


class ApiKeys:
    """The server's API keys, kept in `store` (unscoped: keys are server-wide records)."""

    def __init__(self, store: Store) -> None:
        self._kv = store.kv

    async def create(self, name: str, role: str, app: str | None = None) -> tuple[str, KeyInfo]:
        """A new key: its text (the only time anyone sees it) and its KeyInfo.

        `role` is one of ROLES; an admin key has no `app`, every other key names
        the one app it acts on. `name` (1 to 64 printable characters) says what
        the key is for. Raises InvalidInputError naming the bad argument.
        """
        name, role, app = check_key_fields(name, role, app)
        for _ in range(_ID_ATTEMPTS):
            # The id is 32 random bits, so it can collide; creating only if absent makes that a retry.
            key_id = secrets.token_hex(4)
            text = f"{KEY_MARK}{key_id}_{secrets.token_urlsafe(24)}"
            info = KeyInfo(key_id, name, role, app, self._kv.clock())
            if (
                await self._kv.put(SERVER_NAMESPACE, _RECORD + key_id, _encode(info, text), if_version=ABSENT)
                is not None
            ):
                return text, info
        raise StoreError(f"no free key id after {_ID_ATTEMPTS} tries; the store holds too many keys")

    async def list(self, app: str | None = None) -> list[KeyInfo]:
        """Every key (revoked ones too, for the record), oldest first; only `app`'s when given."""
        records = await self._kv.scan(SERVER_NAMESPACE, prefix=_RECORD, limit=_LISTED)
        keys = [_decode(record.value)[0] for record in records]
        return sorted((key for key in keys if app is None or key.app == app), key=lambda k: (k.created_at, k.id))

    async def revoke(self, id_or_prefix: str) -> KeyInfo:
        """Revoke a key by its id (`1a2b3c4d`), its prefix (`tfk_1a2b3c4d`) or its whole text.

        It fails from the next request on, on every server. Revoking a revoked key
        changes nothing and returns it. Raises KeyNotFoundError for an unknown key,
        and InvalidInputError for the last admin key that works (create another first:
        with none left, nobody could create keys).
        """
        key_id = _id_of(id_or_prefix)
        while True:
            record = await self._kv.get(SERVER_NAMESPACE, _RECORD + key_id)
            if record is None:
                raise KeyNotFoundError(f"no API key {KEY_MARK}{key_id}; `triggerfish keys list` shows the keys")
            info, digest = _decode(record.value)
            if info.revoked:
                return info
            if info.role == "admin" and not any(
                other.role == "admin" and not other.revoked and other.id != info.id for other in await self.list()
            ):
                raise InvalidInputError(
                    f"{info.prefix} is the last admin key that works; create another admin key before revoking it"
                )
            revoked = replace(info, revoked_at=self._kv.clock())
            value = dumps({**_fields(revoked), "sha256": digest})
            if await self._kv.put(SERVER_NAMESPACE, record.key, value, if_version=record.version) is not None:
                return revoked
            # Changed meanwhile (revoked elsewhere, say): read it again.

    async def lookup(self, text: str) -> KeyInfo | None:
        """The key whose whole text is `text`, revoked or not; None when there is no such key."""
        match = _KEY_TEXT.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            return None
        record = await self._kv.get(SERVER_NAMESPACE, _RECORD + match.group(1))
        if record is None:
            return None
        info, digest = _decode(record.value)
        # Constant time, so the hash cannot be learned byte by byte from how long refusals take.
        if not hmac.compare_digest(digest.encode("ascii"), _digest(text).encode("ascii")):
            return None
        return info

    async def aws_signing_secret(self, access_key_id: str) -> tuple[KeyInfo, bytes] | None:
        """The key whose AWS access key id (its prefix, `tfk_1a2b3c4d`) is given, and the HMAC key its AWS
        signatures are checked with; None for an unknown or revoked key, or one without AWS credentials (admin
        keys, and keys made before they existed)."""
        match = _KEY_ID.fullmatch(access_key_id) if access_key_id.startswith(KEY_MARK) else None
        if match is None:
            return None
        record = await self._kv.get(SERVER_NAMESPACE, _RECORD + match.group(1))
        if record is None:
            return None
        info, _ = _decode(record.value)
        signing = loads(record.value, where="API key record").get("aws")
        if info.revoked or not isinstance(signing, str):
            return None
        return info, bytes.fromhex(signing)

    async def authenticate(self, text: str) -> KeyInfo | None:
        """The key `text` if it exists and is not revoked, else None. Reads the store every time (see above)."""
        info = await self.lookup(text)
        return None if info is None or info.revoked else info

    async def ensure_admin(self, path: str | os.PathLike[str]) -> str | None:
        """On a server's first start (no keys at all), create an admin key, write it to `path`, and return it.

        The file is written with mode 0600. Returns None when keys exist already, or
        when another server sharing the store is creating the first admin key now.
        """
        if await self._kv.scan(SERVER_NAMESPACE, prefix=_RECORD, limit=1):
            return None
        # Two servers starting together on one store must not both create a first admin key.
        claim = await self._kv.put(SERVER_NAMESPACE, _BOOTSTRAP, b"{}", ttl=_BOOTSTRAP_SECONDS, if_version=ABSENT)
        if claim is None or await self._kv.scan(SERVER_NAMESPACE, prefix=_RECORD, limit=1):
            return None
        try:
            return await self._write_first_admin(Path(path))
        finally:
            # Done or failed, the claim goes: a failure must not leave the next start without a key.
            await self._kv.delete(SERVER_NAMESPACE, _BOOTSTRAP, if_version=claim.version)

    async def _write_first_admin(self, target: Path) -> str:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The file is made (0600 from its creation) before the key exists, so a directory we
        # cannot write fails here, not after a key nobody will ever see was stored.
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        made: KeyInfo | None = None
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as file:
                text, made = await self.create("first admin key", "admin")
                file.write(text + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            if made is not None:
                # A key whose file was never written is one nobody holds; with it gone, the next start makes another.
                await self._kv.delete(SERVER_NAMESPACE, _RECORD + made.id)
            raise
        return text


def check_key_fields(name: object, role: object, app: object) -> tuple[str, str, str | None]:
    """A key's name, role and app, checked; raises InvalidInputError saying what to change."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS or not name.isprintable():
        raise InvalidInputError(
            f"a key's name must be 1 to {MAX_NAME_CHARS} printable characters saying what it is for, not {name!r}"
        )
    if role not in ROLES:
        raise InvalidInputError(f"a key's role is one of {', '.join(ROLES)}, not {role!r}")
    assert isinstance(role, str)
    if role == "admin":
        if app is not None:
            raise InvalidInputError("an admin key acts on every app: give it no app")
        return name, role, None
    if app is None:
        raise InvalidInputError(f"a {role} key acts on one app: name it (`--app NAME`)")
    try:
        return name, role, check_app_name(app)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key a request carries: `Authorization: Bearer KEY`, else `x-api-key: KEY`; None when neither."""
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if api_key and api_key.strip():
        return api_key.strip()
    return None


def looks_like_key(text: str) -> bool:
    """Whether `text` has the shape of a key this server issues (`tfk_<8 hex>_<32 characters>`)."""
    return _KEY_TEXT.fullmatch(text) is not None


def _digest(text: str) -> str:
    # SHA-256, not a slow password hash: a key carries 192 random bits, so no amount of
    # guessing per second finds one from its hash, and a slow hash (bcrypt, scrypt) would
    # only add its ~100 ms to every request.
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _id_of(id_or_prefix: object) -> str:
    if isinstance(id_or_prefix, str):
        whole = _KEY_TEXT.fullmatch(id_or_prefix)
        if whole is not None:
            return whole.group(1)
        short = _KEY_ID.fullmatch(id_or_prefix)
        if short is not None:
            return short.group(1)
    raise InvalidInputError(
        f"name a key by its id (8 hex digits, 1a2b3c4d) or its prefix (tfk_1a2b3c4d), not {id_or_prefix!r}"
    )


def _fields(info: KeyInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "role": info.role,
        "app": info.app,
        "created_at": info.created_at,
        "revoked_at": info.revoked_at,
    }


def _encode(info: KeyInfo, text: str) -> bytes:
    fields = {**_fields(info), "sha256": _digest(text)}
    if info.app is not None:
        # What checks the key's AWS signatures: neither the key nor its AWS secret (triggerfish.aws.credentials).
        fields["aws"] = signing_digest(text)
    return dumps(fields)


def _decode(value: bytes) -> tuple[KeyInfo, str]:
    data = loads(value, where="API key record")
    info = KeyInfo(
        id=data["id"],
        name=data["name"],
        role=data["role"],
        app=data["app"],
        created_at=float(data["created_at"]),
        revoked_at=None if data["revoked_at"] is None else float(data["revoked_at"]),
    )
    return info, str(data["sha256"])
