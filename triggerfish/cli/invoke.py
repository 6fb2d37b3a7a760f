"""`triggerfish invoke NAME`: call a function as Lambda's Invoke does, and print its result.

Exit codes: 0 the function returned (or, with --async, the invocation is
queued durably), 1 the function raised, timed out or ran out of memory (its
error on stderr), or the server refused; 2, 3 and 4 as for every verb (see
triggerfish.cli.client).
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import click

from triggerfish.cli.client import EXIT_REFUSED, Client, segment, server_options
from triggerfish.cli.inputs import parse_json, read_payload
from triggerfish.cli.output import Output, json_option

REQUEST_ID_HEADER = "x-triggerfish-request-id"


@click.command()
@click.argument("name")
@click.option("-d", "--data", "data", default=None, help="The event, as JSON (else --path, else standard input).")
@click.option(
    "--path",
    "path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the event (JSON) from this file.",
)
@click.option("--async", "run_async", is_flag=True, help="Queue the invocation (Lambda's Event type); print its id.")
@click.option("--logs", is_flag=True, help="Print the end of the invocation's captured output on stderr.")
@server_options()
@json_option
def invoke(
    name: str,
    data: str | None,
    path: Path | None,
    run_async: bool,
    logs: bool,
    server: str | None,
    key: str | None,
    app: str | None,
    as_json: bool,
) -> None:
    """Invoke the function NAME with an event and print what it returned, as JSON.

    The event is -d JSON, --path FILE, or standard input; none is `{}`, as
    Lambda gives. With --async the invocation is queued and runs with the
    function's retries and destinations; its request id is printed. Exits 1
    when the function fails (its error type, message and stack trace on
    stderr).

    \b
    Examples:
      triggerfish invoke quote -d '{"items": 3}'
      echo '{"items": 3}' | triggerfish invoke quote --app shop
      triggerfish invoke send_receipt --path order.json --async
    """
    text, where = read_payload(data, path)
    if text.strip():
        parse_json(text, where)  # checked here, so a typo is named with its line and column
    out = Output(as_json)
    params = {"type": "Event"} if run_async else {}
    headers = {"content-type": "application/json"}
    if logs:
        headers["x-amz-log-type"] = "Tail"
    with Client(server, key, app=app) as client:
        # No bound on the wait: the server ends the invocation at the function's timeout.
        answer = client.send(
            "POST",
            client.app_api(f"/functions/{segment(name)}/invoke"),
            content=text.encode("utf-8"),
            params=params,
            headers=headers,
            timeout=None,
        )
        result = client.parse(answer)
    request_id = answer.headers.get(REQUEST_ID_HEADER) or (result or {}).get("request_id")
    if run_async:
        if not out.json({"request_id": request_id, "status": "queued"}):
            out.write(str(request_id))
        return
    tail = answer.headers.get("x-amz-log-result")
    if tail is not None:
        click.echo(base64.b64decode(tail).decode("utf-8", "replace").rstrip("\n"), err=True)
    failed = answer.headers.get("x-amz-function-error") is not None
    document: dict[str, Any] = {"request_id": request_id, "status": "failed" if failed else "succeeded"}
    document["error" if failed else "result"] = result
    if failed:
        if not out.json(document):
            _show_failure(result, request_id)
        sys.exit(EXIT_REFUSED)
    if not out.json(document):
        _show_result(out, result)


def _show_result(out: Output, result: Any) -> None:
    if out.terminal:
        from rich.json import JSON

        out.console.print(JSON.from_data(result))
    else:
        out.write(json.dumps(result, ensure_ascii=False))


def _show_failure(error: Any, request_id: str | None) -> None:
    document = error if isinstance(error, dict) else {}
    kind, message = document.get("errorType", "Error"), document.get("errorMessage", "")
    for frame in document.get("stackTrace") or []:
        click.echo(str(frame).rstrip("\n"), err=True)
    click.echo(f"{click.style('error:', fg='red', bold=True)} the function failed: {kind}: {message}", err=True)
    if request_id:
        click.echo(f"request id {request_id} (`triggerfish logs --request-id {request_id}`)", err=True)
