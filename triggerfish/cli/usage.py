"""`triggerfish usage`: an app's invocations, requests, billed duration, GB-seconds and data in and out, and with
prices their cost."""

from __future__ import annotations

from typing import Any

import click

from triggerfish.cli.client import Client, server_options
from triggerfish.cli.inputs import parse_time
from triggerfish.cli.output import Output, json_option

#: Lambda's published on-demand prices (x86, first tier, US East), in USD: what `--lambda-prices` uses.
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_MILLION_REQUESTS = 0.20
_PRICE = click.FloatRange(0, 1e6)


@click.command()
@click.option("--since", default="7d", show_default=True, help="From this time: 10m, 2h, 7d, epoch seconds, ISO 8601.")
@click.option("--until", default=None, help="Before this time (default: now).")
@click.option(
    "--by", type=click.Choice(("function", "day", "hour")), default="function", show_default=True, help="One row per."
)
@click.option("--gb-second-price", type=_PRICE, default=None, help="The price of a GB-second: adds a cost column.")
@click.option("--million-requests-price", type=_PRICE, default=None, help="The price of a million requests.")
@click.option(
    "--lambda-prices",
    is_flag=True,
    help=f"Price as Lambda does (x86, US East, USD): {LAMBDA_GB_SECOND} per GB-second, {LAMBDA_MILLION_REQUESTS:.2f}"
    " per million requests.",
)
@server_options()
@json_option
def usage(
    since: str,
    until: str | None,
    by: str,
    gb_second_price: float | None,
    million_requests_price: float | None,
    lambda_prices: bool,
    server: str | None,
    key: str | None,
    app: str | None,
    as_json: bool,
) -> None:
    """Show an app's usage per function, day or hour: invocations, requests, errors, billed time, GB-seconds, data.

    Usage is rolled up from the invocation records as they are stored, so it
    outlives them. Periods are whole UTC hours. `bytes_in` and `bytes_out` are
    the JSON of the events sent to handlers and of the results they returned.
    With prices, each row and the total get their cost.

    \b
    Examples:
      triggerfish usage --since 30d --by day --lambda-prices
      triggerfish usage --app shop --gb-second-price 0.0000133334 --million-requests-price 0.20 --json
    """
    if lambda_prices and (gb_second_price is not None or million_requests_price is not None):
        raise click.UsageError(
            "--lambda-prices sets both prices: give it, or --gb-second-price/--million-requests-price"
        )
    if lambda_prices:
        gb_second_price, million_requests_price = LAMBDA_GB_SECOND, LAMBDA_MILLION_REQUESTS
    params: dict[str, Any] = {"since": parse_time(since, "--since"), "by": by}
    if until is not None:
        params["until"] = parse_time(until, "--until")
    if gb_second_price is not None:
        params["gb_second_price"] = gb_second_price
    if million_requests_price is not None:
        params["million_requests_price"] = million_requests_price
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        report = client.request("GET", client.app_api("/usage"), params=params) or {}
    if out.json(report):
        return
    priced = report.get("prices") is not None
    headers = [
        by,
        "invocations",
        "requests",
        "errors",
        "billed_s",
        "gb_seconds",
        "bytes_in",
        "bytes_out",
        *(["cost"] if priced else []),
    ]
    rows = [_row(row, priced) for row in report.get("rows", [])]
    if rows:
        rows.append(_row(report.get("total", {}), priced))
    out.table(headers, rows, title=f"usage of {report.get('app')}", empty="no usage in that time")


def _row(row: dict[str, Any], priced: bool) -> list[Any]:
    cells: list[Any] = [
        row.get("key"),
        row.get("invocations", 0),
        row.get("requests", 0),
        row.get("errors", 0),
        f"{row.get('billed_ms', 0) / 1000:.3f}",
        f"{row.get('gb_seconds', 0.0):.6f}",
        row.get("bytes_in", 0),
        row.get("bytes_out", 0),
    ]
    if priced:
        cells.append(f"{row.get('cost', 0.0):.6f}")
    return cells
