"""The control API's secrets endpoints: `GET /secrets`, `PUT /secrets/{name}`, `DELETE /secrets/{name}`.

Under `triggerfish serve` they are each app's (`/-/api/v1/apps/{app}/secrets`),
and an app need not be deployed yet to have its secrets set (a first deploy
then finds them); under `triggerfish dev` they are its one app's. A value goes
in and never comes out: answers hold names, versions, times and the id of the
key a value is sealed with, and no error repeats a value (the body's schema
describes a bad value without quoting it). Setting or removing a secret renews
the workers of the app's functions that declare secrets, on every node: from the
answer on, every invocation that starts sees the change.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.errors import SecretNotSetError, SecretsKeyError
from triggerfish.model import MAX_SECRET_NAME, check_app_name
from triggerfish.secrets.store import MAX_VALUE_BYTES, SecretStore
from triggerfish.server.audit import note
from triggerfish.server.control_io import ApiError, json_response
from triggerfish.server.operations import Answer, Body, Operation, inputs, path
from triggerfish.server.platform import Platform
from triggerfish.server.schema import Named, Object, Text

#: The action setting and removing a secret needs (listing names needs `read`).
ACTION = "secrets"


def _secrets_of(request: Request) -> tuple[SecretStore, str]:
    """The secret store and the app's name the request is about (the URL's under serve, dev's one app's)."""
    host = getattr(request.app.state, "host", None)
    if host is not None:
        app = request.path_params.get("app", "")
        try:
            return host.secrets, check_app_name(app)
        except ValueError:
            # No app can have that name: the answer of auth.app_not_found (not imported: auth imports this table).
            raise ApiError(404, "AppNotFound", f"no app named {app!r} on this server") from None
    platform: Platform = request.app.state.platform
    if platform.secrets is None:
        raise ApiError(503, "SecretsUnavailable", "this platform keeps no secrets", headers={"Retry-After": "60"})
    return platform.secrets, platform.secrets_name


async def _changed(request: Request, app: str) -> None:
    host = getattr(request.app.state, "host", None)
    if host is not None:
        await host.secrets_changed(app)
    else:
        platform: Platform = request.app.state.platform
        platform.secrets_changed()


def _no_key(exc: SecretsKeyError) -> ApiError:
    # A node not given the cluster's key: another node may have it, and this one will once restarted with it.
    return ApiError(503, "SecretsKeyUnavailable", str(exc), headers={"Retry-After": "60"})


async def list_secrets(request: Request) -> Response:
    secrets, app = _secrets_of(request)
    return json_response({"app": app, "secrets": [info.as_dict() for info in await secrets.list(app)]})


async def put_secret(request: Request) -> Response:
    given = inputs(request)
    secrets, app = _secrets_of(request)
    try:
        info = await secrets.set(app, given.path["name"], given.body["value"])
    except SecretsKeyError as exc:
        raise _no_key(exc) from None
    note(request, version=info.version, key_id=info.key_id)
    await _changed(request, app)
    return json_response(info.as_dict(), 201 if info.version == 1 else 200)


async def delete_secret(request: Request) -> Response:
    secrets, app = _secrets_of(request)
    try:
        info = await secrets.remove(app, inputs(request).path["name"])
    except SecretNotSetError as exc:
        raise ApiError(404, "SecretNotFound", str(exc)) from None
    note(request, version=info.version)
    await _changed(request, app)
    return Response(status_code=204)


_NAME = path(
    "name",
    "The secret's name: the environment variable the functions that declare it see",
    Text(
        min_length=1,
        max_length=MAX_SECRET_NAME,
        pattern="[A-Za-z_][A-Za-z0-9_]*",
        hint="a secret name: letters, digits and _, not first a digit (an environment variable's name)",
    ),
)
SECRET_INPUT = Named(
    "SecretInput",
    Object(
        {
            "value": Text(
                f"The value: 1 to {MAX_VALUE_BYTES} bytes of UTF-8 text without NUL. Never returned by any endpoint",
                min_length=1,
                max_length=MAX_VALUE_BYTES,
                hidden=True,
            )
        },
        required=("value",),
    ),
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/secrets",
        list_secrets,
        "The app's secrets: names, versions, times and the id of the key each is sealed with; never a value",
        {200: Answer("", "SecretList")},
        "read",
    ),
    Operation(
        "PUT",
        "/secrets/{name}",
        put_secret,
        "Set a secret (a new one, or its next version), sealed with the server's key; functions declaring it see"
        " the new value from the answer on",
        {200: Answer("Changed: its next version", "Secret"), 201: Answer("Set for the first time", "Secret")},
        ACTION,
        params=(_NAME,),
        body=Body(SECRET_INPUT, limit=4 * MAX_VALUE_BYTES + 1024),
        errors=(503,),
        audit="secret.set",
    ),
    Operation(
        "DELETE",
        "/secrets/{name}",
        delete_secret,
        "Remove a secret: functions declaring it fail (Runtime.SecretNotSet) until it is set again",
        {204: Answer("Removed")},
        ACTION,
        params=(_NAME,),
        errors=(404,),
        audit="secret.remove",
    ),
)
