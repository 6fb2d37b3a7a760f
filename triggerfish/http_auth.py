"""Who may call an HTTP route: `auth="api_key"`, or `auth=triggerfish.hmac_auth(...)` for signed webhooks.

    @app.http("POST", "/github", env={"GITHUB_WEBHOOK_SECRET": "..."},
              auth=triggerfish.hmac_auth(secret_env="GITHUB_WEBHOOK_SECRET", scheme="github"))
    def on_push(event, context): ...

A route's auth is data, not code: the gateway checks a request in the
platform's process before any worker runs, and that process knows the app's
functions only as the JSON its zygote sent (see loader.spec_to_dict). So a
route names a scheme and where its secret is, never a callable. The secret
itself is a value of the function's `env` (set in `triggerfish.toml`, a
stage, or the decorator), looked up by name, so it need not be in the code.

This module only declares; triggerfish.gateway.route_auth checks requests.
It stays cheap to import: every app imports it through `triggerfish.hmac_auth`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal, cast

from triggerfish.errors import DeclarationError

#: `auth="api_key"`: the caller sends an API key of the app with the invoker, deployer or admin role.
API_KEY = "api_key"

Scheme = Literal["github", "stripe", "generic"]
#: Each scheme's signature header and, for `generic`, its timestamp header.
SCHEME_HEADERS: dict[str, tuple[str, str | None]] = {
    "github": ("X-Hub-Signature-256", None),
    "stripe": ("Stripe-Signature", None),
    "generic": ("X-Signature", "X-Timestamp"),
}
#: Seconds a signed timestamp may be away from the server's clock (Stripe's own default).
DEFAULT_TOLERANCE = 300.0

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# An HTTP field name (RFC 9110 token characters).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True, slots=True)
class HmacAuth:
    """A route that takes only requests signed with HMAC-SHA256 under a shared secret. Build it with `hmac_auth`.

    - `github`: `X-Hub-Signature-256: sha256=<hex of HMAC(secret, body)>`. GitHub signs no
      time, so a captured request can be replayed: make the handler idempotent on
      `X-GitHub-Delivery`.
    - `stripe`: `Stripe-Signature: t=<epoch seconds>,v1=<hex of HMAC(secret, "<t>.<body>")>`
      (several `v1` while a secret is rotated).
    - `generic`: `X-Signature: sha256=<hex of HMAC(secret, "<timestamp>.<body>")>` and
      `X-Timestamp: <epoch seconds>`; `v1=<hex>` is read too, as Triggerfish's own webhooks send it.

    `tolerance` bounds how far a signed timestamp may be from the server's clock.
    """

    scheme: Scheme
    secret_env: str
    header: str
    timestamp_header: str | None
    tolerance: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON form the loader sends from the app's zygote to the platform."""
        return {
            "kind": "hmac",
            "scheme": self.scheme,
            "secret_env": self.secret_env,
            "header": self.header,
            "timestamp_header": self.timestamp_header,
            "tolerance": self.tolerance,
        }


RouteAuth = str | HmacAuth


def hmac_auth(
    *,
    secret_env: str,
    scheme: str = "generic",
    header: str | None = None,
    timestamp_header: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> HmacAuth:
    """Declare that a route takes only requests signed with the secret in the function's env variable `secret_env`.

        triggerfish.hmac_auth(secret_env="GITHUB_WEBHOOK_SECRET", scheme="github")
        triggerfish.hmac_auth(secret_env="STRIPE_WEBHOOK_SECRET", scheme="stripe", tolerance=300)
        triggerfish.hmac_auth(secret_env="HOOK_SECRET")   # X-Signature: sha256=..., X-Timestamp: ...

    `scheme` is `github`, `stripe` or `generic`; `header` (and, for `generic`,
    `timestamp_header`) replace the scheme's header names. Raises
    DeclarationError for a bad argument, naming it.
    """
    if scheme not in SCHEME_HEADERS:
        raise DeclarationError(f"hmac_auth(scheme={scheme!r}): the schemes are {', '.join(SCHEME_HEADERS)}")
    if not isinstance(secret_env, str) or not _ENV_NAME.fullmatch(secret_env):
        raise DeclarationError(
            f"hmac_auth(secret_env={secret_env!r}): name the function's env variable that holds the secret"
            " (letters, digits and _, not first a digit)"
        )
    default_header, default_timestamp = SCHEME_HEADERS[scheme]
    header = _header("header", default_header if header is None else header)
    if timestamp_header is not None and default_timestamp is None:
        raise DeclarationError(f"hmac_auth(timestamp_header=...): the {scheme} scheme carries its time in {header}")
    stamp = None if default_timestamp is None else _header("timestamp_header", timestamp_header or default_timestamp)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not math.isfinite(tolerance):
        raise DeclarationError(f"hmac_auth(tolerance={tolerance!r}) must be a number of seconds")
    if not 1 <= tolerance <= 86400:
        raise DeclarationError(f"hmac_auth(tolerance={tolerance!r}) must be from 1 to 86400 seconds")
    return HmacAuth(cast(Scheme, scheme), secret_env, header, stamp, float(tolerance))


def check_auth(auth: object, function: str) -> RouteAuth | None:
    """`auth=` as `@app.http` accepts it; raises DeclarationError naming the function otherwise."""
    if auth is None or auth == API_KEY or isinstance(auth, HmacAuth):
        return auth
    raise DeclarationError(
        f"function {function!r}: auth must be None (a public route), {API_KEY!r} (an API key of the app)"
        f" or triggerfish.hmac_auth(...) (signed webhooks), not {auth!r}"
    )


def auth_to_data(auth: object) -> Any:
    """A route's auth as JSON: None, `"api_key"`, or an HmacAuth's `as_dict()`."""
    return auth.as_dict() if isinstance(auth, HmacAuth) else auth


def auth_from_data(data: Any) -> Any:
    """The auth `auth_to_data` described. Anything else is kept as it came; the gateway refuses such a route."""
    if isinstance(data, dict) and data.get("kind") == "hmac":
        try:
            return hmac_auth(
                secret_env=data["secret_env"],
                scheme=data["scheme"],
                header=data["header"],
                timestamp_header=data["timestamp_header"],
                tolerance=data["tolerance"],
            )
        except (KeyError, DeclarationError):
            return data
    return data


def describe_auth(auth: object) -> str:
    """A short name for listings: `api_key`, `hmac github`."""
    if isinstance(auth, HmacAuth):
        return f"hmac {auth.scheme}"
    return str(auth)


def _header(what: str, name: object) -> str:
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise DeclarationError(f"hmac_auth({what}={name!r}) must be an HTTP header name such as X-Signature")
    return name
