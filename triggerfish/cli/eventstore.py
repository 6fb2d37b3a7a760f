"""`triggerfish eventstore streams|read|events|append|projections|rebuild`: an app's event store, over the control
API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from triggerfish.cli.client import Client, segment, server_options
from triggerfish.cli.inputs import parse_json, read_payload
from triggerfish.cli.output import Output, json_option


@click.group()
def eventstore() -> None:
    """Streams, events and projections of an app's event store."""


def _data(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def _event_rows(events: list[dict[str, Any]], *, positions: bool) -> list[list[Any]]:
    return [
        ([e.get("position", "")] if positions else [])
        + [e["stream"], e["version"], e["type"], e.get("schema", 1), e["time"], _data(e.get("data"))]
        for e in events
    ]


@eventstore.command()
@click.option("--category", default=None, help="Only this category's streams (account for account-1, ...).")
@click.option("--limit", type=click.IntRange(1, 1000), default=1000, show_default=True)
@server_options()
@json_option
def streams(
    category: str | None, limit: int, server: str | None, key: str | None, app: str | None, as_json: bool
) -> None:
    """The app's streams and their versions."""
    params: dict[str, Any] = {"limit": limit}
    if category is not None:
        params["category"] = category
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        answer = client.request("GET", client.app_api("/eventstore/streams"), params=params)
    if out.json(answer):
        return
    rows = [[s["stream"], s["version"]] for s in answer["streams"]]
    out.table(["STREAM", "VERSION"], rows, empty="no streams")


@eventstore.command()
@click.argument("stream")
@click.option("--start", type=click.IntRange(0), default=None, help="The first version (backwards: the newest).")
@click.option("--backwards", is_flag=True, help="Newest first.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@server_options()
@json_option
def read(
    stream: str,
    start: int | None,
    backwards: bool,
    limit: int,
    server: str | None,
    key: str | None,
    app: str | None,
    as_json: bool,
) -> None:
    """The events of STREAM, oldest first (or newest first with --backwards)."""
    params: dict[str, Any] = {"limit": limit, "backwards": "true" if backwards else "false"}
    if start is not None:
        params["start"] = start
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        answer = client.request("GET", client.app_api(f"/eventstore/streams/{segment(stream)}"), params=params)
    if out.json(answer):
        return
    rows = _event_rows(answer["events"], positions=False)
    out.table(["STREAM", "VERSION", "TYPE", "SCHEMA", "TIME", "DATA"], rows, empty="no events")


@eventstore.command()
@click.option("--after", type=click.IntRange(0), default=0, show_default=True, help="After this global position.")
@click.option("--category", default=None, help="Only this category's events.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@server_options()
@json_option
def events(
    after: int, category: str | None, limit: int, server: str | None, key: str | None, app: str | None, as_json: bool
) -> None:
    """Every stream's events in global (commit) order."""
    params: dict[str, Any] = {"after": after, "limit": limit}
    if category is not None:
        params["category"] = category
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        answer = client.request("GET", client.app_api("/eventstore/events"), params=params)
    if out.json(answer):
        return
    rows = _event_rows(answer["events"], positions=True)
    out.table(["POSITION", "STREAM", "VERSION", "TYPE", "SCHEMA", "TIME", "DATA"], rows, empty="no events")


@eventstore.command()
@click.argument("stream")
@click.argument("event_type")
@click.option("-d", "--data", default=None, help="The event's data as JSON (else --path, else standard input).")
@click.option("--path", default=None, type=click.Path(dir_okay=False, path_type=Path), help="Read the data.")
@click.option("--expected-version", type=click.IntRange(0), default=None, help="0: a new stream; n: at version n.")
@server_options()
@json_option
def append(
    stream: str,
    event_type: str,
    data: str | None,
    path: Path | None,
    expected_version: int | None,
    server: str | None,
    key: str | None,
    app: str | None,
    as_json: bool,
) -> None:
    """Append one event of EVENT_TYPE to STREAM (published on the app's bus too); prints its version."""
    text, where = read_payload(data, path)
    event: dict[str, Any] = {"type": event_type}
    if text.strip():
        event["data"] = parse_json(text, where)
    out = Output(as_json)
    document = {"events": [event], "expected_version": expected_version}
    with Client(server, key, app=app) as client:
        answer = client.request("POST", client.app_api(f"/eventstore/streams/{segment(stream)}"), json=document)
    if not out.json(answer):
        out.write(f"{answer['stream']} version {answer['version']} (position {answer['position']})")


@eventstore.command()
@server_options()
@json_option
def projections(server: str | None, key: str | None, app: str | None, as_json: bool) -> None:
    """Each projection: its category, position, lag behind the newest event, the node running it, its error (per
    stream: how many streams are behind, and the first one's error)."""
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        answer = client.request("GET", client.app_api("/eventstore/projections"))
    if out.json(answer):
        return
    rows = [
        [
            p["name"],
            p["category"],
            p["position"],
            p["lag"],
            _state(p),
            p["node"] or "",
            p["error"] or "",
        ]
        for p in answer["projections"]
    ]
    out.table(["PROJECTION", "CATEGORY", "POSITION", "LAG", "STATE", "NODE", "ERROR"], rows, empty="no projections")


def _state(projection: dict[str, Any]) -> str:
    if projection["rebuilding"]:
        return "rebuilding"
    behind = int(projection.get("streams_behind") or 0)
    if behind:
        return f"{behind} stream{'s' if behind > 1 else ''} behind"
    return "per stream" if projection.get("order") == "stream" else ""


@eventstore.command()
@click.argument("name")
@server_options()
@json_option
def rebuild(name: str, server: str | None, key: str | None, app: str | None, as_json: bool) -> None:
    """Start projection NAME again from the first event (its records are deleted first)."""
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        answer = client.request("POST", client.app_api(f"/eventstore/projections/{segment(name)}/rebuild"), json={})
    if not out.json(answer):
        out.write(f"{name}: rebuilding from position 0")
