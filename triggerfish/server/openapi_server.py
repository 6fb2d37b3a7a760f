"""The OpenAPI 3.1 document of `triggerfish serve`, served at `GET /-/api/v1/openapi.json`.

    operation = server_document()["paths"]["/-/api/v1/apps/{app}/deploys"]["post"]
    operation["x-triggerfish-action"]   # "deploy": the key's role must hold it (docs/security.md)

Nothing about which endpoints exist, what they take and what each needs is
written here: the paths, parameters, bodies, answers and actions come from the
tables that route and check the requests (`host_http.ROOT_OPERATIONS` and
`SERVER_OPERATIONS`, and `control.OPERATIONS` re-rooted under
`/-/api/v1/apps/{app}`). Written here are the JSON schemas of the server's own
answers, the key schemes, and the refusals that follow from needing a key.
"""

from __future__ import annotations

from typing import Any

from triggerfish.server import control, openapi
from triggerfish.server.audit import OPERATIONS as AUDIT_OPERATIONS
from triggerfish.server.audit import OUTCOMES
from triggerfish.server.auth import CHALLENGE, roles_holding
from triggerfish.server.host_http import LIST, ROOT_OPERATIONS, SERVER_OPERATIONS
from triggerfish.server.keys import ROLES
from triggerfish.server.openapi import _content, _ref, error_ref, operation_object, template

#: The extension naming the action an operation's key must hold; null where no key is asked.
ACTION_EXTENSION = "x-triggerfish-action"
#: Where the server-wide endpoints are mounted, and one app's control API.
API_ROOT = "/-/api/v1"
APP_ROOT = f"{API_ROOT}/apps/{{app}}"

_APP_PARAM = {
    "name": "app",
    "in": "path",
    "required": True,
    "description": "The app's name, as it was deployed",
    "schema": {"type": "string", "minLength": 1},
}
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


def server_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every endpoint under `/-/` of `triggerfish serve`."""
    paths: dict[str, dict[str, Any]] = {}

    def add(path: str, operation: dict[str, Any], method: str, action: str | None) -> None:
        paths.setdefault(path, {})[method.lower()] = _guarded(operation, action, scoped="{app}" in path)

    for row in ROOT_OPERATIONS:
        add(template(row.path), operation_object(row), row.method, row.action)
    for row in SERVER_OPERATIONS:
        add(API_ROOT + template(row.path), operation_object(row), row.method, row.action)
    for row in control.OPERATIONS:
        operation = operation_object(row)
        operation["parameters"] = [_APP_PARAM, *operation.get("parameters", ())]
        if row.path == "/openapi.json":
            operation["summary"] = "The OpenAPI document of the per-app control API alone, as `triggerfish dev` has it"
        add(APP_ROOT + template(row.path), operation, row.method, row.action)
    per_app = openapi.document(control.OPERATIONS)
    components = openapi.components_of([*ROOT_OPERATIONS, *SERVER_OPERATIONS])
    schemas = {**per_app["components"]["schemas"], **_schemas()}
    clash = set(components) & set(schemas)
    if clash:
        raise LookupError(f"input and answer schemas share names {sorted(clash)}")
    responses = openapi.error_responses(openapi.used_statuses(paths))
    responses["NotFound"]["description"] += (
        "; or AppNotFound: no app of that name, or one the key may not see (one answer for both)"
    )
    responses["Unauthorized"]["headers"] = {
        "WWW-Authenticate": {"description": "How to authenticate", "schema": {"const": CHALLENGE}}
    }
    responses["DeployFailed"]["content"] = _content(_ref("DeployFailure"))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Triggerfish server API",
            "version": per_app["info"]["version"],
            "description": "Every endpoint under /-/ of `triggerfish serve` (docs/serve.md, docs/api.md). JSON in and"
            ' out; errors are {"error": {"code", "message"}}. Every operation but health and this document needs'
            f" an API key; `{ACTION_EXTENSION}` names the action the key's role must hold (docs/security.md):"
            f" `{LIST}` means any key, answered with what it may read, and null no key at all.",
        },
        "servers": [{"url": "/", "description": "The server this document came from"}],
        "security": [{name: []} for name in _SCHEMES],
        "paths": paths,
        "components": {
            "schemas": {**schemas, **components},
            "responses": responses,
            "securitySchemes": _SCHEMES,
        },
    }


def _guarded(operation: dict[str, Any], action: str | None, *, scoped: bool) -> dict[str, Any]:
    """`operation` saying what it needs, with the refusals that follow from that."""
    result = dict(operation)
    responses = dict(result["responses"])
    if action is None:
        result["security"] = []
        needs = "Public: no API key needed."
    else:
        responses.setdefault("401", error_ref(401))
        if action == LIST:
            needs = "Needs an API key, of any role; the answer shows only the apps the key may read."
        else:
            responses.setdefault("403", error_ref(403))
            needs = f"Needs an API key whose role holds `{action}`: {', '.join(roles_holding(action))}."
        if scoped:
            # A key of another app is told the app does not exist: the per-app NotFound says so.
            responses.setdefault("404", error_ref(404))
    result["responses"] = dict(sorted(responses.items()))
    result["description"] = f"{result['description']}\n\n{needs}" if "description" in result else needs
    result[ACTION_EXTENSION] = action
    return result


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
        "Node": _object(
            {
                "id": {"type": "string"},
                "host": {"type": "string", "description": "The machine's name"},
                "pid": {"type": "integer"},
                "address": {"type": ["string", "null"], "description": "Its URL; null for a worker-only node"},
                "roles": {"type": "array", "items": {"type": "string", "enum": ["gateway", "worker"]}},
                "started_at": {"type": "number"},
                "heartbeat_at": {"type": "number", "description": "Its last heartbeat (seconds since the epoch)"},
                "versions": {
                    "type": "object",
                    "description": "App -> the versions it has loaded (the apps the key may read)",
                    "additionalProperties": {"type": "array", "items": {"type": "integer"}},
                },
                "in_flight": {"type": "integer", "description": "Invocations running on it"},
                "state": {"type": "string", "enum": ["up", "gone"], "description": "gone: no heartbeat for 10 s"},
            }
        ),
        "NodeList": _object(
            {
                "nodes": {"type": "array", "items": _ref("Node")},
                "this": {"type": "string", "description": "The node answering"},
            }
        ),
        "BundleStored": _object({"bundle": _SHA256, "stored": {"type": "boolean", "description": "false: it was"}}),
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
        "RolledBack": _object({"app": {"type": "string"}, "version": {"type": "integer"}}),
        "Key": _object(key),
        "NewKey": _object(
            {
                "key": {
                    "type": "string",
                    "description": "The key's text: in this answer only; the server keeps a hash",
                },
                **key,
                "aws_access_key_id": {
                    "type": "string",
                    "description": "A key of one app is also an AWS credential for `/-/aws` (docs/aws.md): its id",
                },
                "aws_secret_access_key": {
                    "type": "string",
                    "description": "Its AWS secret, derived from the key's text: in this answer only",
                },
            },
            "aws_access_key_id",
            "aws_secret_access_key",
        ),
        "KeyList": _object({"keys": {"type": "array", "items": _ref("Key")}}),
        "AuditEntry": _object(
            {
                "offset": {"type": "integer", "description": "Its place in the log: what `after` pages by"},
                "at": {"type": "number", "description": "Epoch seconds"},
                "operation": {"type": "string", "enum": list(AUDIT_OPERATIONS)},
                "outcome": {
                    "enum": list(OUTCOMES),
                    "description": "ok: done; refused: the key may not (nothing was tried); failed: allowed, not done",
                },
                "actor": {
                    "type": "object",
                    "description": "The key: `key` (its prefix; null when none was sent), `name`, `role`, `app`;"
                    " for a refused key, `state` (unknown, revoked, malformed, none sent)",
                },
                "app": {"type": ["string", "null"]},
                "object": {"type": ["string", "null"], "description": "A key's prefix, a secret's name, an alias, ..."},
                "client": {"type": ["string", "null"], "description": "The client's address, as the server saw it"},
                "status": {"type": "integer", "description": "The HTTP status of the answer"},
                "code": {"type": ["string", "null"], "description": "The error code of a refusal or failure"},
                "message": {"type": ["string", "null"]},
                "node": {"type": "string", "description": "The node that answered"},
                "details": {"type": "object", "description": "Per operation: the version deployed, a key's role, ..."},
            }
        ),
        "AuditLog": _object(
            {
                "entries": {"type": "array", "items": _ref("AuditEntry")},
                "next": {
                    "type": ["integer", "null"],
                    "description": "Pass as `after` for the next page; null when there is nothing more",
                },
            }
        ),
        "ResealResult": _object(
            {
                "key_id": {"type": "string", "description": "The key every secret is now sealed with"},
                "resealed": {"type": "integer"},
                "unchanged": {"type": "integer", "description": "Sealed with it already"},
                "unreadable": {
                    "type": "array",
                    "description": "Secrets this server could not open (they keep their old sealing)",
                    "items": _object(
                        {"app": {"type": "string"}, "name": {"type": "string"}, "key_id": {"type": "string"}}
                    ),
                },
            }
        ),
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
