"""Checking a request against its route's `auth=` before the function runs: API keys and HMAC signatures.

    authorize = route_authorizer(specs, keys_lookup=invoke_check(keys, "shop"))  # triggerfish serve
    authorize = route_authorizer(specs, keys_lookup=None)                          # triggerfish dev
    gateway = Gateway(routes, invoke, authorize=authorize)

`check_route_auth` makes the decision and does no I/O of its own: the time
and the function's env are arguments, and the one question it cannot answer
alone ("may this key invoke this app?") is the `keys_lookup` it is given
(triggerfish.server.auth.invoke_check). With no `keys_lookup`, as under
`triggerfish dev`, which has no keys, `api_key` routes are open; signature
routes are checked everywhere, since a signature is the app's own security.

Every signature is compared with `hmac.compare_digest`, in constant time, so
a caller cannot find the right one byte by byte from how long refusals take.
Refusals say why (a missing header, a malformed one, a stale timestamp, a
signature that does not match), which helps whoever sets the sender up and
tells a forger nothing the scheme's documentation does not.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from triggerfish.bus.webhook import signature
from triggerfish.errors import DeclarationError
from triggerfish.gateway.asgi import Authorize, Refusal
from triggerfish.gateway.routes import Route
from triggerfish.http_auth import API_KEY, HmacAuth
from triggerfish.model import FunctionSpec, HttpTrigger
from triggerfish.server.keys import presented_key

#: Answers for a key sent to an `api_key` route: None (unknown or revoked), False (may not invoke), True.
KeyLookup = Callable[[str], Awaitable[bool | None]]
#: Headers as a mapping of names to values, or as ASGI gives them: (lowercase name, value) byte pairs.
Headers = Mapping[str, str] | Iterable[tuple[bytes, bytes]]

_HEX_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
# The generic scheme also reads Triggerfish's own webhook signatures (`v1=<hex>`, see bus/webhook.py).
_GENERIC_SIGNATURE = re.compile(r"(?:sha256|v1)=([0-9a-fA-F]{64})")
_SHOWN = 40


class _Refused(Exception):
    pass


def route_authorizer(
    specs: Mapping[str, FunctionSpec], *, keys_lookup: KeyLookup | None, clock: Callable[[], float] = time.time
) -> Authorize:
    """The Gateway's `authorize` hook for an app version whose functions are `specs`.

    Raises DeclarationError, naming the function, for a route whose auth this
    server cannot check: a signature route whose secret is not in its
    function's env, or an auth it does not know. So such a version fails to
    load instead of answering 500 to every request.
    """
    for spec in specs.values():
        for trigger in spec.triggers:
            if isinstance(trigger, HttpTrigger) and trigger.auth is not None:
                _check_declared(spec, trigger.auth)

    async def authorize(route: Route, headers: list[tuple[bytes, bytes]], body: bytes) -> Refusal | None:
        spec = specs.get(route.function)
        env = {} if spec is None else spec.settings.env
        return await check_route_auth(route.auth, headers, body, env=env, now=clock(), keys_lookup=keys_lookup)

    return authorize


async def check_route_auth(
    auth: Any,
    headers: Headers,
    body: bytes,
    *,
    env: Mapping[str, str],
    now: float,
    keys_lookup: KeyLookup | None,
) -> Refusal | None:
    """None to let a request to a route with this `auth` through, else the Refusal to answer with.

    `env` is the function's env (where a signature route's secret is), `now` the
    time in epoch seconds, `keys_lookup` the question for `api_key` routes (None:
    such routes are open). An auth this server does not know is refused (500).
    """
    if auth is None:
        return None
    fields = _fields(headers)
    if auth == API_KEY:
        return await _check_key(fields, keys_lookup)
    if isinstance(auth, HmacAuth):
        secret = env.get(auth.secret_env)
        if not secret:
            return Refusal(500, "this route cannot check signatures: its secret is not configured")
        reason = _verify(auth, fields, body, secret=secret, now=now)
        return None if reason is None else Refusal(401, reason)
    return Refusal(500, "this route's auth is not one this server can check")


def verify_hmac(auth: HmacAuth, headers: Headers, body: bytes, *, secret: str, now: float) -> str | None:
    """None when `body` is signed as `auth` says under `secret`, else the reason it is refused."""
    return _verify(auth, _fields(headers), body, secret=secret, now=now)


def _verify(auth: HmacAuth, fields: dict[str, list[str]], body: bytes, *, secret: str, now: float) -> str | None:
    key = secret.encode("utf-8")
    try:
        if auth.scheme == "github":
            given = _hex_signatures(fields, auth.header, "sha256=<64 hex digits>", _HEX_SIGNATURE)
            expected = hmac.new(key, body, hashlib.sha256).hexdigest()
        elif auth.scheme == "stripe":
            timestamp, given = _stripe(fields, auth.header)
            _fresh(timestamp, now, auth.tolerance)
            expected = signature(key, timestamp, body)
        else:
            assert auth.timestamp_header is not None
            timestamp = _timestamp(_one(fields, auth.timestamp_header), auth.timestamp_header)
            _fresh(timestamp, now, auth.tolerance)
            shape = "sha256=<64 hex digits> over <timestamp>.<body>"
            given = _hex_signatures(fields, auth.header, shape, _GENERIC_SIGNATURE)
            expected = signature(key, timestamp, body)
    except _Refused as refused:
        return str(refused)
    wanted = expected.encode("ascii")
    # Every candidate is compared (no early exit), each in constant time.
    matched = [hmac.compare_digest(candidate.lower().encode("utf-8", "replace"), wanted) for candidate in given]
    if any(matched):
        return None
    return (
        f"the {auth.header} signature does not match the body: the sender signs with another secret,"
        " or the body was changed on the way"
    )


# --- API keys --------------------------------------------------------------------------------


async def _check_key(fields: dict[str, list[str]], keys_lookup: KeyLookup | None) -> Refusal | None:
    if keys_lookup is None:
        return None
    try:
        text = presented_key(_one(fields, "authorization"), _one(fields, "x-api-key"))
    except _Refused as refused:
        return Refusal(401, str(refused), "Bearer")
    if text is None:
        return Refusal(
            401, "this route needs an API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`", "Bearer"
        )
    verdict = await keys_lookup(text)
    if verdict is None:
        return Refusal(401, "the API key is unknown or revoked", 'Bearer error="invalid_token"')
    if not verdict:
        return Refusal(
            403, "this API key may not invoke this app's functions: that takes its invoker, deployer or admin role"
        )
    return None


# --- signatures ------------------------------------------------------------------------------


def _fields(headers: Headers) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    items: Iterable[tuple[Any, Any]] = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        text_name = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        text_value = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        found.setdefault(text_name.lower(), []).append(text_value)
    return found


def _one(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name.lower())
    if not values:
        return None
    if len(values) > 1:
        raise _Refused(f"the {name} header is given {len(values)} times; send it once")
    return values[0].strip()


def _required(fields: dict[str, list[str]], name: str, what: str) -> str:
    value = _one(fields, name)
    if value is None:
        raise _Refused(f"the {name} header is missing: this route takes only requests signed with {what}")
    return value


def _hex_signatures(fields: dict[str, list[str]], name: str, shape: str, form: re.Pattern[str]) -> list[str]:
    value = _required(fields, name, "the app's secret")
    signatures: list[str] = []
    for part in value.split(","):
        match = form.fullmatch(part.strip())
        if match is None:
            raise _Refused(f"the {name} header must read {shape}, not {_clip(value)!r}")
        signatures.append(match.group(1))
    return signatures


def _stripe(fields: dict[str, list[str]], name: str) -> tuple[int, list[str]]:
    value = _required(fields, name, "the app's secret")
    stamps: list[str] = []
    signatures: list[str] = []
    for part in value.split(","):
        label, equals, item = part.strip().partition("=")
        if not equals or not item:
            raise _Refused(f"the {name} header must read t=<epoch seconds>,v1=<hex>, not {_clip(value)!r}")
        if label == "t":
            stamps.append(item)
        elif label == "v1":
            signatures.append(item)
        # Other labels (v0, Stripe's test-mode scheme) are not signatures this check accepts.
    if len(stamps) != 1:
        raise _Refused(f"the {name} header must carry one t=<epoch seconds>, not {_clip(value)!r}")
    if not signatures:
        raise _Refused(f"the {name} header carries no v1 signature: {_clip(value)!r}")
    return _timestamp(stamps[0], f"t= in {name}"), signatures


def _timestamp(value: str | None, name: str) -> int:
    if value is None:
        raise _Refused(f"the {name} header is missing: this route takes only signed requests with their time")
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise _Refused(f"{name} must be whole seconds since the epoch, not {_clip(value)!r}")
    return int(value)


def _fresh(timestamp: int, now: float, tolerance: float) -> None:
    off = abs(now - timestamp)
    if off > tolerance:
        raise _Refused(
            f"the signed timestamp is {off:.0f} s away from the server's clock, past the tolerance of"
            f" {tolerance:g} s: a replayed request, or clocks out of step"
        )


def _clip(value: str) -> str:
    return value if len(value) <= _SHOWN else value[: _SHOWN - 3] + "..."


def _check_declared(spec: FunctionSpec, auth: Any) -> None:
    if auth == API_KEY:
        return
    if isinstance(auth, HmacAuth):
        if not spec.settings.env.get(auth.secret_env):
            raise DeclarationError(
                f"function {spec.name!r}: its route checks signatures with the secret in env {auth.secret_env},"
                f" but its env has no {auth.secret_env}; set it in env= or triggerfish.toml"
            )
        return
    raise DeclarationError(
        f"function {spec.name!r}: this server cannot check auth={auth!r}; use 'api_key' or triggerfish.hmac_auth(...)"
    )
