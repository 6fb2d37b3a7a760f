"""The HTTP face of `triggerfish serve`: every app's routes, the per-app control API, deploys and keys.

| path | what | action needed |
|---|---|---|
| `/<app>/<route>` | the app's `@app.http` routes (prefix stripped) | the route's own `auth=` |
| `GET /-/` | the list of these endpoints (index.py) | none |
| `GET /-/health` | liveness, the apps and their live versions | none |
| `/-/aws` | the AWS endpoint (docs/aws.md), signed with an app key's AWS credentials | the key's role |
| `GET /-/api/v1/openapi.json` | the OpenAPI 3.1 document of all of this (openapi_server.py) | none |
| `GET /-/metrics` | Prometheus metrics of this node (metrics.py; a key of one app sees its own series) | read |
| `POST /-/apps/{app}/events` | publish events to the app's buses | publish |
| `/-/api/v1/apps/{app}/...` | the per-app control API (docs/api.md) | read (GET), invoke, publish, configure |
| `GET /-/api/v1/apps`, `/apps/{app}`, `/versions`, `/aliases` | what is deployed | read |
| `.../bundles/{sha}`, `.../deploys`, `PUT .../aliases/{alias}`, `.../rollback` | deploying | deploy |
| `.../secrets`, `.../secrets/{name}` | listing an app's secrets (read); setting, removing them | read, secrets |
| `/-/api/v1/keys`, `DELETE /-/api/v1/apps/{app}` | API keys, removing an app | admin |
| `GET /-/api/v1/audit`, `POST /-/api/v1/secrets/reseal` | the audit log; resealing every secret | admin |
| `/-/ui`, `/-/ui/apps/{app}/...` | the web dashboard (triggerfish.ui): sign in with a key, then the API | the API's |

Every `/-/` endpoint but health and the OpenAPI document asks
`authorize(request, action, app)` first; it raises ApiError (401, 403, or 404
for another app's URLs, so apps cannot be enumerated). Which action a
server-wide endpoint needs is in the tables here (`ROOT_OPERATIONS`,
`SERVER_OPERATIONS`), a per-app one in `control.OPERATIONS`: the same rows route,
check and describe each request (operations.py). Rows naming `audit=` are recorded in the audit log
(audit.py) with how they were answered, refusals included.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
import time
from typing import IO, Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from triggerfish import __version__
from triggerfish.aws.credentials import secret_access_key
from triggerfish.aws.endpoint import AwsEndpoint, is_aws_path
from triggerfish.aws.services import SERVICES
from triggerfish.deploy.bundle import DEFAULT_MAX_UPLOAD_BYTES, check_sha256
from triggerfish.errors import BundleError, DeployError, DeployInProgressError, KeyNotFoundError, SecretsKeyError
from triggerfish.gateway.asgi import lifespan
from triggerfish.server import audit, control, index, metrics, publish
from triggerfish.server.audit import note
from triggerfish.server.auth import authorize, principal_of
from triggerfish.server.control_io import ApiError, fields, json_body, json_response
from triggerfish.server.errors import error_response, method_not_allowed
from triggerfish.server.host import AppNotFoundError, Host
from triggerfish.server.keys import MAX_NAME_CHARS, ROLES
from triggerfish.server.logs import close_follows
from triggerfish.server.operations import Answer, Body, Operation, inputs, path, query, routes
from triggerfish.server.platform import Platform
from triggerfish.server.progress import BOARD, operation_of
from triggerfish.server.registry import Alias, check_alias, check_app_name
from triggerfish.server.request_guard import RequestRules
from triggerfish.server.schema import Enum, Integer, Moment, Named, Nullable, Number, Object, Text
from triggerfish.ui import routes as ui_routes

#: host_http's action for listing apps: any key may ask, and sees only the apps it may read.
LIST = "list"


async def _authorized(request: Request, operation: Operation) -> None:
    """The guard of every operation under `triggerfish serve`: its action, on the URL's app (if any)."""
    if operation.action is not None and operation.action != LIST:
        await authorize(request, operation.action, request.path_params.get("app"))
    elif operation.action == LIST:
        await principal_of(request)


def _host(request: Request) -> Host:
    host: Host = request.app.state.host
    return host


def _app(request: Request) -> str:
    app = request.path_params["app"]
    try:
        return check_app_name(app)
    except ValueError as exc:
        raise ApiError(400, "InvalidInput", str(exc)) from None


def _deployed(request: Request) -> str:
    app = _app(request)
    if app not in _host(request).apps:
        raise ApiError(404, "AppNotFound", f"no app named {app!r} is deployed here", app=app)
    return app


# --- server-wide endpoints --------------------------------------------------------------------------


async def health(request: Request) -> Response:
    # Public, so it names no app: a key of one app must not learn which others a server hosts.
    host = _host(request)
    uptime = round(time.time() - host.started_at, 3)
    return json_response({"status": "ok", "triggerfish": __version__, "apps": len(host.apps), "uptime": uptime})


def _describe(host: Host, app: str) -> dict[str, Any]:
    platform = host.apps[app]
    canary = platform.canary
    return {
        "name": app,
        "version": platform.current.number,
        "canary": None if canary is None else {"version": canary[0].number, "weight": canary[1]},
        "functions": sorted(platform.current.specs),
    }


async def list_apps(request: Request) -> Response:
    host = _host(request)
    caller = await principal_of(request)
    return json_response({"apps": [_describe(host, app) for app in sorted(host.apps) if caller.may("read", app)]})


# --- keys (admin only) ------------------------------------------------------------------------------


async def create_key(request: Request) -> Response:
    document = inputs(request).body
    app = document.get("app")
    if app is not None and app not in _host(request).apps:
        raise ApiError(404, "AppNotFound", f"no app named {app!r} is deployed here; deploy it before making its keys")
    text, info = await _host(request).keys.create(document["name"], document["role"], app)
    note(request, object=info.prefix, name=info.name, role=info.role, app=info.app)
    document = {"key": text, **info.as_dict()}
    if info.app is not None:
        # A key of one app is also its AWS credential at /-/aws (docs/aws.md); shown, like the key, this once.
        document |= {"aws_access_key_id": info.prefix, "aws_secret_access_key": secret_access_key(text)}
    return json_response(document, status=201)


async def list_keys(request: Request) -> Response:
    app = inputs(request).query.get("app")
    return json_response({"keys": [info.as_dict() for info in await _host(request).keys.list(app)]})


async def revoke_key(request: Request) -> Response:
    try:
        info = await _host(request).keys.revoke(inputs(request).path["id"])
    except KeyNotFoundError as exc:
        raise ApiError(404, "KeyNotFound", str(exc)) from None
    note(request, object=info.prefix, name=info.name, role=info.role, app=info.app)
    return json_response(info.as_dict())


async def get_app(request: Request) -> Response:
    return json_response(_describe(_host(request), _deployed(request)))


async def remove_app(request: Request) -> Response:
    app = _deployed(request)
    try:
        await _host(request).remove(app)
    except DeployInProgressError as exc:
        raise _deploy_failed(exc) from None
    return Response(status_code=204)


async def has_bundle(request: Request) -> Response:
    # Another app's bundle is 404 too: a key of one app must not learn what another deployed.
    app = _app(request)
    return Response(status_code=200 if await _host(request).artifacts.available(app, _sha(request)) else 404)


async def put_bundle(request: Request) -> Response:
    app = _app(request)
    sha = _sha(request)
    host = _host(request)
    if await host.artifacts.available(app, sha):
        return json_response({"bundle": sha, "stored": False}, status=200)
    # Spooled to disk past 1 MB: a slow upload holds a file, not its size in memory.
    with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as upload:
        actual = await _receive(request, upload, host.bundles.limits.max_upload_bytes)
        if actual != sha:
            raise ApiError(
                400,
                "BundleHashMismatch",
                f"the body's sha256 is {actual}, not {sha}: the upload was cut short or changed; nothing was stored",
            )
        try:
            stored = await host.artifacts.put(app, sha, upload)
        except BundleError as exc:
            raise ApiError(400, "InvalidBundle", str(exc)) from None
    return json_response({"bundle": sha, "stored": stored}, status=201 if stored else 200)


async def _receive(request: Request, into: IO[bytes], limit: int) -> str:
    """Stream the body into `into`, refused with 413 as soon as it is past `limit` bytes; its sha256."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _upload_too_large(limit)
    digest = hashlib.sha256()
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _upload_too_large(limit)
            digest.update(chunk)
            into.write(chunk)
    except ClientDisconnect:
        raise ApiError(400, "ClientDisconnected", "the client closed the connection before the body arrived") from None
    return digest.hexdigest()


def _upload_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "RequestTooLarge",
        f"a bundle may be at most {limit} bytes as uploaded (the server's bundle_max_upload_bytes); leave large"
        " files out of it with .triggerfishignore",
        limit=limit,
    )


async def deploy(request: Request) -> Response:
    app = _app(request)
    document = fields(await json_body(request), ("bundle", "stage"))
    bundle = document.get("bundle")
    if not isinstance(bundle, str):
        raise ApiError(400, "InvalidInput", "body.bundle must be the sha256 of an uploaded bundle")
    stage = document.get("stage")
    if stage is not None and not isinstance(stage, str):
        raise ApiError(400, "InvalidInput", "body.stage must be a string or null")
    note(request, bundle=bundle, stage=stage)
    operation = operation_of(request)
    try:
        result = await _host(request).deploy(
            app, check_sha256(bundle), stage=stage, progress=BOARD.reporter(operation, "steps")
        )
    except DeployError as exc:  # BundleError included: a bundle that does not unpack
        note(request, phase=exc.phase)
        raise _deploy_failed(exc) from None
    finally:
        BOARD.finish(operation)
    note(request, object=f"version {result.version}", version=result.version)
    return json_response(result.to_dict(), status=201)


async def list_versions(request: Request) -> Response:
    app = _deployed(request)
    host = _host(request)
    live = await host.registry.alias(app)
    versions = [
        {
            "version": v.version,
            "created_at": v.created_at,
            "bundle": v.bundle,
            "stage": v.stage,
            "functions": sorted(v.functions),
            "live": live is not None and v.version == live.version,
        }
        for v in await host.registry.versions(app)
    ]
    return json_response({"versions": versions})


async def list_aliases(request: Request) -> Response:
    app = _deployed(request)
    return json_response({"aliases": [a.to_dict() for a in await _host(request).registry.aliases(app)]})


async def put_alias(request: Request) -> Response:
    app = _deployed(request)
    given = inputs(request)
    name = given.path["alias"]
    document = given.body
    try:
        check_alias(name)
        weights = document.get("weights") or {}
        alias = Alias(name, document["version"], {int(k): w for k, w in weights.items()})
    except ValueError as exc:
        raise ApiError(400, "InvalidInput", str(exc)) from None
    note(request, version=alias.version, weights={str(k): w for k, w in alias.weights.items()})
    try:
        await _host(request).set_alias(app, alias)
    except DeployError as exc:
        raise _deploy_failed(exc) from None
    return json_response(alias.to_dict())


async def rollback(request: Request) -> Response:
    app = _deployed(request)
    to = (inputs(request).body or {}).get("to")
    try:
        version = await _host(request).rollback(app, to)
    except AppNotFoundError as exc:
        raise ApiError(404, "AppNotFound", str(exc)) from None
    except DeployError as exc:
        raise _deploy_failed(exc) from None
    note(request, object=f"version {version}", version=version)
    return json_response({"app": app, "version": version})


async def list_audit(request: Request) -> Response:
    given = inputs(request).query
    entries, following = await _host(request).audit.query(
        app=given.get("app"),
        operation=given.get("operation"),
        outcome=given.get("outcome"),
        since=given.get("since"),
        until=given.get("until"),
        after=given.get("after", 0),
        limit=given.get("limit", 100),
    )
    return json_response({"entries": [entry.as_dict() for entry in entries], "next": following})


async def reseal_secrets(request: Request) -> Response:
    try:
        result = await _host(request).secrets.reseal()
    except SecretsKeyError as exc:
        raise ApiError(503, "SecretsKeyUnavailable", str(exc), headers={"Retry-After": "60"}) from None
    note(request, object=f"key {result.key_id}", resealed=result.resealed, unreadable=len(result.unreadable))
    return json_response(result.as_dict())


def _deploy_failed(exc: DeployError) -> ApiError:
    if isinstance(exc, DeployInProgressError):
        # Another deploy or alias change of the app holds it, on this node or another: try again after it.
        return ApiError(409, "DeployInProgress", str(exc))
    return ApiError(422, "DeployFailed", str(exc), phase=exc.phase, details=exc.details)


async def list_nodes(request: Request) -> Response:
    host = _host(request)
    caller = await principal_of(request)
    now = time.time()
    nodes = []
    for node in await host.nodes.list():
        document = node.to_dict(now)
        # A key of one app must not learn which other apps a node runs.
        document["versions"] = {app: v for app, v in document["versions"].items() if caller.may("read", app)}
        nodes.append(document)
    return json_response({"nodes": nodes, "this": host.node.id})


def _sha(request: Request) -> str:
    try:
        return check_sha256(request.path_params["sha256"])
    except ValueError as exc:
        raise ApiError(400, "InvalidInput", str(exc)) from None


async def openapi_document(request: Request) -> Response:
    # Imported here: the document is built from this module's tables, so openapi_server imports this module.
    from triggerfish.server.openapi_server import server_document

    return json_response(server_document())


# --- the table ---------------------------------------------------------------------------------------

_APP_NAME = Text(
    "The app's name, as it was deployed",
    min_length=1,
    max_length=64,
    pattern="[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}",
    hint="an app name: 1 to 64 letters, digits and . _ : @ -, starting with a letter or digit",
)
_APP = path("app", "The app's name, as it was deployed", _APP_NAME)
_SHA256 = Text("64 lowercase hex digits", pattern="[0-9a-f]{64}", hint="a sha256: 64 lowercase hex digits")
_BUNDLE = path("sha256", "The bundle's sha256: 64 lowercase hex digits", _SHA256)
_VERSION = Integer("A version number", minimum=1)

KEY_INPUT = Named(
    "KeyInput",
    Object(
        {
            "name": Text("What the key is for", min_length=1, max_length=MAX_NAME_CHARS),
            "role": Enum(ROLES),
            "app": Nullable(_APP_NAME, "The one app it acts on: required, except for an admin key (none)"),
        },
        required=("name", "role"),
    ),
)
DEPLOY_INPUT = Named(
    "DeployInput",
    Object(
        {
            "bundle": Text("The sha256 of a bundle uploaded to .../bundles/{sha256}", pattern="[0-9a-f]{64}"),
            "stage": Nullable(Text("The stage of triggerfish.toml to deploy")),
        },
        required=("bundle",),
    ),
)
ALIAS_INPUT = Named(
    "AliasInput",
    Object(
        {
            "version": _VERSION,
            "weights": Object(
                {},
                "Version number -> share of synchronous requests it takes from `version` (a canary)",
                additional=Number(minimum=0, maximum=1),
                key_pattern="[0-9]+",
            ),
        },
        required=("version",),
    ),
)
ROLLBACK_INPUT = Named("RollbackInput", Object({"to": Integer("Default: the version before the live one", minimum=1)}))

#: Every server-wide endpoint under /-/api/v1 (paths relative to it), with the action its key needs.
SERVER_OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/apps", list_apps, "The apps the key may read", {200: Answer("", "AppList")}, LIST),
    Operation(
        "GET",
        "/nodes",
        list_nodes,
        "The nodes of this platform (one, or a cluster's): address, roles, versions loaded, work in flight,"
        " last heartbeat, up or gone",
        {200: Answer("", "NodeList")},
        LIST,
    ),
    Operation(
        "GET",
        "/apps/{app}",
        get_app,
        "One app: live version, canary, functions",
        {200: Answer("", "App")},
        "read",
        params=(_APP,),
    ),
    Operation(
        "DELETE",
        "/apps/{app}",
        remove_app,
        "Stop serving the app and forget its versions (its data stays in its scope)",
        {204: Answer("Removed")},
        "admin",
        params=(_APP,),
        errors=(409,),
        audit="app.remove",
    ),
    Operation(
        "HEAD",
        "/apps/{app}/bundles/{sha256}",
        has_bundle,
        "Whether the server holds a bundle (upload it only when it does not)",
        {200: Answer("It does"), 404: Answer("It does not; or AppNotFound (a HEAD answer has no body)")},
        "deploy",
        params=(_APP, _BUNDLE),
    ),
    Operation(
        "PUT",
        "/apps/{app}/bundles/{sha256}",
        put_bundle,
        "Upload a bundle (the app's tar.gz, see `triggerfish deploy`); the server checks its sha256",
        {200: Answer("It was there already", "BundleStored"), 201: Answer("Stored", "BundleStored")},
        "deploy",
        params=(_APP, _BUNDLE),
        body=Body(
            media_types=("application/gzip", "application/octet-stream"), limit=DEFAULT_MAX_UPLOAD_BYTES, raw=True
        ),
    ),
    Operation(
        "POST",
        "/apps/{app}/deploys",
        deploy,
        "Deploy an uploaded bundle: install, import, then publish the next version and switch `live` to it",
        {201: Answer("Deployed and live", "DeployResult")},
        "deploy",
        params=(_APP,),
        body=Body(DEPLOY_INPUT),
        errors=(409, 422),
        audit="deploy",
    ),
    Operation(
        "GET",
        "/apps/{app}/versions",
        list_versions,
        "Every version with its time, bundle and whether it is live",
        {200: Answer("", "VersionList")},
        "read",
        params=(_APP,),
    ),
    Operation(
        "GET",
        "/apps/{app}/aliases",
        list_aliases,
        "The app's aliases",
        {200: Answer("", "AliasList")},
        "read",
        params=(_APP,),
    ),
    Operation(
        "PUT",
        "/apps/{app}/aliases/{alias}",
        put_alias,
        "Point an alias at a version, optionally with a second version taking a share (canary)",
        {200: Answer("", "Alias")},
        "deploy",
        params=(_APP, path("alias", "The alias: `live` is the one served")),
        body=Body(ALIAS_INPUT),
        errors=(409, 422),
        audit="alias.set",
    ),
    Operation(
        "POST",
        "/apps/{app}/rollback",
        rollback,
        "Move `live` back to an earlier version",
        {200: Answer("Live now", "RolledBack")},
        "deploy",
        params=(_APP,),
        body=Body(ROLLBACK_INPUT, required=False),
        errors=(409, 422),
        audit="rollback",
    ),
    Operation(
        "POST",
        "/keys",
        create_key,
        "Create an API key; the answer is the only time its text is shown",
        {201: Answer("Created", "NewKey")},
        "admin",
        body=Body(KEY_INPUT),
        errors=(404,),
        audit="key.create",
    ),
    Operation(
        "GET",
        "/keys",
        list_keys,
        "The keys, by id, prefix and name (never a secret or a hash), revoked ones too",
        {200: Answer("", "KeyList")},
        "admin",
        params=(query("app", "Only this app's keys", _APP_NAME),),
    ),
    Operation(
        "DELETE",
        "/keys/{id}",
        revoke_key,
        "Revoke a key: it stops working from the next request on (not the last working admin key)",
        {200: Answer("Revoked", "Key")},
        "admin",
        params=(path("id", "The key's id, its prefix (tfk_<id>) or its whole text"),),
        errors=(404,),
        audit="key.revoke",
    ),
    Operation(
        "GET",
        "/audit",
        list_audit,
        "The audit log: key, secret and deploy operations (who, what, when, from where, how it went), oldest first",
        {200: Answer("", "AuditLog")},
        "admin",
        params=(
            query("app", "Only this app's", _APP_NAME),
            query("operation", "Only this operation", Enum(audit.OPERATIONS)),
            query("outcome", "Only with this outcome", Enum(audit.OUTCOMES)),
            query("since", "At or after", Moment()),
            query("until", "Before", Moment()),
            query("after", "Only entries after this offset (the `next` of the page before)", Integer(minimum=0)),
            query("limit", "At most this many (default 100)", Integer(minimum=1, maximum=1000)),
        ),
    ),
    Operation(
        "POST",
        "/secrets/reseal",
        reseal_secrets,
        "Seal every app's secrets with the server's first key (after a new key was given to every node first), and"
        " record it as the key in use",
        {200: Answer("Resealed; `unreadable` lists what did not open", "ResealResult")},
        "admin",
        body=Body(Named("ResealInput", Object({})), required=False),
        errors=(503,),
        audit="secrets.reseal",
    ),
)


async def endpoint_index(request: Request) -> Response:
    from triggerfish.server.openapi_server import API_ROOT, APP_ROOT

    endpoints = [
        *index.listed(op for op in ROOT_OPERATIONS if op.path != index.PATH),
        *index.listed(SERVER_OPERATIONS, API_ROOT),
        *index.listed(control.OPERATIONS, APP_ROOT),
    ]
    return index.index_response("serve", endpoints)


#: The endpoints beside the API's, with paths from the server's root; action None: no key asked. The OpenAPI
#: document is public, like health: it describes the software (the same on every server of this version, and
#: printed in its docs), names no app, key or record, and a client reads it before it has a key.
ROOT_OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", index.PATH, endpoint_index, index.SUMMARY, {200: Answer("", {"type": "object"})}, None),
    Operation(
        "GET", "/-/health", health, "Liveness, and how many apps are deployed", {200: Answer("", "Health")}, None
    ),
    Operation(
        "GET",
        "/-/api/v1/openapi.json",
        openapi_document,
        "This document",
        {200: Answer("OpenAPI 3.1", {"type": "object"})},
        None,
    ),
    dataclasses.replace(publish.OPERATION, path="/-/apps/{app}/events", params=(_APP, *publish.OPERATION.params)),
    metrics.OPERATION,
)


def host_endpoints(host: Host, *, open_access: bool = False) -> Starlette:
    """The Starlette app serving everything under `/-/` of a server.

    Every endpoint but health and the OpenAPI document asks for an API key; with `open_access`
    (tests of the host alone) everything is allowed, as under `triggerfish dev`.
    """
    app = Starlette(
        routes=[
            *routes(ROOT_OPERATIONS, _authorized),  # before the mount: /-/api/v1/openapi.json is one of them
            Mount(
                "/-/api/v1",
                routes=[
                    *routes(SERVER_OPERATIONS, _authorized),
                    Mount("/apps/{app}", routes=routes(control.OPERATIONS, _authorized)),
                ],
            ),
            Mount("/-/ui", routes=ui_routes.serve_routes()),
        ],
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.state.host = host
    app.state.metrics = host.metrics
    app.state.keys = None if open_access else host.keys
    app.state.audit = _Audit(host)
    return app


class _Audit:
    """The host's audit log, looked up when an operation is recorded (the app is built before the host starts)."""

    def __init__(self, host: Host) -> None:
        self.host = host

    async def after(self, request: Request, operation: str, response: Response, *, refused: bool) -> None:
        await self.host.audit.after(request, operation, response, refused=refused)


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, "NotFound", f"no endpoint {request.method} {request.url.path}")


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return method_not_allowed(request, exc)


class HostASGI:
    """`/-/...` to the server's endpoints; `/<app>/...` to that app's serving version, the prefix stripped.

    `rules` say which Host and Origin headers the `/-/` endpoints accept (any host, and browsers from the
    server's own origin, by default; see request_guard.py).
    """

    def __init__(self, host: Host, *, open_access: bool = False, rules: RequestRules | None = None) -> None:
        self.host = host
        self.endpoints = host_endpoints(host, open_access=open_access)
        self.rules = rules or RequestRules.serving()
        # Looked up per request: the host's credentials exist once it started.
        self.aws = AwsEndpoint(
            SERVICES, identify=lambda key_id: host.aws_credentials(key_id), platform_for=self._platform_for
        )

    def _platform_for(self, app: str | None) -> Platform | None:
        return None if app is None else self.host.apps.get(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith("/-/") or path == "/-":
            if await self.rules.guard(scope, receive, send):
                return
            if is_aws_path(path):
                await self.aws(scope, receive, send)
                return
            await self.endpoints(scope, receive, send)
            return
        name, _, rest = path[1:].partition("/")
        platform = self.host.apps.get(name)
        if platform is None:
            response = error_response(404, "NotFound", f"no app named {name!r} is deployed here")
            await response(scope, receive, send)
            return
        raw: bytes = scope.get("raw_path") or path.encode()
        prefix = b"/" + raw[1:].split(b"/", 1)[0]
        inner = dict(scope, path="/" + rest, raw_path=raw[len(prefix) :] or b"/", root_path=f"/{name}")
        await platform.pick().gateway(inner, receive, send)

    def close_streams(self) -> None:
        """End the log follows in progress (GatewayServer.stop calls this before it stops serving)."""
        close_follows(self.endpoints.state)
