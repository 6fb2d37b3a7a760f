"""`triggerfish invocations show ID` and `rerun ID`: one invocation's attempts and kept input; running it again."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from triggerfish.cli.client import EXIT_REFUSED, Client, segment, server_options
from triggerfish.cli.output import Output, json_option, moment


@click.group()
def invocations() -> None:
    """One invocation: its attempts and the input it was given; run it again with that input."""


@invocations.command()
@click.argument("request_id")
@server_options()
@json_option
def show(request_id: str, server: str | None, key: str | None, app: str | None, as_json: bool) -> None:
    """Show invocation REQUEST_ID: each attempt's status, timings and error, and its input where it was kept.

    Inputs are kept where the function keeps them (`keep_inputs`: on under `triggerfish dev`, off under
    `serve` unless the app turns it on), at most 64 KiB, credentials redacted.

    \b
    Examples:
      triggerfish invocations show 3ca92105-afde-44fb-9e84-4b1b3d2d829d
      triggerfish invocations show 3ca92105-afde-44fb-9e84-4b1b3d2d829d --json | jq .input.event
    """
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        document: dict[str, Any] = client.request("GET", client.app_api(f"/invocations/{segment(request_id)}")) or {}
    if out.json(document):
        return
    out.fields(
        [("function", document.get("function")), ("status", document.get("status"))],
        title=f"invocation {request_id}",
    )
    rows = [
        [
            a.get("attempt"),
            a.get("status"),
            a.get("trigger"),
            moment(a.get("started_at")),
            f"{a.get('duration_ms', 0.0):.1f}",
            a.get("version") or "",
            (a.get("error") or {}).get("errorMessage", ""),
        ]
        for a in document.get("attempts", [])
    ]
    out.table(["attempt", "status", "trigger", "started", "ms", "version", "error"], rows, title="attempts")
    kept = document.get("input")
    if kept is None:
        out.write("input: not kept (the function does not keep inputs: keep_inputs = true keeps them)")
    elif kept.get("truncated"):
        out.write(f"input: {kept.get('size')} bytes, more than the 64 KiB kept; its beginning:")
        out.write(str(kept.get("text", "")))
    else:
        redacted = kept.get("redacted") or []
        note = f" ({', '.join(redacted)} redacted)" if redacted else ""
        out.write(f"input{note}:")
        out.write(json.dumps(kept.get("event"), indent=2, ensure_ascii=False))


@invocations.command()
@click.argument("request_id")
@click.option("--version", "version", default=None, help="Run on this version or alias (default: the original's).")
@server_options()
@json_option
def rerun(
    request_id: str, version: str | None, server: str | None, key: str | None, app: str | None, as_json: bool
) -> None:
    """Invoke the function of invocation REQUEST_ID again with its kept input, and print the result.

    It runs on the version the original ran on while that version serves, else on the serving one (it says so).

    \b
    Examples:
      triggerfish invocations rerun 3ca92105-afde-44fb-9e84-4b1b3d2d829d
    """
    out = Output(as_json)
    params = {} if version is None else {"version": version}
    with Client(server, key, app=app) as client:
        path = client.app_api(f"/invocations/{segment(request_id)}/rerun")
        answer: dict[str, Any] = client.request("POST", path, json={}, params=params, timeout=None) or {}
    if out.json(answer):
        return
    out.write(f"request id {answer.get('request_id')} (a re-run of {request_id} on version {answer.get('version')})")
    if answer.get("note"):
        out.write(str(answer["note"]))
    if answer.get("ok"):
        out.write(json.dumps(answer.get("result"), indent=2, ensure_ascii=False))
        return
    error = answer.get("error") or {}
    click.echo(f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}", err=True)
    sys.exit(EXIT_REFUSED)  # as `triggerfish invoke` does when the handler failed
