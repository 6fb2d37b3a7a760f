"""The audit log: who created or revoked a key, set or removed a secret, deployed, rolled back, moved an alias or
removed an app; when, from where, and how it went. Kept in the store, read by admins.

    audit = AuditLog(store, retention=90 * 86400)
    entries, following = await audit.query(app="shop", operation="secret.set", since=time.time() - 86400)

An operation of the control API's table that names `audit=` (operations.py) is
recorded after it answered, whatever the answer: `ok` (it was done), `refused`
(the key was missing, unknown, revoked, of another app, or its role lacks the
action: nothing was attempted), or `failed` (allowed, but it did not happen: bad
input, a conflict, a deploy that failed, the store). An entry says who (the
key's id, name, role and app; for a refused key what could be told of it, never
its secret), what (the operation, the app, the object: a key id, a secret's
name, an alias; details such as the version deployed), when, from where (the
client's address as the server saw it: a proxy's, behind one) and on which node.
It never holds a secret's value or a key's secret.

Entries are records of one log stream (`triggerfish.audit`) in the server's
unscoped store: every node of a cluster writes there, and an app's code cannot
reach it (its platform calls are scoped to the app, and `triggerfish` names are
reserved). Entries older than the retention (90 days by default) are trimmed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from triggerfish._json import dumps, loads
from triggerfish.names import AUDIT_STREAM
from triggerfish.server.keys import ApiKeys, looks_like_key, presented_key
from triggerfish.store import Store

log = logging.getLogger("triggerfish.audit")

#: How long entries are kept unless the server is told otherwise (`audit_retention_days`).
DEFAULT_RETENTION = 90 * 86400.0
OUTCOMES = ("ok", "refused", "failed")
#: What is audited, as `Operation.audit` names it.
OPERATIONS = (
    "key.create",
    "key.revoke",
    "secret.set",
    "secret.remove",
    "secrets.reseal",
    "deploy",
    "rollback",
    "alias.set",
    "app.remove",
)
#: Records read per step of a query, and at most per query (a filter matching little stops there, with a cursor).
_PAGE = 500
_SCAN_BUDGET = 20_000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited request. `actor` is the key: `key` (its prefix, or None when none was sent), `name`, `role`,
    `app`; for a refused key, `state` says what was wrong with it (`unknown`, `revoked`, `malformed`)."""

    at: float
    operation: str
    outcome: str
    actor: Mapping[str, Any]
    app: str | None = None
    object: str | None = None
    client: str | None = None
    status: int = 0
    code: str | None = None
    message: str | None = None
    node: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    #: The entry's place in the log (0 until stored): what `after` pages by.
    offset: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "at": self.at,
            "operation": self.operation,
            "outcome": self.outcome,
            "actor": dict(self.actor),
            "app": self.app,
            "object": self.object,
            "client": self.client,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "node": self.node,
            "details": dict(self.details),
        }

    @classmethod
    def from_record(cls, offset: int, data: bytes) -> AuditEntry:
        document = loads(data, where=f"audit entry {offset}")
        document.pop("offset", None)
        return cls(**document, offset=offset)


class AuditLog:
    """The audit log of the servers sharing `store` (see the module docstring). `node` names this server."""

    def __init__(self, store: Store, *, retention: float = DEFAULT_RETENTION, node: str = "") -> None:
        if not retention > 0:
            raise ValueError(f"the audit log's retention must be more than 0 seconds, not {retention!r}")
        self.store = store
        self.retention = retention
        self.node = node

    async def record(self, entry: AuditEntry) -> None:
        """Append `entry`; a store that fails loses it, and the server's log then keeps it whole instead."""
        document = entry.as_dict()
        del document["offset"]
        try:
            await self.store.log.append(AUDIT_STREAM, dumps(document))
        except Exception:
            log.exception("the audit log could not be written; the entry was: %s", orjson.dumps(document).decode())

    async def query(
        self,
        *,
        app: str | None = None,
        operation: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> tuple[list[AuditEntry], int | None]:
        """Entries matching every filter given, oldest first, after offset `after`, at most `limit`; and the
        cursor to pass as `after` for the next page (None: there is nothing more)."""
        found: list[AuditEntry] = []
        cursor, scanned = after, 0
        while scanned < _SCAN_BUDGET:
            records = await self.store.log.read(AUDIT_STREAM, after=cursor, since=since, until=until, limit=_PAGE)
            for record in records:
                cursor, scanned = record.offset, scanned + 1
                entry = AuditEntry.from_record(record.offset, record.data)
                if (
                    (app is None or entry.app == app)
                    and (operation is None or entry.operation == operation)
                    and (outcome is None or entry.outcome == outcome)
                ):
                    found.append(entry)
                    if len(found) == limit:
                        return found, cursor
            if len(records) < _PAGE:
                return found, None
        return found, cursor

    async def trim(self) -> int:
        """Drop entries older than the retention; how many went."""
        return await self.store.log.trim(AUDIT_STREAM, max_age=self.retention)

    async def after(self, request: Request, operation: str, response: Response, *, refused: bool) -> None:
        """Record `request`, answered with `response`, as `operation` (what the control API's table calls)."""
        status = response.status_code
        code, message = _error_of(response) if status >= 400 else (None, None)
        params = dict(request.path_params)
        app = params.pop("app", None)
        details: dict[str, Any] = dict(getattr(request.state, "audit_details", None) or {})
        target = details.pop("object", None) or ("/".join(str(v) for v in params.values()) or None)
        outcome = "ok" if status < 400 else "refused" if refused else "failed"
        entry = AuditEntry(
            at=self.store.log.clock(),
            operation=operation,
            outcome=outcome,
            actor=await _actor(request),
            app=app if isinstance(app, str) else details.pop("app", None),
            object=target,
            client=None if request.client is None else request.client.host,
            status=status,
            code=code,
            message=message,
            node=self.node,
            details=details,
        )
        await self.record(entry)


def note(request: Request, **details: Any) -> None:
    """Add `details` to what the audit log records of `request` (`object=` replaces the object the path names)."""
    known: dict[str, Any] = getattr(request.state, "audit_details", None) or {}
    request.state.audit_details = {**known, **details}


async def _actor(request: Request) -> dict[str, Any]:
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        key = principal.key
        if key is None:
            return {"key": None, "name": "open access (no keys)", "role": "admin", "app": None}
        return {"key": key.prefix, "name": key.name, "role": key.role, "app": key.app}
    text = presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if text is None:
        return {"key": None, "state": "none sent"}
    if not looks_like_key(text):
        return {"key": None, "state": "malformed"}
    keys: ApiKeys | None = getattr(request.app.state, "keys", None)
    info = None if keys is None else await keys.lookup(text)
    if info is None:
        # Only the id part, which is public; the rest of what was sent is never kept.
        return {"key": text[:12], "state": "unknown"}
    return {"key": info.prefix, "name": info.name, "role": info.role, "app": info.app, "state": "revoked"}


def _error_of(response: Response) -> tuple[str | None, str | None]:
    try:
        error = orjson.loads(bytes(response.body)).get("error", {})
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return None, None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (code if isinstance(code, str) else None), (message if isinstance(message, str) else None)
