"""Triggerfish's HTTP gateway alone, with the handler of `http_app.py` called directly (no runner, no record).

Served by uvicorn's command line with bare Starlette's settings
(`python -m uvicorn benchmarks.apps.http_gateway_only:app --http httptools`): it
shows what the gateway costs against bare Starlette, apart from the
invocation path behind it (the runner, the worker round trip, the record).
"""

from __future__ import annotations

from typing import Any

from triggerfish.gateway import Gateway, Route, RouteTable


async def invoke(function: str, event: Any = None, **_: Any) -> Any:
    n = int((event.get("queryStringParameters") or {}).get("n", "0"))
    return {"ok": True, "n": n}


app = Gateway(RouteTable([Route("GET", "/hello", "hello")]), invoke)
