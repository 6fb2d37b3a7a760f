"""Overview: every function with its rate, errors, p50 and p99 duration, cold starts and concurrency right now."""

from __future__ import annotations

import datetime
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.ui.api import ControlApi
from triggerfish.ui.render import page
from triggerfish.ui.screen import screen
from triggerfish.ui.stats import ERROR_STATUSES, function_stats

#: The window the rates and percentiles are over: the last five minutes, as a glance at "now".
WINDOW = 300.0
#: Records read for it at most (the control API's page limit): past that, the figures are of the newest 1,000.
MAX_RECORDS = 1000


async def recent_records(api: ControlApi, window: float = WINDOW) -> list[dict[str, Any]]:
    found = await api.get("/invocations", since=time.time() - window, limit=MAX_RECORDS, order="desc")
    records: list[dict[str, Any]] = found["invocations"]
    return records


async def usage_today(api: ControlApi) -> dict[str, dict[str, Any]]:
    """Each function's usage since midnight UTC (the rollups `triggerfish usage` reads), by function name."""
    midnight = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = (await api.get("/usage", by="function", since=midnight.timestamp()))["rows"]
    return {str(row["key"]): row for row in rows}


@screen
async def overview(request: Request, api: ControlApi) -> Response:
    functions = (await api.get("/functions"))["functions"]
    records = await recent_records(api)
    usage = await usage_today(api)
    pools = {f["name"]: f.get("pool") or {} for f in functions}
    rows = function_stats(records, names=pools, window=WINDOW)
    failures = [r for r in records if r["status"] in ERROR_STATUSES][:5]
    return page(
        request,
        "overview.html",
        title="Overview",
        current="Overview",
        rows=rows,
        pools=pools,
        failures=failures,
        usage=usage,
        window_minutes=int(WINDOW // 60),
        capped=len(records) >= MAX_RECORDS,
    )
