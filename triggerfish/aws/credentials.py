"""Who signed an AWS request: the caller an access key id names, and the secret its signature is checked with.

- `triggerfish dev` (`OpenCredentials`): any well-formed SigV4 request is accepted and its
  signature is not checked, as local AWS emulators do, so `aws_access_key_id="test"` works.
  The caller may do everything to the one app.
- `triggerfish serve` (`KeyCredentials`): an API key of one app is also an AWS credential. Its
  access key id is the key's prefix (`tfk_1a2b3c4d`); its secret access key is derived from the
  key's text (`secret_access_key`), shown when the key is made. The server keeps only
  `SHA-256("AWS4" + secret)`, which checks a signature (sigv4.signing_secret) but is neither the
  API key nor the secret. The key's role and app apply: a key of `shop` reaches `shop`'s queues
  and buses only, and a viewer key may read but not send. Admin keys act on every app, so they
  have no AWS credentials: AWS requests name no app.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable, Set
from dataclasses import dataclass

from triggerfish.aws.sigv4 import signing_secret
from triggerfish.identity import REGION

# What the secret access key of an API key is derived under: changing it changes every key's secret.
_DERIVATION = b"triggerfish/aws-secret-access-key/v1"


@dataclass(frozen=True, slots=True)
class Caller:
    """The principal behind a signed request: the app it acts on and the actions it may perform."""

    access_key_id: str
    #: None under `triggerfish dev`: its one app.
    app: str | None
    actions: Set[str]

    def may(self, action: str) -> bool:
        return action in self.actions


#: What an access key id resolves to: the caller, and the HMAC key its signatures are checked with
#: (None: not checked, under `dev`). None for an unknown key.
Identify = Callable[[str], Awaitable[tuple[Caller, bytes | None] | None]]


def secret_access_key(key_text: str) -> str:
    """The AWS secret access key of the API key `key_text`: 64 hex digits, long enough to be kept as a digest."""
    return hmac.new(key_text.encode("utf-8"), _DERIVATION, hashlib.sha256).hexdigest()


def signing_digest(key_text: str) -> str:
    """What the server keeps to check signatures made with `key_text`'s secret access key (hex)."""
    return signing_secret(secret_access_key(key_text)).hex()


class OpenCredentials:
    """`triggerfish dev`'s: every access key id is a caller allowed everything; signatures are not checked."""

    def __init__(self, actions: Iterable[str]) -> None:
        self._actions = frozenset(actions)

    async def __call__(self, access_key_id: str) -> tuple[Caller, bytes | None] | None:
        return Caller(access_key_id, None, self._actions), None


#: The credentials `triggerfish dev` gives its functions (any would do there), as local AWS emulators name them.
DEV_ACCESS_KEY_ID = "test"
DEV_SECRET_ACCESS_KEY = "test"


def endpoint_url(server_url: str) -> str:
    """The AWS endpoint of a server at `server_url`, as its own functions reach it (a wildcard bind as loopback)."""
    from triggerfish.aws.endpoint import PATH

    for wildcard, loopback in (("//0.0.0.0:", "//127.0.0.1:"), ("//[::]:", "//[::1]:")):
        server_url = server_url.replace(wildcard, loopback, 1)
    return server_url.rstrip("/") + PATH


def function_environment(server_url: str, access_key_id: str, secret: str) -> dict[str, str]:
    """What a function's environment says about the AWS endpoint (runtime.worker.PLATFORM_ENVIRONMENT)."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url(server_url),
        "AWS_ACCESS_KEY_ID": access_key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }
