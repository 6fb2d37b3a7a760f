"""Signed webhooks: the signature a sender adds, the check a receiver makes, and the sender.

Every webhook Triggerfish sends carries two headers:

    triggerfish-timestamp: 1700000000
    triggerfish-signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>" under the shared secret>

Signing the timestamp with the body lets a receiver refuse a captured request
replayed later: `verify()` rejects a timestamp more than `tolerance` seconds
away from its clock. The `v1=` prefix leaves room for a new scheme; several
signatures may be given, separated by commas, while a secret is rotated.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from triggerfish.errors import InvalidInputError, TriggerfishError

if TYPE_CHECKING:
    import httpx

TIMESTAMP_HEADER = "triggerfish-timestamp"
SIGNATURE_HEADER = "triggerfish-signature"
SCHEME = "v1"
DEFAULT_TIMEOUT = 10.0


class WebhookError(TriggerfishError):
    """A webhook delivery failed. `retryable` is False for answers that will not change on retry (most 4xx)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True) -> None:
        self.status = status
        self.retryable = retryable
        super().__init__(message)


class SignatureError(TriggerfishError, ValueError):
    """A received webhook's signature is missing, malformed, wrong or too old."""


def signature(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The headers that sign `body`: the timestamp (now, unless given) and `v1=<signature>`."""
    if not secret:
        raise InvalidInputError("a webhook secret must not be empty")
    moment = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(moment), SIGNATURE_HEADER: f"{SCHEME}={signature(secret, moment, body)}"}


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = 300,
    now: float | None = None,
) -> int:
    """Check a received webhook; return its timestamp, or raise SignatureError saying why it was refused.

        @app.post("/hook")
        async def hook(request):
            verify(SECRET, request.headers, await request.body())

    Header names are matched without regard to case. The comparison takes
    constant time, so the signature cannot be guessed byte by byte.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    raw_time = lowered.get(TIMESTAMP_HEADER)
    raw_signatures = lowered.get(SIGNATURE_HEADER)
    if raw_time is None or raw_signatures is None:
        raise SignatureError(f"the {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required")
    if not raw_time.isascii() or not raw_time.isdigit() or len(raw_time) > 12:
        raise SignatureError(f"{TIMESTAMP_HEADER} must be whole seconds since the epoch, not {raw_time[:40]!r}")
    timestamp = int(raw_time)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is {abs(current - timestamp):.0f} s from now, past the tolerance of {tolerance:g} s;"
            " a replayed request, or clocks out of step"
        )
    expected = signature(secret, timestamp, body).encode("ascii")
    for candidate in raw_signatures.split(","):
        scheme, _, value = candidate.strip().partition("=")
        if scheme == SCHEME and hmac.compare_digest(value.encode("utf-8", "replace"), expected):
            return timestamp
    raise SignatureError(f"no {SCHEME} signature in {SIGNATURE_HEADER} matches the body and secret")


async def send(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    secret: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109  # httpx's own per-request timeout
) -> int:
    """POST `body` to `url`, signed when a secret is given; return the status, or raise WebhookError.

    A 2xx answer is success. 408, 429 and 5xx answers, timeouts and
    connection failures are retryable; other answers (redirects, 4xx) are not.
    """
    import httpx  # here, not at the top: the platform imports this module, and httpx (with its CLI's rich, click and
    # pygments) costs a tenth of a second or more to import in every process that starts a platform

    sent = {"content-type": "application/json", **(headers or {})}
    if secret:
        sent.update(sign(secret, body))
    try:
        response = await client.post(url, content=body, headers=sent, timeout=timeout)
    except httpx.TimeoutException:
        raise WebhookError(f"webhook {url}: no answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise WebhookError(f"webhook {url}: {type(exc).__name__}: {exc}") from None
    status = response.status_code
    if 200 <= status < 300:
        return status
    # A redirect is not followed: the target's URL is wrong, and no retry will fix it.
    retryable = status >= 500 or status in (408, 429)
    raise WebhookError(f"webhook {url} answered HTTP {status}", status=status, retryable=retryable)
