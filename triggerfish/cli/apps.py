"""Apps and functions on a server: `list`, `describe`, `remove`, `rollback` and `status`.

Under `triggerfish serve` a server hosts many apps (`GET /-/api/v1/apps`);
under `triggerfish dev` it serves one, at `/-/api/v1/...` with no app in the
path, and has no `/apps` endpoint: `list` and `status` notice that (a 404
`NotFound` for `/apps`) and show the one app.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

import click

from triggerfish.cli.client import EXIT_REFUSED, Client, CliError, input_error, key_label, segment, server_options
from triggerfish.cli.output import Output, json_option


def _apps(client: Client) -> list[dict[str, Any]] | None:
    """The apps the key can see, or None when the server is `triggerfish dev` (one app, no /apps)."""
    try:
        document = client.request("GET", client.api("/apps"))
    except CliError as exc:
        if exc.status == 404 and exc.code == "NotFound":
            return None
        raise
    apps: list[dict[str, Any]] = document.get("apps", [])
    return apps


def _canary(app: Mapping[str, Any]) -> str | None:
    """`4 (10%)`: the version a share of the live traffic goes to, when the app is being canaried."""
    canary = app.get("canary")
    if not isinstance(canary, Mapping):
        return None
    return f"{canary.get('version')} ({float(canary.get('weight') or 0) * 100:g}%)"


def _count(value: Any) -> Any:
    return len(value) if isinstance(value, list | Mapping) else value


def _show_apps(out: Output, apps: list[dict[str, Any]], versions: Mapping[str, list[Any]] | None = None) -> None:
    headers = ["app", "live version", "canary", "functions"]
    rows = [[a.get("name"), a.get("version"), _canary(a), _count(a.get("functions"))] for a in apps]
    if versions is not None:
        headers += ["versions", "latest"]
        for row, app in zip(rows, apps, strict=True):
            numbers = [v.get("version") for v in versions.get(str(app.get("name")), [])]
            row += [len(numbers), max(numbers, default=None)]
    out.table(headers, rows, title="apps", empty="no apps deployed (deploy one with `triggerfish deploy`)")


def _show_sources(out: Output, sources: Mapping[str, Any]) -> None:
    """`triggerfish dev`'s broker clients: connected or not, messages stored, reconnects, the last error."""
    for kind in ("mqtt", "amqp", "nats", "redis"):
        if kind not in sources:
            continue
        rows = [
            [name, "yes" if c.get("connected") else "no", c.get("received"), c.get("reconnects"), c.get("error") or ""]
            for name, c in sorted(sources[kind].get("clients", {}).items())
        ]
        title = f"{kind} sources ({sources[kind].get('broker')})"
        out.table(["function", "connected", "stored", "reconnects", "last error"], rows, title=title)


def _show_changes(out: Output, changes: Mapping[str, Any]) -> None:
    """`triggerfish dev`'s PostgreSQL change captures: the slot each reads and how much WAL it holds back."""
    rows = [
        [
            name,
            f"{c.get('table')} ({c.get('source')})",
            c.get("slot"),
            "yes" if c.get("reading") else "no",
            "?" if c.get("lag_bytes") is None else f"{c['lag_bytes']:,} B",
            # With parallelization > 1 the records counted are those moved into the function's partitions.
            f"{c.get('records')} into {c['partitions']} partitions" if c.get("partitions", 1) > 1 else c.get("records"),
            c.get("error") or "",
        ]
        for name, c in sorted(changes.items())
    ]
    out.table(["function", "table", "slot", "reading", "slot lag", "records", "last error"], rows, title="changes")


def _show_nodes(out: Output, nodes: list[dict[str, Any]]) -> None:
    now = time.time()
    rows = [
        [
            n.get("id"),
            n.get("address") or "(worker only)",
            ", ".join(n.get("roles", [])),
            n.get("state"),
            "; ".join(f"{app} {','.join(map(str, numbers))}" for app, numbers in sorted(n.get("versions", {}).items())),
            n.get("in_flight"),
            f"{max(0.0, now - float(n.get('heartbeat_at', now))):.1f} s ago",
        ]
        for n in nodes
    ]
    headers = ["node", "address", "roles", "state", "versions loaded", "in flight", "heartbeat"]
    out.table(headers, rows, title="nodes", empty="no nodes")


def _functions_rows(functions: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for function in functions:
        settings, pool = function.get("settings", {}), function.get("pool", {})
        triggers = [t.get("description", t.get("kind")) for t in function.get("triggers", [])]
        rows.append(
            [
                function.get("name"),
                "; ".join(str(t) for t in triggers) or "direct invoke only",
                settings.get("memory_mb"),
                settings.get("timeout"),
                settings.get("concurrency"),
                f"{pool.get('busy', 0)}/{pool.get('workers', 0)}",
                pool.get("invocations"),
            ]
        )
    return rows


@click.command("list")
@click.argument("app_name", metavar="[APP]", required=False)
@server_options()
@json_option
def list_command(app_name: str | None, server: str | None, key: str | None, app: str | None, as_json: bool) -> None:
    """List the apps on the server, or the functions of APP (or of --app).

    Against `triggerfish dev`, which serves one app, it lists that app's
    functions.
    """
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        chosen = app_name or client.app
        if chosen is None:
            apps = _apps(client)
            if apps is not None:
                if not out.json({"apps": apps}):
                    _show_apps(out, apps)
                return
        document = client.request("GET", client.app_api("/functions", chosen))
    if out.json(document):
        return
    functions = document.get("functions", [])
    out.line(f"app {document.get('app')} version {document.get('version')}", style="bold")
    headers = ["function", "triggers", "memory MB", "timeout s", "concurrency", "busy/workers", "invocations"]
    out.table(headers, _functions_rows(functions), empty="no functions")


@click.command()
@click.argument("name")
@server_options()
@json_option
def describe(name: str, server: str | None, key: str | None, app: str | None, as_json: bool) -> None:
    """Show the function NAME: its settings, triggers and worker pool."""
    out = Output(as_json)
    with Client(server, key, app=app) as client:
        function = client.request("GET", client.app_api(f"/functions/{segment(name)}"))
    if out.json(function):
        return
    out.fields(
        [("name", function.get("name")), ("handler", function.get("ref")), ("version", function.get("version"))],
        title=f"function {function.get('name')}",
    )
    settings = function.get("settings", {})
    out.fields(sorted(settings.items()), title="settings")
    triggers = [t.get("description", t.get("kind")) for t in function.get("triggers", [])]
    out.fields([(str(n + 1), t) for n, t in enumerate(triggers)] or [("-", "direct invoke only")], title="triggers")
    pool = dict(function.get("pool", {}))
    limits = pool.pop("limits", {})
    out.fields(sorted(pool.items()), title="pool")
    if limits:
        out.fields(sorted(limits.items()), title="limits")


@click.command()
@click.argument("app_name", metavar="APP")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@server_options(app=False)
@json_option
def remove(app_name: str, yes: bool, server: str | None, key: str | None, as_json: bool) -> None:
    """Remove APP from the server: stop serving it, and delete its versions, aliases, bundles and secrets.

    What its functions stored (events, queue messages, invocation records,
    key-value data) stays in the server's store under the app's name: an app
    deployed later under that name finds it.

    Asks first on a terminal; elsewhere --yes is required.
    """
    if not yes:
        if not sys.stdin.isatty():
            raise input_error(
                f"removing app {app_name!r} deletes its versions, bundles and secrets: pass --yes to confirm"
            )
        click.confirm(f"remove app {app_name!r} with its versions, bundles and secrets?", abort=True, err=True)
    out = Output(as_json)
    with Client(server, key) as client:
        answer = client.request("DELETE", client.api(f"/apps/{segment(app_name)}"))
    if not out.json(answer if answer is not None else {"app": app_name, "removed": True}):
        out.line(f"removed app {app_name}", style="green")


@click.command()
@click.argument("app_name", metavar="APP")
@click.option(
    "--to", "to", type=click.IntRange(min=1), default=None, help="The version (default: the one before live)."
)
@server_options(app=False)
@json_option
def rollback(app_name: str, to: int | None, server: str | None, key: str | None, as_json: bool) -> None:
    """Point APP's live alias back at an earlier version: --to VERSION, or the version before live."""
    out = Output(as_json)
    with Client(server, key) as client:
        answer = client.request("POST", client.app_api("/rollback", app_name), json={} if to is None else {"to": to})
    if not out.json(answer):
        out.line(f"app {app_name}: live is version {answer.get('version')} now", style="green")


@click.command()
@server_options(app=False)
@json_option
def status(server: str | None, key: str | None, as_json: bool) -> None:
    """Show the server (and where its URL and key came from), its health, and its apps: live version, canary,
    functions, how many versions and the latest.

    Exits 1 when the server says it is not healthy.
    """
    out = Output(as_json)
    versions: dict[str, list[Any]] | None = None
    nodes: list[dict[str, Any]] = []
    with Client(server, key) as client:
        health = client.request("GET", "/-/health")
        apps = _apps(client)
        if apps is not None:
            versions = {
                a["name"]: client.request("GET", client.app_api("/versions", a["name"])).get("versions", [])
                for a in apps
            }
            nodes = client.request("GET", "/-/api/v1/nodes").get("nodes", [])
    target = client.target
    if apps is None:
        # `triggerfish dev`: its one app, from the health answer.
        apps = [{"name": health.get("app"), "version": health.get("version"), "functions": health.get("functions")}]
    document = {
        "server": target.server,
        "server_from": target.server_from,
        "key": None if target.key is None else key_label(target.key),
        "key_from": target.key_from,
        "health": health,
        "apps": [a if versions is None else {**a, "versions": versions[a["name"]]} for a in apps],
    }
    if versions is not None:
        document["nodes"] = nodes
    healthy = health.get("status") == "ok"
    if not out.json(document):
        out.fields(
            [
                ("server", f"{target.server} (from {target.server_from})"),
                ("key", "none" if target.key is None else f"{key_label(target.key)} (from {target.key_from})"),
                ("status", health.get("status")),
                ("triggerfish", health.get("triggerfish")),
                ("uptime s", health.get("uptime")),
            ],
            title="server",
        )
        _show_apps(out, apps, versions)
        if health.get("sources"):
            _show_sources(out, health["sources"])
        if health.get("changes"):
            _show_changes(out, health["changes"])
        if versions is not None:
            _show_nodes(out, nodes)
    if not healthy:
        sys.exit(EXIT_REFUSED)
