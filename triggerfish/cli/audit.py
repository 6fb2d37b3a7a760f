"""`triggerfish audit`: the server's audit log (admin keys only): who did what to keys, secrets and deploys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from triggerfish.cli.client import Client, server_options
from triggerfish.cli.inputs import parse_time
from triggerfish.cli.output import Output, json_option, moment

OPERATIONS = (
    "key.create",
    "key.revoke",
    "secret.set",
    "secret.remove",
    "secrets.reseal",
    "deploy",
    "rollback",
    "alias.set",
    "app.remove",
)
OUTCOMES = ("ok", "refused", "failed")
#: Entries asked for per request while following `next`.
_PAGE = 1000


@click.command()
@click.option("--app", "app", default=None, help="Only this app's entries.")
@click.option("--operation", type=click.Choice(OPERATIONS), default=None, help="Only this operation.")
@click.option("--outcome", type=click.Choice(OUTCOMES), default=None, help="Only this outcome.")
@click.option("--since", default="1d", show_default=True, help="From this time: 10m, 2h, 7d, epoch seconds, ISO 8601.")
@click.option("--until", default=None, help="Before this time (default: now).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True, help="At most this many.")
@server_options(app=False)
@json_option
def audit(
    app: str | None,
    operation: str | None,
    outcome: str | None,
    since: str,
    until: str | None,
    limit: int,
    server: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Show the audit log: key, secret and deploy operations, oldest first, refused and failed ones too.

    \b
    Examples:
      triggerfish audit --since 7d --app shop
      triggerfish audit --outcome refused --json
    """
    params: dict[str, str | int | float] = {"since": parse_time(since, "--since")}
    if until is not None:
        params["until"] = parse_time(until, "--until")
    for name, value in (("app", app), ("operation", operation), ("outcome", outcome)):
        if value is not None:
            params[name] = value
    out = Output(as_json)
    entries: list[dict[str, Any]] = []
    with Client(server, key) as client:
        following: int | None = 0
        while following is not None and len(entries) < limit:
            page = client.request(
                "GET", client.api("/audit"), params={**params, "after": following, "limit": min(_PAGE, limit)}
            )
            entries.extend(page.get("entries", []))
            following = page.get("next")
    entries = entries[:limit]
    if out.json({"entries": entries}):
        return
    rows = [
        [
            moment(e.get("at")),
            e.get("operation"),
            e.get("outcome"),
            _who(e.get("actor") or {}),
            e.get("app"),
            e.get("object"),
            e.get("client"),
            e.get("code") or e.get("status"),
        ]
        for e in entries
    ]
    out.table(["time", "operation", "outcome", "who", "app", "object", "from", "answer"], rows, empty="no entries")


def _who(actor: Mapping[str, Any]) -> str:
    key = actor.get("key")
    if key is None:
        return str(actor.get("name") or f"no key ({actor.get('state', 'none sent')})")
    named = f"{key} ({actor.get('name')}, {actor.get('role')})" if actor.get("name") else str(key)
    return named + (f" [{actor['state']}]" if actor.get("state") else "")
