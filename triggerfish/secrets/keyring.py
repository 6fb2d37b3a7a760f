"""The server's secrets key: what it looks like, where it comes from, and the ring of keys a server holds.

    keyring = Keyring.parse("tfsk_...", where="TRIGGERFISH_SECRETS_KEY")
    keyring.sealing.id          # "1a2b3c4d": names the key in records and messages, reveals nothing of it

A key is 32 random bytes written `tfsk_<43 characters of URL-safe base64>`.
A server holds a *ring*: one key or several, in order. The first seals every
value it writes; every key in the ring opens what was sealed with it. Several
keys are only for a rotation (docs/security.md): the new key first, the old one
after it, until every secret was resealed with the new one.

Where a server's ring comes from, first found wins (`find_keyring`):

1. the environment variable `TRIGGERFISH_SECRETS_KEY`: keys separated by commas;
2. a key file named by the server's configuration (`secrets_key_file` for serve);
3. `DATA_DIR/secrets.key`, which a first start makes (mode 0600) when the store has no secrets yet.

A key file holds one key per line, the sealing key first; blank lines and lines
starting with `#` are skipped. The key is never in the store: a copy of the store
alone opens nothing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from triggerfish.errors import SecretsKeyError

KEY_MARK = "tfsk_"
KEY_BYTES = 32
#: The environment variable a server takes its ring from before any file.
KEY_ENV = "TRIGGERFISH_SECRETS_KEY"
#: The file a first start makes in the data directory when no key is given.
KEY_FILE = "secrets.key"
_ID_LABEL = b"triggerfish secrets key id"


@dataclass(frozen=True, slots=True)
class SecretsKey:
    """One key. `id` (8 hex digits) is an HMAC of a fixed label under the key: it names the key in records
    and messages and tells keys apart without revealing anything about them."""

    material: bytes = field(repr=False)
    id: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise SecretsKeyError(f"a secrets key is {KEY_BYTES} bytes, not {len(self.material)}")
        object.__setattr__(self, "id", hmac.new(self.material, _ID_LABEL, hashlib.sha256).hexdigest()[:8])

    @classmethod
    def generate(cls) -> SecretsKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def parse(cls, text: str, *, where: str) -> SecretsKey:
        """A key from its text; SecretsKeyError naming `where` it came from (never the text) when it is not one."""
        body = text.strip()
        if not body.startswith(KEY_MARK):
            raise SecretsKeyError(
                f"{where} holds something that is not a secrets key: they read {KEY_MARK}<43 characters>;"
                " make one with `triggerfish secrets generate-key`"
            )
        encoded = body[len(KEY_MARK) :]
        try:
            material = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            material = b""
        if len(material) != KEY_BYTES or not encoded.isascii():
            raise SecretsKeyError(
                f"{where} holds a damaged secrets key ({KEY_MARK} then {len(encoded)} characters, not a base64 of"
                f" {KEY_BYTES} bytes): was it copied whole?"
            )
        return cls(material)

    @property
    def text(self) -> str:
        """How the key is written: what goes into a key file or the environment."""
        return KEY_MARK + base64.urlsafe_b64encode(self.material).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class Keyring:
    """The keys a server holds, in order: the first seals, all of them open. `source` says where they came from."""

    keys: tuple[SecretsKey, ...]
    source: str

    def __post_init__(self) -> None:
        if not self.keys:
            raise SecretsKeyError(f"{self.source} holds no secrets key")
        ids = [key.id for key in self.keys]
        if len(set(ids)) != len(ids):
            raise SecretsKeyError(f"{self.source} names the same secrets key twice; keep one of them")

    @property
    def sealing(self) -> SecretsKey:
        """The key new values are sealed with."""
        return self.keys[0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key.id for key in self.keys)

    def get(self, key_id: str) -> SecretsKey | None:
        """The key of this ring with `key_id`, or None."""
        return next((key for key in self.keys if key.id == key_id), None)

    @classmethod
    def parse(cls, text: str, *, where: str, separator: str | None = None) -> Keyring:
        """The ring written in `text`: one key per line (a file), or keys separated by `separator` (a variable)."""
        pieces = text.split(separator) if separator is not None else text.splitlines()
        lines = [piece.strip() for piece in pieces]
        keys = [
            SecretsKey.parse(line, where=f"{where} (key {number})")
            for number, line in enumerate((line for line in lines if line and not line.startswith("#")), 1)
        ]
        return cls(tuple(keys), where)

    @classmethod
    def read(cls, path: Path) -> Keyring:
        """The ring in a key file; SecretsKeyError when it cannot be read or holds no valid key."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretsKeyError(f"the secrets key file {path} cannot be read: {exc}") from None
        return cls.parse(text, where=f"the secrets key file {path}")


def find_keyring(environ: Mapping[str, str], key_file: Path | None, default_file: Path | None) -> Keyring | None:
    """The ring a server uses, as the module docstring says; None when none is given and `default_file` is
    absent (the caller decides whether to make one: `make_key_file`)."""
    given = environ.get(KEY_ENV, "").strip()
    if given:
        return Keyring.parse(given, where=f"${KEY_ENV}", separator=",")
    if key_file is not None:
        return Keyring.read(key_file)
    if default_file is not None and default_file.exists():
        return Keyring.read(default_file)
    return None


def make_key_file(path: Path, keys: Sequence[SecretsKey]) -> Keyring:
    """Write `keys` to `path` (mode 0600, in one piece: a temporary file renamed over it); the ring they make."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write("# Triggerfish secrets keys: the first seals, all open. Keep a copy apart from the store.\n")
            file.writelines(key.text + "\n" for key in keys)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return Keyring(tuple(keys), f"the secrets key file {path}")


def loosely_protected(path: Path) -> bool:
    """Whether a key file can be read by users other than its owner (the server warns about it)."""
    try:
        return bool(stat.S_IMODE(path.stat().st_mode) & 0o077)
    except OSError:
        return False
