"""Who may do what: the role matrix, the caller of a request (`Principal`), and `authorize` for endpoints.

    @endpoint
    async def deploy(request):
        app = request.path_params["app"]
        await authorize(request, "deploy", app)       # 401, 404 or 403 as an ApiError; else the Principal
        ...

The matrix is data (`ROLE_ACTIONS`): an endpoint names the one action it
performs, and a role holds a set of actions. A key of one app is refused
another app's URLs with the same 404 as an app that does not exist, so a key
cannot discover which apps a server hosts; within its own app, an action its
role lacks is 403.

The Starlette app serving the endpoints says where keys are: `app.state.keys`
is the server's `ApiKeys` under `triggerfish serve`, or None under
`triggerfish dev`, where every request is allowed (it binds to localhost).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.server.control_io import ApiError, Endpoint, endpoint
from triggerfish.server.keys import ROLES, ApiKeys, KeyInfo, looks_like_key, presented_key

#: What a request can do. An endpoint performs exactly one of these (see docs/security.md for which).
ACTIONS = ("read", "invoke", "publish", "deploy", "configure", "secrets", "admin")

#: The actions each role holds. `secrets` (setting and removing an app's secrets) is the deployer's, as deploying
#: is: whoever ships the code that uses a credential is trusted with it. Listing secrets' names is `read`.
ROLE_ACTIONS: Mapping[str, frozenset[str]] = {
    "admin": frozenset(ACTIONS),
    "deployer": frozenset({"read", "invoke", "deploy", "configure", "secrets"}),
    "publisher": frozenset({"publish"}),
    "invoker": frozenset({"invoke"}),
    "viewer": frozenset({"read"}),
}
assert set(ROLE_ACTIONS) == set(ROLES)


def _app_endpoint_actions() -> Mapping[tuple[str, str], str]:
    # The table of operations names each one's action; imported here, since the control API's modules import this one's
    # neighbours (control_io) and must not import this one.
    from triggerfish.server.control import OPERATIONS

    return {(operation.method, operation.path): str(operation.action) for operation in OPERATIONS}


#: The action of each per-app control endpoint, by method and path as `control.OPERATIONS` declares it (under
#: `/-/api/v1/apps/{app}` on a server). Reading is `read`; sending and publishing messages is `publish`;
#: changing how the app's triggers behave (rules, replays, purges, leases, redrives, subscriptions,
#: schedules) is `configure`.
APP_ENDPOINT_ACTIONS: Mapping[tuple[str, str], str] = _app_endpoint_actions()

#: The challenge a 401 answer carries (RFC 6750).
CHALLENGE = "Bearer"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request: the key it presented, or nobody in particular where everything is open."""

    #: None for `Principal.open()`.
    key: KeyInfo | None

    @classmethod
    def open(cls) -> Principal:
        """The caller under `triggerfish dev`: allowed everything."""
        return cls(None)

    @property
    def is_open(self) -> bool:
        return self.key is None

    @property
    def role(self) -> str:
        return "admin" if self.key is None else self.key.role

    @property
    def app(self) -> str | None:
        """The one app the caller acts on; None when it acts on every app."""
        return None if self.key is None else self.key.app

    def sees(self, app: str) -> bool:
        """Whether `app` exists as far as this caller knows (`GET /-/api/v1/apps` lists only these)."""
        return self.key is None or self.key.app is None or self.key.app == app

    def holds(self, action: str) -> bool:
        """Whether the caller's role holds `action` (in the apps it sees)."""
        return action in ROLE_ACTIONS[self.role]

    def may(self, action: str, app: str | None) -> bool:
        """Whether the caller may perform `action` on `app` (None: a server-wide request)."""
        return (app is None or self.sees(app)) and self.holds(action)


async def authorize(request: Request, action: str, app: str | None) -> Principal:
    """The caller of `request`, allowed to perform `action` on `app`; else raise the ApiError to answer with.

    `app` is None for a server-wide request (keys, the list of apps: the endpoint
    then shows only the apps `principal.sees`). The answers:

    - 401 `Unauthorized` with `WWW-Authenticate: Bearer`: no key, an unknown or a revoked key;
    - 404 `AppNotFound` (exactly `app_not_found(app)`): a key of another app;
    - 403 `Forbidden`: the key's role does not hold `action`.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; the actions are {', '.join(ACTIONS)}")
    principal = await principal_of(request)
    if app is not None and not principal.sees(app):
        raise app_not_found(app)
    if not principal.holds(action):
        where = f"app {app!r}" if app is not None else "this server"
        raise ApiError(
            403,
            "Forbidden",
            f"a {principal.role} key may not {action} on {where}; roles that may: {', '.join(roles_holding(action))}",
            action=action,
            role=principal.role,
        )
    return principal


async def principal_of(request: Request) -> Principal:
    """Who sent `request` (checked once per request); raises a 401 ApiError for no key or a bad one."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    # No default: a server that forgot to say where its keys are must fail, not open up.
    keys: ApiKeys | None = request.app.state.keys
    principal = Principal.open() if keys is None else await _identify(keys, request)
    request.state.principal = principal
    return principal


def guarded(handler: Endpoint, action: str) -> Endpoint:
    """`handler` behind `authorize(request, action, <the URL's {app}>)`, its refusals answered as JSON.

        Route("/functions/{name}/invoke", guarded(invoke_function, "invoke"), methods=["POST"])

    Without an `{app}` in the URL (`triggerfish dev`'s single app, or a server-wide
    endpoint) the request is authorized server-wide: `app` None.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; the actions are {', '.join(ACTIONS)}")

    @endpoint
    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        await authorize(request, action, request.path_params.get("app"))
        return await handler(request)

    return run


def app_not_found(app: str) -> ApiError:
    """The 404 for an app that does not exist or that the caller may not see: one answer for both.

    An endpoint that finds no app of that name must answer exactly this too, or the
    difference would tell a key of one app which other apps exist.
    """
    return ApiError(404, "AppNotFound", f"no app named {app!r} on this server")


def roles_holding(action: str) -> list[str]:
    return [role for role in ROLES if action in ROLE_ACTIONS[role]]


def invoke_check(keys: ApiKeys | None, app: str) -> Callable[[str], Awaitable[bool | None]] | None:
    """What the gateway asks about a key sent to a route of `app` with `auth="api_key"`.

    The answer is None for an unknown or revoked key, else whether it may invoke
    `app`'s functions. With no keys (`triggerfish dev`) there is nothing to ask:
    None, which leaves such routes open (see gateway.route_auth.check_route_auth).
    """
    if keys is None:
        return None

    async def check(text: str) -> bool | None:
        info = await keys.authenticate(text)
        return None if info is None else Principal(info).may("invoke", app)

    return check


async def _identify(keys: ApiKeys, request: Request) -> Principal:
    text = presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if text is None:
        raise _unauthorized("this endpoint needs an API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`")
    if not looks_like_key(text):
        raise _unauthorized("that is not an API key of this server: they read tfk_<8 hex digits>_<32 characters>")
    info = await keys.lookup(text)
    if info is None:
        raise _unauthorized(f"unknown API key {text[:12]}...; check it was copied whole")
    if info.revoked:
        raise _unauthorized(f"API key {info.prefix} ({info.name}) was revoked; ask an admin for a new one")
    return Principal(info)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "Unauthorized", message, headers={"WWW-Authenticate": CHALLENGE})
