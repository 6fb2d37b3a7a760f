"""The control API's usage report: `GET /usage` (per app under `triggerfish serve`, dev's one app's under `dev`).

Usage comes from the app's rollup (triggerfish.observe.usage), rolled forward first so the answer counts every
record stored until the request; with prices (`gb_second_price`, `million_requests_price`) each row and the
total carry their cost.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.observe.usage import GROUPINGS, Prices, price
from triggerfish.server.control_io import json_response, platform_of
from triggerfish.server.operations import Answer, Operation, inputs, query
from triggerfish.server.schema import Enum, Moment, Number

#: The highest price either parameter takes (a guard against a typo's exponent, not a policy).
_MAX_PRICE = 1e6


async def get_usage(request: Request) -> Response:
    platform = platform_of(request)
    params = inputs(request).query
    since, until = params.get("since"), params.get("until")
    by = params.get("by", "function")
    rows = await platform.usage.report(since=since, until=until, by=by)
    gb_second, per_million = params.get("gb_second_price"), params.get("million_requests_price")
    priced = gb_second is not None or per_million is not None
    prices = Prices(per_gb_second=gb_second or 0.0, per_million_requests=per_million or 0.0)
    rows, total = price(rows, prices)
    if not priced:
        for row in (*rows, total):
            row.cost = None
    return json_response(
        {
            "app": platform.secrets_name,
            "by": by,
            "since": since,
            "until": until,
            "prices": {"gb_second": prices.per_gb_second, "million_requests": prices.per_million_requests}
            if priced
            else None,
            "rows": [row.to_dict() for row in rows],
            "total": total.to_dict(),
        }
    )


OPERATIONS = (
    Operation(
        "GET",
        "/usage",
        get_usage,
        "Usage per function, day or hour (whole UTC hours): invocations, requests, errors, billed ms, GB-seconds,"
        " bytes in (events) and out (results); with prices, their cost",
        {200: Answer("", "UsageReport")},
        "read",
        params=(
            query("since", "From the hour holding this time", Moment()),
            query("until", "Until the hour holding this time (exclusive at an hour's start)", Moment()),
            query("by", "Rows per function (default), day or hour", Enum(GROUPINGS)),
            query(
                "gb_second_price",
                "Price of a GB-second (Lambda x86: 0.0000166667)",
                Number(minimum=0, maximum=_MAX_PRICE),
            ),
            query(
                "million_requests_price",
                "Price of a million requests (Lambda: 0.20)",
                Number(minimum=0, maximum=_MAX_PRICE),
            ),
        ),
    ),
)
