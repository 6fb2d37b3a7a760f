"""`triggerfish events ...`: work with events and patterns."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from triggerfish.cli.client import Client, server_options
from triggerfish.cli.output import Output, json_option
from triggerfish.errors import InvalidInputError

#: Exit codes of `test-pattern`, like grep's: 0 match, 1 no match, 2 trouble.
EXIT_MATCH = 0
EXIT_NO_MATCH = 1
EXIT_ERROR = 2


@click.group()
def events() -> None:
    """Work with events and event patterns."""


def _read(value: str, what: str) -> str:
    """Inline JSON, or `@path` for a file's contents (`@-` reads standard input)."""
    if not value.startswith("@"):
        return value
    name = value[1:]
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise click.ClickException(f"cannot read the {what} file {name!r}: {reason}") from None


@events.command("test-pattern")
@click.option("--pattern", "-p", "pattern_text", required=True, help="The event pattern: JSON, or @FILE.")
@click.option("--event", "-e", "event_text", required=True, help="The event: JSON, or @FILE.")
def test_pattern(pattern_text: str, event_text: str) -> None:
    """Check whether an event matches an EventBridge pattern, as AWS's TestEventPattern does.

    Prints "match" (exit 0) or "no match" (exit 1). An invalid pattern, an
    invalid event or an unreadable file prints the reason and exits 2.

    \b
    Example:
      triggerfish events test-pattern \\
        --pattern '{"source": ["shop"], "detail": {"total": [{"numeric": [">", 100]}]}}' \\
        --event @examples/patterns/order-placed.event.json
    """
    # Imported here so `triggerfish --help` does not load the pattern engine.
    from triggerfish.events.patterns import compile_pattern

    try:
        pattern = compile_pattern(_read(pattern_text, "pattern"))
        matched = pattern.matches(_read(event_text, "event"))
    except click.ClickException as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(EXIT_ERROR)
    except InvalidInputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    click.echo("match" if matched else "no match")
    sys.exit(EXIT_MATCH if matched else EXIT_NO_MATCH)


#: Exit codes of `put` and `replay` are every server verb's (see triggerfish.cli.client): 0 done, 1 the server
#: refused, 2 bad input here, 3 no server to talk to, 4 not authorised.


@events.command("put")
@click.option("--type", "event_type", help="The event's type (with --source): one event built here.")
@click.option("--source", help="The event's source (with --type).")
@click.option("--data", "data_text", help="The event's data (with --type): JSON, or @FILE (@- reads stdin).")
@click.option("--event", "event_text", help="A CloudEvent in JSON, or a JSON array of them (a batch): @FILE or inline.")
@click.option("--entries", "entries_text", help='EventBridge PutEvents entries: [...] or {"Entries": [...]}, @FILE.')
@click.option("--bus", default=None, help="The bus (default: default); for --entries, of entries naming none.")
@server_options()
def put(
    event_type: str | None,
    source: str | None,
    data_text: str | None,
    event_text: str | None,
    entries_text: str | None,
    bus: str | None,
    server: str | None,
    key: str | None,
    app: str | None,
) -> None:
    """Publish events to a running platform (`POST /-/events`, or `/-/apps/APP/events` with --app) and print
    their ids, one a line.

    Exits 0 once the server stored them, 1 when it refused them (its reason on
    stderr), 2 for bad input here (invalid JSON names the line and column), 3
    when no server answers, 4 when the key is refused.

    \b
    Examples:
      triggerfish events put --type OrderPlaced --source shop --data '{"order_id": "o-1", "total": 250}'
      triggerfish events put --event @order.cloudevent.json --bus orders
      triggerfish events put --entries @put-events.json --server http://127.0.0.1:9000
    """
    try:
        body, headers, params = _put_request(event_type, source, data_text, event_text, entries_text, bus)
    except click.ClickException as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(EXIT_ERROR)
    except InvalidInputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    with Client(server, key, app=app) as client:
        answer = client.request("POST", client.events_path(), content=body, headers=headers, params=params)
    for event_id in answer.get("ids", []):
        click.echo(event_id)


def _put_request(
    event_type: str | None,
    source: str | None,
    data_text: str | None,
    event_text: str | None,
    entries_text: str | None,
    bus: str | None,
) -> tuple[bytes, dict[str, str], dict[str, str]]:
    """The body, headers and query of the `POST /-/events` that `put` sends."""
    from triggerfish._json import dumps
    from triggerfish.cli.inputs import parse_json
    from triggerfish.events.cloudevent import Event
    from triggerfish.events.http_binding import BATCH_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE

    modes = [
        name
        for name, given in (("--type", event_type or source), ("--event", event_text), ("--entries", entries_text))
        if given
    ]
    if len(modes) != 1:
        raise click.ClickException(
            "give one of: --type T --source S [--data JSON], --event @cloudevent.json, --entries @putevents.json"
            + (f" (not {' and '.join(modes)} together)" if modes else "")
        )
    if data_text is not None and modes != ["--type"]:
        raise click.ClickException("--data goes with --type and --source")
    params = {} if bus is None else {"bus": bus}
    if event_text is not None:
        text = _read(event_text, "event")
        document = parse_json(text, "--event")
        if not isinstance(document, dict | list):
            raise click.ClickException("--event must be a CloudEvent (a JSON object) or a batch (a JSON array)")
        kind = STRUCTURED_CONTENT_TYPE if isinstance(document, dict) else BATCH_CONTENT_TYPE
        return text.encode("utf-8"), {"content-type": kind}, params
    if entries_text is not None:
        document = parse_json(_read(entries_text, "entries"), "--entries")
        entries = document.get("Entries") if isinstance(document, dict) else document
        if not isinstance(entries, list):
            raise click.ClickException('--entries must be a JSON array of entries, or {"Entries": [...]}')
        if bus is not None:
            entries = [{"EventBusName": bus, **e} if isinstance(e, dict) else e for e in entries]
        return dumps({"Entries": entries}), {"content-type": "application/json"}, {}
    if not event_type or not source:
        raise click.ClickException("--type and --source go together: give both")
    data = None if data_text is None else parse_json(_read(data_text, "data"), "--data")
    event = Event.create(event_type, source, data)
    return event.to_json(), {"content-type": STRUCTURED_CONTENT_TYPE}, params


@events.command()
@click.option("--bus", default="default", show_default=True, help="The bus whose events are delivered again.")
@click.option("--start", required=True, help="From this time (inclusive): 1h (ago), epoch seconds or ISO 8601.")
@click.option("--end", default="now", show_default=True, help="To this time (exclusive), in the same forms.")
@click.option("--rule", default=None, help="Deliver to this rule only (default: every rule that matches now).")
@click.option("--name", default=None, help="The replay's name, in each event's `replayname` (default: replay).")
@server_options()
@json_option
def replay(
    bus: str,
    start: str,
    end: str,
    rule: str | None,
    name: str | None,
    server: str | None,
    key: str | None,
    app: str | None,
    as_json: bool,
) -> None:
    """Deliver again the events published on a bus in a time range, to the rules that match them now.

    Live delivery carries on meanwhile; prints how many deliveries were queued. On a terminal a bar shows the
    events replayed of those the range holds; in a pipe, a line as it moves.

    \b
    Examples:
      triggerfish events replay --start 2h
      triggerfish events replay --bus orders --start 2024-05-01T00:00:00Z --end 2024-05-02T00:00:00Z --rule audit
    """
    from triggerfish.cli.client import segment
    from triggerfish.cli.inputs import parse_time
    from triggerfish.cli.progress import with_progress

    document: dict[str, object] = {"start": parse_time(start, "--start"), "end": parse_time(end, "--end")}
    if rule is not None:
        document["rule"] = rule
    if name is not None:
        document["name"] = name
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        answer = with_progress(
            out,
            client,
            f"replaying bus {bus}",
            lambda headers: client.request(
                "POST", client.app_api(f"/buses/{segment(bus, slashes=True)}/replay"), json=document, headers=headers
            ),
            progress_path=client.app_api("/progress/{id}"),
            unit="events",
        )
    if not out.json(answer):
        target = f"rule {rule}" if rule is not None else "every matching rule"
        out.line(f"queued {answer.get('queued')} deliveries of bus {bus} to {target}", style="green")


@events.command()
@click.option("--after", default=0, type=click.IntRange(0), help="Only entries after this id (to page on).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000), help="At most this many.")
@server_options()
@json_option
def parked(after: int, limit: int, server: str | None, key: str | None, app: str | None, as_json: bool) -> None:
    """Show log records the platform could not read back: kept rather than dropped, with where and why.

    A publisher checks every event before it is stored, so these come only from a store written by
    something else (a buggy or newer version, a hand edit).

    \b
    Examples:
      triggerfish events parked
      triggerfish events parked --app shop --json
    """
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        answer = client.request("GET", client.app_api("/parked"), params={"after": after, "limit": limit})
    entries = answer.get("parked", [])
    if not out.json(answer):
        rows = [[e.get("id"), e.get("stream"), e.get("offset"), e.get("reason")] for e in entries]
        out.table(["id", "stream", "offset", "reason"], rows, title="parked", empty="nothing is parked")
