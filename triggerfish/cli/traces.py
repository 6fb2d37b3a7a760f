"""`triggerfish traces [TRACE_ID]`: an app's recent traces, or one trace's spans as a waterfall."""

from __future__ import annotations

from typing import Any

import click

from triggerfish.cli.client import Client, server_options
from triggerfish.cli.inputs import parse_time
from triggerfish.cli.output import Output, json_option, moment


@click.command()
@click.argument("trace_id", required=False)
@click.option("--since", default="1h", show_default=True, help="Traces from this time: 10m, 2h, 1d, ISO 8601.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="At most this many traces.")
@server_options()
@json_option
def traces(
    trace_id: str | None,
    since: str,
    limit: int,
    server: str | None,
    key: str | None,
    app: str | None,
    as_json: bool,
) -> None:
    """Show recent traces (newest first), or the spans of TRACE_ID as a waterfall.

    A trace is everything one request, event or message caused: the
    invocations, and the events and messages their handlers published and
    sent, each a span under the one that caused it.

    \b
    Examples:
      triggerfish traces --since 10m
      triggerfish traces 4bf92f3577b34da6a3ce929d0e0e4736
    """
    from triggerfish.errors import InvalidInputError
    from triggerfish.observe.spans import Span
    from triggerfish.observe.traces import check_trace_id, waterfall

    out = Output(as_json)
    if trace_id is not None:
        try:
            check_trace_id(trace_id)
        except InvalidInputError as exc:
            raise click.BadParameter(str(exc), param_hint="TRACE_ID") from None
        with Client(server, key, app=app) as client:
            document: dict[str, Any] = client.request("GET", client.app_api(f"/traces/{trace_id}")) or {}
        if out.json(document):
            return
        spans = [Span.from_dict(span) for span in document.get("spans", [])]
        out.write(f"trace {trace_id}: {len(spans)} spans")
        for line in waterfall(spans):
            out.write(line)
        return
    with Client(server, key, app=app) as client:
        params = {"since": parse_time(since, "--since"), "limit": limit}
        listed = client.request("GET", client.app_api("/traces"), params=params) or {}
    if out.json(listed):
        return
    rows = [
        [
            t.get("trace_id"),
            moment(t.get("started_at")),
            f"{t.get('duration_ms', 0.0):.1f}",
            t.get("root"),
            t.get("invocations"),
            t.get("errors"),
            ", ".join(t.get("functions", [])),
        ]
        for t in listed.get("traces", [])
    ]
    out.table(["trace", "started", "ms", "root", "invocations", "errors", "functions"], rows, empty="no traces")
