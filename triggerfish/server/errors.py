"""How the platform's own endpoints (`/-/...`) answer errors: JSON with a machine-readable code and a message.

{"error": {"code": "InvalidEvent", "message": "ce-id: is required", "attribute": "ce-id"}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse


def error_response(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, **details: Any
) -> JSONResponse:
    """A JSON error answer; `details` (such as `attribute`) are added beside the code and message."""
    return JSONResponse({"error": {"code": code, "message": message, **details}}, status_code=status, headers=headers)
