"""How the platform's own endpoints (`/-/...`) answer errors: JSON with a machine-readable code and a message.

{"error": {"code": "InvalidEvent", "message": "ce-id: is required", "attribute": "ce-id"}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse


def error_response(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, **details: Any
) -> JSONResponse:
    """A JSON error answer; `details` (such as `attribute`) are added beside the code and message."""
    return JSONResponse({"error": {"code": code, "message": message, **details}}, status_code=status, headers=headers)


def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 with `Allow` listing the methods the path takes (Starlette's exception carries them)."""
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    # Starlette keeps a route's methods in a set: sorted, the header is the same on every run.
    allowed = ", ".join(sorted(m.strip() for m in headers.get("Allow", "").split(",") if m.strip()))
    if allowed:
        headers["Allow"] = allowed
    message = f"{request.method} is not allowed on {request.url.path}" + (f"; it takes {allowed}" if allowed else "")
    return error_response(405, "MethodNotAllowed", message, headers=headers)
