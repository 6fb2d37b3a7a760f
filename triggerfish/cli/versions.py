"""`triggerfish versions`, `alias` and `promote`: an app's versions and the aliases that point at them.

    GET /-/api/v1/apps/{app}/versions           every version, and whether it is live
    GET /-/api/v1/apps/{app}/aliases            the aliases: a version each, and maybe a canary with its weight
    PUT /-/api/v1/apps/{app}/aliases/{alias}    {"version": 3, "weights": {"4": 0.1}}

`promote` is the last one with the canary as the alias's version and no weights.
"""

from __future__ import annotations

import time
from typing import Any

import click

from triggerfish.cli.client import EXIT_REFUSED, Client, CliError, input_error, segment, server_options
from triggerfish.cli.output import Output, json_option

LIVE = "live"


@click.command()
@click.argument("app_name", metavar="APP")
@server_options(app=False)
@json_option
def versions(app_name: str, server: str | None, key: str | None, as_json: bool) -> None:
    """List APP's versions, oldest first: when each was deployed, its bundle, stage, functions and aliases."""
    out = Output(as_json)
    with Client(server, key) as client:
        listed = client.request("GET", client.app_api("/versions", app_name)).get("versions", [])
        aliases = client.request("GET", client.app_api("/aliases", app_name)).get("aliases", [])
    if out.json({"app": app_name, "versions": listed, "aliases": aliases}):
        return
    rows = [
        [
            v.get("version"),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(v.get("created_at", 0)))),
            str(v.get("bundle", ""))[:12],
            v.get("stage") or "-",
            len(v.get("functions", [])),
            ", ".join(_pointing(aliases, int(v.get("version", 0)))) or "-",
        ]
        for v in listed
    ]
    out.table(
        ["version", "deployed", "bundle", "stage", "functions", "aliases"],
        rows,
        title=f"versions of {app_name}",
        empty=f"app {app_name} has no versions",
    )


@click.command()
@click.argument("app_name", metavar="APP")
@click.argument("alias_name", metavar="NAME")
@click.option("--version", "version", type=click.IntRange(min=1), required=True, help="The version NAME points at.")
@click.option(
    "--canary", type=click.IntRange(min=1), default=None, help="A second version taking --weight of the requests."
)
@click.option(
    "--weight",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="The canary's share of synchronous requests, between 0 and 1 (0.1: one in ten).",
)
@server_options(app=False)
@json_option
def alias(
    app_name: str,
    alias_name: str,
    version: int,
    canary: int | None,
    weight: float | None,
    server: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Point APP's alias NAME at --version, with an optional --canary version taking --weight of the traffic.

    Only `live` is served: pointing it switches what answers, at once (the
    versions are loaded first; work in flight finishes where it started).
    Other aliases name versions without loading them.

    \b
    Examples:
      triggerfish alias shop live --version 3 --canary 4 --weight 0.1
      triggerfish alias shop stable --version 3
    """
    if (canary is None) != (weight is None):
        raise input_error("--canary and --weight go together: --canary VERSION --weight 0.1")
    if canary is not None and canary == version:
        raise input_error(f"--canary {canary} is --version itself; name another version, or leave both out")
    weights = {} if canary is None else {str(canary): weight}
    out = Output(as_json)
    with Client(server, key) as client:
        answer = client.request(
            "PUT",
            client.app_api(f"/aliases/{segment(alias_name)}", app_name),
            json={"version": version, "weights": weights},
        )
    if not out.json(answer):
        out.line(f"app {app_name}: {_describe(answer)}", style="green")


@click.command()
@click.argument("app_name", metavar="APP")
@click.option("--alias", "alias_name", default=LIVE, show_default=True, help="The alias whose canary to promote.")
@server_options(app=False)
@json_option
def promote(app_name: str, alias_name: str, server: str | None, key: str | None, as_json: bool) -> None:
    """Make the canary of APP's alias (live) its version, taking all of the traffic.

    Exits 1 when the alias has no canary.
    """
    out = Output(as_json)
    with Client(server, key) as client:
        aliases = client.request("GET", client.app_api("/aliases", app_name)).get("aliases", [])
        current = next((a for a in aliases if a.get("name") == alias_name), None)
        if current is None:
            known = ", ".join(str(a.get("name")) for a in aliases) or "none"
            raise CliError(EXIT_REFUSED, f"app {app_name} has no alias {alias_name!r} (its aliases: {known})")
        weights = current.get("weights") or {}
        if not weights:
            raise CliError(
                EXIT_REFUSED,
                f"app {app_name}'s alias {alias_name} (version {current.get('version')}) has no canary to promote;"
                f" set one with `triggerfish alias {app_name} {alias_name} --version {current.get('version')}"
                " --canary VERSION --weight 0.1`",
            )
        promoted = int(next(iter(weights)))
        answer = client.request(
            "PUT",
            client.app_api(f"/aliases/{segment(alias_name)}", app_name),
            json={"version": promoted, "weights": {}},
        )
    if not out.json(answer):
        out.line(f"app {app_name}: promoted version {promoted}; {_describe(answer)}", style="green")


def _pointing(aliases: list[dict[str, Any]], version: int) -> list[str]:
    """The aliases naming `version`, as `live` or `live (canary, 10%)`."""
    names = []
    for a in aliases:
        if a.get("version") == version:
            names.append(str(a.get("name")))
        for canary, weight in (a.get("weights") or {}).items():
            if int(canary) == version:
                names.append(f"{a.get('name')} (canary, {float(weight):.0%})")
    return names


def _describe(alias: dict[str, Any]) -> str:
    """`live -> version 3` or `live -> version 3, canary 4 at 10%`."""
    said = f"{alias.get('name')} -> version {alias.get('version')}"
    for canary, weight in (alias.get("weights") or {}).items():
        said += f", canary {canary} at {float(weight):.0%}"
    return said
