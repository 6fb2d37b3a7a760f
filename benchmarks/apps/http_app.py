"""The app `benchmarks/bench_http.py` and `bench_memory.py` serve with `triggerfish dev`: one small JSON route.

The same handler as the peers' (`http_starlette.py`, `http_functions_framework.py`):
read a query parameter, answer a small JSON document. Its settings are the defaults.
"""

from __future__ import annotations

from typing import Any

from triggerfish import App

app = App("bench-http")


@app.http("GET", "/hello")
def hello(event: dict[str, Any], context: Any) -> dict[str, Any]:
    n = int((event.get("queryStringParameters") or {}).get("n", "0"))
    return {"ok": True, "n": n}
