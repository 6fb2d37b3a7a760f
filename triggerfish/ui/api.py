"""The dashboard's one data path: the control API, called in process with the viewer's key.

    api = ControlApi.of(request)                   # the Starlette app the UI is mounted in, the URL's app
    functions = await api.get("/functions")        # the JSON the control API answers, or ApiFailure

Every page reads and changes the platform through the same operations the
CLI and scripts use (`/-/api/v1/...`), so the dashboard shows exactly what
the API shows and a key's role limits it exactly as it limits the API:
there is no second set of permission checks to drift. The request never
leaves the process (httpx's ASGI transport calls the Starlette app the
UI itself is mounted in), so it costs no socket and needs no URL.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from starlette.requests import Request

from triggerfish._json import dumps
from triggerfish.ui.session import key_of

#: The control API's root for one app: dev serves one app at the root, serve one per app under `apps/{app}`.
DEV_ROOT = "/-/api/v1"


class ApiFailure(Exception):
    """The control API refused or failed a request: its status, error code and message, shown on the page."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Answer:
    """A control API answer that was not an error: its status, headers and parsed JSON body (None: no body)."""

    status: int
    headers: Mapping[str, str]
    body: Any = None
    raw: bytes = field(default=b"", repr=False)


class ControlApi:
    """The control API of one app, as the viewer of one dashboard request may use it."""

    def __init__(self, asgi: Any, root: str, key: str | None) -> None:
        self.root = root
        self._headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://dashboard")

    @classmethod
    def of(cls, request: Request, app: str | None = None) -> ControlApi:
        """The API behind the dashboard request `request`: its server's, for the URL's app (serve) or dev's one."""
        name = app if app is not None else request.path_params.get("app")
        root = DEV_ROOT if name is None else f"{DEV_ROOT}/apps/{quote(name, safe='')}"
        return cls(request.app, root, key_of(request))

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> ControlApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def get(self, path: str, **params: Any) -> Any:
        """The JSON body of `GET root+path?params` (None values left out); raises ApiFailure on an error answer."""
        return (await self.call("GET", path, params=params)).body

    async def post(self, path: str, document: Any = None, **params: Any) -> Any:
        return (await self.call("POST", path, document, params=params)).body

    async def call(
        self,
        method: str,
        path: str,
        document: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
        root: str | None = None,
    ) -> Answer:
        query = {k: _text(v) for k, v in (params or {}).items() if v is not None and v != ""}
        content = raw if raw is not None else (None if document is None else dumps(document))
        sent = {**self._headers, **(headers or {})}
        if method in ("POST", "PUT", "PATCH"):
            sent.setdefault("Content-Type", "application/json")
        answer = await self._client.request(
            method, (self.root if root is None else root) + path, params=query, content=content, headers=sent
        )
        body = answer.json() if answer.content and _is_json(answer) else None
        if answer.status_code >= 400:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            raise ApiFailure(
                answer.status_code,
                str(error.get("code") or "Error"),
                str(error.get("message") or answer.text[:500] or answer.reason_phrase),
            )
        return Answer(answer.status_code, dict(answer.headers), body, answer.content)


def log_tail(headers: Mapping[str, str]) -> str:
    """The captured output Lambda's `X-Amz-Log-Result` header carries (base64), as text."""
    encoded = headers.get("x-amz-log-result")
    if not encoded:
        return ""
    return base64.b64decode(encoded).decode("utf-8", errors="replace")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_json(answer: httpx.Response) -> bool:
    kind: str = answer.headers.get("content-type", "")
    return kind.split(";", 1)[0].strip().endswith("json")
