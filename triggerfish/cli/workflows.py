"""`triggerfish workflows start|list|describe|cancel|resume|callback`: an app's workflows, over the control API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from triggerfish.cli.client import Client, segment, server_options
from triggerfish.cli.inputs import parse_json, parse_time, read_payload
from triggerfish.cli.output import Output, json_option, moment

STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")


@click.group()
def workflows() -> None:
    """Start, list, describe, cancel and resume an app's workflows; answer their callbacks."""


def _payload(data: str | None, path: Path | None) -> tuple[bool, Any]:
    text, where = read_payload(data, path)
    if not text.strip():
        return False, None
    return True, parse_json(text, where)


@workflows.command()
@click.argument("function")
@click.option("-d", "--data", default=None, help="The input as JSON (else --path, else standard input).")
@click.option("--path", default=None, type=click.Path(dir_okay=False, path_type=Path), help="Read the input.")
@click.option("--id", "workflow_id", default=None, help="The workflow's id: starting it again starts nothing new.")
@server_options()
@json_option
def start(
    function: str,
    data: str | None,
    path: Path | None,
    workflow_id: str | None,
    server: str | None,
    key: str | None,
    app: str | None,
    as_json: bool,
) -> None:
    """Start the workflow FUNCTION; prints its id."""
    given, value = _payload(data, path)
    document: dict[str, Any] = {"function": function}
    if given:
        document["input"] = value
    if workflow_id is not None:
        document["id"] = workflow_id
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        answer = client.request("POST", client.app_api("/workflows"), json=document)
    if not out.json(answer):
        out.write(str(answer["workflow_id"]))


@workflows.command("list")
@click.option("--function", default=None, help="Only this workflow's.")
@click.option("--status", type=click.Choice(STATUSES, case_sensitive=False), default=None)
@click.option("--since", default=None, help="Started at or after (ISO 8601, or -1h, -30m ...).")
@click.option("--until", default=None, help="Started before.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@server_options()
@json_option
def list_workflows(
    function: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    server: str | None,
    key: str | None,
    app: str | None,
    as_json: bool,
) -> None:
    """The app's workflows, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if function is not None:
        params["function"] = function
    if status is not None:
        params["status"] = status.upper()
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            params[name] = parse_time(value, f"--{name}")
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        answer = client.request("GET", client.app_api("/workflows"), params=params)
    if out.json(answer):
        return
    rows = [
        [w["id"], w["function"], w["status"], moment(w["started"]), moment(w["ended"]) or "", w["operations"]]
        for w in answer["workflows"]
    ]
    out.table(["ID", "FUNCTION", "STATUS", "STARTED", "ENDED", "OPS"], rows, empty="no workflows")


@workflows.command()
@click.argument("workflow_id")
@server_options()
@json_option
def describe(workflow_id: str, server: str | None, key: str | None, app: str | None, as_json: bool) -> None:
    """A workflow: status, input, result or error, and every operation with its timing."""
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        record = client.request("GET", client.app_api(f"/workflows/{segment(workflow_id)}"))
    if out.json(record):
        return
    out.write(f"{record['id']}  {record['function']}  {record['status']}")
    out.write(
        f"started {moment(record['started'])}" + (f", ended {moment(record['ended'])}" if record["ended"] else "")
    )
    if record.get("error"):
        out.write(f"error: {record['error'].get('errorType')}: {record['error'].get('errorMessage')}")
    elif record["status"] == "SUCCEEDED":
        out.write(f"result: {record.get('result')!r}")
    rows = []
    for op in record["ops"]:
        took = f"{op['ended'] - op['started']:.3f}s" if op.get("ended") and op.get("started") else ""
        rows.append([op["seq"] + 1, op["kind"], op["name"], op["status"], op.get("attempts") or "", took])
    out.table(["#", "KIND", "NAME", "STATUS", "ATTEMPTS", "TOOK"], rows, empty="no operations yet")


@workflows.command()
@click.argument("workflow_id")
@click.option("--reason", default=None, help="Why (kept as the workflow's error).")
@server_options()
@json_option
def cancel(
    workflow_id: str, reason: str | None, server: str | None, key: str | None, app: str | None, as_json: bool
) -> None:
    """Cancel a workflow that has not finished, and the children it runs."""
    out = Output(as_json)
    body = {} if reason is None else {"reason": reason}
    with Client(server, key, app=app) as client:
        answer = client.request("POST", client.app_api(f"/workflows/{segment(workflow_id)}/cancel"), json=body)
    if not out.json(answer):
        out.write(f"{answer['id']} {answer['status']}")


@workflows.command()
@click.argument("workflow_id")
@server_options()
@json_option
def resume(workflow_id: str, server: str | None, key: str | None, app: str | None, as_json: bool) -> None:
    """Run a workflow that has not finished again from its checkpoints (after its run was dead-lettered)."""
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        answer = client.request("POST", client.app_api(f"/workflows/{segment(workflow_id)}/resume"), json={})
    if not out.json(answer):
        out.write(f"{answer['id']} resumed ({answer['status']})")


@workflows.command()
@click.argument("token")
@click.option("-d", "--data", default=None, help="The result as JSON (else --path, else standard input).")
@click.option("--path", default=None, type=click.Path(dir_okay=False, path_type=Path), help="Read the result.")
@click.option("--fail", "error", default=None, metavar="ERROR", help="Complete it with failure: the error's type.")
@click.option("--message", default=None, help="With --fail: what went wrong.")
@server_options()
@json_option
def callback(
    token: str,
    data: str | None,
    path: Path | None,
    error: str | None,
    message: str | None,
    server: str | None,
    key: str | None,
    app: str | None,
    as_json: bool,
) -> None:
    """Complete the callback TOKEN: with success and a result, or with --fail."""
    out = Output(as_json)
    if error is not None:
        tail, body = "fail", {"error": error, **({"message": message} if message is not None else {})}
    else:
        given, value = _payload(data, path)
        tail, body = "succeed", ({"result": value} if given else {})
    with Client(server, key, app=app) as client:
        answer = client.request("POST", client.app_api(f"/workflows/callbacks/{segment(token)}/{tail}"), json=body)
    if not out.json(answer):
        out.write("completed" if error is None else "completed with failure")
