"""`triggerfish queues send|receive|purge|redrive|stats`: a queue of an app, over the control API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from triggerfish.cli.client import Client, input_error, segment, server_options
from triggerfish.cli.inputs import parse_pairs, read_payload
from triggerfish.cli.output import Output, json_option, moment


@click.group()
def queues() -> None:
    """Send to, receive from, purge, redrive and inspect an app's queues."""


def _path(client: Client, name: str, tail: str = "") -> str:
    # Queue names may contain `/`; the API's routes take the rest of the path as the name.
    return client.app_api(f"/queues/{segment(name, slashes=True)}{tail}")


@queues.command()
@click.argument("name")
@click.option("-d", "--data", "data", default=None, help="The message body (else --path, else standard input).")
@click.option("--path", "path", default=None, type=click.Path(dir_okay=False, path_type=Path), help="Read the body.")
@click.option("--delay", type=click.FloatRange(0, 900), default=None, help="Seconds before it can be received.")
@click.option("--group", default=None, help="The message group (required on FIFO queues).")
@click.option("--dedup-id", "dedup_id", default=None, help="A repeat within the dedup window is not sent again.")
@click.option("--attribute", "attributes", multiple=True, metavar="NAME=VALUE", help="A string attribute (repeatable).")
@server_options()
@json_option
def send(
    name: str,
    data: str | None,
    path: Path | None,
    delay: float | None,
    group: str | None,
    dedup_id: str | None,
    attributes: tuple[str, ...],
    server: str | None,
    key: str | None,
    app: str | None,
    as_json: bool,
) -> None:
    """Send one message to the queue NAME; prints its message id.

    The body is sent as it is given (any text; JSON is not required).
    """
    body, _ = read_payload(data, path)
    if not body:
        raise input_error("the message is empty: give its body with -d TEXT, --path FILE or standard input")
    document: dict[str, Any] = {"body": body, "attributes": parse_pairs(attributes, "--attribute")}
    for field, value in (("delay", delay), ("group", group), ("dedup_id", dedup_id)):
        if value is not None:
            document[field] = value
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        sent = client.request("POST", _path(client, name, "/messages"), json=document)
    if not out.json(sent):
        out.write(str(sent.get("message_id")) + (" (duplicate: not sent again)" if sent.get("duplicate") else ""))


@queues.command()
@click.argument("name")
@click.option("--max", "max_messages", type=click.IntRange(1, 10), default=1, show_default=True)
@click.option("--wait", type=click.FloatRange(0, 20), default=0.0, show_default=True, help="Seconds to wait for one.")
@click.option("--visibility-timeout", type=click.FloatRange(1, 12 * 3600), default=None, help="Seconds of the lease.")
@click.option("--ack", is_flag=True, help="Acknowledge (delete) what was received, once it is printed.")
@server_options()
@json_option
def receive(
    name: str,
    max_messages: int,
    wait: float,
    visibility_timeout: float | None,
    ack: bool,
    server: str | None,
    key: str | None,
    app: str | None,
    as_json: bool,
) -> None:
    """Receive (lease) up to --max messages from the queue NAME and print them.

    Unacknowledged messages come back when their lease ends; --ack deletes
    them. A queue a function consumes competes with this for its messages.
    """
    document: dict[str, Any] = {"max": max_messages, "wait": wait}
    if visibility_timeout is not None:
        document["visibility_timeout"] = visibility_timeout
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        # The server may hold the request for the whole --wait: allow for it.
        got = client.request("POST", _path(client, name, "/receive"), json=document, timeout=wait + 30)
        messages = got.get("messages", [])
        acked = None
        if ack and messages:
            receipts = [m["receipt"] for m in messages]
            acked = client.request("POST", _path(client, name, "/ack"), json={"receipts": receipts})["acked"]
    if out.json({**got, **({} if acked is None else {"acked": acked})}):
        return
    rows = [
        [m.get("message_id"), m.get("receive_count"), moment(m.get("sent_at")), m.get("body", m.get("body_base64"))]
        for m in messages
    ]
    out.table(["message id", "receives", "sent", "body"], rows, empty=f"no message in {name}")
    if acked is not None:
        out.line(f"acknowledged {sum(1 for a in acked if a)} of {len(acked)}", style="dim")


@queues.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@server_options()
@json_option
def purge(name: str, yes: bool, server: str | None, key: str | None, app: str | None, as_json: bool) -> None:
    """Delete every message in the queue NAME. Asks first on a terminal; elsewhere --yes is required."""
    if not yes:
        if not sys.stdin.isatty():
            raise input_error(f"purging deletes every message in {name!r}: pass --yes to confirm")
        click.confirm(f"delete every message in {name!r}?", abort=True, err=True)
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        purged = client.request("DELETE", _path(client, name, "/messages"))
    if not out.json(purged):
        out.line(f"purged {purged.get('purged')} messages from {name}", style="green")


@queues.command()
@click.argument("name")
@click.option("--from", "dead_letter", default=None, help="The queue to move from (default: NAME's dead-letter queue).")
@click.option("--max", "max_messages", type=click.IntRange(min=1), default=None, help="Move at most this many.")
@server_options()
@json_option
def redrive(
    name: str,
    dead_letter: str | None,
    max_messages: int | None,
    server: str | None,
    key: str | None,
    app: str | None,
    as_json: bool,
) -> None:
    """Move the messages of NAME's dead-letter queue back to NAME, to be processed again.

    On a terminal a bar shows the messages moved of the dead-letter queue's depth; in a pipe, a line as it moves.
    """
    from triggerfish.cli.progress import with_progress

    document: dict[str, Any] = {}
    if dead_letter is not None:
        document["dead_letter"] = dead_letter
    if max_messages is not None:
        document["max"] = max_messages
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        moved = with_progress(
            out,
            client,
            f"moving dead letters back to {name}",
            lambda headers: client.request(
                "POST", _path(client, name, "/redrive"), json=document, timeout=None, headers=headers
            ),
            progress_path=client.app_api("/progress/{id}"),
            unit="messages",
        )
    if not out.json(moved):
        out.line(f"moved {moved.get('moved')} messages from {moved.get('dead_letter')} to {name}", style="green")


@queues.command()
@click.argument("name", required=False)
@server_options()
@json_option
def stats(name: str | None, server: str | None, key: str | None, app: str | None, as_json: bool) -> None:
    """Show every queue of the app (or only NAME): depth, in flight, oldest message, consumers, dead letters."""
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        if name is None:
            document = client.request("GET", client.app_api("/queues"))
            found = document.get("queues", [])
        else:
            document = client.request("GET", _path(client, name))
            found = [document]
    if out.json(document):
        return
    rows = []
    for queue in found:
        counts, dead = queue.get("stats", {}), queue.get("dead_letter")
        rows.append(
            [
                queue.get("name"),
                counts.get("visible"),
                counts.get("delayed"),
                counts.get("in_flight"),
                None if counts.get("oldest_age") is None else round(counts["oldest_age"], 1),
                queue.get("consumers"),
                None if dead is None else f"{dead.get('name')} ({dead.get('depth')})",
            ]
        )
    headers = ["queue", "visible", "delayed", "in flight", "oldest s", "consumers", "dead letters"]
    out.table(headers, rows, empty="no queues")
