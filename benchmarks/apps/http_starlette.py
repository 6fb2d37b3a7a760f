"""Bare Starlette with the handler `benchmarks/apps/http_app.py` has: the ceiling `bench_http.py` compares with.

Served by uvicorn's own command line (`python -m uvicorn benchmarks.apps.http_starlette:app`).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "n": int(request.query_params.get("n", "0"))})


app = Starlette(routes=[Route("/hello", hello)])
