"""Google's functions-framework with the handler `benchmarks/apps/http_app.py` has (`--target=hello`).

Served by the `functions-framework` command, which runs gunicorn (gthread) as Google ships it.
"""

from __future__ import annotations

from typing import Any


def hello(request: Any) -> dict[str, Any]:
    return {"ok": True, "n": int(request.args.get("n", "0"))}
