"""Sealing one value with AES-256-GCM, bound to the app and the name it belongs to (pure, no I/O).

    sealed = seal(keyring.sealing, "shop", "STRIPE_KEY", "sk_live_...")
    open_value(keyring, "shop", "STRIPE_KEY", sealed)      # "sk_live_..."
    open_value(keyring, "blog", "STRIPE_KEY", sealed)      # SecretsKeyError: it was sealed for another place

AES-GCM is an authenticated cipher: a sealed value that was changed by one
bit, or opened with another key, fails as a whole instead of yielding other
bytes. The app and the secret's name are its *associated data*: not stored in
the ciphertext but part of what the tag covers, so a ciphertext copied to
another app's or another name's record in the store does not open there.
Each seal takes a fresh random 96-bit nonce (NIST SP 800-38D's limit of 2^32
random nonces per key is far beyond any number of secret writes).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from triggerfish.errors import SecretsKeyError
from triggerfish.secrets.keyring import Keyring, SecretsKey

NONCE_BYTES = 12
_LABEL = b"triggerfish secret v1"
_CHECK = b"triggerfish secrets key check v1"


@dataclass(frozen=True, slots=True)
class Sealed:
    """A sealed value as stored: the id of the key that sealed it, the nonce, the ciphertext with its tag."""

    key_id: str
    nonce: bytes
    ciphertext: bytes

    def to_json(self) -> dict[str, str]:
        return {
            "key_id": self.key_id,
            "nonce": base64.b64encode(self.nonce).decode("ascii"),
            "ciphertext": base64.b64encode(self.ciphertext).decode("ascii"),
        }

    @classmethod
    def from_json(cls, document: Any, *, where: str) -> Sealed:
        """The sealed value of a stored record; SecretsKeyError naming `where` when the record is not one."""
        try:
            key_id, nonce, ciphertext = document["key_id"], document["nonce"], document["ciphertext"]
            if not all(isinstance(part, str) for part in (key_id, nonce, ciphertext)):
                raise TypeError("not text")
            sealed = cls(key_id, base64.b64decode(nonce, validate=True), base64.b64decode(ciphertext, validate=True))
        except (KeyError, TypeError, binascii.Error) as exc:
            raise SecretsKeyError(f"{where}: the stored record is damaged ({exc}); set the secret again") from None
        if len(sealed.nonce) != NONCE_BYTES:
            raise SecretsKeyError(f"{where}: the stored record is damaged (a nonce of {len(sealed.nonce)} bytes)")
        return sealed


def seal(key: SecretsKey, app: str, name: str, value: str) -> Sealed:
    """`value` sealed under `key` for secret `name` of `app`."""
    return _seal(key, value.encode("utf-8"), _context(app, name))


def open_value(keyring: Keyring, app: str, name: str, sealed: Sealed) -> str:
    """The value of secret `name` of `app`. SecretsKeyError when the ring lacks the key it was sealed with, or
    when it does not open (changed in the store, or moved there from another app or name)."""
    where = f"secret {name} of app {app!r}"
    plain = _open(keyring, sealed, _context(app, name), where)
    return plain.decode("utf-8")


def seal_check(key: SecretsKey) -> Sealed:
    """A value that proves, when it opens, that a server holds `key` (the store's record of which key is in use)."""
    return _seal(key, _CHECK, _CHECK)


def holds_check(keyring: Keyring, sealed: Sealed) -> bool:
    """Whether the ring holds the key `seal_check` sealed `sealed` with."""
    try:
        return _open(keyring, sealed, _CHECK, "the store's secrets key record") == _CHECK
    except SecretsKeyError:
        return False


def missing_key(key_id: str, keyring: Keyring, where: str) -> SecretsKeyError:
    return SecretsKeyError(
        f"{where} is sealed with secrets key {key_id}, which this server does not hold (it holds"
        f" {', '.join(keyring.ids)}, from {keyring.source}): give every node the same secrets key"
        " (docs/security.md#the-secrets-key)"
    )


def _context(app: str, name: str) -> bytes:
    # NUL cannot occur in an app name or a secret name, so no two (app, name) pairs give the same bytes.
    return b"\x00".join((_LABEL, app.encode("utf-8"), name.encode("utf-8")))


def _seal(key: SecretsKey, plain: bytes, associated: bytes) -> Sealed:
    nonce = os.urandom(NONCE_BYTES)
    return Sealed(key.id, nonce, AESGCM(key.material).encrypt(nonce, plain, associated))


def _open(keyring: Keyring, sealed: Sealed, associated: bytes, where: str) -> bytes:
    key = keyring.get(sealed.key_id)
    if key is None:
        raise missing_key(sealed.key_id, keyring, where)
    try:
        return AESGCM(key.material).decrypt(sealed.nonce, sealed.ciphertext, associated)
    except InvalidTag:
        raise SecretsKeyError(
            f"{where} does not open with secrets key {key.id}: its stored record was changed, or copied from"
            " another app or secret; set it again"
        ) from None
