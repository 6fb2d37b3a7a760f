"""`triggerfish logs [APP[/FUNCTION]]`: an app's log lines, listed or followed as they happen.

One line per log line, `TIME APP/FUNCTION vVERSION REQUEST_ID LEVEL MESSAGE`,
coloured by level on a terminal; `--json` prints each line as one JSON object
(JSON Lines). Following reads the server's event stream (`?follow=1`) until
Ctrl-C (exit 0) or the server ends it (exit 0; 4 when it ends it because the
key was revoked). Exit codes as for every verb (see triggerfish.cli.client): 2
for a bad option here, 3 when the server is unreachable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import click

from triggerfish.cli.client import EXIT_UNAUTHORISED, Client, CliError, input_error, server_options
from triggerfish.cli.output import Output

if TYPE_CHECKING:
    from rich.text import Text

_LEVEL_STYLES = {"DEBUG": "dim", "INFO": "", "WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red"}
#: How many lines the server sends when no --limit is given.
DEFAULT_LIMIT = 1000
#: Seconds without a byte before a follow gives up on the server (it sends a heartbeat every 15 s).
_FOLLOW_READ_TIMEOUT = 60.0


@click.command()
@click.argument("target", required=False, metavar="[APP[/FUNCTION]]")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as invocations finish (Ctrl-C stops).")
@click.option("--since", default=None, help="Lines from this long ago (30s, 10m, 2h, 1d) or an RFC 3339 time.")
@click.option("--request-id", "request_id", default=None, help="Only the lines of this invocation.")
@click.option("--level", default=None, help="The lowest level shown: DEBUG, INFO, WARNING, ERROR or CRITICAL.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=None, help="The newest this many lines (1000).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (JSON Lines), for scripts.")
@server_options(app=False)
def logs(
    target: str | None,
    follow: bool,
    since: str | None,
    request_id: str | None,
    level: str | None,
    limit: int | None,
    as_json: bool,
    server: str | None,
    key: str | None,
) -> None:
    """Print an app's log lines: each invocation's START, output, errors, END and REPORT.

    APP is the app on a `triggerfish serve` server; without it (or with
    /FUNCTION alone) the lines are `triggerfish dev`'s app's. Without
    --follow the newest lines (1000, or --limit) are printed, oldest first.

    \b
    Examples:
      triggerfish logs shop/ship --since 10m
      triggerfish logs shop -f --level warning
      triggerfish logs /ship --request-id 4f1c2d1e-... --json
    """
    app, function = _target(target)
    params = _params(function, since, request_id, level, limit)
    out = Output(as_json)
    with Client(server, key, app=app, name_app="`triggerfish logs APP`") as client:
        path = client.app_api("/logs")
        shown = app or client.app
        if not follow:
            document = client.request("GET", path, params=params) or {}
            for line in document.get("lines", []):
                _show(out, line, shown)
            if document.get("truncated"):
                newest = limit or DEFAULT_LIMIT
                click.echo(f"(older lines left out: these are the newest {newest}; use --since or --limit)", err=True)
            return
        try:
            with client.stream(
                "GET",
                path,
                params={**params, "follow": "1"},
                headers={"accept": "text/event-stream"},
                timeout=_FOLLOW_READ_TIMEOUT,
            ) as answer:
                for kind, data in server_sent_events(answer.iter_lines()):
                    if kind == "open":
                        click.echo(f"following {client.server}{path} (Ctrl-C to stop)", err=True)
                    elif kind == "end":
                        reason = data.get("reason") or "no reason given"
                        if data.get("code") == "Unauthorized":
                            raise CliError(EXIT_UNAUTHORISED, f"not authorised: {reason}")
                        click.echo(f"the server ended the stream: {reason}", err=True)
                        return
                    else:
                        _show(out, data, shown)
        except KeyboardInterrupt:
            return


def _target(target: str | None) -> tuple[str | None, str | None]:
    """APP, APP/FUNCTION or /FUNCTION as (app, function)."""
    if target is None:
        return None, None
    app, slash, function = target.partition("/")
    if (slash and not function) or "/" in function or not (app or function):
        raise input_error(f"{target!r} is not APP, APP/FUNCTION or /FUNCTION (for example shop/ship)")
    return app or None, function or None


def _params(
    function: str | None, since: str | None, request_id: str | None, level: str | None, limit: int | None
) -> dict[str, str | int]:
    import time

    from triggerfish.errors import InvalidInputError
    from triggerfish.server.log_lines import level_name, since_time

    params: dict[str, str | int] = {}
    try:
        if level is not None:
            params["level"] = level_name(level, where="--level")
        if since is not None:
            since_time(since, now=time.time(), where="--since")  # checked here; the server's clock decides
            params["since"] = since.strip()
    except InvalidInputError as exc:
        raise input_error(str(exc)) from None
    if function is not None:
        params["function"] = function
    if request_id is not None:
        params["request_id"] = request_id
    if limit is not None:
        params["limit"] = limit
    return params


def server_sent_events(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """("open", {}) on the stream's opening comment, ("line", line) per log line, ("end", {"reason"}) at its end."""
    event = "message"
    data: list[str] = []
    for text in lines:
        if text == "":
            if data:
                document = json.loads("\n".join(data))
                yield ("end" if event == "end" else "line"), document
            event, data = "message", []
        elif text.startswith(":"):
            if text[1:].strip() == "following":
                yield "open", {}
        else:
            name, _, value = text.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value


def _show(out: Output, line: Mapping[str, Any], app: str | None) -> None:
    if out.as_json:
        out.write(json.dumps(line, ensure_ascii=False))
        return
    function = str(line.get("function"))
    where = f"{app}/{function}" if app else function
    version = line.get("version")
    level = str(line.get("level"))
    fields = [str(line.get("time")), where, f"v{version}" if version else "-", str(line.get("request_id")), level]
    message = str(line.get("message", ""))
    if not out.terminal:
        out.write(" ".join([*fields, message]))
        return
    out.console.print(_styled(fields, message, line.get("kind") in ("start", "end", "report")))


def _styled(fields: list[str], message: str, platform_line: bool) -> Text:
    from rich.text import Text

    time_text, where, version, request_id, level = fields
    style = _LEVEL_STYLES.get(level, "")
    return Text.assemble(
        (time_text, "dim"),
        " ",
        (where, "cyan"),
        " ",
        (version, "dim"),
        " ",
        (request_id, "dim"),
        " ",
        (level, style or "green"),
        " ",
        (message, "dim" if platform_line else style),
    )
