"""The OpenAPI 3.1 document of `triggerfish serve`, served at `GET /-/api/v1/openapi.json`.

    operation = server_document()["paths"]["/-/api/v1/apps/{app}/deploys"]["post"]
    operation["x-triggerfish-action"]   # "deploy": the key's role must hold it (docs/security.md)

Which endpoints exist and what each needs is not written here: the paths and
actions come from the tables that serve them (`host_http.ROOT_ENDPOINTS` and
`SERVER_ENDPOINTS`, `auth.APP_ENDPOINT_ACTIONS`), and every per-app operation
is `openapi.document()`'s, re-rooted under `/-/api/v1/apps/{app}`. Written here
is only what a table cannot say: each server-wide endpoint's summary,
parameters, bodies and answers. tests/server/test_openapi_server.py checks the
paths against the routes `host_endpoints` serves, both ways.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from triggerfish.server import openapi
from triggerfish.server.auth import APP_ENDPOINT_ACTIONS, CHALLENGE, roles_holding
from triggerfish.server.host_http import ROOT_ENDPOINTS, SERVER_ENDPOINTS
from triggerfish.server.keys import MAX_NAME_CHARS, ROLES
from triggerfish.server.openapi import _OBJECT, _answer, _content, _op, _path, _query, _ref

#: The extension naming the action an operation's key must hold; null where no key is asked.
ACTION_EXTENSION = "x-triggerfish-action"
#: Where the server-wide endpoints are mounted, and one app's control API.
API_ROOT = "/-/api/v1"
APP_ROOT = f"{API_ROOT}/apps/{{app}}"
# host_http's action for listing apps: any key may ask, and sees only the apps it may read.
_LIST = "list"

_APP = _path("app", "The app's name, as it was deployed")
_SHA256: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_SCHEMES = {
    "bearerKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "tfk_<8 hex digits>_<32 characters>",
        "description": "An API key of this server: `Authorization: Bearer tfk_...`",
    },
    "headerKey": {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "The same key, as x-api-key"},
}
# Responses of the server's own, beside openapi.document()'s: status -> (component name, description).
_SERVER_ERRORS = {
    "401": ("Unauthorized", "No API key, a malformed one, an unknown one, or a revoked one"),
    "403": ("Forbidden", "The key's role does not hold the operation's action; the message names the roles that do"),
    "422": ("DeployFailed", "The deploy changed nothing: `phase` says which step failed, `details` why"),
}


def server_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every endpoint under `/-/` of `triggerfish serve`.

    Raises LookupError when a table serves an endpoint this module does not
    describe (or the other way round): the document must not drift from the server.
    """
    per_app = openapi.document()
    described = _server_operations()
    paths: dict[str, dict[str, Any]] = {}

    def add(method: str, path: str, operation: dict[str, Any], action: str | None) -> None:
        paths.setdefault(path, {})[method.lower()] = _guarded(operation, action, scoped="{app}" in path)

    served = [(m, p, a) for m, p, _, a in ROOT_ENDPOINTS] + [(m, API_ROOT + p, a) for m, p, _, a in SERVER_ENDPOINTS]
    for method, path, action in served:
        operation = described.pop((method, path), None)
        if operation is None:
            raise LookupError(f"{method} {path} is served but not described: add it to openapi_server")
        add(method, path, operation, action)
    if described:
        raise LookupError(f"openapi_server describes endpoints no table serves: {sorted(described)}")
    actions = {(method, _template(path)): action for (method, path), action in APP_ENDPOINT_ACTIONS.items()}
    for path, item in per_app["paths"].items():
        for method, operation in item.items():
            action = actions.get((method.upper(), path))
            if action is None:
                raise LookupError(f"{method.upper()} {path} of openapi.document() has no APP_ENDPOINT_ACTIONS entry")
            rerooted = copy.deepcopy(operation)
            rerooted["parameters"] = [_APP, *rerooted.get("parameters", ())]
            if path == "/openapi.json":
                rerooted["summary"] = (
                    "The OpenAPI document of the per-app control API alone, as `triggerfish dev` has it"
                )
            add(method, APP_ROOT + path, rerooted, action)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Triggerfish server API",
            "version": per_app["info"]["version"],
            "description": "Every endpoint under /-/ of `triggerfish serve` (docs/serve.md, docs/api.md). JSON in and"
            ' out; errors are {"error": {"code", "message"}}. Every operation but health and this document needs'
            f" an API key; `{ACTION_EXTENSION}` names the action the key's role must hold (docs/security.md):"
            f" `{_LIST}` means any key, answered with what it may read, and null no key at all.",
        },
        "servers": [{"url": "/", "description": "The server this document came from"}],
        "security": [{name: []} for name in _SCHEMES],
        "paths": paths,
        "components": _components(per_app["components"]),
    }


def _template(path: str) -> str:
    """A Starlette path as an OpenAPI template: `{bus:path}` is `{bus}`."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def _guarded(operation: dict[str, Any], action: str | None, *, scoped: bool) -> dict[str, Any]:
    """`operation` saying what it needs, with the refusals that follow from that."""
    result = dict(operation)
    responses = dict(result["responses"])
    if action is None:
        result["security"] = []
        needs = "Public: no API key needed."
    else:
        responses.setdefault("401", _error("401"))
        if action == _LIST:
            needs = "Needs an API key, of any role; the answer shows only the apps the key may read."
        else:
            responses.setdefault("403", _error("403"))
            needs = f"Needs an API key whose role holds `{action}`: {', '.join(roles_holding(action))}."
        if scoped:
            # A key of another app is told the app does not exist: the per-app NotFound says so.
            responses.setdefault("404", {"$ref": "#/components/responses/NotFound"})
    result["responses"] = dict(sorted(responses.items()))
    result["description"] = f"{result['description']}\n\n{needs}" if "description" in result else needs
    result[ACTION_EXTENSION] = action
    return result


def _error(status: str) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{_SERVER_ERRORS[status][0]}"}


def _components(per_app: dict[str, Any]) -> dict[str, Any]:
    schemas = _schemas()
    clash = set(schemas) & set(per_app["schemas"])
    if clash:
        raise LookupError(f"openapi_server and openapi.document() both name schemas {sorted(clash)}")
    responses = copy.deepcopy(per_app["responses"])
    responses["NotFound"]["description"] += (
        "; or AppNotFound: no app of that name, or one the key may not see (one answer for both)"
    )
    for name, description in _SERVER_ERRORS.values():
        responses[name] = {"description": description, "content": _content(_ref("Error"))}
    responses["Unauthorized"]["headers"] = {
        "WWW-Authenticate": {"description": "How to authenticate", "schema": {"const": CHALLENGE}}
    }
    responses["DeployFailed"]["content"] = _content(_ref("DeployFailure"))
    return {"schemas": {**per_app["schemas"], **schemas}, "responses": responses, "securitySchemes": _SCHEMES}


def _object(properties: dict[str, Any], *optional: str) -> dict[str, Any]:
    """A response object: every property is in the answer but the `optional` ones."""
    required = [name for name in properties if name not in optional]
    return {"type": "object", "required": required, "properties": properties}


def _schemas() -> dict[str, Any]:
    key = {
        "id": {"type": "string", "pattern": "^[0-9a-f]{8}$", "description": "Public: how the key is revoked"},
        "prefix": {"type": "string", "description": "The start of the key's text, tfk_<id>"},
        "name": {"type": "string"},
        "role": {"enum": list(ROLES)},
        "app": {"type": ["string", "null"], "description": "The one app it acts on; null for an admin key"},
        "created_at": {"type": "number", "description": "Epoch seconds"},
        "revoked_at": {"type": ["number", "null"]},
    }
    alias: dict[str, dict[str, Any]] = {
        "name": {"type": "string"},
        "version": {"type": "integer"},
        "weights": {
            "type": "object",
            "description": "Version number -> share of synchronous requests it takes from `version` (a canary)",
            "additionalProperties": {"type": "number"},
        },
    }
    return {
        "Health": _object(
            {
                "status": {"const": "ok"},
                "triggerfish": {"type": "string", "description": "The server's version of Triggerfish"},
                "apps": {
                    "type": "integer",
                    "description": "How many apps are deployed (not their names: health needs no key)",
                },
                "uptime": {"type": "number", "description": "Seconds since the server started"},
            }
        ),
        "App": _object(
            {
                "name": {"type": "string"},
                "version": {"type": "integer", "description": "The version `live` points at"},
                "canary": {
                    "description": "The version taking a share of the traffic, if any",
                    "oneOf": [
                        {"type": "null"},
                        _object({"version": {"type": "integer"}, "weight": {"type": "number"}}),
                    ],
                },
                "functions": _STRINGS,
            }
        ),
        "AppList": _object({"apps": {"type": "array", "items": _ref("App")}}),
        "BundleStored": _object({"bundle": _SHA256, "stored": {"type": "boolean", "description": "false: it was"}}),
        "DeployInput": {
            "type": "object",
            "required": ["bundle"],
            "properties": {
                "bundle": {**_SHA256, "description": "The sha256 of a bundle uploaded to .../bundles/{sha256}"},
                "stage": {"type": ["string", "null"], "description": "The stage of triggerfish.toml to deploy"},
            },
        },
        "DeployResult": _object(
            {
                "app": {"type": "string"},
                "version": {"type": "integer", "description": "The new version, now live"},
                "functions": _object(dict.fromkeys(("changed", "unchanged", "added", "removed"), _STRINGS)),
                "phases": {
                    "type": "array",
                    "items": _object(
                        {
                            "name": {"type": "string", "examples": ["install", "import", "switch"]},
                            "seconds": {"type": "number"},
                            "output": {"type": "string", "description": "install: pip's output"},
                        }
                    ),
                },
            }
        ),
        "DeployFailure": _object(
            {
                "error": _object(
                    {
                        "code": {"const": "DeployFailed"},
                        "message": {"type": "string"},
                        "phase": {"type": "string", "examples": ["unpack", "install", "import", "switch"]},
                        "details": {"type": "string", "description": "pip's output or the import's traceback"},
                    }
                )
            }
        ),
        "VersionList": _object(
            {
                "versions": {
                    "type": "array",
                    "items": _object(
                        {
                            "version": {"type": "integer"},
                            "created_at": {"type": "number", "description": "Epoch seconds"},
                            "bundle": _SHA256,
                            "stage": {"type": ["string", "null"]},
                            "functions": _STRINGS,
                            "live": {"type": "boolean"},
                        }
                    ),
                }
            }
        ),
        "Alias": _object(alias),
        "AliasList": _object({"aliases": {"type": "array", "items": _ref("Alias")}}),
        "AliasInput": {
            "type": "object",
            "required": ["version"],
            "properties": {
                "version": alias["version"],
                "weights": {**alias["weights"], "propertyNames": {"pattern": "^[0-9]+$"}},
            },
        },
        "RollbackInput": {
            "type": "object",
            "properties": {"to": {"type": "integer", "description": "Default: the version before the live one"}},
        },
        "RolledBack": _object({"app": {"type": "string"}, "version": {"type": "integer"}}),
        "KeyInput": {
            "type": "object",
            "required": ["name", "role"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS},
                "role": key["role"],
                "app": {"type": ["string", "null"], "description": "Required, except for an admin key (none)"},
            },
        },
        "Key": _object(key),
        "NewKey": _object(
            {
                "key": {
                    "type": "string",
                    "description": "The key's text: in this answer only; the server keeps a hash",
                },
                **key,
            }
        ),
        "KeyList": _object({"keys": {"type": "array", "items": _ref("Key")}}),
        "PublishedEvents": _object(
            {
                "ids": _STRINGS,
                "FailedEntryCount": {"const": 0, "description": "PutEvents only: all or nothing"},
                "Entries": {
                    "type": "array",
                    "description": "PutEvents only",
                    "items": _object({"EventId": {"type": "string"}}),
                },
            },
            "FailedEntryCount",
            "Entries",
        ),
    }


def _server_operations() -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path from the server's root) -> the operation, without what it needs (the tables say)."""
    sha = _path("sha256", "The bundle's sha256: 64 lowercase hex digits")
    events = {
        "application/cloudevents+json": {"schema": {"type": "object", "description": "One CloudEvent (structured)"}},
        "application/cloudevents-batch+json": {"schema": {"type": "array", "items": _OBJECT}},
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["Entries"],
                "description": "EventBridge PutEvents; each entry names its bus in EventBusName",
                "properties": {"Entries": {"type": "array", "minItems": 1, "maxItems": 10, "items": _OBJECT}},
            }
        },
        "*/*": {
            "schema": {"description": "A binary-mode CloudEvent: the attributes in ce- headers, the body its data"}
        },
    }
    return {
        ("GET", "/-/health"): _op("Liveness, and how many apps are deployed", {"200": _answer("", _ref("Health"))}),
        ("GET", f"{API_ROOT}/openapi.json"): _op("This document", {"200": _answer("OpenAPI 3.1", _OBJECT)}),
        ("POST", "/-/apps/{app}/events"): {
            **_op(
                "Publish events to the app's buses, all or nothing: CloudEvents (binary, structured, batch), PutEvents",
                {
                    "202": _answer("Every event is durably stored", _ref("PublishedEvents")),
                    "408": _answer("The body did not arrive in time", _ref("Error")),
                },
                errors=("400", "413"),
                params=(_APP, _query("bus", "CloudEvents: the bus (default `default`)", {"type": "string"})),
            ),
            "requestBody": {"required": True, "content": events},
        },
        ("GET", f"{API_ROOT}/apps"): _op("The apps the key may read", {"200": _answer("", _ref("AppList"))}),
        ("GET", f"{APP_ROOT}"): _op(
            "One app: live version, canary, functions", {"200": _answer("", _ref("App"))}, params=(_APP,)
        ),
        ("DELETE", f"{APP_ROOT}"): _op(
            "Stop serving the app and forget its versions (its data stays in its scope)",
            {"204": _answer("Removed")},
            params=(_APP,),
        ),
        ("HEAD", f"{APP_ROOT}/bundles/{{sha256}}"): _op(
            "Whether the server holds a bundle (upload it only when it does not)",
            {"200": _answer("It does"), "404": _answer("It does not; or AppNotFound (a HEAD answer has no body)")},
            errors=("400",),
            params=(_APP, sha),
        ),
        ("PUT", f"{APP_ROOT}/bundles/{{sha256}}"): {
            **_op(
                "Upload a bundle (the app's tar.gz, see `triggerfish deploy`); the server checks its sha256",
                {
                    "200": _answer("It was there already", _ref("BundleStored")),
                    "201": _answer("Stored", _ref("BundleStored")),
                },
                errors=("400", "413"),
                params=(_APP, sha),
            ),
            "requestBody": {"required": True, "content": {"application/gzip": {}, "application/octet-stream": {}}},
        },
        ("POST", f"{APP_ROOT}/deploys"): _op(
            "Deploy an uploaded bundle: install, import, then publish the next version and switch `live` to it",
            {"201": _answer("Deployed and live", _ref("DeployResult")), "422": _error("422")},
            errors=("400",),
            body=_ref("DeployInput"),
            params=(_APP,),
        ),
        ("GET", f"{APP_ROOT}/versions"): _op(
            "Every version with its time, bundle and whether it is live",
            {"200": _answer("", _ref("VersionList"))},
            params=(_APP,),
        ),
        ("GET", f"{APP_ROOT}/aliases"): _op(
            "The app's aliases", {"200": _answer("", _ref("AliasList"))}, params=(_APP,)
        ),
        ("PUT", f"{APP_ROOT}/aliases/{{alias}}"): _op(
            "Point an alias at a version, optionally with a second version taking a share (canary)",
            {"200": _answer("", _ref("Alias")), "422": _error("422")},
            errors=("400",),
            body=_ref("AliasInput"),
            params=(_APP, _path("alias", "The alias: `live` is the one served")),
        ),
        ("POST", f"{APP_ROOT}/rollback"): _op(
            "Move `live` back to an earlier version",
            {"200": _answer("Live now", _ref("RolledBack")), "422": _error("422")},
            errors=("400",),
            body=_ref("RollbackInput"),
            body_required=False,
            params=(_APP,),
        ),
        ("POST", f"{API_ROOT}/keys"): _op(
            "Create an API key; the answer is the only time its text is shown",
            {"201": _answer("Created", _ref("NewKey"))},
            errors=("400", "404"),
            body=_ref("KeyInput"),
        ),
        ("GET", f"{API_ROOT}/keys"): _op(
            "The keys, by id, prefix and name (never a secret or a hash), revoked ones too",
            {"200": _answer("", _ref("KeyList"))},
            params=(_query("app", "Only this app's keys", {"type": "string"}),),
        ),
        ("DELETE", f"{API_ROOT}/keys/{{id}}"): _op(
            "Revoke a key: it stops working from the next request on (not the last working admin key)",
            {"200": _answer("Revoked", _ref("Key"))},
            errors=("400", "404"),
            params=(_path("id", "The key's id, its prefix (tfk_<id>) or its whole text"),),
        ),
    }
